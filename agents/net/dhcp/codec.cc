#include "agents/net/dhcp/codec.h"

#include <algorithm>
#include <bitset>
#include <cstring>

namespace labctl::dhcp {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Untrusted bytes in messages: printable ASCII as is, the rest as \xNN, cut at 64 bytes.
std::string shown(std::string_view s) {
  std::string out;
  const std::size_t n = std::min<std::size_t>(s.size(), 64);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (s.size() > n) out += "...";
  return out;
}

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v & 0xff);
}

void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>((v >> 16) & 0xff);
  p[2] = static_cast<std::uint8_t>((v >> 8) & 0xff);
  p[3] = static_cast<std::uint8_t>(v & 0xff);
}

std::unexpected<Error> invalid(std::string message) {
  return fail(Errc::InvalidInput, std::move(message));
}

std::string hex32(std::uint32_t v) {
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4)
    s.push_back(kHex[(v >> shift) & 15]);
  return s;
}

// A NUL-padded text field (sname, file) up to its first NUL.
std::string field_text(std::span<const std::uint8_t> field) {
  const auto nul = std::find(field.begin(), field.end(), std::uint8_t{0});
  return std::string(field.begin(), nul);
}

Status check_field_text(std::string_view name, std::string_view text, std::size_t size) {
  if (text.size() > size)
    return invalid(std::string(name) + " '" + shown(text) + "' is longer than " +
                   std::to_string(size) + " bytes");
  if (text.find('\0') != std::string_view::npos)
    return invalid(std::string(name) + " '" + shown(text) + "' contains a NUL byte");
  return {};
}

bool framing_code(std::uint8_t code) {
  return code == opt::kPad || code == opt::kEnd || code == opt::kOverload;
}

Status check_option_codes(const Options& options) {
  for (const auto& o : options.items())
    if (framing_code(o.code))
      return invalid("option " + std::to_string(o.code) +
                     " cannot be sent as data (pad, end and overload are framing)");
  return {};
}

enum class Field { Options, File, Sname };

std::string_view field_name(Field f) {
  switch (f) {
    case Field::Options:
      return "options field";
    case Field::File:
      return "file field (overload)";
    case Field::Sname:
      return "sname field (overload)";
  }
  return "?";
}

// Reads the options of one field, packet[begin, end), appending to `out`. Offsets in errors are
// offsets in the whole packet. Option 52 is only accepted in the options field, once; its value
// goes to *overload. One pass, no recursion: the caller reads file and sname afterwards.
Status parse_field(std::span<const std::uint8_t> packet, std::size_t begin, std::size_t end,
                   Field field, Options& out, std::uint8_t* overload) {
  std::size_t pos = begin;
  bool seen_overload = false;
  while (pos < end) {
    const std::uint8_t code = packet[pos];
    if (code == opt::kPad) {
      ++pos;
      continue;
    }
    if (code == opt::kEnd) return {};
    const std::string where =
        "option " + std::to_string(code) + " at offset " + std::to_string(pos);
    if (pos + 1 >= end)
      return invalid(where + ": no length byte before the end of the " +
                     std::string(field_name(field)) + " at " + std::to_string(end));
    const std::size_t len = packet[pos + 1];
    const std::size_t data = pos + 2;
    if (len > end - data)
      return invalid(where + ": length " + std::to_string(len) + " runs past the end of the " +
                     std::string(field_name(field)) + " at " + std::to_string(end));
    const auto value = packet.subspan(data, len);
    if (code == opt::kOverload) {
      if (field != Field::Options)
        return invalid(where + ": option overload inside the " + std::string(field_name(field)) +
                       " (only allowed in the options field)");
      if (seen_overload) return invalid(where + ": option overload appears twice");
      if (len != 1)
        return invalid(where + ": option overload has length " + std::to_string(len) +
                       ", expected 1");
      if (value[0] < 1 || value[0] > 3)
        return invalid(where + ": option overload value " + std::to_string(value[0]) +
                       " is not 1 (file), 2 (sname) or 3 (both)");
      seen_overload = true;
      *overload = value[0];
    } else {
      out.append(code, value);
    }
    pos = data + len;
  }
  return {};
}

