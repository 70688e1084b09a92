// DHCPv4 packet codec: parse and build BOOTP/DHCP messages (RFC 951, 2131, 2132), with option
// overload (option 52: options continue in `file`, then `sname`) and the concatenation of split
// options (RFC 3396). Replies are laid out against the client's maximum message size (option 57),
// in the order of its parameter request list (option 55).
//
// Pure: no sockets, no files, no clocks. The server, the snippet generator, the tests and the fuzz
// target all go through here, so every bound on untrusted bytes is enforced in one place.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace labctl::dhcp {

// ---- wire constants ----------------------------------------------------------------------------

inline constexpr std::size_t kHeaderSize = 236;     // op .. file
inline constexpr std::size_t kOptionsOffset = 240;  // header + magic cookie
inline constexpr std::uint32_t kMagicCookie = 0x63825363;
inline constexpr std::size_t kSnameOffset = 44;
inline constexpr std::size_t kSnameSize = 64;
inline constexpr std::size_t kFileOffset = 108;
inline constexpr std::size_t kFileSize = 128;
inline constexpr std::size_t kChaddrSize = 16;
inline constexpr std::size_t kMaxPacket = 65535;  // never parse or build anything larger
// Option 57 counts the whole IP datagram; the DHCP message is what is left after the IPv4 (20)
// and UDP (8) headers. 576 is the minimum every client must accept (RFC 2131 section 2).
inline constexpr std::size_t kIpUdpHeaders = 28;
inline constexpr std::uint16_t kMinMaxMessageSize = 576;
// Replies are padded to the BOOTP minimum (RFC 1542 section 2.1); some clients drop shorter ones.
inline constexpr std::size_t kMinReplySize = 300;

inline constexpr std::uint8_t kBootRequest = 1;
inline constexpr std::uint8_t kBootReply = 2;
inline constexpr std::uint16_t kFlagBroadcast = 0x8000;

// Option codes used by labctl (RFC 2132 unless noted).
namespace opt {
inline constexpr std::uint8_t kPad = 0;
inline constexpr std::uint8_t kSubnetMask = 1;
inline constexpr std::uint8_t kRouter = 3;
inline constexpr std::uint8_t kDnsServers = 6;
inline constexpr std::uint8_t kHostname = 12;
inline constexpr std::uint8_t kDomainName = 15;
inline constexpr std::uint8_t kVendorSpecific = 43;
inline constexpr std::uint8_t kRequestedIp = 50;
inline constexpr std::uint8_t kLeaseTime = 51;
inline constexpr std::uint8_t kOverload = 52;
inline constexpr std::uint8_t kMessageType = 53;
inline constexpr std::uint8_t kServerId = 54;
inline constexpr std::uint8_t kParameterRequestList = 55;
inline constexpr std::uint8_t kMessage = 56;
inline constexpr std::uint8_t kMaxMessageSize = 57;
inline constexpr std::uint8_t kRenewalTime = 58;
inline constexpr std::uint8_t kRebindingTime = 59;
inline constexpr std::uint8_t kVendorClass = 60;
inline constexpr std::uint8_t kClientId = 61;
inline constexpr std::uint8_t kTftpServerName = 66;
inline constexpr std::uint8_t kBootfileName = 67;
inline constexpr std::uint8_t kRelayAgentInfo = 82;     // RFC 3046
inline constexpr std::uint8_t kCiscoTftpServers = 150;  // Cisco: binary list of IPv4 addresses
inline constexpr std::uint8_t kEnd = 255;
}  // namespace opt

// RFC 2132 9.6 (1-8), RFC 3203 (9), RFC 4388 (10-13), RFC 6926 (14-15), RFC 7724 (16-18).
enum class MessageType : std::uint8_t {
  Discover = 1,
  Offer = 2,
  Request = 3,
  Decline = 4,
  Ack = 5,
  Nak = 6,
  Release = 7,
  Inform = 8,
  ForceRenew = 9,
  LeaseQuery = 10,
  LeaseUnassigned = 11,
  LeaseUnknown = 12,
  LeaseActive = 13,
  BulkLeaseQuery = 14,
  LeaseQueryDone = 15,
  ActiveLeaseQuery = 16,
  LeaseQueryStatus = 17,
  Tls = 18,
};

// "DHCPDISCOVER", "DHCPACK", ...; "DHCP type N" for values outside the table.
std::string message_type_name(MessageType t);

