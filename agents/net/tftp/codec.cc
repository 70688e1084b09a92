#include "agents/net/tftp/codec.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/text.h"

namespace labctl::tftp {

namespace {

// Untrusted bytes in error messages: printable ASCII as is, the rest as \xNN, cut at 64 bytes.
std::string shown(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = std::min<std::size_t>(s.size(), 64);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
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

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

// Reads NUL-terminated strings from a packet body, never past its end.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> body) : body_(body) {}
  bool done() const { return pos_ >= body_.size(); }
  // The string up to the next NUL (consumed), or nullopt when no NUL remains.
  std::optional<std::string_view> cstring() {
    const auto* begin = body_.data() + pos_;
    const auto* end = body_.data() + body_.size();
    const auto* nul = std::find(begin, end, std::uint8_t{0});
    if (nul == end) return std::nullopt;
    std::string_view s(reinterpret_cast<const char*>(begin), static_cast<std::size_t>(nul - begin));
    pos_ += s.size() + 1;
    return s;
  }
  std::string_view rest() const {
    return {reinterpret_cast<const char*>(body_.data() + pos_), body_.size() - pos_};
  }

 private:
  std::span<const std::uint8_t> body_;
  std::size_t pos_ = 0;
};

Error invalid(std::string_view what, std::string message) {
  return Error(Errc::InvalidInput, std::string(what) + ": " + message);
}

// Option pairs until the end of the body.
Result<std::vector<Option>> parse_options(Reader& r, std::string_view what) {
  std::vector<Option> options;
  while (!r.done()) {
    auto name = r.cstring();
    if (!name)
      return fail(invalid(what, "trailing bytes '" + shown(r.rest()) + "' are not terminated"));
    if (name->empty()) return fail(invalid(what, "empty option name"));
    if (r.done()) return fail(invalid(what, "option '" + shown(*name) + "' has no value"));
    auto value = r.cstring();
    if (!value)
      return fail(invalid(what, "value of option '" + shown(*name) + "' is not terminated"));
    if (options.size() == kMaxOptions)
      return fail(invalid(what, "more than " + std::to_string(kMaxOptions) + " options"));
    options.push_back({text::lower(*name), std::string(*value)});
  }
  return options;
}

Result<Packet> parse_request(Opcode op, Reader r) {
  const std::string_view what = opcode_name(op);
  auto name = r.cstring();
  if (!name) {
    if (r.rest().empty()) return fail(invalid(what, "no filename"));
    return fail(invalid(what, "filename is not terminated"));
  }
  // Empty and over-long names are well-formed packets; refusing them is the path policy's job
  // (paths.cc), which answers with an access violation like any other refused name.
  auto mode = r.cstring();
  if (!mode) {
    if (r.rest().empty()) return fail(invalid(what, "no transfer mode"));
    return fail(invalid(what, "transfer mode is not terminated"));
  }
  Request req;
  req.op = op;
  req.filename = std::string(*name);
  if (text::iequals(*mode, "octet")) {
    req.mode = Mode::Octet;
  } else if (text::iequals(*mode, "netascii")) {
    req.mode = Mode::Netascii;
  } else if (text::iequals(*mode, "mail")) {
    req.mode = Mode::Mail;
  } else {
    return fail(invalid(what, "unknown transfer mode '" + shown(*mode) + "'"));
  }
  auto options = parse_options(r, what);
  if (!options) return fail(options.error());
  req.options = std::move(*options);
  return req;
}

bool has_nul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

void put_cstring(std::vector<std::uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
}

Status append_options(std::vector<std::uint8_t>& out, const std::vector<Option>& options) {
  if (options.size() > kMaxOptions)
    return fail(Errc::InvalidInput, "more than " + std::to_string(kMaxOptions) + " options");
  for (const auto& o : options) {
    if (o.name.empty()) return fail(Errc::InvalidInput, "empty option name");
    if (has_nul(o.name) || has_nul(o.value))
      return fail(Errc::InvalidInput, "option '" + shown(o.name) + "' contains a NUL byte");
    put_cstring(out, o.name);
    put_cstring(out, o.value);
  }
  if (out.size() > kMaxPacket) return fail(Errc::InvalidInput, "packet too large");
  return {};
}

}  // namespace

std::string_view opcode_name(Opcode op) {
  switch (op) {
    case Opcode::Rrq:
      return "RRQ";
    case Opcode::Wrq:
      return "WRQ";
    case Opcode::Data:
      return "DATA";
    case Opcode::Ack:
      return "ACK";
    case Opcode::Error:
      return "ERROR";
    case Opcode::Oack:
      return "OACK";
  }
  return "?";
}

std::string_view mode_name(Mode m) {
  switch (m) {
    case Mode::Octet:
      return "octet";
    case Mode::Netascii:
      return "netascii";
    case Mode::Mail:
      return "mail";
  }
  return "?";
}

std::string_view error_code_text(std::uint16_t code) {
  switch (code) {
    case 0:
      return "Not defined";
    case 1:
      return "File not found";
    case 2:
      return "Access violation";
    case 3:
      return "Disk full or allocation exceeded";
    case 4:
      return "Illegal TFTP operation";
    case 5:
      return "Unknown transfer ID";
    case 6:
      return "File already exists";
    case 7:
      return "No such user";
    case 8:
      return "Option negotiation refused";
  }
  return "Undefined error";
}

std::optional<Opcode> peek_opcode(std::span<const std::uint8_t> packet) {
  if (packet.size() < 2) return std::nullopt;
  const std::uint16_t op = get16(packet.data());
  if (op < 1 || op > 6) return std::nullopt;
  return static_cast<Opcode>(op);
}

Result<Packet> parse(std::span<const std::uint8_t> packet, std::size_t max_data) {
  if (packet.size() < 2)
    return fail(Errc::InvalidInput,
                "packet of " + std::to_string(packet.size()) + " bytes is shorter than an opcode");
  if (packet.size() > kMaxPacket)
    return fail(Errc::InvalidInput,
                "packet of " + std::to_string(packet.size()) + " bytes is too large");
  const std::uint16_t raw_op = get16(packet.data());
  auto op = peek_opcode(packet);
  if (!op) return fail(Errc::InvalidInput, "unknown opcode " + std::to_string(raw_op));
  const auto body = packet.subspan(2);
  switch (*op) {
    case Opcode::Rrq:
    case Opcode::Wrq:
      return parse_request(*op, Reader(body));
    case Opcode::Data: {
      if (body.size() < 2) return fail(invalid("DATA", "no block number"));
      DataPacket d{get16(body.data()), body.subspan(2)};
      if (d.payload.size() > max_data)
        return fail(invalid("DATA", "payload of " + std::to_string(d.payload.size()) +
                                        " bytes exceeds the block size " +
                                        std::to_string(max_data)));
      return d;
    }
    case Opcode::Ack: {
      // Bytes after the block number are ignored: some embedded clients pad their ACKs.
      if (body.size() < 2) return fail(invalid("ACK", "no block number"));
      return AckPacket{get16(body.data())};
    }
    case Opcode::Error: {
      if (body.size() < 2) return fail(invalid("ERROR", "no error code"));
      ErrorPacket e;
      e.code = get16(body.data());
      // A missing terminator is tolerated: the message is informational.
      Reader r(body.subspan(2));
      if (auto msg = r.cstring())
        e.message = std::string(*msg);
      else
        e.message = std::string(r.rest());
      if (e.message.size() > 512) e.message.resize(512);
      return e;
    }
    case Opcode::Oack: {
      Reader r(body);
      auto options = parse_options(r, "OACK");
      if (!options) return fail(options.error());
      if (options->empty()) return fail(invalid("OACK", "no options"));
      return OackPacket{std::move(*options)};
    }
  }
  return fail(Errc::InvalidInput, "unknown opcode " + std::to_string(raw_op));
}

Result<std::vector<std::uint8_t>> build_request(const Request& r) {
  if (r.op != Opcode::Rrq && r.op != Opcode::Wrq)
    return fail(Errc::InvalidInput, "a request is an RRQ or a WRQ");
  if (r.filename.empty()) return fail(Errc::InvalidInput, "empty filename");
  if (r.filename.size() > kMaxFilename)
    return fail(Errc::InvalidInput,
                "filename longer than " + std::to_string(kMaxFilename) + " bytes");
  if (has_nul(r.filename)) return fail(Errc::InvalidInput, "filename contains a NUL byte");
  std::vector<std::uint8_t> out;
  put16(out, static_cast<std::uint16_t>(r.op));
  put_cstring(out, r.filename);
  put_cstring(out, mode_name(r.mode));
  if (auto s = append_options(out, r.options); !s) return fail(s.error());
  return out;
}

void write_data_header(std::uint8_t* out, std::uint16_t block) {
  out[0] = 0;
  out[1] = static_cast<std::uint8_t>(Opcode::Data);
  out[2] = static_cast<std::uint8_t>(block >> 8);
  out[3] = static_cast<std::uint8_t>(block & 0xff);
}

std::vector<std::uint8_t> build_data(std::uint16_t block, std::span<const std::uint8_t> payload) {
  const std::size_t n = std::min(payload.size(), kMaxPacket - 4);
  std::vector<std::uint8_t> out(4 + n);
  write_data_header(out.data(), block);
  if (n > 0) std::memcpy(out.data() + 4, payload.data(), n);
  return out;
}

std::vector<std::uint8_t> build_ack(std::uint16_t block) {
  std::vector<std::uint8_t> out;
  put16(out, static_cast<std::uint16_t>(Opcode::Ack));
  put16(out, block);
  return out;
}

std::vector<std::uint8_t> build_error(std::uint16_t code, std::string_view message) {
  std::vector<std::uint8_t> out;
  put16(out, static_cast<std::uint16_t>(Opcode::Error));
  put16(out, code);
  // Keep error packets small: a message, not a payload.
  constexpr std::size_t kMaxMessage = 400;
  for (char c : message) {
    if (c == '\0') continue;
    if (out.size() - 4 == kMaxMessage) break;
    out.push_back(static_cast<std::uint8_t>(c));
  }
  out.push_back(0);
  return out;
}

std::vector<std::uint8_t> build_error(ErrorCode code, std::string_view message) {
  return build_error(static_cast<std::uint16_t>(code), message);
}

Result<std::vector<std::uint8_t>> build_oack(const std::vector<Option>& options) {
  if (options.empty()) return fail(Errc::InvalidInput, "an OACK needs at least one option");
  std::vector<std::uint8_t> out;
  put16(out, static_cast<std::uint16_t>(Opcode::Oack));
  if (auto s = append_options(out, options); !s) return fail(s.error());
  return out;
}

std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t max) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (v > max) return std::nullopt;
  return v;
}

