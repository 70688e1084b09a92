#include "agents/net/tftp/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/json_number.h"

namespace labctl::tftp {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

std::int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Control characters and non-ASCII bytes as \xNN, for terminal lines.
std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// A socket address with the helpers the server needs.
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;

  int family() const { return addr.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
  bool v4_mapped() const {
    if (family() != AF_INET6) return false;
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
  }
  std::uint16_t port() const {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
    if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
    return 0;
  }
  void set_port(std::uint16_t p) {
    if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(p);
    if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(p);
  }
  // Host-order IPv4 address (also of an IPv4-mapped IPv6 address); 0 otherwise.
  std::uint32_t ipv4() const {
    if (family() == AF_INET)
      return ntohl(reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr.s_addr);
    if (v4_mapped()) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      std::uint32_t v;
      std::memcpy(&v, a->sin6_addr.s6_addr + 12, 4);
      return ntohl(v);
    }
    return 0;
  }
  std::string text() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, buf, sizeof buf);
    } else if (v4_mapped()) {
      in_addr a{};
      a.s_addr = htonl(ipv4());
      ::inet_ntop(AF_INET, &a, buf, sizeof buf);
    } else if (family() == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, buf,
                  sizeof buf);
    }
    return buf;
  }
  bool same(const Endpoint& o) const {
    if (family() != o.family() || port() != o.port()) return false;
    if (family() == AF_INET)
      return reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr.s_addr ==
             reinterpret_cast<const sockaddr_in*>(&o.addr)->sin_addr.s_addr;
    if (family() == AF_INET6)
      return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr,
                         &reinterpret_cast<const sockaddr_in6*>(&o.addr)->sin6_addr, 16) == 0;
    return false;
  }
  std::string key() const { return text() + "/" + std::to_string(port()); }
  // The same as raw bytes (address, then port), cheap enough to look up for every packet.
  std::string tid() const {
    std::string k;
    if (family() == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
      k.assign(reinterpret_cast<const char*>(&a->sin_addr), 4);
      k.append(reinterpret_cast<const char*>(&a->sin_port), 2);
    } else if (family() == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      k.assign(reinterpret_cast<const char*>(&a->sin6_addr), 16);
      k.append(reinterpret_cast<const char*>(&a->sin6_port), 2);
    }
    return k;
  }
};

// A recvmsg header receiving into `buf`, with the sender's address into `from` and ancillary
// data into `control`.
msghdr receive_header(Endpoint& from, iovec& iov, std::span<std::uint8_t> control) {
  msghdr h{};
  h.msg_name = &from.addr;
  h.msg_namelen = sizeof from.addr;
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = control.data();
  h.msg_controllen = control.size();
  return h;
}

Result<Endpoint> numeric_endpoint(const std::string& host, std::uint16_t port) {
  std::string h = host.empty() ? "0.0.0.0" : host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(h.c_str(), service.c_str(), &hints, &res); rc != 0 || !res)
    return fail(Errc::InvalidInput, "bind address '" + host + "' is not an IP address");
  Endpoint e;
  std::memcpy(&e.addr, res->ai_addr, res->ai_addrlen);
  e.len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return e;
}

// ---- data sources
// --------------------------------------------------------------------------------

// The bytes a read transfer sends, by offset in the (encoded) stream. Offsets never go back before
// the previous call's offset; the span is valid until the next call.
class Source {
 public:
  virtual ~Source() = default;
  virtual Result<std::span<const std::uint8_t>> read(std::uint64_t offset, std::size_t len) = 0;
};

// pread(2) from an open file into a read-ahead buffer: at least kReadAhead bytes (or one window,
// when larger) per call, so a lock-step client costs one pread per 44 blocks of 1468 bytes rather
// than one per block. The buffer is the transfer's only copy of file data: bounded by
// max(kReadAhead, window bytes), whatever the file size.
class FileSource : public Source {
 public:
  static constexpr std::size_t kReadAhead = 64 * 1024;
  explicit FileSource(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<std::span<const std::uint8_t>> read(std::uint64_t offset, std::size_t len) override {
    if (off_ != kNone && offset >= off_) {
      const std::uint64_t skip = offset - off_;
      // Inside the buffer, or the buffer reaches the end of the file.
      if (skip + len <= have_ || (eof_ && skip <= have_)) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, have_ - skip));
        return std::span<const std::uint8_t>(buf_.get() + skip, n);
      }
    }
    const std::size_t want = std::max(len, kReadAhead);
    if (want > cap_) {
      buf_ = std::make_unique_for_overwrite<std::uint8_t[]>(want);
      cap_ = want;
    }
    std::size_t total = 0;
    eof_ = false;
    while (total < want) {
      const ssize_t r =
          ::pread(fd_.get(), buf_.get() + total, want - total, static_cast<off_t>(offset + total));
      if (r < 0) {
        if (errno == EINTR) continue;
        off_ = kNone;
        return fail(sys_error("read"));
      }
      if (r == 0) {
        eof_ = true;
        break;
      }
      total += static_cast<std::size_t>(r);
    }
    off_ = offset;
    have_ = total;
    return std::span<const std::uint8_t>(buf_.get(), std::min(len, total));
  }

 private:
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};
  UniqueFd fd_;
  std::unique_ptr<std::uint8_t[]> buf_;
  std::size_t cap_ = 0, have_ = 0;
  std::uint64_t off_ = kNone;
  bool eof_ = false;
};

// Generated content from a virtual-file provider.
class MemorySource : public Source {
 public:
  explicit MemorySource(std::string content) : content_(std::move(content)) {}
  Result<std::span<const std::uint8_t>> read(std::uint64_t offset, std::size_t len) override {
    const auto* p = reinterpret_cast<const std::uint8_t*>(content_.data());
    if (offset >= content_.size()) return std::span<const std::uint8_t>();
    const std::size_t n = std::min<std::uint64_t>(len, content_.size() - offset);
    return std::span<const std::uint8_t>(p + offset, n);
  }

 private:
  std::string content_;
};

// Netascii encoding of another source, as a stream: keeps the encoded bytes from the current
// window on, so memory stays about one window whatever the file size.
class NetasciiSource : public Source {
 public:
  explicit NetasciiSource(std::unique_ptr<Source> raw) : raw_(std::move(raw)) {}
  Result<std::span<const std::uint8_t>> read(std::uint64_t offset, std::size_t len) override {
    if (offset < start_) return fail(Errc::Internal, "netascii stream read backwards");
    const std::size_t chunk = std::max<std::size_t>(len, 4096);
    while (true) {
      const std::uint64_t drop = std::min<std::uint64_t>(offset - start_, buf_.size());
      if (drop > 0) {
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(drop));
        start_ += drop;
      }
      if (start_ == offset && buf_.size() >= len) break;
      if (eof_) break;
      auto raw = raw_->read(raw_off_, chunk);
      if (!raw) return fail(raw.error());
      if (raw->empty()) eof_ = true;
      raw_off_ += raw->size();
      encoder_.feed(*raw, buf_);
    }
    if (start_ != offset) return std::span<const std::uint8_t>();
    return std::span<const std::uint8_t>(buf_.data(), std::min(len, buf_.size()));
  }

 private:
  std::unique_ptr<Source> raw_;
  NetasciiEncoder encoder_;
  std::vector<std::uint8_t> buf_;
  std::uint64_t start_ = 0, raw_off_ = 0;
  bool eof_ = false;
};

// ---- transfers ---------------------------------------------------------------------------------

struct Transfer;

// A block queued on a shared socket, sent with the rest of the worker's queue in one sendmmsg.
struct OutBlock {
  std::array<std::uint8_t, 4> header;
  const std::uint8_t* data;  // into the owner's source buffer, valid until its next read
  std::size_t len;
  Transfer* owner;
};

// One socket per worker and local address, shared by all of that worker's transfers with clients
// that reached that address: the server's TID for each of them (RFC 1350 lets the server pick
// it; what tells two transfers apart is the client's address and port). One wake-up reads every
// waiting ACK, and the blocks they make due go out together in one sendmmsg at the end of the
// loop's turn, across transfers: per block, that is what costs least on the sending side.
struct SharedSocket {
  UniqueFd fd;
  std::uint64_t tag = 0;                               // its epoll tag (index in Worker::sockets_)
  std::unordered_map<std::string, Transfer*> by_peer;  // by the client's Endpoint::tid()
  std::vector<OutBlock> out;                           // queued, not yet sent
  std::vector<std::uint64_t> blocked;  // transfers with blocks the socket had no room for
  bool want_write = false;
};