// ---- options -----------------------------------------------------------------------------------

struct Option {
  std::uint8_t code = 0;
  std::vector<std::uint8_t> data;
  bool operator==(const Option&) const = default;
};

// Options of one message: one entry per code, in the order codes first appeared, each with the
// concatenation of every instance of that code (RFC 3396). Never holds pad (0), end (255) or
// overload (52): those are framing, handled by the codec.
class Options {
 public:
  const std::vector<Option>& items() const { return items_; }
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }

  // The data of `code`, or nullptr when absent. Valid until the options are changed.
  const std::vector<std::uint8_t>* find(std::uint8_t code) const;
  bool has(std::uint8_t code) const { return find(code) != nullptr; }
  // Replaces the data of `code` (keeping its position) or appends it.
  void set(std::uint8_t code, std::vector<std::uint8_t> data);
  // Appends bytes to `code`'s data (adding the option at the end when absent).
  void append(std::uint8_t code, std::span<const std::uint8_t> data);
  // Removes `code`; false when it was absent.
  bool erase(std::uint8_t code);

  bool operator==(const Options&) const = default;

 private:
  std::vector<Option> items_;
};

// ---- messages ----------------------------------------------------------------------------------

// One BOOTP/DHCP message. Addresses are in host byte order (10.99.0.1 is 0x0a630001).
struct Message {
  std::uint8_t op = kBootRequest;
  std::uint8_t htype = 1;  // Ethernet
  std::uint8_t hlen = 6;
  std::uint8_t hops = 0;
  std::uint32_t xid = 0;
  std::uint16_t secs = 0;
  std::uint16_t flags = 0;  // only kFlagBroadcast is defined
  std::uint32_t ciaddr = 0;
  std::uint32_t yiaddr = 0;
  std::uint32_t siaddr = 0;
  std::uint32_t giaddr = 0;
  std::array<std::uint8_t, kChaddrSize> chaddr{};
  // The server name and boot file fields as text, up to their first NUL (all 64 / 128 bytes when
  // there is none). Empty when the field carried options (see `overload`).
  std::string sname;
  std::string file;
  Options options;
  // Set by parse(): which fields carried options, the value of option 52 (1 file, 2 sname, 3
  // both), 0 without overload. Ignored by the builders, which decide the layout themselves.
  std::uint8_t overload = 0;

  bool broadcast() const { return (flags & kFlagBroadcast) != 0; }
  bool operator==(const Message&) const = default;
};

// Parses one UDP payload. Errors are InvalidInput and name the reason and the byte offset
// ("option 150 at offset 250: length 8 runs past the end of the options field at 255"). Checks:
// at least 240 bytes, at most kMaxPacket, the magic cookie, every option length against its
// field, option 52 (length 1, value 1-3, only in the options field); each field is read at most
// once. A missing end option is tolerated; bytes after it are ignored.
Result<Message> parse(std::span<const std::uint8_t> packet);

// Serialises every option in order into the options field, without overload (long options are
// split into several instances, RFC 3396). InvalidInput when a name does not fit its field, an
// option code is 0, 52 or 255, or the result exceeds kMaxPacket. No padding.
Result<std::vector<std::uint8_t>> build(const Message& m);

// What a server sends: a reply skeleton and the options it could send; build_reply() decides which
// go out, in what order, in which field.
struct ReplyPlan {
  // Fixed fields of the reply (op, xid, yiaddr, chaddr, flags, giaddr, sname, file ...); its
  // `options` are ignored. `sname` / `file` are only used for options when left empty.
  Message skeleton;
  // The options the server has for this client. The protocol options (53, 54, 51, 58, 59, 61,
  // 56) go out whenever present: 53 first, then the others in that order; 82 (relay agent
  // information, echoed) last. Every other option goes out only when the client asked for it
  // or its code is in `always_send`.
  Options options;
  std::vector<std::uint8_t> parameter_request_list;  // the client's option 55, in its order
  std::vector<std::uint8_t> always_send;             // per segment: sent even when not asked
  // The client's option 57 (the largest IP datagram it accepts); values below 576 count as 576.
  std::uint16_t max_message_size = kMinMaxMessageSize;
};

struct BuiltReply {
  std::vector<std::uint8_t> bytes;    // never longer than max_message_size - 28
  std::vector<std::uint8_t> sent;     // codes sent, in emission order
  std::vector<std::uint8_t> dropped;  // codes left out because they did not fit, least wanted last
  std::uint8_t overload = 0;          // value of option 52 used, 0 without overload
};