Negotiated negotiate(const Request& request, const NegotiationPolicy& policy,
                     std::optional<std::uint64_t> file_size) {
  Negotiated n;
  std::uint64_t blk_cap = std::clamp<std::uint16_t>(policy.max_blksize, kMinBlksize, kMaxBlksize);
  if (policy.path_mtu > 0) {
    const std::size_t overhead = (policy.ipv6 ? 40 : 20) + 8 + 4;
    const std::uint64_t fit = policy.path_mtu > overhead ? policy.path_mtu - overhead : 0;
    blk_cap = std::min(blk_cap, fit);
  }
  const std::uint64_t win_cap = std::max<std::uint16_t>(policy.max_windowsize, 1);
  std::vector<std::string> seen;

  auto ignore = [&](const Option& o, std::string_view why) {
    n.ignored.push_back(shown(o.name) + "=" + shown(o.value) + ": " + std::string(why));
  };
  for (const auto& o : request.options) {
    if (std::find(seen.begin(), seen.end(), o.name) != seen.end()) {
      ignore(o, "duplicate");
      continue;
    }
    seen.push_back(o.name);
    if (o.name == "blksize") {
      // Any decimal is read (a huge value is lowered, not refused); below 8 is invalid.
      auto v = parse_decimal(o.value, std::numeric_limits<std::uint64_t>::max());
      if (!v) {
        ignore(o, "not a number");
      } else if (*v < kMinBlksize) {
        ignore(o, "below 8");
      } else if (blk_cap < kMinBlksize) {
        ignore(o, "path MTU too small");
      } else {
        n.blksize = static_cast<std::uint16_t>(std::min(*v, blk_cap));
        n.accepted.push_back({"blksize", std::to_string(n.blksize)});
      }
    } else if (o.name == "tsize") {
      auto v = parse_decimal(o.value, std::numeric_limits<std::uint64_t>::max());
      if (!v) {
        ignore(o, "not a number");
      } else if (request.op == Opcode::Wrq) {
        n.tsize = *v;
        n.accepted.push_back({"tsize", std::to_string(*v)});
      } else if (!file_size) {
        ignore(o, "size not known in advance");
      } else if (*file_size == 0) {
        // curl (7.88) rejects an OACK carrying tsize 0 ("invalid tsize"); an empty file is
        // announced by its first, empty DATA block instead.
        ignore(o, "empty file");
      } else {
        n.tsize = *file_size;
        n.accepted.push_back({"tsize", std::to_string(*file_size)});
      }
    } else if (o.name == "timeout") {
      auto v = parse_decimal(o.value, 255);
      if (!v || *v < 1) {
        ignore(o, "not 1-255");
      } else {
        n.timeout_s = static_cast<std::uint8_t>(*v);
        n.accepted.push_back({"timeout", std::to_string(*v)});
      }
    } else if (o.name == "windowsize") {
      auto v = parse_decimal(o.value, 65535);
      if (!policy.allow_windowsize) {
        ignore(o, "not offered for this transfer");
      } else if (!v || *v < 1) {
        ignore(o, "not 1-65535");
      } else {
        n.windowsize = static_cast<std::uint16_t>(std::min(*v, win_cap));
        n.accepted.push_back({"windowsize", std::to_string(n.windowsize)});
      }
    } else {
      ignore(o, "unknown option");
    }
  }
  // The window's memory bound depends on the final blksize, which may come after windowsize.
  if (policy.max_window_bytes > 0 && n.windowsize > 1) {
    const std::size_t fit = std::max<std::size_t>(1, policy.max_window_bytes / n.blksize);
    if (fit < n.windowsize) {
      n.windowsize = static_cast<std::uint16_t>(fit);
      for (auto& o : n.accepted)
        if (o.name == "windowsize") o.value = std::to_string(n.windowsize);
    }
  }
  return n;
}

void NetasciiEncoder::feed(std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out) const {
  out.reserve(out.size() + in.size());
  for (std::uint8_t c : in) {
    if (c == '\n') {
      out.push_back('\r');
      out.push_back('\n');
    } else if (c == '\r') {
      out.push_back('\r');
      out.push_back('\0');
    } else {
      out.push_back(c);
    }
  }
}

std::uint64_t NetasciiEncoder::encoded_size(std::span<const std::uint8_t> in) {
  std::uint64_t n = in.size();
  for (std::uint8_t c : in)
    if (c == '\n' || c == '\r') ++n;
  return n;
}

void NetasciiDecoder::feed(std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out) {
  out.reserve(out.size() + in.size());
  for (std::uint8_t c : in) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        out.push_back('\n');
        continue;
      }
      out.push_back('\r');
      if (c == '\0') continue;
      // A bare CR followed by something else: keep both (the CR was already emitted).
    }
    if (c == '\r') {
      pending_cr_ = true;
    } else {
      out.push_back(c);
    }
  }
}

void NetasciiDecoder::finish(std::vector<std::uint8_t>& out) {
  if (pending_cr_) out.push_back('\r');
  pending_cr_ = false;
}

}  // namespace labctl::tftp