void write_header(const Message& m, std::uint8_t* p) {
  p[0] = m.op;
  p[1] = m.htype;
  p[2] = m.hlen;
  p[3] = m.hops;
  put32(p + 4, m.xid);
  put16(p + 8, m.secs);
  put16(p + 10, m.flags);
  put32(p + 12, m.ciaddr);
  put32(p + 16, m.yiaddr);
  put32(p + 20, m.siaddr);
  put32(p + 24, m.giaddr);
  std::memcpy(p + 28, m.chaddr.data(), kChaddrSize);
  std::memcpy(p + kSnameOffset, m.sname.data(), std::min(m.sname.size(), kSnameSize));
  std::memcpy(p + kFileOffset, m.file.data(), std::min(m.file.size(), kFileSize));
  put32(p + kHeaderSize, kMagicCookie);
}

void append_tlv(std::vector<std::uint8_t>& out, std::uint8_t code,
                std::span<const std::uint8_t> data) {
  // A zero-length option is one instance; longer data is split into 255-byte instances.
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(data.size() - pos, 255);
    out.push_back(code);
    out.push_back(static_cast<std::uint8_t>(n));
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < data.size());
}

// The instances (code, length, value) of one option, as separate chunks.
std::vector<std::vector<std::uint8_t>> tlv_chunks(const Option& o) {
  std::vector<std::vector<std::uint8_t>> chunks;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(o.data.size() - pos, 255);
    std::vector<std::uint8_t> c;
    c.reserve(n + 2);
    c.push_back(o.code);
    c.push_back(static_cast<std::uint8_t>(n));
    c.insert(c.end(), o.data.begin() + static_cast<std::ptrdiff_t>(pos),
             o.data.begin() + static_cast<std::ptrdiff_t>(pos + n));
    chunks.push_back(std::move(c));
    pos += n;
  } while (pos < o.data.size());
  return chunks;
}

// ---- reply layout
// --------------------------------------------------------------------------------

struct Candidate {
  const Option* option = nullptr;
  bool protocol = false;  // never dropped
  std::vector<std::vector<std::uint8_t>> chunks;
  std::size_t bytes = 0;
};

// Where each chunk of the included candidates goes: 0 options, 1 file, 2 sname.
struct Layout {
  std::array<std::vector<const std::vector<std::uint8_t>*>, 3> fields;
  bool overload = false;
};

// Lays the included candidates out in the fields. Without overload everything goes in the options
// field, in order. With it, the protocol options go first into the first field with room, then
// the others, largest first (first fit decreasing packs far better than emission order), each
// chunk into the first field with room, never into a field before the one its previous chunk went
// to (so split options concatenate in order). Inside each field the emission order is kept.
// Capacities leave room for the end option of each field and, with overload, for option 52.
std::optional<Layout> lay_out(const std::vector<Candidate>& cands,
                              const std::vector<bool>& included, std::size_t options_room,
                              bool file_free, bool sname_free) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < cands.size(); ++i)
    if (included[i]) total += cands[i].bytes;
  Layout layout;
  if (total + 1 <= options_room) {
    for (std::size_t i = 0; i < cands.size(); ++i)
      if (included[i])
        for (const auto& c : cands[i].chunks)
          layout.fields[0].push_back(&c);
    return layout;
  }
  if ((!file_free && !sname_free) || options_room < 1 + 3) return std::nullopt;
  std::array<std::size_t, 3> room{options_room - 1 - 3, file_free ? kFileSize - 1 : 0,
                                  sname_free ? kSnameSize - 1 : 0};
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < cands.size(); ++i)
    if (included[i] && cands[i].protocol) order.push_back(i);
  const std::size_t first_optional = order.size();
  for (std::size_t i = 0; i < cands.size(); ++i)
    if (included[i] && !cands[i].protocol) order.push_back(i);
  std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(first_optional), order.end(),
                   [&](std::size_t a, std::size_t b) { return cands[a].bytes > cands[b].bytes; });
  // field_of[i][k]: the field of chunk k of candidate i.
  std::vector<std::vector<std::uint8_t>> field_of(cands.size());
  for (std::size_t i : order) {
    std::size_t f = 0;
    for (const auto& c : cands[i].chunks) {
      while (f < 3 && room[f] < c.size())
        ++f;
      if (f == 3) return std::nullopt;
      room[f] -= c.size();
      field_of[i].push_back(static_cast<std::uint8_t>(f));
    }
  }
  for (std::size_t i = 0; i < cands.size(); ++i)
    for (std::size_t k = 0; k < field_of[i].size(); ++k)
      layout.fields[field_of[i][k]].push_back(&cands[i].chunks[k]);
  layout.overload = true;
  return layout;
}