struct Transfer {
  std::uint64_t id = 0;
  SharedSocket* sock = nullptr;
  Endpoint peer;
  std::string peer_key;
  Opcode op = Opcode::Rrq;
  Mode mode = Mode::Octet;
  std::string name;  // as requested
  std::string file;  // opened, relative
  bool virtual_file = false, case_fallback = false;
  std::uint16_t blksize = kDefaultBlksize, windowsize = 1;
  std::optional<std::uint64_t> size;
  Clock::time_point started;
  std::int64_t started_unix_ms = 0;

  // timers. base_rto is the client's "timeout" option or the configured first timeout: the upper
  // bound of the adaptive timeout and the start of the backoff schedule; cur_rto is what is armed.
  milliseconds base_rto{1000};
  microseconds cur_rto{1000000};
  int retries = 0;
  Clock::time_point last_progress;  // last new ACK (read) or DATA (write)
  // Round-trip estimate (RFC 6298) from a window's first send to its ACK, microseconds; srtt < 0
  // until the first sample. Karn: a retransmitted window gives no sample.
  std::int64_t srtt_us = -1, rttvar_us = 0;
  Clock::time_point window_sent_at;
  bool window_resent = false;
  std::uint64_t fast_restart_base = 0;  // the base a duplicate ACK last restarted the window at
  bool acked_window_resent = false;     // the window the last new ACK ended was sent twice
  std::uint64_t retransmits = 0;
  Clock::time_point rto_deadline, hard_deadline;
  bool in_timers = false;
  Clock::time_point timer_key;  // the entry in Worker::timers_
  bool queued = false;          // has blocks in sock->out

  // read side
  std::unique_ptr<Source> source;
  bool oack_pending = false;
  std::vector<std::uint8_t> oack;
  std::uint64_t base = 1;      // first unacknowledged block (sequence, not wrapped)
  std::uint64_t sent_max = 0;  // highest block sent
  std::uint64_t last_seq = 0;  // final block once known
  std::size_t last_len = 0;    // its payload size
  std::uint64_t win_first = 0, win_count = 0, win_next = 0;  // the window being sent

  // write side
  std::optional<WriteTarget> target;
  NetasciiDecoder decoder;
  std::uint64_t expected = 1;
  std::vector<std::uint8_t> last_reply;  // ACK (or OACK) to repeat on timeout
  bool dallying = false;

  std::uint64_t bytes = 0;
  std::uint64_t next_progress = 0;
};

}  // namespace

// ---- events ------------------------------------------------------------------------------------

std::string_view event_kind_name(EventKind k) {
  switch (k) {
    case EventKind::Request:
      return "request";
    case EventKind::Refused:
      return "refused";
    case EventKind::Oack:
      return "oack";
    case EventKind::Progress:
      return "progress";
    case EventKind::Complete:
      return "complete";
    case EventKind::Failed:
      return "failed";
    case EventKind::BadPacket:
      return "bad_packet";
  }
  return "?";
}

nlohmann::json event_to_json(const Event& e) {
  nlohmann::json j;
  j["event"] = event_kind_name(e.kind);
  {
    const std::time_t secs = static_cast<std::time_t>(e.time_ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(((e.time_ms % 1000) + 1000) % 1000));
    j["time"] = buf;
  }
  j["source"] = e.source;
  if (!e.host.empty()) j["host"] = e.host;
  if (e.pid) j["pid"] = *e.pid;
  if (e.transfer) j["transfer"] = e.transfer;
  if (!e.client.empty()) j["client"] = e.client;
  if (e.client_port) j["port"] = e.client_port;
  if (!e.op.empty()) j["op"] = e.op;
  if (!e.name.empty()) j["name"] = e.name;
  if (!e.file.empty()) j["file"] = e.file;
  if (!e.mode.empty()) j["mode"] = e.mode;
  if (!e.options.empty()) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& opt : e.options)
      o[opt.name] = opt.value;
    j["options"] = o;
  }
  if (e.virtual_file) j["virtual"] = true;
  if (e.case_fallback) j["case_fallback"] = true;
  switch (e.kind) {
    case EventKind::Progress:
    case EventKind::Complete:
    case EventKind::Failed:
      j["bytes"] = e.bytes;
      if (e.retransmits || e.kind != EventKind::Progress) j["retransmits"] = e.retransmits;
      break;
    default:
      break;
  }
  if (e.size) j["size"] = *e.size;
  if (e.blksize) j["blksize"] = e.blksize;
  if (e.windowsize) j["windowsize"] = e.windowsize;
  if (e.duration_ms >= 0) j["duration_ms"] = e.duration_ms;
  if (e.error_code) j["error_code"] = *e.error_code;
  if (!e.reason.empty()) j["reason"] = e.reason;
  return j;
}

namespace {

// "YYYY-MM-DDTHH:MM:SS.mmmZ", exactly as event_to_json writes it, as Unix milliseconds.
std::optional<std::int64_t> parse_event_time(std::string_view t) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (t.size() != kShape.size()) return std::nullopt;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (kShape[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != kShape[i]) return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t n) {
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i)
      v = v * 10 + (t[i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  const std::tm want = tm;
  const std::time_t secs = ::timegm(&tm);  // normalises tm: "02-30" would become "03-02"
  if (tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
      tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
    return std::nullopt;
  return static_cast<std::int64_t>(secs) * 1000 + num(20, 3);
}

}  // namespace

Result<Event> event_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return fail(Errc::InvalidInput, "an event is a JSON object");
  Event e;
  const char* field = "event";  // the one being read, for the message
  auto bad = [&](const std::string& why) {
    return fail(Errc::InvalidInput, std::string("event: ") + field + ": " + why);
  };
  try {
    const std::string kind = j.at("event").get<std::string>();
    bool known = false;
    for (auto k : {EventKind::Request, EventKind::Refused, EventKind::Oack, EventKind::Progress,
                   EventKind::Complete, EventKind::Failed, EventKind::BadPacket})
      if (event_kind_name(k) == kind) {
        e.kind = k;
        known = true;
      }
    if (!known) return fail(Errc::InvalidInput, "event: unknown kind '" + kind + "'");
    field = "time";
    const std::string time = j.at("time").get<std::string>();
    const auto ms = parse_event_time(time);
    if (!ms) return bad("'" + time + "' is not YYYY-MM-DDTHH:MM:SS.mmmZ");
    e.time_ms = *ms;
    // Integers: checked, never cast.
    auto integer = [&]<typename T>(const char* key, T& out) -> bool {
      field = key;
      const auto it = j.find(key);
      if (it == j.end()) return true;
      const auto v = json_number::whole<T>(*it);
      if (!v) return false;
      out = *v;
      return true;
    };
    std::uint64_t size = 0;
    std::uint16_t error_code = 0;
    int pid = 0;
    if (!integer("transfer", e.transfer) || !integer("port", e.client_port) ||
        !integer("bytes", e.bytes) || !integer("retransmits", e.retransmits) ||
        !integer("size", size) || !integer("blksize", e.blksize) ||
        !integer("windowsize", e.windowsize) || !integer("duration_ms", e.duration_ms) ||
        !integer("error_code", error_code) || !integer("pid", pid))
      return bad("not a whole number in range");
    if (j.contains("size")) e.size = size;
    if (j.contains("error_code")) e.error_code = error_code;
    if (j.contains("pid")) e.pid = pid;
    field = "source";
    e.source = j.value("source", "labctl");
    field = "host";
    e.host = j.value("host", "");
    field = "client";
    e.client = j.value("client", "");
    field = "op";
    e.op = j.value("op", "");
    field = "name";
    e.name = j.value("name", "");
    field = "file";
    e.file = j.value("file", "");
    field = "mode";
    e.mode = j.value("mode", "");
    field = "options";
    if (j.contains("options"))
      for (const auto& [k, v] : j.at("options").items())
        e.options.push_back({k, v.get<std::string>()});
    field = "virtual";
    e.virtual_file = j.value("virtual", false);
    field = "case_fallback";
    e.case_fallback = j.value("case_fallback", false);
    field = "reason";
    e.reason = j.value("reason", "");
  } catch (const nlohmann::json::exception& ex) {
    return bad(ex.what());
  }
  return e;
}

std::string event_to_line(const Event& e) {
  std::string line(event_kind_name(e.kind));
  if (e.transfer) line += " #" + std::to_string(e.transfer);
  if (!e.client.empty()) line += " " + e.client;
  if (!e.op.empty()) line += " " + e.op;
  if (!e.name.empty()) line += " " + printable(e.name);
  if (!e.file.empty() && e.file != e.name) line += " (" + printable(e.file) + ")";
  if (e.virtual_file) line += " [virtual]";
  if (e.kind == EventKind::Complete || e.kind == EventKind::Failed || e.kind == EventKind::Progress)
    line += " " + std::to_string(e.bytes) + " bytes";
  if (e.duration_ms >= 0) line += " in " + std::to_string(e.duration_ms) + " ms";
  if (e.kind == EventKind::Complete || e.kind == EventKind::Oack)
    line += " blksize " + std::to_string(e.blksize) + " window " + std::to_string(e.windowsize);
  if (e.retransmits) line += ", " + std::to_string(e.retransmits) + " retransmitted";
  if (e.error_code) line += " error " + std::to_string(*e.error_code);
  if (!e.reason.empty()) line += ": " + printable(e.reason);
  return line;
}

// ---- the server --------------------------------------------------------------------------------

class Worker;

class Server::Impl {
 public:
  ServerConfig cfg;
  std::optional<Root> root;
  std::optional<Root> write_root;
  UniqueFd listen_fd;
  Endpoint bound;
  std::string address_text;
  std::vector<std::unique_ptr<Worker>> workers;
  std::mutex emit_mu;
  std::FILE* log = nullptr;
  std::mutex peers_mu;
  std::unordered_set<std::string> active_requests;  // "address/port OP name" being served
  std::atomic<std::uint64_t> next_id{1};
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  bool stopped = false;

