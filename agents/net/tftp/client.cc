#include "agents/net/tftp/client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "agents/net/tftp/paths.h"
#include "common/text.h"

namespace labctl::tftp {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Peer {
  sockaddr_storage addr{};
  socklen_t len = 0;
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

bool same_host(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  if (a.ss_family == AF_INET6)
    return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                       &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, 16) == 0;
  return false;
}

std::uint16_t port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return 0;
}

Result<Peer> resolve(const std::string& host, std::uint16_t port, int family, bool numeric) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV | (numeric ? AI_NUMERICHOST | AI_PASSIVE : 0);
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(h.c_str(), service.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr)
    return fail(Errc::Unreachable, "cannot resolve '" + host + "': " + ::gai_strerror(rc));
  Peer p;
  std::memcpy(&p.addr, res->ai_addr, res->ai_addrlen);
  p.len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return p;
}

Error server_error(const ErrorPacket& e, const std::string& where) {
  Errc code = Errc::PreconditionFailed;
  if (e.code == static_cast<std::uint16_t>(ErrorCode::FileNotFound)) code = Errc::NotFound;
  if (e.code == static_cast<std::uint16_t>(ErrorCode::OptionRefused)) code = Errc::InvalidInput;
  std::string msg = where + ": server error " + std::to_string(e.code) + " (" +
                    std::string(error_code_text(e.code)) + ")";
  if (!e.message.empty()) msg += ": " + e.message;
  return Error(code, msg);
}

class Session {
 public:
  Session(const ClientOptions& o, const ClientSink& sink) : o_(o), sink_(sink) {
    where_ = "tftp://" + o.host + ":" + std::to_string(o.port) + "/" + o.name;
  }