// Order: protocol options, then the requested ones in the client's order, then always-send ones
// in their order, then 82. When they do not fit the options field (with its end option), option 52
// is added and they continue in `file` and then `sname`, where those are empty: the protocol
// options first, the others largest first, each into the first field with room, each field keeping
// the order above (a long option's instances stay in field order, so they concatenate back
// correctly). If that is still not enough, the least wanted options (the end of that order; never
// the protocol ones) are dropped until the rest fit, then any dropped one that fits again is put
// back; what stays out is reported in `dropped`. InvalidInput when the protocol options alone do
// not fit, a name does not fit its field, or an option code is 0, 52 or 255. Replies shorter than
// 300 bytes are padded.
Result<BuiltReply> build_reply(const ReplyPlan& plan);

// ---- typed accessors ---------------------------------------------------------------------------
// nullopt when the option is absent or its length is wrong for its type; check_known_options()
// says which one is malformed.

std::optional<MessageType> message_type(const Message& m);             // 53, 1 byte
std::optional<std::uint32_t> requested_ip(const Message& m);           // 50, 4 bytes
std::optional<std::uint32_t> server_id(const Message& m);              // 54, 4 bytes
std::optional<std::uint32_t> lease_time(const Message& m);             // 51, 4 bytes, seconds
std::optional<std::uint16_t> max_message_size(const Message& m);       // 57, 2 bytes, as sent
std::optional<std::vector<std::uint8_t>> client_id(const Message& m);  // 61, at least 2 bytes
// 55, at least 1 byte; codes in the client's order, as sent (duplicates kept).
std::optional<std::vector<std::uint8_t>> parameter_request_list(const Message& m);
// Text options (12 hostname, 60 vendor class, 66 TFTP server name, ...): the bytes as sent, with
// trailing NULs removed (dnsmasq sends 66 with one, Kea without). At least 1 byte.
std::optional<std::string> text_option(const Message& m, std::uint8_t code);
std::optional<std::string> hostname(const Message& m);      // 12
std::optional<std::string> vendor_class(const Message& m);  // 60
// A list of IPv4 addresses (150, 3, 6, ...): a non-zero multiple of 4 bytes.
std::optional<std::vector<std::uint32_t>> ipv4_list_option(const Message& m, std::uint8_t code);

// OK, or InvalidInput naming the first option above that is present with a wrong length.
Status check_known_options(const Message& m);

// ---- option data encoders ----------------------------------------------------------------------

// 4 bytes per address, network order: what option 150 must be (never text).
std::vector<std::uint8_t> encode_ipv4_list(std::span<const std::uint32_t> addresses);
// The bytes of the text, no trailing NUL (option 66, 12, 60 ...).
std::vector<std::uint8_t> encode_text(std::string_view text);
std::vector<std::uint8_t> encode_u32(std::uint32_t v);
std::vector<std::uint8_t> encode_u16(std::uint16_t v);
// Code-length-value bytes of one option; data over 255 bytes becomes several instances.
std::vector<std::uint8_t> encode_tlv(std::uint8_t code, std::span<const std::uint8_t> data);

// ---- text forms --------------------------------------------------------------------------------

// "00:0b:82:01:fc:42" (lower case, colons); empty for no bytes.
std::string mac_string(std::span<const std::uint8_t> hw);
// The client hardware address: the first hlen bytes of chaddr (at most 16).
std::string mac_string(const Message& m);
// "10.99.0.1"
std::string ipv4_string(std::uint32_t address);
// Strict dotted quad (four decimal parts 0-255, no leading zeros beyond "0"); nullopt otherwise.
std::optional<std::uint32_t> parse_ipv4(std::string_view s);
// The netmask of a prefix length: 0 for 0 or less, 255.255.255.255 for 32 or more.
std::uint32_t prefix_mask(int prefix);
// "12ab..." lower-case hex, no separators.
std::string hex_string(std::span<const std::uint8_t> bytes);
// One line for logs: "DHCPREQUEST xid=0x3903f326 chaddr=00:0b:82:01:fc:42 requested=10.99.1.5
// server=10.99.0.1 hostname=\"SEP000B8201FC42\" prl=1,3,6,15,66,150 options=53,50,54,12,55".
// Untrusted text is escaped (\xNN) and cut short.
std::string describe(const Message& m);

}  // namespace labctl::dhcp