  struct {
    std::atomic<std::uint64_t> requests{0}, refused{0}, completed{0}, failed{0}, bad_packets{0};
    std::atomic<std::uint64_t> active{0};  // bytes and packets: per worker (Worker::hot_)
    // The workers' counters once stop() has let them go.
    std::uint64_t retired_bytes_sent = 0, retired_bytes_received = 0, retired_packets_sent = 0;
    std::atomic<std::uint64_t> retransmits{0};
  } stats;

  bool wants_events() const { return cfg.on_event || log != nullptr; }

  void emit(const Event& e) {
    if (!wants_events()) return;
    std::lock_guard lock(emit_mu);
    if (cfg.on_event) {
      try {
        cfg.on_event(e);
      } catch (...) {
        // An observer's failure never reaches the event loop.
      }
    }
    if (log) {
      const std::string line =
          event_to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      std::fputs(line.c_str(), log);
      std::fputc('\n', log);
      std::fflush(log);
    }
  }

  ~Impl();  // below Worker, which must be complete there
};

namespace {

enum : std::uint64_t { kListenTag = ~std::uint64_t{0}, kWakeTag = ~std::uint64_t{0} - 1 };

}  // namespace

class Worker {
 public:
  explicit Worker(Server::Impl& s) : s_(s), rx_(kMaxPacket + 1) {
    for (auto& b : rx_batch_)
      b.resize(kMaxPacket + 1);
  }