  Result<ClientResult> run() {
    if (o_.name.empty()) return fail(Errc::InvalidInput, "no file name");
    if (o_.blksize != 0 && (o_.blksize < kMinBlksize || o_.blksize > kMaxBlksize))
      return fail(Errc::InvalidInput, "blksize must be 8-65464");
    if (o_.windowsize < 1) return fail(Errc::InvalidInput, "windowsize must be at least 1");
    if (o_.mode == Mode::Mail) return fail(Errc::InvalidInput, "mail mode is not supported");

    int family = AF_UNSPEC;
    std::optional<Peer> local;
    if (!o_.local_address.empty()) {
      auto l = resolve(o_.local_address, 0, AF_UNSPEC, true);
      if (!l) return fail(Errc::InvalidInput, "local address '" + o_.local_address + "'");
      local = *l;
      family = l->addr.ss_family;
    }
    auto server = resolve(o_.host, o_.port, family, false);
    if (!server) return fail(std::move(server.error()).context(where_));
    server_ = *server;
    sock_.reset(::socket(server_.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!sock_) return fail(Errc::Internal, std::string("socket: ") + std::strerror(errno));
    if (local && ::bind(sock_.get(), local->sa(), local->len) != 0)
      return fail(Errc::InvalidInput,
                  "bind " + o_.local_address + ": " + std::string(std::strerror(errno)));
    // Room for a whole window of large blocks (the kernel caps this at rmem_max).
    const int rcvbuf = 8 << 20;
    ::setsockopt(sock_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    Request req;
    req.op = Opcode::Rrq;
    req.filename = o_.name;
    req.mode = o_.mode;
    if (o_.blksize != 0 && o_.blksize != kDefaultBlksize)
      req.options.push_back({"blksize", std::to_string(o_.blksize)});
    if (o_.tsize) req.options.push_back({"tsize", "0"});
    if (o_.timeout_option) req.options.push_back({"timeout", std::to_string(o_.timeout_option)});
    if (o_.windowsize > 1) req.options.push_back({"windowsize", std::to_string(o_.windowsize)});
    asked_ = req.options;
    auto packet = build_request(req);
    if (!packet) return fail(std::move(packet.error()).context(where_));
    last_sent_ = std::move(*packet);

    started_ = Clock::now();
    hard_deadline_ = started_ + o_.transfer_timeout;
    rto_ = o_.timeout;
    send_to(server_, last_sent_);
    deadline_ = Clock::now() + rto_;
    return loop();
  }

 private:
  void send_to(const Peer& to, std::span<const std::uint8_t> bytes) {
    ssize_t r;
    do {
      r = ::sendto(sock_.get(), bytes.data(), bytes.size(), 0, to.sa(), to.len);
    } while (r < 0 && errno == EINTR);
  }

  void send_ack(std::uint64_t seq) {
    last_sent_ = build_ack(static_cast<std::uint16_t>(seq & 0xffff));
    last_acked_ = seq;
    in_window_ = 0;
    send_to(tid_, last_sent_);
  }

  void progress_made() {
    retries_ = 0;
    rto_ = o_.timeout;
    deadline_ = Clock::now() + rto_;
  }

  Result<ClientResult> loop() {
    std::vector<std::uint8_t> buf(kMaxPacket + 1);
    while (true) {
      const auto now = Clock::now();
      if (now >= hard_deadline_)
        return fail(Errc::Timeout, where_ + ": transfer took longer than " +
                                       std::to_string(o_.transfer_timeout.count()) + " ms");
      if (now >= deadline_) {
        if (++retries_ > o_.retries) {
          if (!have_tid_)
            return fail(Errc::Unreachable, where_ + ": no answer after " +
                                               std::to_string(o_.retries) + " retransmissions");
          return fail(Errc::Timeout, where_ + ": timed out waiting for block " +
                                         std::to_string(expected_ & 0xffff) + " after " +
                                         std::to_string(bytes_) + " bytes");
        }
        ++result_.retransmits;
        if (have_tid_) {
          // RFC 7440: tell the sender where to restart, the last block received in order.
          send_ack(expected_ - 1);
        } else {
          send_to(server_, last_sent_);
        }
        rto_ = std::min(rto_ * 2, std::max(milliseconds(8000), o_.timeout));
        deadline_ = Clock::now() + rto_;
        continue;
      }
      const auto wait = std::min(deadline_, hard_deadline_) - now;
      pollfd p{sock_.get(), POLLIN, 0};
      const int pr = ::poll(&p, 1, static_cast<int>(std::chrono::ceil<milliseconds>(wait).count()));
      if (pr < 0 && errno != EINTR)
        return fail(Errc::Internal, std::string("poll: ") + std::strerror(errno));
      if (pr <= 0) continue;
      for (int i = 0; i < 256; ++i) {
        Peer from;
        from.len = sizeof from.addr;
        const ssize_t r = ::recvfrom(sock_.get(), buf.data(), buf.size(), MSG_TRUNC,
                                     reinterpret_cast<sockaddr*>(&from.addr), &from.len);
        if (r < 0) break;
        if (static_cast<std::size_t>(r) > buf.size()) continue;
        auto done = on_packet(from, std::span<const std::uint8_t>(buf.data(), r));
        if (!done) return fail(done.error());
        if (*done) {
          result_.bytes = bytes_;
          result_.duration = std::chrono::duration_cast<milliseconds>(Clock::now() - started_);
          return result_;
        }
      }
    }
  }

  // True when the transfer is complete.
  Result<bool> on_packet(const Peer& from, std::span<const std::uint8_t> bytes) {
    if (!have_tid_) {
      if (!same_host(from.addr, server_.addr)) return false;
    } else if (!same_host(from.addr, tid_.addr) || port_of(from.addr) != port_of(tid_.addr)) {
      send_to(from, build_error(ErrorCode::UnknownTid, "Unknown transfer ID"));
      return false;
    }
    auto pkt = parse(bytes);
    if (!pkt) return false;  // garbage: wait for the real thing
    if (auto* e = std::get_if<ErrorPacket>(&*pkt)) return fail(server_error(*e, where_));
    if (!have_tid_) {
      tid_ = from;
      have_tid_ = true;
    }
    if (auto* oack = std::get_if<OackPacket>(&*pkt)) {
      if (expected_ != 1) return false;  // late duplicate
      if (result_.oack) {
        send_to(tid_, last_sent_);  // our ACK 0 was lost
        return false;
      }
      if (auto s = apply_oack(*oack); !s) {
        send_to(tid_, build_error(ErrorCode::OptionRefused, s.error().message()));
        return fail(std::move(s.error()).context(where_));
      }
      result_.oack = true;
      send_ack(0);
      progress_made();
      return false;
    }
    auto* data = std::get_if<DataPacket>(&*pkt);
    if (!data) return false;
    if (expected_ == 1 && !result_.oack && !data_seen_) {
      // The server ignored every option: RFC 1350 defaults.
      result_.blksize = kDefaultBlksize;
      result_.windowsize = 1;
    }
    data_seen_ = true;
    if (data->payload.size() > result_.blksize) return false;
    const auto delta = static_cast<std::uint16_t>(data->block - (expected_ & 0xffff));
    if (delta == 0) {
      std::span<const std::uint8_t> out = data->payload;
      if (o_.mode == Mode::Netascii) {
        decoded_.clear();
        decoder_.feed(data->payload, decoded_);
        if (data->payload.size() < result_.blksize) decoder_.finish(decoded_);
        out = decoded_;
      }
      if (!out.empty()) {
        if (auto s = sink_(out); !s) {
          send_to(tid_, build_error(ErrorCode::NotDefined, "client aborted"));
          return fail(std::move(s.error()).context(where_));
        }
      }
      bytes_ += out.size();
      const bool last = data->payload.size() < result_.blksize;
      ++in_window_;
      if (last || in_window_ >= result_.windowsize) send_ack(expected_);
      ++expected_;
      progress_made();
      return last;
    }
    if (delta == 0xffff) {
      // The block before the expected one again: our ACK was lost. Say it once more.
      if (last_acked_ == expected_ - 1) send_to(tid_, last_sent_);
      return false;
    }
    if (delta < 0x8000 && last_acked_ != expected_ - 1) {
      // A gap: the blocks in between were lost. Ask for the window again from the first missing
      // block (once per gap, so a window of out-of-order blocks is not an ACK storm).
      send_ack(expected_ - 1);
    }
    return false;
  }

  Status apply_oack(const OackPacket& oack) {
    auto asked = [&](std::string_view name) -> const Option* {
      for (const auto& o : asked_)
        if (o.name == name) return &o;
      return nullptr;
    };
    for (const auto& o : oack.options) {
      const Option* mine = asked(o.name);
      if (!mine)
        return fail(Errc::InvalidInput, "OACK has option '" + o.name + "' that was not asked for");
      if (o.name == "blksize") {
        auto v = parse_decimal(o.value, kMaxBlksize);
        if (!v || *v < kMinBlksize || *v > o_.blksize)
          return fail(Errc::InvalidInput, "OACK blksize '" + o.value + "' is not acceptable");
        result_.blksize = static_cast<std::uint16_t>(*v);
      } else if (o.name == "windowsize") {
        auto v = parse_decimal(o.value, 65535);
        if (!v || *v < 1 || *v > o_.windowsize)
          return fail(Errc::InvalidInput, "OACK windowsize '" + o.value + "' is not acceptable");
        result_.windowsize = static_cast<std::uint16_t>(*v);
      } else if (o.name == "tsize") {
        auto v = parse_decimal(o.value, ~std::uint64_t{0});
        if (!v) return fail(Errc::InvalidInput, "OACK tsize '" + o.value + "' is not a number");
        result_.tsize = *v;
      } else if (o.name == "timeout") {
        if (o.value != mine->value)
          return fail(Errc::InvalidInput, "OACK timeout '" + o.value + "' differs from ours");
      }
    }
    return {};
  }

  const ClientOptions& o_;
  const ClientSink& sink_;
  std::string where_;
  UniqueFd sock_;
  Peer server_, tid_;
  bool have_tid_ = false, data_seen_ = false;
  std::vector<Option> asked_;
  std::vector<std::uint8_t> last_sent_;
  std::uint64_t expected_ = 1;
  std::uint64_t last_acked_ = ~std::uint64_t{0};
  std::uint64_t in_window_ = 0;
  std::uint64_t bytes_ = 0;
  int retries_ = 0;
  milliseconds rto_{1000};
  Clock::time_point started_, deadline_, hard_deadline_;
  NetasciiDecoder decoder_;
  std::vector<std::uint8_t> decoded_;
  ClientResult result_;
};

}  // namespace

Result<ClientResult> get(const ClientOptions& options, const ClientSink& sink) {
  Session s(options, sink);
  return s.run();
}

Result<std::string> get_string(const ClientOptions& options, ClientResult* result) {
  std::string out;
  auto r = get(options, [&](std::span<const std::uint8_t> bytes) -> Status {
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return {};
  });
  if (!r) return fail(r.error());
  if (result) *result = *r;
  return out;
}

Result<ClientResult> get_file(const ClientOptions& options, const std::filesystem::path& out) {
  const std::filesystem::path temp =
      out.string() + ".part-" + std::to_string(static_cast<long>(::getpid()));
  std::FILE* f = std::fopen(temp.c_str(), "wbx");
  if (!f) return fail(Errc::InvalidInput, temp.string() + ": " + std::string(std::strerror(errno)));
  auto r = get(options, [&](std::span<const std::uint8_t> bytes) -> Status {
    if (std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
      return fail(Errc::Internal, out.string() + ": " + std::string(std::strerror(errno)));
    return {};
  });
  const bool closed = std::fclose(f) == 0;
  if (r && !closed)
    r = fail(Errc::Internal, out.string() + ": " + std::string(std::strerror(errno)));
  std::error_code ec;
  if (r) {
    std::filesystem::rename(temp, out, ec);
    if (ec) r = fail(Errc::Internal, out.string() + ": " + ec.message());
  }
  if (!r) std::filesystem::remove(temp, ec);
  return r;
}

Result<TftpUrl> parse_url(std::string_view url) {
  constexpr std::string_view kScheme = "tftp://";
  if (url.size() < kScheme.size() || !text::iequals(url.substr(0, kScheme.size()), kScheme))
    return fail(Errc::InvalidInput, "'" + std::string(url) + "' is not a tftp:// URL");
  std::string_view rest = url.substr(kScheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 >= rest.size())
    return fail(Errc::InvalidInput, "'" + std::string(url) + "' names no file (tftp://HOST/NAME)");
  std::string_view authority = rest.substr(0, slash);
  TftpUrl u;
  u.name = std::string(rest.substr(slash + 1));
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return fail(Errc::InvalidInput, "'" + std::string(url) + "': unclosed '['");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return fail(Errc::InvalidInput, "'" + std::string(url) + "': junk after ']'");
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      u.host = std::string(authority.substr(0, colon));
      port = authority.substr(colon + 1);
    } else {
      u.host = std::string(authority);
    }
    if (u.host.find(':') != std::string::npos)
      return fail(Errc::InvalidInput,
                  "'" + std::string(url) + "': put an IPv6 address in brackets");
  }
  if (u.host.empty()) return fail(Errc::InvalidInput, "'" + std::string(url) + "' has no host");
  if (authority.find_first_of("@") != std::string_view::npos)
    return fail(Errc::InvalidInput, "'" + std::string(url) + "': no user part in tftp URLs");
  if (!port.empty() || authority.ends_with(":")) {
    auto p = parse_decimal(port, 65535);
    if (!p || *p == 0)
      return fail(Errc::InvalidInput,
                  "'" + std::string(url) + "': bad port '" + std::string(port) + "'");
    u.port = static_cast<std::uint16_t>(*p);
  }
  return u;
}

}  // namespace labctl::tftp