constexpr std::array<std::uint8_t, 7> kProtocolOptions = {
    opt::kMessageType,   opt::kServerId, opt::kLeaseTime, opt::kRenewalTime,
    opt::kRebindingTime, opt::kClientId, opt::kMessage};

}  // namespace

std::string message_type_name(MessageType t) {
  switch (t) {
    case MessageType::Discover:
      return "DHCPDISCOVER";
    case MessageType::Offer:
      return "DHCPOFFER";
    case MessageType::Request:
      return "DHCPREQUEST";
    case MessageType::Decline:
      return "DHCPDECLINE";
    case MessageType::Ack:
      return "DHCPACK";
    case MessageType::Nak:
      return "DHCPNAK";
    case MessageType::Release:
      return "DHCPRELEASE";
    case MessageType::Inform:
      return "DHCPINFORM";
    case MessageType::ForceRenew:
      return "DHCPFORCERENEW";
    case MessageType::LeaseQuery:
      return "DHCPLEASEQUERY";
    case MessageType::LeaseUnassigned:
      return "DHCPLEASEUNASSIGNED";
    case MessageType::LeaseUnknown:
      return "DHCPLEASEUNKNOWN";
    case MessageType::LeaseActive:
      return "DHCPLEASEACTIVE";
    case MessageType::BulkLeaseQuery:
      return "DHCPBULKLEASEQUERY";
    case MessageType::LeaseQueryDone:
      return "DHCPLEASEQUERYDONE";
    case MessageType::ActiveLeaseQuery:
      return "DHCPACTIVELEASEQUERY";
    case MessageType::LeaseQueryStatus:
      return "DHCPLEASEQUERYSTATUS";
    case MessageType::Tls:
      return "DHCPTLS";
  }
  return "DHCP type " + std::to_string(static_cast<unsigned>(t));
}

// ---- Options
// -------------------------------------------------------------------------------------

const std::vector<std::uint8_t>* Options::find(std::uint8_t code) const {
  for (const auto& o : items_)
    if (o.code == code) return &o.data;
  return nullptr;
}

void Options::set(std::uint8_t code, std::vector<std::uint8_t> data) {
  for (auto& o : items_) {
    if (o.code == code) {
      o.data = std::move(data);
      return;
    }
  }
  items_.push_back({code, std::move(data)});
}

void Options::append(std::uint8_t code, std::span<const std::uint8_t> data) {
  for (auto& o : items_) {
    if (o.code == code) {
      o.data.insert(o.data.end(), data.begin(), data.end());
      return;
    }
  }
  items_.push_back({code, std::vector<std::uint8_t>(data.begin(), data.end())});
}

bool Options::erase(std::uint8_t code) {
  const auto it = std::find_if(items_.begin(), items_.end(),
                               [code](const Option& o) { return o.code == code; });
  if (it == items_.end()) return false;
  items_.erase(it);
  return true;
}

// ---- parse / build
// -------------------------------------------------------------------------------

