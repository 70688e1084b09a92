// TFTP packet codec: parse and build RRQ, WRQ, DATA, ACK, ERROR and OACK (RFC 1350, 2347), option
// negotiation (RFC 2348 blksize, RFC 2349 tsize and timeout, RFC 7440 windowsize) and netascii as
// streaming transforms.
//
// Pure: no sockets, no files, no clocks. The server, the client and the fuzz target all go through
// here, so every bound on untrusted bytes is enforced in one place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/error.h"

namespace labctl::tftp {

enum class Opcode : std::uint16_t { Rrq = 1, Wrq = 2, Data = 3, Ack = 4, Error = 5, Oack = 6 };

// RFC 1350 codes 0-7, RFC 2347 code 8.
enum class ErrorCode : std::uint16_t {
  NotDefined = 0,
  FileNotFound = 1,
  AccessViolation = 2,
  DiskFull = 3,
  IllegalOperation = 4,
  UnknownTid = 5,
  FileExists = 6,
  NoSuchUser = 7,
  OptionRefused = 8,
};

enum class Mode { Octet, Netascii, Mail };

std::string_view opcode_name(Opcode op);  // "RRQ", "WRQ", "DATA", ...
std::string_view mode_name(Mode m);       // "octet", "netascii", "mail"
// RFC text for a code ("File not found"); "Undefined error" for codes outside 0-8.
std::string_view error_code_text(std::uint16_t code);

// Wire limits.
inline constexpr std::size_t kMaxPacket = 65535 + 4;  // never parse or build anything larger
inline constexpr std::size_t kMaxFilename = 255;      // bytes, as sent
inline constexpr std::size_t kMaxOptions = 32;        // pairs in one request or OACK
inline constexpr std::uint16_t kDefaultBlksize = 512;
inline constexpr std::uint16_t kMinBlksize = 8;
inline constexpr std::uint16_t kMaxBlksize = 65464;

// An option as it appeared on the wire, name lower-cased (names are case-insensitive), value as
// sent. Order is kept: an OACK answers in the request's order.
struct Option {
  std::string name;
  std::string value;
  bool operator==(const Option&) const = default;
};

struct Request {
  Opcode op = Opcode::Rrq;  // Rrq or Wrq
  std::string filename;     // raw bytes as sent (not yet normalised; see paths.h)
  Mode mode = Mode::Octet;
  std::vector<Option> options;
};

// A DATA packet's payload points into the parsed buffer: valid while that buffer lives.
struct DataPacket {
  std::uint16_t block = 0;
  std::span<const std::uint8_t> payload;
};

struct AckPacket {
  std::uint16_t block = 0;
};

struct ErrorPacket {
  std::uint16_t code = 0;
  std::string message;
};

struct OackPacket {
  std::vector<Option> options;
};

using Packet = std::variant<Request, DataPacket, AckPacket, ErrorPacket, OackPacket>;

// Parses one datagram. InvalidInput errors name the reason ("RRQ: filename is not terminated").
// `max_data` bounds a DATA payload (the negotiated block size); larger payloads are refused.
Result<Packet> parse(std::span<const std::uint8_t> packet, std::size_t max_data = kMaxBlksize);
// The opcode of a datagram without parsing the rest; nullopt for fewer than two bytes or an
// unknown opcode.
std::optional<Opcode> peek_opcode(std::span<const std::uint8_t> packet);

// Builders. Inputs that cannot be encoded (a NUL in a string, a packet over kMaxPacket, more than
// kMaxOptions options) are InvalidInput.
Result<std::vector<std::uint8_t>> build_request(const Request& r);
std::vector<std::uint8_t> build_data(std::uint16_t block, std::span<const std::uint8_t> payload);
std::vector<std::uint8_t> build_ack(std::uint16_t block);
// An ERROR packet; NULs in the message are dropped and it is cut to fit a packet.
std::vector<std::uint8_t> build_error(std::uint16_t code, std::string_view message);
std::vector<std::uint8_t> build_error(ErrorCode code, std::string_view message);
Result<std::vector<std::uint8_t>> build_oack(const std::vector<Option>& options);
// Writes the 4-byte DATA header at `out` (servers build DATA in place, in front of file bytes).
void write_data_header(std::uint8_t* out, std::uint16_t block);

// A strict unsigned decimal (digits only, no sign or space); nullopt when malformed or > max.
std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t max);

// ---- option negotiation (server side) ----------------------------------------------------------

struct NegotiationPolicy {
  std::uint16_t max_blksize = kMaxBlksize;  // configured maximum, clamped to 8..65464
  std::uint16_t max_windowsize = 64;        // configured maximum, at least 1
  // Path MTU towards the client in bytes (0 = unknown): blksize is capped so a DATA packet fits
  // (MTU - IP header - 8 UDP - 4 TFTP).
  std::size_t path_mtu = 0;
  bool ipv6 = false;  // IP header of 40 bytes instead of 20 for the MTU cap
  bool allow_windowsize = true;
  // Bound on one window's bytes (windowsize x blksize), the memory a sender buffers per transfer;
  // windowsize is lowered to fit (never below 1). 0: no bound.
  std::size_t max_window_bytes = 0;
};

struct Negotiated {
  std::uint16_t blksize = kDefaultBlksize;
  std::uint16_t windowsize = 1;
  std::optional<std::uint8_t> timeout_s;  // client's retransmission timeout, 1-255 s
  std::optional<std::uint64_t> tsize;     // RRQ: size we announced; WRQ: size the client announced
  std::vector<Option> accepted;           // the OACK's options, in request order; empty: no OACK
  std::vector<std::string> ignored;       // "name=value: reason", for logs
};

// Negotiates a request's options. `file_size`: the size to announce for an RRQ's tsize (nullopt
// when unknown, e.g. netascii, which ignores tsize). Unknown, duplicate and malformed options are
// ignored (never an error), as tftpd-hpa, dnsmasq and atftpd do; blksize above the maximum (or the
// path MTU) is lowered, windowsize above the maximum is lowered.
Negotiated negotiate(const Request& request, const NegotiationPolicy& policy,
                     std::optional<std::uint64_t> file_size);

// ---- netascii ----------------------------------------------------------------------------------

// Local text -> netascii: LF becomes CR LF, CR becomes CR NUL. Stateless per byte; output of one
// call may be split anywhere into blocks by the caller.
class NetasciiEncoder {
 public:
  void feed(std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out) const;
  // Encoded size of `in` (for announcing sizes of in-memory content).
  static std::uint64_t encoded_size(std::span<const std::uint8_t> in);
};

// Netascii -> local text: CR LF becomes LF, CR NUL becomes CR; a CR followed by anything else is
// kept as is (lenient, like common clients). A CR at the end of one block is held until the next,
// so decoding works across block boundaries.
class NetasciiDecoder {
 public:
  void feed(std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out);
  // End of stream: a held CR is emitted.
  void finish(std::vector<std::uint8_t>& out);

 private:
  bool pending_cr_ = false;
};

}  // namespace labctl::tftp