  Status init() {
    epfd_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epfd_) return fail(sys_error("epoll_create1"));
    wakefd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wakefd_) return fail(sys_error("eventfd"));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, wakefd_.get(), &ev) != 0)
      return fail(sys_error("epoll_ctl"));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.u64 = kListenTag;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, s_.listen_fd.get(), &ev) != 0)
      return fail(sys_error("epoll_ctl"));
    return {};
  }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  void wake() {
    const std::uint64_t one = 1;
    (void)!::write(wakefd_.get(), &one, sizeof one);
  }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  // ---- loop ----
  void run() {
    std::array<epoll_event, 128> events{};
    while (!s_.stopping.load(std::memory_order_relaxed)) {
      int timeout = -1;
      if (!timers_.empty()) {
        const auto wait = timers_.begin()->first - Clock::now();
        const auto ms = std::chrono::ceil<milliseconds>(wait).count();
        timeout = static_cast<int>(std::clamp<std::int64_t>(ms, 0, 60000));
      }
      const int n =
          ::epoll_wait(epfd_.get(), events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = events[i].data.u64;
        if (tag == kWakeTag) {
          std::uint64_t v;
          (void)!::read(wakefd_.get(), &v, sizeof v);
        } else if (tag == kListenTag) {
          on_listen();
        } else if (tag < sockets_.size()) {
          SharedSocket& sock = *sockets_[tag];
          if (events[i].events & EPOLLOUT) on_writable(sock);
          if (events[i].events & EPOLLERR) drain_errors(sock);
          if (events[i].events & EPOLLIN) on_readable(sock);
        }
      }
      run_timers();
      flush_all();
    }
    shutdown();
  }

  void shutdown() {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, t] : transfers_)
      ids.push_back(id);
    for (std::uint64_t id : ids) {
      auto it = transfers_.find(id);
      if (it == transfers_.end()) continue;
      Transfer& t = *it->second;
      if (t.dallying) {
        finish(t);
      } else {
        fail_transfer(t, ErrorCode::NotDefined, "server shutting down", "server stopped", {});
      }
    }
  }

  // ---- timers ----
  void schedule(Transfer& t) {
    const auto when = std::min(t.rto_deadline, t.hard_deadline);
    if (t.in_timers) {
      if (when >= t.timer_key) return;  // fires early, then re-arms itself (see run_timers)
      timers_.erase({t.timer_key, t.id});
    }
    t.timer_key = when;
    t.in_timers = true;
    timers_.insert({when, t.id});
  }

  void arm(Transfer& t, Clock::time_point now) {
    t.rto_deadline = now + t.cur_rto;
    schedule(t);
  }

  void run_timers() {
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      const std::uint64_t id = timers_.begin()->second;
      timers_.erase(timers_.begin());
      auto it = transfers_.find(id);
      if (it == transfers_.end()) continue;
      Transfer& t = *it->second;
      t.in_timers = false;
      const auto due = std::min(t.rto_deadline, t.hard_deadline);
      if (due > now) {
        schedule(t);
        continue;
      }
      on_timeout(t, now);
    }
  }

  // How long a silent client is waited for: the fixed schedule from base_rto, backing off up to
  // max_retransmit_timeout, for max_retries retransmissions.
  microseconds give_up_after(const Transfer& t) const {
    microseconds total{0}, step = t.base_rto;
    const microseconds cap = std::max<microseconds>(s_.cfg.max_retransmit_timeout, t.base_rto);
    for (int i = 0; i <= s_.cfg.max_retries; ++i) {
      total += step;
      step = std::min(cap, std::chrono::duration_cast<microseconds>(step * s_.cfg.backoff));
    }
    return total;
  }

  // RFC 6298 with a floor (min_retransmit_timeout) and a ceiling (base_rto): the timeout follows
  // the measured round trip, so a lost block costs a few round trips, not the client's "timeout"
  // (curl asks for 6 s).
  void rtt_sample(Transfer& t, Clock::time_point now) {
    if (t.window_resent) return;  // Karn: ambiguous
    const std::int64_t r = std::max<std::int64_t>(
        1, std::chrono::duration_cast<microseconds>(now - t.window_sent_at).count());
    if (t.srtt_us < 0) {
      t.srtt_us = r;
      t.rttvar_us = r / 2;
    } else {
      t.rttvar_us = (3 * t.rttvar_us + std::abs(t.srtt_us - r)) / 4;
      t.srtt_us = (7 * t.srtt_us + r) / 8;
    }
  }

  microseconds adaptive_rto(const Transfer& t) const {
    if (t.srtt_us < 0) return t.base_rto;
    const microseconds rto{t.srtt_us + std::max<std::int64_t>(1000, 4 * t.rttvar_us)};
    return std::clamp<microseconds>(
        rto, std::min<microseconds>(s_.cfg.min_retransmit_timeout, t.base_rto), t.base_rto);
  }

  void on_timeout(Transfer& t, Clock::time_point now) {
    settle(t);
    if (t.dallying) {
      finish(t);
      return;
    }
    if (now >= t.hard_deadline) {
      fail_transfer(
          t, ErrorCode::NotDefined, "transfer timed out",
          "transfer took longer than " + std::to_string(s_.cfg.transfer_timeout.count()) + " ms",
          {});
      return;
    }
    // Give up after max_retries retransmissions, and only once the client has also been silent
    // for as long as the fixed schedule would have waited: a short adaptive timeout must not turn
    // a few unlucky losses in a row into a failed transfer.
    if (++t.retries > s_.cfg.max_retries && now - t.last_progress >= give_up_after(t)) {
      std::string what;
      if (t.op == Opcode::Rrq)
        what = t.oack_pending ? "no ACK of the OACK"
                              : "no ACK for block " + std::to_string(t.base & 0xffff);
      else
        what = "no DATA block " + std::to_string(t.expected & 0xffff);
      // The client is gone or unreachable: no ERROR to send into the void.
      fail_transfer(
          t, std::nullopt, "",
          "timeout: " + what + " after " + std::to_string(s_.cfg.max_retries) + " retransmissions",
          {});
      return;
    }
    const auto next = std::chrono::duration_cast<microseconds>(t.cur_rto * s_.cfg.backoff);
    t.cur_rto = std::min<microseconds>(next, std::max(s_.cfg.max_retransmit_timeout, t.base_rto));
    t.window_resent = true;
    ++t.retransmits;
    s_.stats.retransmits.fetch_add(1, std::memory_order_relaxed);
    if (t.op == Opcode::Rrq && !t.oack_pending) {
      if (!start_window(t, t.base)) return;
    } else {
      send_packet(t, t.op == Opcode::Rrq ? t.oack : t.last_reply);
    }
    arm(t, now);
  }

  // ---- sending ----
  bool send_raw(int fd, const Endpoint& to, std::span<const std::uint8_t> bytes) {
    ssize_t r;
    do {
      r = ::sendto(fd, bytes.data(), bytes.size(), 0, to.sa(), to.len);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) hot_.packets_sent.fetch_add(1, std::memory_order_relaxed);
    return r >= 0;
  }

  // A packet outside the DATA stream (OACK, ACK, ERROR), sent now, after the blocks the transfer
  // has queued, so the client sees them in order.
  void send_packet(Transfer& t, std::span<const std::uint8_t> bytes) {
    settle(t);
    (void)send_raw(t.sock->fd.get(), t.peer, bytes);
  }

  // Sends the transfer's queued blocks (with everything else queued on its socket) before its
  // window state is read or changed: a block counts as sent only once the kernel took it.
  void settle(Transfer& t) {
    if (t.queued) flush(*t.sock);
  }

  // Sends the window that starts at block `from`. False when the transfer ended (read error).
  bool start_window(Transfer& t, std::uint64_t from) {
    settle(t);
    t.window_sent_at = Clock::now();
    t.win_first = from;
    t.win_next = from;
    t.win_count = t.windowsize;
    if (t.last_seq) t.win_count = std::min<std::uint64_t>(t.win_count, t.last_seq - from + 1);
    return send_pending(t);
  }

  // Queues what remains of the current window on the transfer's socket; flush() sends it. False
  // when the transfer ended (read error).
  bool send_pending(Transfer& t) {
    settle(t);
    const std::size_t bs = t.blksize;
    auto data = t.source->read((t.win_first - 1) * bs, t.win_count * bs);
    if (!data) {
      fail_transfer(t, ErrorCode::NotDefined, "read error", data.error().message(), {});
      return false;
    }
    const std::uint64_t end = t.win_first + t.win_count;
    for (std::uint64_t seq = t.win_next; seq < end; ++seq) {
      const std::size_t off = (seq - t.win_first) * bs;
      if (off > data->size()) break;
      const std::size_t len = std::min(bs, data->size() - off);
      OutBlock& b = t.sock->out.emplace_back(OutBlock{{}, data->data() + off, len, &t});
      write_data_header(b.header.data(), static_cast<std::uint16_t>(seq & 0xffff));
      t.queued = true;
      if (len < bs) {
        t.last_seq = seq;
        t.last_len = len;
        t.win_count = seq - t.win_first + 1;
        break;
      }
    }
    return true;
  }

  void flush_all() {
    for (auto& sock : sockets_)
      if (!sock->out.empty()) flush(*sock);
  }

  // Sends every block queued on the socket, in sendmmsg batches. What the socket has no room for
  // (EAGAIN, ENOBUFS) is dropped from the queue and its transfers are resumed from where they
  // stopped once the socket is writable; any other error leaves it to the retransmission timer.
  void flush(SharedSocket& sock) {
    const std::size_t n = sock.out.size();
    iov_.resize(2 * n);
    msgs_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      OutBlock& b = sock.out[i];
      iov_[2 * i] = {b.header.data(), b.header.size()};
      iov_[2 * i + 1] = {const_cast<std::uint8_t*>(b.data), b.len};
      msghdr& h = msgs_[i].msg_hdr;
      h = msghdr{};
      h.msg_name = const_cast<sockaddr*>(b.owner->peer.sa());
      h.msg_namelen = b.owner->peer.len;
      h.msg_iov = &iov_[2 * i];
      h.msg_iovlen = 2;
      msgs_[i].msg_len = 0;
    }
    // The kernel took block k (or refused it for its destination alone): its transfer moves on.
    auto gone = [&](std::size_t k) {
      Transfer& t = *sock.out[k].owner;
      ++t.win_next;
      t.sent_max = std::max(t.sent_max, t.win_next - 1);
    };
    std::size_t sent = 0;
    bool full = false;
    while (sent < n) {
      const int r = ::sendmmsg(sock.fd.get(), msgs_.data() + sent, static_cast<unsigned>(n - sent),
                               MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        full = errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS;
        if (full) break;
        // This block's destination failed (an ICMP error queued for it, say): it counts as sent
        // and lost, and the transfer's timer sends its window again.
        gone(sent++);
        continue;
      }
      for (int i = 0; i < r; ++i) {
        const std::size_t k = sent + static_cast<std::size_t>(i);
        hot_.bytes_sent.fetch_add(msgs_[k].msg_len, std::memory_order_relaxed);
        gone(k);
      }
      hot_.packets_sent.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed);
      sent += static_cast<std::size_t>(r);
    }
    for (std::size_t k = sent; k < n; ++k) {  // a transfer's blocks are contiguous: once each
      Transfer& t = *sock.out[k].owner;
      if (t.queued) sock.blocked.push_back(t.id);
      t.queued = false;
    }
    for (std::size_t k = 0; k < sent; ++k)
      sock.out[k].owner->queued = false;
    sock.out.clear();
    if (full) set_want_write(sock, true);
  }

  // The socket has room again: the transfers it stopped go on from their first unsent block.
  void on_writable(SharedSocket& sock) {
    set_want_write(sock, false);
    std::vector<std::uint64_t> ids;
    ids.swap(sock.blocked);
    for (std::uint64_t id : ids) {
      auto it = transfers_.find(id);
      if (it == transfers_.end()) continue;
      Transfer& t = *it->second;
      if (t.op != Opcode::Rrq || t.oack_pending || t.queued) continue;
      if (t.win_next < t.win_first + t.win_count) (void)send_pending(t);
    }
    flush(sock);
  }

  void set_want_write(SharedSocket& sock, bool want) {
    if (sock.want_write == want) return;
    sock.want_write = want;
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
    ev.data.u64 = sock.tag;
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, sock.fd.get(), &ev);
  }

  // ---- events ----
  Event base_event(const Transfer& t, EventKind kind) const {
    Event e;
    e.kind = kind;
    e.time_ms = unix_ms();
    e.transfer = t.id;
    e.client = t.peer.text();
    e.client_port = t.peer.port();
    e.op = std::string(opcode_name(t.op));
    e.name = t.name;
    e.file = t.file;
    e.mode = std::string(mode_name(t.mode));
    e.virtual_file = t.virtual_file;
    e.case_fallback = t.case_fallback;
    e.bytes = t.bytes;
    e.size = t.size;
    e.blksize = t.blksize;
    e.windowsize = t.windowsize;
    e.retransmits = t.retransmits;
    return e;
  }

  void progress(Transfer& t) {
    if (s_.cfg.progress_bytes == 0 || t.bytes < t.next_progress) return;
    while (t.next_progress <= t.bytes)
      t.next_progress += s_.cfg.progress_bytes;
    s_.emit(base_event(t, EventKind::Progress));
  }

  void complete(Transfer& t) {
    Event e = base_event(t, EventKind::Complete);
    e.duration_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t.started).count();
    s_.stats.completed.fetch_add(1, std::memory_order_relaxed);
    s_.emit(e);
  }

  // Ends a transfer: optionally sends an ERROR, emits Failed, releases everything.
  void fail_transfer(Transfer& t, std::optional<ErrorCode> send, std::string_view message,
                     std::string reason, std::optional<std::uint16_t> received_code) {
    // An unfinished upload's temporary file goes before the client hears why: what it then finds
    // in the write area is what the server will leave there.
    if (t.target) abandon_write(*t.target);
    if (send) send_packet(t, build_error(*send, message));
    Event e = base_event(t, EventKind::Failed);
    e.duration_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t.started).count();
    e.reason = std::move(reason);
    if (send) e.error_code = static_cast<std::uint16_t>(*send);
    if (received_code) e.error_code = received_code;
    s_.stats.failed.fetch_add(1, std::memory_order_relaxed);
    s_.emit(e);
    finish(t);
  }

  void finish(Transfer& t) {
    settle(t);  // its queued blocks point into its source
    if (t.in_timers) timers_.erase({t.timer_key, t.id});
    {
      std::lock_guard lock(s_.peers_mu);
      s_.active_requests.erase(t.peer_key);
    }
    if (auto it = t.sock->by_peer.find(t.peer.tid());
        it != t.sock->by_peer.end() && it->second == &t)
      t.sock->by_peer.erase(it);
    s_.stats.active.fetch_sub(1, std::memory_order_relaxed);
    transfers_.erase(t.id);
  }

  // ---- shared sockets ----

  // The worker's socket for transfers with clients that reached `local`, made on first use.
  Result<SharedSocket*> shared_socket(const Endpoint& local) {
    const std::string key = local.key();
    if (auto it = socket_by_local_.find(key); it != socket_by_local_.end()) return it->second;
    UniqueFd fd(::socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return fail(sys_error("socket"));
    const int off = 0, on = 1;
    if (local.family() == AF_INET6) {
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
    }
    ::setsockopt(fd.get(), IPPROTO_IP, IP_RECVERR, &on, sizeof on);
    // Every transfer's ACKs arrive here, and every window leaves from here: room for bursts (the
    // kernel caps it at net.core.{r,w}mem_max).
    const int room = 4 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &room, sizeof room);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
    if (::bind(fd.get(), local.sa(), local.len) != 0) {
      // The address the request came to cannot be bound (gone?): any address of the family.
      Endpoint any;
      any.addr.ss_family = static_cast<sa_family_t>(local.family());
      any.len = local.family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      if (::bind(fd.get(), any.sa(), any.len) != 0) return fail(sys_error("bind"));
    }
    auto sock = std::make_unique<SharedSocket>();
    sock->tag = sockets_.size();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = sock->tag;
    if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0)
      return fail(sys_error("epoll_ctl"));
    sock->fd = std::move(fd);
    SharedSocket* p = sock.get();
    sockets_.push_back(std::move(sock));
    socket_by_local_.emplace(key, p);
    return p;
  }

  // ICMP errors (IP_RECVERR) for packets sent from the socket. A closed port or unreachable host
  // at a client ends its transfer at once instead of after every retransmission.
  void drain_errors(SharedSocket& sock) {
    int pending = 0;
    socklen_t plen = sizeof pending;
    ::getsockopt(sock.fd.get(), SOL_SOCKET, SO_ERROR, &pending, &plen);  // clears it
    for (int i = 0; i < 64; ++i) {
      Endpoint to;
      alignas(cmsghdr) std::array<std::uint8_t, 512> control{};
      std::uint8_t sink[64];
      iovec iov{sink, sizeof sink};
      msghdr h = receive_header(to, iov, control);
      if (::recvmsg(sock.fd.get(), &h, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
      to.len = h.msg_namelen;
      auto it = sock.by_peer.find(to.tid());
      if (it == sock.by_peer.end()) continue;  // e.g. an ERROR 5 to a stranger that has gone
      Transfer& t = *it->second;
      for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
        const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
        if (!v4 && !v6) continue;
        sock_extended_err ee{};
        std::memcpy(&ee, CMSG_DATA(c), sizeof ee);
        const bool icmp = ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6;
        if (!icmp) continue;
        const int err = static_cast<int>(ee.ee_errno);
        if (err != ECONNREFUSED && err != EHOSTUNREACH && err != ENETUNREACH) continue;
        fail_transfer(t, std::nullopt, "", std::string("client unreachable: ") + std::strerror(err),
                      {});
        break;
      }
    }
  }

  // Reads the datagrams waiting on the socket, kBatch per recvmmsg and up to 4 of those per
  // wake-up (the epoll set is level-triggered: more bring the loop back), and hands each to the
  // transfer of its sender.
  void on_readable(SharedSocket& sock) {
    const int fd = sock.fd.get();
    for (int round = 0; round < 4; ++round) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        rx_iov_[i] = {rx_batch_[i].data(), rx_batch_[i].size()};
        rx_from_[i] = Endpoint{};
        msghdr& h = rx_msgs_[i].msg_hdr;
        h = msghdr{};
        h.msg_name = &rx_from_[i].addr;
        h.msg_namelen = sizeof rx_from_[i].addr;
        h.msg_iov = &rx_iov_[i];
        h.msg_iovlen = 1;
        rx_msgs_[i].msg_len = 0;
      }
      const int n = ::recvmmsg(fd, rx_msgs_.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        continue;  // EINTR, or a pending ICMP error (drain_errors reads those): read on
      }
      for (int i = 0; i < n; ++i) {
        Endpoint& from = rx_from_[i];
        from.len = rx_msgs_[i].msg_hdr.msg_namelen;
        auto it = sock.by_peer.find(from.tid());
        if (it == sock.by_peer.end()) {
          // RFC 1350: a packet from another TID gets ERROR 5 and the transfers go on.
          (void)send_raw(fd, from, build_error(ErrorCode::UnknownTid, "Unknown transfer ID"));
          bad_packet(from, "packet from an unknown TID (no transfer with that address and port)",
                     ErrorCode::UnknownTid);
          continue;
        }
        if (rx_msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // oversized: not TFTP
        const std::span<const std::uint8_t> bytes(rx_batch_[i].data(), rx_msgs_[i].msg_len);
        hot_.bytes_received.fetch_add(rx_msgs_[i].msg_len, std::memory_order_relaxed);
        (void)handle_packet(*it->second, bytes);  // false: the transfer ended
      }
      if (static_cast<std::size_t>(n) < kBatch) return;
    }
  }

  // False when the transfer ended.
  bool handle_packet(Transfer& t, std::span<const std::uint8_t> bytes) {
    settle(t);
    auto pkt = parse(bytes, t.blksize);
    if (!pkt) {
      s_.stats.bad_packets.fetch_add(1, std::memory_order_relaxed);
      return true;  // garbage from the peer: ignored, the timers carry on
    }
    if (auto* err = std::get_if<ErrorPacket>(&*pkt)) {
      fail_transfer(t, std::nullopt, "",
                    "client sent ERROR " + std::to_string(err->code) + " (" +
                        std::string(error_code_text(err->code)) + "): " + err->message,
                    err->code);
      return false;
    }
    if (t.op == Opcode::Rrq) {
      if (auto* ack = std::get_if<AckPacket>(&*pkt)) return on_ack(t, ack->block);
      if (std::holds_alternative<DataPacket>(*pkt)) {
        fail_transfer(t, ErrorCode::IllegalOperation, "DATA on a read transfer",
                      "client sent DATA on a read transfer", {});
        return false;
      }
      return true;
    }
    if (auto* data = std::get_if<DataPacket>(&*pkt)) return on_data(t, *data);
    if (std::holds_alternative<AckPacket>(*pkt)) {
      fail_transfer(t, ErrorCode::IllegalOperation, "ACK on a write transfer",
                    "client sent ACK on a write transfer", {});
      return false;
    }
    return true;
  }

  bool on_ack(Transfer& t, std::uint16_t block) {
    const auto now = Clock::now();
    if (t.oack_pending) {
      if (block != 0) return true;
      t.oack_pending = false;
      t.retries = 0;
      t.last_progress = now;
      if (t.retransmits == 0) {  // the OACK's round trip is the first sample (Karn otherwise)
        t.window_resent = false;
        t.window_sent_at = t.started;
        rtt_sample(t, now);
      }
      t.window_resent = false;
      t.cur_rto = adaptive_rto(t);
      if (!start_window(t, 1)) return false;
      arm(t, now);
      return true;
    }
    // Which block is acknowledged: the one in [base - 1, sent_max] with this wire number.
    const std::uint64_t prev = t.base - 1;
    const std::uint64_t acked = prev + static_cast<std::uint16_t>(block - (prev & 0xffff));
    if (acked == prev && acked < t.sent_max) return on_repeated_ack(t, now);
    if (acked == prev || acked > t.sent_max) return true;  // late, or not sent yet: ignored
    t.base = acked + 1;
    t.bytes = (t.last_seq && acked == t.last_seq) ? (t.last_seq - 1) * t.blksize + t.last_len
                                                  : acked * t.blksize;
    if (t.last_seq && acked == t.last_seq) {
      complete(t);
      finish(t);
      return false;
    }
    progress(t);
    t.retries = 0;
    t.last_progress = now;
    rtt_sample(t, now);
    t.acked_window_resent = t.window_resent;
    t.window_resent = false;
    t.cur_rto = adaptive_rto(t);
    // RFC 7440: the next window starts right after the acknowledged block.
    if (!start_window(t, t.base)) return false;
    arm(t, now);
    return true;
  }

  // The client acknowledges again the block before the window we sent. With a window (RFC 7440
  // section 4) that is how a client says the window's first block was lost: start again there.
  // But an ACK can also be a copy -- duplicated by the network, or the echo of a window we sent
  // twice -- and answering copies with data is the Sorcerer's Apprentice bug (RFC 1123 4.2.3.1):
  // every duplicate would double every later block. So a repeated ACK restarts the window only
  //  - with windowsize > 1 (in lock-step the client says nothing new; the adaptive timer resends),
  //  - once per window start,
  //  - when the acknowledged window was sent once (copies of its ACK are expected otherwise: this
  //    is what stops the cascade after at most one extra window),
  //  - and half a round trip or more after the window left (a network copy of the ACK that started
  //    it arrives right behind the original).
  bool on_repeated_ack(Transfer& t, Clock::time_point now) {
    if (t.windowsize < 2 || t.fast_restart_base == t.base || t.acked_window_resent) return true;
    const std::int64_t since =
        std::chrono::duration_cast<microseconds>(now - t.window_sent_at).count();
    const std::int64_t srtt = t.srtt_us < 0 ? t.base_rto.count() * 1000 : t.srtt_us;
    if (since < srtt / 2) return true;
    t.fast_restart_base = t.base;
    t.window_resent = true;
    ++t.retransmits;
    s_.stats.retransmits.fetch_add(1, std::memory_order_relaxed);
    if (!start_window(t, t.base)) return false;
    arm(t, now);
    return true;
  }

  bool write_all(int fd, const std::uint8_t* p, std::size_t n, int& err) {
    while (n > 0) {
      const ssize_t r = ::write(fd, p, n);
      if (r < 0) {
        if (errno == EINTR) continue;
        err = errno;
        return false;
      }
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }

  bool on_data(Transfer& t, const DataPacket& d) {
    const auto now = Clock::now();
    const auto wire_prev = static_cast<std::uint16_t>((t.expected - 1) & 0xffff);
    if (t.dallying) {
      if (d.block == wire_prev) send_packet(t, t.last_reply);
      return true;
    }
    if (d.block != static_cast<std::uint16_t>(t.expected & 0xffff)) {
      // The previous block again: our ACK was lost; say it again. Anything else: ignored.
      if (d.block == wire_prev && t.expected > 1) send_packet(t, t.last_reply);
      return true;
    }
    std::span<const std::uint8_t> out = d.payload;
    if (t.mode == Mode::Netascii) {
      decoded_.clear();
      t.decoder.feed(d.payload, decoded_);
      if (d.payload.size() < t.blksize) t.decoder.finish(decoded_);
      out = decoded_;
    }
    const std::uint64_t limit = s_.cfg.write_area ? s_.cfg.write_area->max_bytes : 0;
    if (t.bytes + out.size() > limit) {
      fail_transfer(t, ErrorCode::DiskFull, "file too large",
                    "file exceeds the write limit of " + std::to_string(limit) + " bytes", {});
      return false;
    }
    int err = 0;
    if (!write_all(t.target->fd.get(), out.data(), out.size(), err)) {
      const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
      fail_transfer(t, full ? ErrorCode::DiskFull : ErrorCode::NotDefined,
                    full ? "disk full" : "write error", std::string("write: ") + std::strerror(err),
                    {});
      return false;
    }
    t.bytes += out.size();
    t.last_reply = build_ack(d.block);
    ++t.expected;
    t.retries = 0;
    t.last_progress = now;
    t.cur_rto = t.base_rto;
    if (d.payload.size() < t.blksize) {
      if (auto c = commit_write(*t.target, s_.cfg.write_area->overwrite); !c) {
        const bool exists = is_file_exists(c.error());
        fail_transfer(t, exists ? ErrorCode::FileExists : ErrorCode::AccessViolation,
                      exists ? "File already exists" : "Access violation", c.error().message(), {});
        return false;
      }
      t.target.reset();
      send_packet(t, t.last_reply);
      t.size = t.bytes;
      complete(t);
      // Dally: a lost final ACK makes the client send the last block again; answer it for a while.
      t.dallying = true;
      t.rto_deadline = now + 2 * t.cur_rto;
      schedule(t);
      return true;
    }
    progress(t);
    send_packet(t, t.last_reply);
    arm(t, now);
    return true;
  }

  // ---- the listening socket ----
  void on_listen() {
    for (int i = 0; i < 64; ++i) {
      Endpoint from, local;
      from.len = sizeof from.addr;
      alignas(cmsghdr) std::array<std::uint8_t, 256> control{};
      iovec iov{rx_.data(), rx_.size()};
      msghdr h = receive_header(from, iov, control);
      const ssize_t r = ::recvmsg(s_.listen_fd.get(), &h, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        return;
      }
      from.len = h.msg_namelen;
      local = s_.bound;
      local.set_port(0);
      for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo pi{};
          std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
          if (local.family() == AF_INET) {
            reinterpret_cast<sockaddr_in*>(&local.addr)->sin_addr = pi.ipi_addr;
          } else {
            auto* a6 = reinterpret_cast<sockaddr_in6*>(&local.addr);
            std::memset(&a6->sin6_addr, 0, 16);
            a6->sin6_addr.s6_addr[10] = 0xff;
            a6->sin6_addr.s6_addr[11] = 0xff;
            std::memcpy(a6->sin6_addr.s6_addr + 12, &pi.ipi_addr, 4);
          }
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
                   local.family() == AF_INET6) {
          in6_pktinfo pi{};
          std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
          auto* a6 = reinterpret_cast<sockaddr_in6*>(&local.addr);
          a6->sin6_addr = pi.ipi6_addr;
          if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr)) a6->sin6_scope_id = pi.ipi6_ifindex;
        }
      }
      if (h.msg_flags & MSG_TRUNC) {
        bad_packet(from, "datagram larger than any TFTP packet", std::nullopt);
        continue;
      }
      if (from.port() == 0) continue;  // cannot be answered
      const std::span<const std::uint8_t> bytes(rx_.data(), static_cast<std::size_t>(r));
      hot_.bytes_received.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed);
      handle_datagram(from, local, bytes);
    }
  }

  void bad_packet(const Endpoint& from, std::string reason, std::optional<ErrorCode> sent) {
    s_.stats.bad_packets.fetch_add(1, std::memory_order_relaxed);
    Event e;
    e.kind = EventKind::BadPacket;
    e.time_ms = unix_ms();
    e.client = from.text();
    e.client_port = from.port();
    if (sent) e.error_code = static_cast<std::uint16_t>(*sent);
    e.reason = std::move(reason);
    s_.emit(e);
  }

  void handle_datagram(const Endpoint& from, const Endpoint& local,
                       std::span<const std::uint8_t> bytes) {
    const int lfd = s_.listen_fd.get();
    const auto op = peek_opcode(bytes);
    if (!op) {
      if (bytes.size() < 2) {
        bad_packet(from, "datagram of " + std::to_string(bytes.size()) + " bytes", std::nullopt);
        return;
      }
      (void)send_raw(lfd, from, build_error(ErrorCode::IllegalOperation, "Illegal TFTP operation"));
      bad_packet(from, "unknown opcode", ErrorCode::IllegalOperation);
      return;
    }
    if (*op == Opcode::Error) {
      bad_packet(from, "ERROR packet for no transfer", std::nullopt);  // never answered
      return;
    }
    if (*op != Opcode::Rrq && *op != Opcode::Wrq) {
      (void)send_raw(lfd, from, build_error(ErrorCode::UnknownTid, "Unknown transfer ID"));
      bad_packet(from, std::string(opcode_name(*op)) + " for no transfer", ErrorCode::UnknownTid);
      return;
    }
    auto pkt = parse(bytes);
    if (!pkt) {
      (void)send_raw(lfd, from, build_error(ErrorCode::IllegalOperation, pkt.error().message()));
      bad_packet(from, pkt.error().message(), ErrorCode::IllegalOperation);
      return;
    }
    handle_request(from, local, std::get<Request>(std::move(*pkt)));
  }

  void refuse(const Endpoint& from, const Request& req, ErrorCode code, std::string_view message,
              std::string reason, std::string file = {}) {
    (void)send_raw(s_.listen_fd.get(), from, build_error(code, message));
    s_.stats.refused.fetch_add(1, std::memory_order_relaxed);
    Event e;
    e.kind = EventKind::Refused;
    e.time_ms = unix_ms();
    e.client = from.text();
    e.client_port = from.port();
    e.op = std::string(opcode_name(req.op));
    e.name = req.filename;
    e.file = std::move(file);
    e.mode = std::string(mode_name(req.mode));
    e.error_code = static_cast<std::uint16_t>(code);
    e.reason = std::move(reason);
    s_.emit(e);
  }

  std::optional<std::string> virtual_file(const Endpoint& from, const std::string& name) {
    sdk::TftpRequestInfo info;
    info.client_ip = from.ipv4();
    info.name = name;
    for (const auto& provider : s_.cfg.virtual_files) {
      try {
        if (auto content = provider(info)) return content;
      } catch (...) {
        // A provider's failure falls back to the static tree; it never stops the server.
      }
    }
    for (auto* hooks : s_.cfg.hooks) {
      try {
        if (auto content = hooks->tftp_virtual_file(info)) return content;
      } catch (...) {
      }
    }
    return std::nullopt;
  }

  // A file a plugin published to this client outside the root (a verified firmware blob): opened
  // without following links, and only when it is a regular file.
  std::optional<std::pair<UniqueFd, std::uint64_t>> published_file(const Endpoint& from,
                                                                   const std::string& name) {
    sdk::TftpRequestInfo info;
    info.client_ip = from.ipv4();
    info.name = name;
    for (auto* hooks : s_.cfg.hooks) {
      std::optional<std::filesystem::path> path;
      try {
        path = hooks->tftp_published_file(info);
      } catch (...) {
        continue;
      }
      if (!path) continue;
      UniqueFd fd(::open(path->c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
      struct stat st {};
      if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      return std::make_pair(std::move(fd), static_cast<std::uint64_t>(st.st_size));
    }
    return std::nullopt;
  }

  std::size_t path_mtu(const Endpoint& peer) {
    UniqueFd probe(::socket(peer.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!probe) return 0;
    if (::connect(probe.get(), peer.sa(), peer.len) != 0) return 0;
    int mtu = 0;
    socklen_t len = sizeof mtu;
    const int level = peer.family() == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
    const int name = peer.family() == AF_INET ? IP_MTU : IPV6_MTU;
    if (::getsockopt(probe.get(), level, name, &mtu, &len) != 0 || mtu <= 0) return 0;
    return static_cast<std::size_t>(mtu);
  }

  void handle_request(const Endpoint& from, const Endpoint& local, Request req) {
    s_.stats.requests.fetch_add(1, std::memory_order_relaxed);
    const std::string key =
        from.key() + " " + std::string(opcode_name(req.op)) + " " + req.filename;
    {
      // A client repeating its request (our first answer was lost or slow) is already being
      // served from another TID: the transfer's own retransmission answers it. The key is
      // reserved here, before any other thread can see the repeat.
      std::lock_guard lock(s_.peers_mu);
      if (!s_.active_requests.insert(key).second) return;
    }
    struct Reservation {
      Server::Impl& s;
      const std::string& key;
      bool kept = false;
      ~Reservation() {
        if (kept) return;
        std::lock_guard lock(s.peers_mu);
        s.active_requests.erase(key);
      }
    } reservation{s_, key};
    {
      Event e;
      e.kind = EventKind::Request;
      e.time_ms = unix_ms();
      e.client = from.text();
      e.client_port = from.port();
      e.op = std::string(opcode_name(req.op));
      e.name = req.filename;
      e.mode = std::string(mode_name(req.mode));
      e.options = req.options;
      s_.emit(e);
    }
    if (s_.stats.active.load(std::memory_order_relaxed) >= s_.cfg.max_transfers) {
      refuse(from, req, ErrorCode::NotDefined, "server busy",
             "too many concurrent transfers (" + std::to_string(s_.cfg.max_transfers) + ")");
      return;
    }
    if (req.mode == Mode::Mail) {
      refuse(from, req, ErrorCode::IllegalOperation, "mail mode is not supported",
             "mail mode is not supported");
      return;
    }
    auto name = normalise_name(req.filename);
    if (!name) {
      refuse(from, req, ErrorCode::AccessViolation, "Access violation", name.error().message());
      return;
    }

    auto t = std::make_unique<Transfer>();
    t->op = req.op;
    t->mode = req.mode;
    t->name = req.filename;
    t->file = *name;
    t->peer = from;
    t->peer_key = key;
    std::optional<std::uint64_t> size;
    if (req.op == Opcode::Rrq) {
      if (auto content = virtual_file(from, *name)) {
        t->virtual_file = true;
        if (req.mode == Mode::Octet) size = content->size();
        t->source = std::make_unique<MemorySource>(std::move(*content));
      } else if (auto published = published_file(from, *name)) {
        t->virtual_file = true;
        if (req.mode == Mode::Octet) size = published->second;
        t->source = std::make_unique<FileSource>(std::move(published->first));
      } else {
        auto file = s_.root->open_read(*name);
        if (!file) {
          const auto code = static_cast<ErrorCode>(tftp_error_for(file.error()));
          refuse(from, req, code, error_code_text(static_cast<std::uint16_t>(code)),
                 file.error().message(), *name);
          return;
        }
        t->file = file->name;
        t->case_fallback = file->case_fallback;
        if (req.mode == Mode::Octet) size = file->size;
        t->source = std::make_unique<FileSource>(std::move(file->fd));
      }
      if (req.mode == Mode::Netascii)
        t->source = std::make_unique<NetasciiSource>(std::move(t->source));
    } else {
      if (!s_.write_root) {
        refuse(from, req, ErrorCode::AccessViolation, "Access violation",
               "write request refused: no write area configured");
        return;
      }
      auto target = create_for_write(*s_.write_root, *name, s_.cfg.write_area->overwrite);
      if (!target) {
        const bool exists = is_file_exists(target.error());
        refuse(from, req, exists ? ErrorCode::FileExists : ErrorCode::AccessViolation,
               exists ? "File already exists" : "Access violation", target.error().message(),
               *name);
        return;
      }
      t->target = std::move(*target);
    }

    NegotiationPolicy policy;
    policy.max_blksize = s_.cfg.max_blksize;
    policy.max_windowsize = s_.cfg.max_windowsize;
    policy.max_window_bytes = s_.cfg.max_window_bytes;
    policy.allow_windowsize = req.op == Opcode::Rrq;  // writes are lock-step
    policy.ipv6 = from.family() == AF_INET6 && !from.v4_mapped();
    const bool asks_blksize = std::any_of(req.options.begin(), req.options.end(),
                                          [](const Option& o) { return o.name == "blksize"; });
    if (s_.cfg.clamp_to_path_mtu && asks_blksize) policy.path_mtu = path_mtu(from);
    Negotiated neg = negotiate(req, policy, size);
    if (req.op == Opcode::Wrq && neg.tsize && *neg.tsize > s_.cfg.write_area->max_bytes) {
      abandon_write(*t->target);
      refuse(from, req, ErrorCode::DiskFull, "file too large",
             "announced size " + std::to_string(*neg.tsize) + " exceeds the write limit of " +
                 std::to_string(s_.cfg.write_area->max_bytes) + " bytes",
             *name);
      return;
    }
    auto sock = shared_socket(local);
    if (!sock) {
      if (t->target) abandon_write(*t->target);
      refuse(from, req, ErrorCode::NotDefined, "internal error", sock.error().message(), *name);
      return;
    }
    t->sock = *sock;
    t->id = s_.next_id.fetch_add(1, std::memory_order_relaxed);
    t->blksize = neg.blksize;
    t->windowsize = neg.windowsize;
    t->size = req.op == Opcode::Rrq ? size : neg.tsize;
    t->started = Clock::now();
    t->base_rto = neg.timeout_s ? milliseconds(*neg.timeout_s * 1000) : s_.cfg.retransmit_timeout;
    t->cur_rto = t->base_rto;
    t->last_progress = t->started;
    t->hard_deadline = t->started + s_.cfg.transfer_timeout;
    t->next_progress = s_.cfg.progress_bytes;

    // A client's address and port are its TID: a new request from them while a transfer with
    // them runs (a different file; the same one is the repeat caught above) means the client
    // has given that transfer up, say by rebooting. It ends here, without an ERROR, which would
    // reach the new transfer.
    const std::string tid = from.tid();
    if (auto it = t->sock->by_peer.find(tid); it != t->sock->by_peer.end())
      fail_transfer(*it->second, std::nullopt, "",
                    "superseded: the client sent a new request from the same address and port", {});
    reservation.kept = true;  // released by finish()
    s_.stats.active.fetch_add(1, std::memory_order_relaxed);
    Transfer& tr = *t;
    tr.sock->by_peer[tid] = &tr;
    const std::uint64_t id = tr.id;
    transfers_.emplace(id, std::move(t));

    if (!neg.accepted.empty()) {
      auto oack = build_oack(neg.accepted);
      if (oack) {
        Event e = base_event(tr, EventKind::Oack);
        e.options = neg.accepted;
        s_.emit(e);
        send_packet(tr, *oack);
        if (tr.op == Opcode::Rrq) {
          tr.oack_pending = true;
          tr.oack = std::move(*oack);
        } else {
          tr.last_reply = std::move(*oack);
        }
        arm(tr, tr.started);
        return;
      }
    }
    if (tr.op == Opcode::Rrq) {
      if (!start_window(tr, 1)) return;
    } else {
      tr.last_reply = build_ack(0);
      send_packet(tr, tr.last_reply);
    }
    arm(tr, tr.started);
  }

  Server::Impl& s_;
  UniqueFd epfd_, wakefd_;

 public:
  // Per-packet counters, written by this worker's thread only and on their own cache line, so
  // two loops never bounce one line between cores for every block; Server::stats() adds them up.
  struct alignas(64) HotCounters {
    std::atomic<std::uint64_t> bytes_sent{0}, packets_sent{0}, bytes_received{0};
  } hot_;

 private:
  std::thread thread_;
  std::vector<std::uint8_t> rx_;
  // recvmmsg on the shared sockets: a datagram of any TFTP size in each slot (1 MiB in all)
  static constexpr std::size_t kBatch = 16;
  std::array<std::vector<std::uint8_t>, kBatch> rx_batch_;
  std::array<iovec, kBatch> rx_iov_{};
  std::array<Endpoint, kBatch> rx_from_{};
  std::array<mmsghdr, kBatch> rx_msgs_{};
  std::vector<std::uint8_t> decoded_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Transfer>> transfers_;
  std::set<std::pair<Clock::time_point, std::uint64_t>> timers_;
  std::vector<std::unique_ptr<SharedSocket>> sockets_;  // index = epoll tag
  std::unordered_map<std::string, SharedSocket*> socket_by_local_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
};

Server::Impl::~Impl() {
  if (log) std::fclose(log);
}

// ---- Server ------------------------------------------------------------------------------------

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
}

Result<std::unique_ptr<Server>> Server::start(ServerConfig config) {
  auto impl = std::make_unique<Impl>();
  auto& c = impl->cfg;
  c = std::move(config);
  if (c.threads < 1 || c.threads > 16)
    return fail(Errc::InvalidInput, "threads must be 1-16, not " + std::to_string(c.threads));
  if (c.max_blksize < kMinBlksize || c.max_blksize > kMaxBlksize)
    return fail(Errc::InvalidInput, "max blksize must be 8-65464");
  if (c.max_windowsize < 1) return fail(Errc::InvalidInput, "max windowsize must be at least 1");
  if (c.retransmit_timeout.count() <= 0 || c.transfer_timeout.count() <= 0 ||
      c.min_retransmit_timeout.count() <= 0)
    return fail(Errc::InvalidInput, "timeouts must be positive");
  if (!(c.backoff >= 1.0 && c.backoff <= 16.0))
    return fail(Errc::InvalidInput, "backoff must be between 1 and 16");
  if (c.max_retries < 0) return fail(Errc::InvalidInput, "max retries must not be negative");
  if (c.max_transfers < 1) return fail(Errc::InvalidInput, "max transfers must be at least 1");

  auto root = Root::open(c.root, c.resolve);
  if (!root) return fail(std::move(root.error()).context("tftp"));
  impl->root = std::move(*root);
  if (c.write_area) {
    auto w = impl->root->subroot(c.write_area->dir);
    if (!w) return fail(std::move(w.error()).context("tftp"));
    impl->write_root = std::move(*w);
  }
  if (!c.log_path.empty()) {
    impl->log = std::fopen(c.log_path.c_str(), "ae");
    if (!impl->log)
      return fail(Errc::InvalidInput,
                  "tftp: log " + c.log_path.string() + ": " + std::strerror(errno));
  }

  auto ep = numeric_endpoint(c.bind_address, c.port);
  if (!ep) return fail(ep.error());
  UniqueFd fd(::socket(ep->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(sys_error("tftp: socket"));
  const int on = 1, off = 0;
  if (ep->family() == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
  }
  ::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
  const int rcvbuf = 1 << 20;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (::bind(fd.get(), ep->sa(), ep->len) != 0)
    return fail(Errc::Unreachable, "tftp: bind " + c.bind_address + " port " +
                                       std::to_string(c.port) + ": " + std::strerror(errno));
  Endpoint bound;
  bound.len = sizeof bound.addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound.addr), &bound.len) != 0)
    return fail(sys_error("tftp: getsockname"));
  impl->listen_fd = std::move(fd);
  impl->bound = bound;
  impl->address_text = bound.text();

  for (int i = 0; i < c.threads; ++i) {
    auto w = std::make_unique<Worker>(*impl);
    if (auto s = w->init(); !s) return fail(std::move(s.error()).context("tftp"));
    impl->workers.push_back(std::move(w));
  }
  for (auto& w : impl->workers)
    w->start();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::stop() {
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping.store(true);
  for (auto& w : impl_->workers)
    w->wake();
  for (auto& w : impl_->workers)
    w->join();
  for (auto& w : impl_->workers) {
    impl_->stats.retired_bytes_sent += w->hot_.bytes_sent.load(std::memory_order_relaxed);
    impl_->stats.retired_bytes_received += w->hot_.bytes_received.load(std::memory_order_relaxed);
    impl_->stats.retired_packets_sent += w->hot_.packets_sent.load(std::memory_order_relaxed);
  }
  impl_->workers.clear();
  impl_->listen_fd.reset();
  std::lock_guard elock(impl_->emit_mu);
  if (impl_->log) {
    std::fclose(impl_->log);
    impl_->log = nullptr;
  }
}

std::uint16_t Server::port() const {
  return impl_->bound.port();
}

const std::string& Server::address() const {
  return impl_->address_text;
}

Server::Stats Server::stats() const {
  const auto& a = impl_->stats;
  Stats s;
  s.requests = a.requests.load();
  s.refused = a.refused.load();
  s.completed = a.completed.load();
  s.failed = a.failed.load();
  s.bad_packets = a.bad_packets.load();
  s.active = a.active.load();
  std::lock_guard lock(impl_->stop_mu);  // stop() retires the workers
  s.bytes_sent = a.retired_bytes_sent;
  s.bytes_received = a.retired_bytes_received;
  s.packets_sent = a.retired_packets_sent;
  for (const auto& w : impl_->workers) {
    s.bytes_sent += w->hot_.bytes_sent.load(std::memory_order_relaxed);
    s.bytes_received += w->hot_.bytes_received.load(std::memory_order_relaxed);
    s.packets_sent += w->hot_.packets_sent.load(std::memory_order_relaxed);
  }
  s.retransmits = a.retransmits.load();
  return s;
}

}  // namespace labctl::tftp