Result<Message> parse(std::span<const std::uint8_t> packet) {
  if (packet.empty()) return invalid("empty packet");
  if (packet.size() > kMaxPacket)
    return invalid("packet of " + std::to_string(packet.size()) + " bytes is larger than " +
                   std::to_string(kMaxPacket));
  if (packet.size() < kHeaderSize)
    return invalid("truncated: " + std::to_string(packet.size()) +
                   " bytes, the BOOTP header ends at offset " + std::to_string(kHeaderSize));
  if (packet.size() < kOptionsOffset)
    return invalid("truncated: " + std::to_string(packet.size()) +
                   " bytes, no room for the magic cookie at offset " + std::to_string(kHeaderSize));
  const std::uint8_t* p = packet.data();
  const std::uint32_t cookie = get32(p + kHeaderSize);
  if (cookie != kMagicCookie)
    return invalid("bad magic cookie " + hex32(cookie) + " at offset " +
                   std::to_string(kHeaderSize) + " (expected " + hex32(kMagicCookie) + ")");

  Message m;
  m.op = p[0];
  m.htype = p[1];
  m.hlen = p[2];
  m.hops = p[3];
  m.xid = get32(p + 4);
  m.secs = get16(p + 8);
  m.flags = get16(p + 10);
  m.ciaddr = get32(p + 12);
  m.yiaddr = get32(p + 16);
  m.siaddr = get32(p + 20);
  m.giaddr = get32(p + 24);
  std::memcpy(m.chaddr.data(), p + 28, kChaddrSize);

  std::uint8_t overload = 0;
  if (auto s =
          parse_field(packet, kOptionsOffset, packet.size(), Field::Options, m.options, &overload);
      !s)
    return fail(s.error());
  // RFC 2131 4.1 / RFC 3396: options field, then file, then sname; each read once.
  if (overload & 1) {
    if (auto s = parse_field(packet, kFileOffset, kFileOffset + kFileSize, Field::File, m.options,
                             nullptr);
        !s)
      return fail(s.error());
  } else {
    m.file = field_text(packet.subspan(kFileOffset, kFileSize));
  }
  if (overload & 2) {
    if (auto s = parse_field(packet, kSnameOffset, kSnameOffset + kSnameSize, Field::Sname,
                             m.options, nullptr);
        !s)
      return fail(s.error());
  } else {
    m.sname = field_text(packet.subspan(kSnameOffset, kSnameSize));
  }
  m.overload = overload;
  return m;
}

Result<std::vector<std::uint8_t>> build(const Message& m) {
  if (auto s = check_field_text("sname", m.sname, kSnameSize); !s) return fail(s.error());
  if (auto s = check_field_text("file", m.file, kFileSize); !s) return fail(s.error());
  if (auto s = check_option_codes(m.options); !s) return fail(s.error());
  std::vector<std::uint8_t> out(kOptionsOffset, 0);
  write_header(m, out.data());
  for (const auto& o : m.options.items()) {
    append_tlv(out, o.code, o.data);
    if (out.size() >= kMaxPacket) break;  // reported below
  }
  out.push_back(opt::kEnd);
  if (out.size() > kMaxPacket)
    return invalid("message of " + std::to_string(out.size()) + "+ bytes is larger than " +
                   std::to_string(kMaxPacket));
  return out;
}

Result<BuiltReply> build_reply(const ReplyPlan& plan) {
  const Message& sk = plan.skeleton;
  if (auto s = check_field_text("sname", sk.sname, kSnameSize); !s) return fail(s.error());
  if (auto s = check_field_text("file", sk.file, kFileSize); !s) return fail(s.error());
  if (auto s = check_option_codes(plan.options); !s) return fail(s.error());

  const std::size_t limit =
      std::max<std::size_t>(plan.max_message_size, kMinMaxMessageSize) - kIpUdpHeaders;
  const std::size_t options_room = limit - kOptionsOffset;

  // Emission order.
  std::vector<Candidate> cands;
  std::bitset<256> taken;
  auto add = [&](std::uint8_t code, bool protocol) {
    if (taken[code] || framing_code(code)) return;
    const Option* o = nullptr;
    for (const auto& it : plan.options.items())
      if (it.code == code) o = &it;
    if (o == nullptr) return;
    taken[code] = true;
    Candidate c;
    c.option = o;
    c.protocol = protocol;
    c.chunks = tlv_chunks(*o);
    for (const auto& ch : c.chunks)
      c.bytes += ch.size();
    cands.push_back(std::move(c));
  };
  taken[opt::kRelayAgentInfo] = true;  // goes last
  for (std::uint8_t code : kProtocolOptions)
    add(code, true);
  for (std::uint8_t code : plan.parameter_request_list)
    add(code, false);
  for (std::uint8_t code : plan.always_send)
    add(code, false);
  taken[opt::kRelayAgentInfo] = false;
  add(opt::kRelayAgentInfo, true);

  const bool file_free = sk.file.empty();
  const bool sname_free = sk.sname.empty();
  std::vector<bool> included(cands.size(), true);
  std::vector<std::size_t> dropped_idx;  // in the order they were dropped: least wanted first
  auto layout = lay_out(cands, included, options_room, file_free, sname_free);
  while (!layout) {
    std::size_t victim = cands.size();
    for (std::size_t i = cands.size(); i-- > 0;) {
      if (included[i] && !cands[i].protocol) {
        victim = i;
        break;
      }
    }
    if (victim == cands.size())
      return invalid("reply options do not fit in " + std::to_string(limit) +
                     " bytes even without the optional ones");
    included[victim] = false;
    dropped_idx.push_back(victim);
    layout = lay_out(cands, included, options_room, file_free, sname_free);
  }
  // A big option may have pushed out smaller, more wanted ones after it: put back what fits.
  for (std::size_t k = dropped_idx.size(); k-- > 0;) {
    const std::size_t i = dropped_idx[k];
    included[i] = true;
    if (auto again = lay_out(cands, included, options_room, file_free, sname_free)) {
      layout = std::move(again);
    } else {
      included[i] = false;
    }
  }

  BuiltReply reply;
  std::vector<std::uint8_t>& out = reply.bytes;
  out.assign(kOptionsOffset, 0);
  Message header = sk;
  std::uint8_t overload = 0;
  if (layout->overload) {
    if (!layout->fields[1].empty()) overload |= 1;
    if (!layout->fields[2].empty()) overload |= 2;
    if (overload & 1) header.file.clear();
    if (overload & 2) header.sname.clear();
  }
  write_header(header, out.data());
  auto fill = [&](std::size_t offset, std::size_t f) {
    std::size_t pos = offset;
    for (const auto* c : layout->fields[f]) {
      std::memcpy(out.data() + pos, c->data(), c->size());
      pos += c->size();
    }
    out[pos] = opt::kEnd;
  };
  if (overload & 1) fill(kFileOffset, 1);
  if (overload & 2) fill(kSnameOffset, 2);
  if (overload != 0) {
    out.push_back(opt::kOverload);
    out.push_back(1);
    out.push_back(overload);
  }
  for (const auto* c : layout->fields[0])
    out.insert(out.end(), c->begin(), c->end());
  out.push_back(opt::kEnd);
  if (out.size() < kMinReplySize) out.resize(kMinReplySize, 0);
  if (out.size() > limit)  // lay_out's arithmetic guarantees this never happens
    return fail(Errc::Internal, "reply of " + std::to_string(out.size()) + " bytes exceeds " +
                                    std::to_string(limit));

  reply.overload = overload;
  for (std::size_t i = 0; i < cands.size(); ++i)
    if (included[i]) reply.sent.push_back(cands[i].option->code);
  for (std::size_t i = 0; i < cands.size(); ++i)
    if (!included[i]) reply.dropped.push_back(cands[i].option->code);
  return reply;
}

// ---- accessors
// -----------------------------------------------------------------------------------

namespace {

const std::vector<std::uint8_t>* sized(const Message& m, std::uint8_t code, std::size_t size) {
  const auto* d = m.options.find(code);
  return (d != nullptr && d->size() == size) ? d : nullptr;
}

std::optional<std::uint32_t> u32_option(const Message& m, std::uint8_t code) {
  const auto* d = sized(m, code, 4);
  if (d == nullptr) return std::nullopt;
  return get32(d->data());
}

std::optional<std::vector<std::uint8_t>> bytes_option(const Message& m, std::uint8_t code,
                                                      std::size_t min) {
  const auto* d = m.options.find(code);
  if (d == nullptr || d->size() < min) return std::nullopt;
  return *d;
}

}  // namespace

std::optional<MessageType> message_type(const Message& m) {
  const auto* d = sized(m, opt::kMessageType, 1);
  if (d == nullptr) return std::nullopt;
  return static_cast<MessageType>((*d)[0]);
}

std::optional<std::uint32_t> requested_ip(const Message& m) {
  return u32_option(m, opt::kRequestedIp);
}

std::optional<std::uint32_t> server_id(const Message& m) {
  return u32_option(m, opt::kServerId);
}

std::optional<std::uint32_t> lease_time(const Message& m) {
  return u32_option(m, opt::kLeaseTime);
}

std::optional<std::uint16_t> max_message_size(const Message& m) {
  const auto* d = sized(m, opt::kMaxMessageSize, 2);
  if (d == nullptr) return std::nullopt;
  return get16(d->data());
}

std::optional<std::vector<std::uint8_t>> client_id(const Message& m) {
  return bytes_option(m, opt::kClientId, 2);
}

std::optional<std::vector<std::uint8_t>> parameter_request_list(const Message& m) {
  return bytes_option(m, opt::kParameterRequestList, 1);
}

std::optional<std::string> text_option(const Message& m, std::uint8_t code) {
  const auto* d = m.options.find(code);
  if (d == nullptr || d->empty()) return std::nullopt;
  std::string s(d->begin(), d->end());
  while (!s.empty() && s.back() == '\0')
    s.pop_back();
  return s;
}

std::optional<std::string> hostname(const Message& m) {
  return text_option(m, opt::kHostname);
}

std::optional<std::string> vendor_class(const Message& m) {
  return text_option(m, opt::kVendorClass);
}

std::optional<std::vector<std::uint32_t>> ipv4_list_option(const Message& m, std::uint8_t code) {
  const auto* d = m.options.find(code);
  if (d == nullptr || d->empty() || d->size() % 4 != 0) return std::nullopt;
  std::vector<std::uint32_t> out;
  for (std::size_t i = 0; i < d->size(); i += 4)
    out.push_back(get32(d->data() + i));
  return out;
}

Status check_known_options(const Message& m) {
  struct Rule {
    std::uint8_t code;
    const char* name;
    std::size_t exact;  // 0: see min
    std::size_t min;
  };
  static constexpr Rule kRules[] = {
      {opt::kMessageType, "message type", 1, 0},
      {opt::kRequestedIp, "requested IP address", 4, 0},
      {opt::kServerId, "server identifier", 4, 0},
      {opt::kLeaseTime, "lease time", 4, 0},
      {opt::kMaxMessageSize, "maximum message size", 2, 0},
      {opt::kClientId, "client identifier", 0, 2},
      {opt::kParameterRequestList, "parameter request list", 0, 1},
      {opt::kHostname, "host name", 0, 1},
      {opt::kVendorClass, "vendor class identifier", 0, 1},
  };
  for (const auto& r : kRules) {
    const auto* d = m.options.find(r.code);
    if (d == nullptr) continue;
    if (r.exact != 0 && d->size() != r.exact)
      return invalid("option " + std::to_string(r.code) + " (" + r.name + ") has length " +
                     std::to_string(d->size()) + ", expected " + std::to_string(r.exact));
    if (r.exact == 0 && d->size() < r.min)
      return invalid("option " + std::to_string(r.code) + " (" + r.name + ") has length " +
                     std::to_string(d->size()) + ", expected at least " + std::to_string(r.min));
  }
  return {};
}

// ---- encoders
// ------------------------------------------------------------------------------------

std::vector<std::uint8_t> encode_ipv4_list(std::span<const std::uint32_t> addresses) {
  std::vector<std::uint8_t> out(addresses.size() * 4);
  for (std::size_t i = 0; i < addresses.size(); ++i)
    put32(out.data() + 4 * i, addresses[i]);
  return out;
}

std::vector<std::uint8_t> encode_text(std::string_view text) {
  return {text.begin(), text.end()};
}

std::vector<std::uint8_t> encode_u32(std::uint32_t v) {
  std::vector<std::uint8_t> out(4);
  put32(out.data(), v);
  return out;
}

std::vector<std::uint8_t> encode_u16(std::uint16_t v) {
  std::vector<std::uint8_t> out(2);
  put16(out.data(), v);
  return out;
}

std::vector<std::uint8_t> encode_tlv(std::uint8_t code, std::span<const std::uint8_t> data) {
  std::vector<std::uint8_t> out;
  append_tlv(out, code, data);
  return out;
}

// ---- text forms
// ----------------------------------------------------------------------------------

std::string mac_string(std::span<const std::uint8_t> hw) {
  std::string out;
  for (std::size_t i = 0; i < hw.size(); ++i) {
    if (i != 0) out.push_back(':');
    out.push_back(kHex[hw[i] >> 4]);
    out.push_back(kHex[hw[i] & 15]);
  }
  return out;
}

std::string mac_string(const Message& m) {
  return mac_string(
      std::span<const std::uint8_t>(m.chaddr).first(std::min<std::size_t>(m.hlen, kChaddrSize)));
}

std::string ipv4_string(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

std::uint32_t prefix_mask(int prefix) {
  return prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~((1u << (32 - prefix)) - 1);
}

std::optional<std::uint32_t> parse_ipv4(std::string_view s) {
  std::uint32_t out = 0;
  std::size_t pos = 0;
  for (int part = 0; part < 4; ++part) {
    if (part != 0) {
      if (pos >= s.size() || s[pos] != '.') return std::nullopt;
      ++pos;
    }
    const std::size_t start = pos;
    unsigned v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && pos - start < 3) {
      v = v * 10 + static_cast<unsigned>(s[pos] - '0');
      ++pos;
    }
    const std::size_t digits = pos - start;
    if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0')) return std::nullopt;
    out = (out << 8) | v;
  }
  if (pos != s.size()) return std::nullopt;
  return out;
}

std::string hex_string(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string describe(const Message& m) {
  std::string out;
  if (auto t = message_type(m)) {
    out = message_type_name(*t);
  } else if (m.options.has(opt::kMessageType)) {
    out = "DHCP (malformed type)";
  } else {
    out = m.op == kBootReply     ? "BOOTREPLY"
          : m.op == kBootRequest ? "BOOTREQUEST"
                                 : "BOOTP op " + std::to_string(m.op);
  }
  out += " xid=" + hex32(m.xid);
  out += " chaddr=" + mac_string(m);
  if (m.htype != 1) out += " htype=" + std::to_string(m.htype);
  if (m.broadcast()) out += " broadcast";
  if (m.hops != 0) out += " hops=" + std::to_string(m.hops);
  if (m.ciaddr != 0) out += " ciaddr=" + ipv4_string(m.ciaddr);
  if (m.yiaddr != 0) out += " yiaddr=" + ipv4_string(m.yiaddr);
  if (m.siaddr != 0) out += " siaddr=" + ipv4_string(m.siaddr);
  if (m.giaddr != 0) out += " giaddr=" + ipv4_string(m.giaddr);
  if (auto a = requested_ip(m)) out += " requested=" + ipv4_string(*a);
  if (auto a = server_id(m)) out += " server=" + ipv4_string(*a);
  if (auto t = lease_time(m)) out += " lease=" + std::to_string(*t) + "s";
  if (auto h = hostname(m)) out += " hostname=\"" + shown(*h) + "\"";
  if (auto v = vendor_class(m)) out += " vendor=\"" + shown(*v) + "\"";
  if (auto c = client_id(m))
    out += " client-id=" + hex_string(std::span(*c).first(std::min<std::size_t>(c->size(), 32)));
  if (auto prl = parameter_request_list(m)) {
    out += " prl=";
    for (std::size_t i = 0; i < prl->size(); ++i) {
      if (i != 0) out.push_back(',');
      out += std::to_string((*prl)[i]);
    }
  }
  if (!m.sname.empty()) out += " sname=\"" + shown(m.sname) + "\"";
  if (!m.file.empty()) out += " file=\"" + shown(m.file) + "\"";
  if (m.overload != 0) out += " overload=" + std::to_string(m.overload);
  out += " options=";
  for (std::size_t i = 0; i < m.options.size(); ++i) {
    if (i != 0) out.push_back(',');
    out += std::to_string(m.options.items()[i].code);
  }
  if (auto s = check_known_options(m); !s) out += " (" + s.error().message() + ")";
  return out;
}

}  // namespace labctl::dhcp
