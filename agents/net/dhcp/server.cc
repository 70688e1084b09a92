#include "agents/net/dhcp/server.h"

#include "common/unique_fd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace labctl::dhcp {

namespace {

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

sockaddr_in v4(std::uint32_t addr, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(addr);
  a.sin_port = htons(port);
  return a;
}

std::string endpoint_text(const sockaddr_in& a) {
  return ipv4_string(ntohl(a.sin_addr.s_addr)) + ":" + std::to_string(ntohs(a.sin_port));
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (prefix.size() > s.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

// A reply waiting for its lease rows to be durable (or rows with nothing to send).
struct Pending {
  std::vector<Lease> rows;
  int fd = -1;
  sockaddr_in to{};
  std::vector<std::uint8_t> bytes;  // empty: nothing to send
  std::optional<Event> event;       // emitted once the reply is out (or the rows are written)
};

}  // namespace

std::string_view event_kind_name(EventKind k) {
  switch (k) {
    case EventKind::Offer:
      return "offer";
    case EventKind::Ack:
      return "ack";
    case EventKind::Nak:
      return "nak";
    case EventKind::Release:
      return "release";
    case EventKind::Decline:
      return "decline";
    case EventKind::Inform:
      return "inform";
    case EventKind::Ignored:
      return "ignored";
    case EventKind::Observed:
      return "observed";
    case EventKind::BadPacket:
      return "bad_packet";
    case EventKind::Error:
      return "error";
  }
  return "unknown";
}

namespace {
// Invalid UTF-8 (hostnames and vendor classes are client bytes) becomes '?', so a JSON dump
// never throws.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s)
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  return out;
}
}  // namespace

nlohmann::json event_to_json(const Event& e) {
  nlohmann::json j;
  j["time_ms"] = e.time_ms;
  j["event"] = std::string(event_kind_name(e.kind));
  j["segment"] = e.segment;
  if (!e.message_type.empty()) j["request"] = e.message_type;
  if (e.xid) j["xid"] = e.xid;
  if (!e.mac.empty()) j["mac"] = e.mac;
  if (!e.client_key.empty()) j["client_key"] = e.client_key;
  if (!e.hostname.empty()) j["hostname"] = printable(e.hostname);
  if (!e.vendor_class.empty()) j["vendor_class"] = printable(e.vendor_class);
  if (e.ip) j["ip"] = ipv4_string(e.ip);
  if (e.giaddr) j["giaddr"] = ipv4_string(e.giaddr);
  if (!e.device.empty()) j["device"] = e.device;
  if (!e.classes.empty()) j["classes"] = e.classes;
  if (!e.source.empty()) j["source"] = e.source;
  if (e.lease_ms) j["lease_ms"] = e.lease_ms;
  if (!e.reason.empty()) j["reason"] = e.reason;
  if (!e.message.empty()) j["message"] = printable(e.message);
  if (!e.options_sent.empty()) j["options"] = e.options_sent;
  return j;
}

std::string event_to_line(const Event& e) {
  std::string line(event_kind_name(e.kind));
  if (!e.segment.empty()) line += " [" + e.segment + "]";
  if (!e.mac.empty()) line += " " + e.mac;
  if (e.ip) line += " " + ipv4_string(e.ip);
  if (!e.device.empty()) line += " (" + e.device + ")";
  if (!e.reason.empty()) line += ": " + e.reason;
  if (!e.message.empty() && e.kind != EventKind::Offer && e.kind != EventKind::Ack)
    line += " -- " + printable(e.message);
  return line;
}

Result<std::pair<std::uint32_t, int>> interface_ipv4(
    const std::string& interface, const std::function<bool(std::uint32_t, int)>& wanted) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return fail(sys_error("getifaddrs"));
  std::optional<std::pair<std::uint32_t, int>> found;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if (interface != i->ifa_name) continue;
    const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    const auto* m = reinterpret_cast<const sockaddr_in*>(i->ifa_netmask);
    const std::uint32_t mask = m ? ntohl(m->sin_addr.s_addr) : 0xffffffffu;
    const auto here = std::make_pair(ntohl(a->sin_addr.s_addr), std::popcount(mask));
    if (!found) found = here;
    if (!wanted || wanted(here.first, here.second)) {
      found = here;
      break;
    }
  }
  ::freeifaddrs(list);
  if (!found) return fail(Errc::NotFound, "interface '" + interface + "' has no IPv4 address");
  return *found;
}

class Server::Impl {
 public:
  struct Segment {
    SegmentConfig cfg;
    std::unique_ptr<Allocator> alloc;  // Serve mode
    UniqueFd sock;                     // port 67
    UniqueFd client_sock;              // observe mode: port 68 (replies broadcast by others)
    int ifindex = 0;
  };

  ServerConfig cfg;
  std::vector<std::unique_ptr<Segment>> segments;
  std::unique_ptr<LeaseDb> db;
  UniqueFd wake;
  std::thread loop_thread, commit_thread;
  std::atomic<bool> stopping{false};
  bool stopped = false;
  std::mutex stop_mu;

  // commit queue
  std::mutex q_mu;
  std::condition_variable q_cv;
  std::vector<Pending> queue;
  bool q_done = false;

  // observe mode map
  mutable std::mutex obs_mu;
  std::unordered_map<std::uint32_t, Lease> observed;  // by address

  // events
  std::mutex ev_mu;
  std::ofstream log;

  struct Counters {
    std::atomic<std::uint64_t> received{0}, bad_packets{0}, offers{0}, acks{0}, naks{0};
    std::atomic<std::uint64_t> ignored{0}, commits{0}, committed_leases{0}, observed{0};
    std::atomic<std::uint64_t> send_errors{0};
  } counters;

  // Events are written to the log as they happen and flushed once per batch (flush_events(), after
  // each recvmmsg batch and each commit), not once per line: at thousands of exchanges a second a
  // write(2) per event would cost more than the exchange.
  void emit(const Event& e) {
    std::lock_guard lock(ev_mu);
    if (log.is_open()) log << event_to_json(e).dump() << '\n';
    if (cfg.on_event) cfg.on_event(e);
  }
  void flush_events() {
    std::lock_guard lock(ev_mu);
    if (log.is_open()) log.flush();
  }

  Status open_sockets(Segment& s) {
    auto make = [&](std::uint16_t port) -> Result<UniqueFd> {
      UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (fd.get() < 0) return fail(sys_error("socket"));
      const int one = 1;
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      ::setsockopt(fd.get(), SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
      ::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
      const int buf = 4 << 20;
      ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
      ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
      if (!s.cfg.interface.empty() &&
          ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, s.cfg.interface.c_str(),
                       static_cast<socklen_t>(s.cfg.interface.size())) != 0)
        return fail(sys_error("bind to interface " + s.cfg.interface));
      const sockaddr_in any = v4(INADDR_ANY, port);
      if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0)
        return fail(sys_error("bind UDP port " + std::to_string(port)));
      return fd;
    };
    if (!s.cfg.interface.empty()) {
      s.ifindex = static_cast<int>(::if_nametoindex(s.cfg.interface.c_str()));
      if (s.ifindex == 0)
        return fail(Errc::NotFound,
                    "segment " + s.cfg.alloc.segment + ": no interface '" + s.cfg.interface + "'");
    }
    auto sock = make(cfg.port);
    if (!sock) return fail(std::move(sock.error()).context("segment " + s.cfg.alloc.segment));
    s.sock = std::move(*sock);
    if (s.cfg.mode == SegmentConfig::Mode::Observe) {
      // Best effort: the other server's broadcast replies. A local DHCP client may hold port 68.
      if (auto c = make(static_cast<std::uint16_t>(cfg.port + 1))) s.client_sock = std::move(*c);
    }
    return {};
  }

  // ---- the loop ----

  void loop() {
    constexpr std::size_t kBatch = 64;
    constexpr std::size_t kBuf = 1500 + 64;  // an Ethernet frame's worth (larger ones are cut)
    std::vector<std::array<std::uint8_t, kBuf>> bufs(kBatch);
    std::vector<iovec> iov(kBatch);
    std::vector<sockaddr_in> from(kBatch);
    std::vector<std::array<std::uint8_t, 128>> control(kBatch);
    std::vector<mmsghdr> msgs(kBatch);
    std::vector<pollfd> fds;
    struct Source {
      Segment* seg;
      bool client_port;
    };
    std::vector<Source> sources;
    for (auto& s : segments) {
      fds.push_back({s->sock.get(), POLLIN, 0});
      sources.push_back({s.get(), false});
      if (s->client_sock.get() >= 0) {
        fds.push_back({s->client_sock.get(), POLLIN, 0});
        sources.push_back({s.get(), true});
      }
    }
    fds.push_back({wake.get(), POLLIN, 0});
    std::int64_t next_sweep = unix_ms() + cfg.expiry_sweep_ms;
    while (!stopping.load()) {
      const std::int64_t wait = std::clamp<std::int64_t>(next_sweep - unix_ms(), 0, 60'000);
      const int n = ::poll(fds.data(), fds.size(), static_cast<int>(wait));
      if (n < 0 && errno != EINTR) break;
      if (unix_ms() >= next_sweep) {
        sweep();
        next_sweep = unix_ms() + cfg.expiry_sweep_ms;
      }
      if (n <= 0) continue;
      for (std::size_t f = 0; f + 1 < fds.size(); ++f) {
        if (!(fds[f].revents & POLLIN)) continue;
        // Drain the socket in batches; bounded so one busy segment cannot starve the others.
        for (int round = 0; round < 16; ++round) {
          for (std::size_t i = 0; i < kBatch; ++i) {
            iov[i] = {bufs[i].data(), kBuf};
            msghdr& h = msgs[i].msg_hdr;
            h = msghdr{};
            h.msg_name = &from[i];
            h.msg_namelen = sizeof(sockaddr_in);
            h.msg_iov = &iov[i];
            h.msg_iovlen = 1;
            h.msg_control = control[i].data();
            h.msg_controllen = control[i].size();
            msgs[i].msg_len = 0;
          }
          const int got = ::recvmmsg(fds[f].fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
          if (got <= 0) break;
          for (int i = 0; i < got; ++i) {
            const auto len = std::min<std::size_t>(msgs[i].msg_len, kBuf);
            counters.received.fetch_add(1, std::memory_order_relaxed);
            handle(*sources[f].seg, sources[f].client_port,
                   std::span<const std::uint8_t>(bufs[i].data(), len), from[i]);
          }
          if (static_cast<std::size_t>(got) < kBatch) break;
        }
      }
      flush_events();
      if (fds.back().revents & POLLIN) {
        std::uint64_t v;
        (void)!::read(wake.get(), &v, sizeof v);
      }
    }
  }

  void sweep() {
    const std::int64_t now = unix_ms();
    std::vector<Lease> rows;
    for (auto& s : segments)
      if (s->alloc) {
        auto r = s->alloc->expire(now);
        rows.insert(rows.end(), r.begin(), r.end());
      }
    if (!rows.empty()) enqueue(Pending{std::move(rows), -1, {}, {}, std::nullopt});
  }

  void bad_packet(const Segment& s, const sockaddr_in& from, std::string reason) {
    counters.bad_packets.fetch_add(1, std::memory_order_relaxed);
    Event e;
    e.kind = EventKind::BadPacket;
    e.time_ms = unix_ms();
    e.segment = s.cfg.alloc.segment;
    e.source = endpoint_text(from);
    e.reason = std::move(reason);
    emit(e);
  }

  // The segment a request belongs to: a relayed one by its giaddr, others by the socket.
  Segment* segment_for(Segment& received_on, std::uint32_t giaddr) {
    if (giaddr == 0) return &received_on;
    for (auto& s : segments)
      if (s->cfg.alloc.in_subnet(giaddr)) return s.get();
    return nullptr;
  }

  void handle(Segment& on, bool client_port, std::span<const std::uint8_t> bytes,
              const sockaddr_in& from) {
    auto msg = parse(bytes);
    if (!msg) {
      bad_packet(on, from, msg.error().message());
      return;
    }
    if (auto ok = check_known_options(*msg); !ok) {
      bad_packet(on, from, ok.error().message());
      return;
    }
    const auto type = message_type(*msg);
    if (!type) {
      if (!client_port)
        bad_packet(on, from, "no DHCP message type (option 53): BOOTP is not served");
      return;
    }
    if (on.cfg.mode == SegmentConfig::Mode::Observe) {
      observe(on, *msg, *type);
      return;
    }
    if (client_port || msg->op != kBootRequest) return;  // replies of other servers
    // A relay loop: our own address as the relay, or more relay hops than RFC 1542 allows (16).
    if (msg->hops > 16) {
      bad_packet(on, from, "relayed through " + std::to_string(msg->hops) + " hops (at most 16)");
      return;
    }
    if (msg->giaddr != 0)
      for (const auto& s : segments)
        if (msg->giaddr == s->cfg.alloc.server_address) {
          bad_packet(on, from, "relay address " + ipv4_string(msg->giaddr) + " is this server");
          return;
        }
    if (msg->hlen == 0 || msg->hlen > kChaddrSize) {
      bad_packet(on, from, "hardware address length " + std::to_string(msg->hlen));
      return;
    }
    Segment* seg = segment_for(on, msg->giaddr);
    if (seg == nullptr || !seg->alloc) {
      Event e = base_event(on, *msg, *type, from);
      e.kind = EventKind::Ignored;
      e.reason = "wrong-subnet";
      e.message = "relay " + ipv4_string(msg->giaddr) + " is in no segment served here";
      counters.ignored.fetch_add(1, std::memory_order_relaxed);
      emit(e);
      return;
    }
    Query q;
    switch (*type) {
      case MessageType::Discover:
        q.type = QueryType::Discover;
        break;
      case MessageType::Request:
        q.type = QueryType::Request;
        break;
      case MessageType::Decline:
        q.type = QueryType::Decline;
        break;
      case MessageType::Release:
        q.type = QueryType::Release;
        break;
      case MessageType::Inform:
        q.type = QueryType::Inform;
        break;
      default:
        bad_packet(on, from, message_type_name(*type) + " is not a client request");
        return;
    }
    q.mac = mac_string(*msg);
    const auto cid = client_id(*msg);
    q.client_key = make_client_key(
        cid ? std::span<const std::uint8_t>(*cid) : std::span<const std::uint8_t>(), q.mac);
    q.ciaddr = msg->ciaddr;
    q.requested_ip = requested_ip(*msg).value_or(0);
    q.server_id = server_id(*msg).value_or(0);
    q.hostname = hostname(*msg).value_or("");
    q.giaddr = msg->giaddr;
    const std::int64_t now = unix_ms();
    Decision d = seg->alloc->handle(q, now);

    Event e = base_event(*seg, *msg, *type, from);
    e.client_key = q.client_key;
    e.reason = d.reason;
    e.message = d.message;
    if (d.reservation) e.device = d.reservation->name;
    const auto classes = classes_for(*seg, *msg, q.mac, d.reservation);
    for (const auto* c : classes)
      e.classes.push_back(c->name);

    std::vector<Lease> rows = std::move(d.persist_also);
    if (d.persist) rows.push_back(*d.persist);

    if (d.kind == DecisionKind::Ignore) {
      if (*type == MessageType::Release && d.reason == "released") {
        e.kind = EventKind::Release;
        e.ip = d.persist ? d.persist->ip : msg->ciaddr;
      } else if (*type == MessageType::Decline && d.reason == "declined") {
        e.kind = EventKind::Decline;
        e.ip = d.persist ? d.persist->ip : q.requested_ip;
      } else {
        e.kind = EventKind::Ignored;
        counters.ignored.fetch_add(1, std::memory_order_relaxed);
      }
      if (!rows.empty())
        enqueue(Pending{std::move(rows), -1, {}, {}, std::move(e)});
      else
        emit(e);
      return;
    }

    auto reply = build(*seg, *msg, q, d, classes);
    if (!reply) {
      e.kind = EventKind::Error;
      e.reason = "build";
      e.message = reply.error().message();
      emit(e);
      return;
    }
    e.options_sent = reply->sent;
    const sockaddr_in to = destination(*seg, *msg, d);
    e.ip = d.yiaddr;
    e.lease_ms = d.lease_ms;
    switch (d.kind) {
      case DecisionKind::Offer:
        e.kind = EventKind::Offer;
        counters.offers.fetch_add(1, std::memory_order_relaxed);
        break;
      case DecisionKind::Ack:
        e.kind = *type == MessageType::Inform ? EventKind::Inform : EventKind::Ack;
        counters.acks.fetch_add(1, std::memory_order_relaxed);
        break;
      case DecisionKind::Nak:
        e.kind = EventKind::Nak;
        counters.naks.fetch_add(1, std::memory_order_relaxed);
        break;
      case DecisionKind::Ignore:
        break;
    }
    if (d.kind == DecisionKind::Ack && d.persist) {
      // Durable first: the commit thread sends it after the fsync.
      enqueue(Pending{std::move(rows), seg->sock.get(), to, std::move(reply->bytes), std::move(e)});
      return;
    }
    send(seg->sock.get(), to, reply->bytes);
    emit(e);
    if (!rows.empty()) enqueue(Pending{std::move(rows), -1, {}, {}, std::nullopt});
  }

  Event base_event(const Segment& s, const Message& m, MessageType t, const sockaddr_in& from) {
    Event e;
    e.time_ms = unix_ms();
    e.segment = s.cfg.alloc.segment;
    e.message_type = message_type_name(t);
    e.xid = m.xid;
    e.mac = mac_string(m);
    e.hostname = hostname(m).value_or("");
    e.vendor_class = vendor_class(m).value_or("");
    e.giaddr = m.giaddr;
    e.source = endpoint_text(from);
    return e;
  }

  std::vector<const ClientClass*> classes_for(const Segment& s, const Message& m,
                                              const std::string& mac,
                                              const std::optional<Reservation>& r) {
    std::vector<const ClientClass*> out;
    const std::string vc = vendor_class(m).value_or("");
    for (const auto& c : s.cfg.classes) {
      bool match = false;
      for (const auto& p : c.vendor_class_prefixes)
        if (!vc.empty() && starts_with_ci(vc, p)) match = true;
      for (const auto& o : c.ouis)
        if (mac.size() >= 8 && starts_with_ci(mac, o)) match = true;
      if (r)
        for (const auto& t : c.types)
          if (t == r->type) match = true;
      if (match) out.push_back(&c);
    }
    return out;
  }

  Result<BuiltReply> build(const Segment& s, const Message& req, const Query& q, const Decision& d,
                           const std::vector<const ClientClass*>& classes) {
    ReplyPlan plan;
    Message& r = plan.skeleton;
    r.op = kBootReply;
    r.htype = req.htype;
    r.hlen = req.hlen;
    r.xid = req.xid;
    r.flags = req.flags;
    r.giaddr = req.giaddr;
    r.chaddr = req.chaddr;
    Options& o = plan.options;
    const bool nak = d.kind == DecisionKind::Nak;
    const bool inform = q.type == QueryType::Inform;
    o.set(opt::kMessageType,
          {static_cast<std::uint8_t>(nak                             ? MessageType::Nak
                                     : d.kind == DecisionKind::Offer ? MessageType::Offer
                                                                     : MessageType::Ack)});
    o.set(opt::kServerId, encode_ipv4_list(std::array{s.cfg.alloc.server_address}));
    if (auto cid = client_id(req)) o.set(opt::kClientId, *cid);
    if (nak) {
      // RFC 2131 table 3: a NAK carries no address, no lease and no configuration.
      r.flags |= req.giaddr ? kFlagBroadcast : 0;
      if (!d.message.empty()) o.set(opt::kMessage, encode_text(d.message.substr(0, 200)));
    } else {
      if (inform) {
        r.ciaddr = req.ciaddr;
      } else {
        r.yiaddr = d.yiaddr;
        const auto secs =
            static_cast<std::uint32_t>(std::clamp<std::int64_t>(d.lease_ms / 1000, 1, 0xfffffffe));
        o.set(opt::kLeaseTime, encode_u32(secs));
        o.set(opt::kRenewalTime, encode_u32(secs / 2));
        o.set(opt::kRebindingTime, encode_u32(static_cast<std::uint32_t>(secs * 7ull / 8)));
      }
      r.siaddr = s.cfg.alloc.server_address;
      o.set(opt::kSubnetMask, encode_u32(prefix_mask(s.cfg.alloc.prefix)));
      for (const auto& opt : s.cfg.options.items())
        o.set(opt.code, opt.data);
      plan.always_send = s.cfg.always_send;
      for (const auto* c : classes) {
        for (const auto& opt : c->options.items())
          o.set(opt.code, opt.data);
        plan.always_send.insert(plan.always_send.end(), c->always_send.begin(),
                                c->always_send.end());
      }
      for (auto* h : cfg.hooks)
        for (const auto& extra : h->dhcp_options(q.mac))
          if (extra.code != 0 && extra.code != 255 && extra.code != opt::kOverload)
            o.set(extra.code, extra.value);
    }
    plan.parameter_request_list = parameter_request_list(req).value_or(std::vector<std::uint8_t>{});
    plan.max_message_size = max_message_size(req).value_or(kMinMaxMessageSize);
    // 1 (subnet mask) goes with every address; the rest only when asked or always-send.
    if (!nak) plan.always_send.push_back(opt::kSubnetMask);
    return build_reply(plan);
  }

  // RFC 2131 section 4.1: where a server's reply goes.
  sockaddr_in destination(const Segment& s, const Message& req, const Decision& d) {
    const auto client_port = static_cast<std::uint16_t>(cfg.port + 1);
    if (req.giaddr) return v4(req.giaddr, cfg.port);
    if (d.kind == DecisionKind::Nak) return v4(INADDR_BROADCAST, client_port);
    if (req.ciaddr) return v4(req.ciaddr, client_port);
    if (req.broadcast() || !cfg.arp_unicast || s.cfg.interface.empty() || req.htype != 1 ||
        req.hlen != 6)
      return v4(INADDR_BROADCAST, client_port);
    // Unicast to an address the client does not answer ARP for yet: tell the kernel its MAC.
    arpreq a{};
    const sockaddr_in pa = v4(d.yiaddr, 0);
    std::memcpy(&a.arp_pa, &pa, sizeof pa);
    a.arp_ha.sa_family = ARPHRD_ETHER;
    std::memcpy(a.arp_ha.sa_data, req.chaddr.data(), 6);
    a.arp_flags = ATF_COM;
    std::strncpy(a.arp_dev, s.cfg.interface.c_str(), sizeof a.arp_dev - 1);
    if (::ioctl(s.sock.get(), SIOCSARP, &a) != 0) return v4(INADDR_BROADCAST, client_port);
    return v4(d.yiaddr, client_port);
  }

  void send(int fd, const sockaddr_in& to, std::span<const std::uint8_t> bytes) {
    ssize_t r;
    do {
      r = ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof to);
    } while (r < 0 && errno == EINTR);
    if (r < 0) counters.send_errors.fetch_add(1, std::memory_order_relaxed);
  }

  // ---- observe mode ----

  void observe(Segment& s, const Message& m, MessageType type) {
    std::uint32_t ip = 0;
    std::int64_t lease_ms = s.cfg.alloc.lease_time_ms;
    if (m.op == kBootRequest && type == MessageType::Request)
      ip = m.ciaddr ? m.ciaddr : requested_ip(m).value_or(0);
    else if (m.op == kBootReply && type == MessageType::Ack && m.yiaddr)
      ip = m.yiaddr, lease_ms = static_cast<std::int64_t>(lease_time(m).value_or(0)) * 1000;
    else if (m.op == kBootRequest && type == MessageType::Inform)
      ip = m.ciaddr;
    if (ip == 0 || !s.cfg.alloc.in_subnet(ip)) return;
    const std::int64_t now = unix_ms();
    Lease l;
    l.segment = s.cfg.alloc.segment;
    l.ip = ip;
    l.mac = mac_string(m);
    const auto cid = client_id(m);
    l.client_key = make_client_key(
        cid ? std::span<const std::uint8_t>(*cid) : std::span<const std::uint8_t>(), l.mac);
    l.hostname = hostname(m).value_or("");
    l.state = LeaseState::Bound;
    l.starts_at = now;
    l.expires_at = now + (lease_ms > 0 ? lease_ms : s.cfg.alloc.lease_time_ms);
    l.updated_at = now;
    {
      std::lock_guard lock(obs_mu);
      auto it = observed.find(ip);
      if (it != observed.end() && it->second.mac == l.mac && it->second.expires_at > now + 60'000)
        return;  // nothing new
      observed[ip] = l;
    }
    counters.observed.fetch_add(1, std::memory_order_relaxed);
    Event e;
    e.kind = EventKind::Observed;
    e.time_ms = now;
    e.segment = l.segment;
    e.message_type = message_type_name(type);
    e.xid = m.xid;
    e.mac = l.mac;
    e.ip = ip;
    e.hostname = l.hostname;
    e.reason = m.op == kBootReply ? "ack-seen" : "request-seen";
    enqueue(Pending{{l}, -1, {}, {}, std::move(e)});
  }

  // ---- commit thread ----

  void enqueue(Pending p) {
    {
      std::lock_guard lock(q_mu);
      queue.push_back(std::move(p));
    }
    q_cv.notify_one();
  }

  void committer() {
    std::vector<Pending> batch;
    std::vector<Lease> rows;
    while (true) {
      {
        std::unique_lock lock(q_mu);
        q_cv.wait(lock, [&] { return !queue.empty() || q_done; });
        if (queue.empty() && q_done) return;
        batch.swap(queue);
      }
      rows.clear();
      for (auto& p : batch)
        rows.insert(rows.end(), p.rows.begin(), p.rows.end());
      Status ok;
      if (!rows.empty()) ok = db->commit(rows);
      if (ok) {
        counters.commits.fetch_add(1, std::memory_order_relaxed);
        counters.committed_leases.fetch_add(rows.size(), std::memory_order_relaxed);
      }
      for (auto& p : batch) {
        if (!ok) {
          // Not durable: no ACK leaves (the client asks again); say why once per reply.
          if (p.event) {
            Event e = *p.event;
            e.kind = EventKind::Error;
            e.reason = "lease-db";
            e.message = "lease not written, reply withheld: " + ok.error().message();
            emit(e);
          }
          continue;
        }
        if (!p.bytes.empty()) send(p.fd, p.to, p.bytes);
        if (p.event) emit(*p.event);
      }
      flush_events();
      batch.clear();
    }
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() {
  stop();
}

Result<std::unique_ptr<Server>> Server::start(ServerConfig config) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = std::move(config);
  auto& c = impl->cfg;
  if (c.segments.empty()) return fail(Errc::InvalidInput, "no segment to serve");
  if (c.port == 0 || c.port == 65535) return fail(Errc::InvalidInput, "port must be 1-65534");
  auto db = c.lease_db.empty() ? LeaseDb::open_memory() : LeaseDb::open(c.lease_db);
  if (!db) return fail(std::move(db.error()).context("lease database"));
  impl->db = std::move(*db);
  const std::int64_t now = unix_ms();
  for (auto& sc : c.segments) {
    auto seg = std::make_unique<Impl::Segment>();
    seg->cfg = sc;
    auto rows = impl->db->load(sc.alloc.segment);
    if (!rows) return fail(std::move(rows.error()).context("segment " + sc.alloc.segment));
    if (sc.mode == SegmentConfig::Mode::Serve) {
      auto a = Allocator::create(sc.alloc, *rows, now);
      if (!a) return fail(std::move(a.error()).context("segment " + sc.alloc.segment));
      seg->alloc = std::move(*a);
    } else {
      for (const auto& l : *rows)
        if (l.active(now)) impl->observed[l.ip] = l;
    }
    if (auto s = impl->open_sockets(*seg); !s) return fail(s.error());
    impl->segments.push_back(std::move(seg));
  }
  if (!c.log_path.empty()) {
    impl->log.open(c.log_path, std::ios::app);
    if (!impl->log) return fail(Errc::Internal, "cannot open log " + c.log_path.string());
  }
  impl->wake = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (impl->wake.get() < 0) return fail(sys_error("eventfd"));
  Impl* p = impl.get();
  impl->commit_thread = std::thread([p] { p->committer(); });
  impl->loop_thread = std::thread([p] { p->loop(); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::stop() {
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping.store(true);
  const std::uint64_t one = 1;
  (void)!::write(impl_->wake.get(), &one, sizeof one);
  if (impl_->loop_thread.joinable()) impl_->loop_thread.join();
  {
    std::lock_guard q(impl_->q_mu);
    impl_->q_done = true;
  }
  impl_->q_cv.notify_all();
  if (impl_->commit_thread.joinable()) impl_->commit_thread.join();
  impl_->flush_events();
  for (auto& s : impl_->segments) {
    s->sock.reset();
    s->client_sock.reset();
  }
}

Server::Stats Server::stats() const {
  const auto& c = impl_->counters;
  Stats s;
  s.received = c.received.load();
  s.bad_packets = c.bad_packets.load();
  s.offers = c.offers.load();
  s.acks = c.acks.load();
  s.naks = c.naks.load();
  s.ignored = c.ignored.load();
  s.commits = c.commits.load();
  s.committed_leases = c.committed_leases.load();
  s.observed = c.observed.load();
  s.send_errors = c.send_errors.load();
  return s;
}

std::uint16_t Server::port() const {
  return impl_->cfg.port;
}

std::vector<Lease> Server::leases() const {
  std::vector<Lease> out;
  for (const auto& s : impl_->segments)
    if (s->alloc) {
      auto l = s->alloc->leases();
      out.insert(out.end(), l.begin(), l.end());
    }
  std::lock_guard lock(impl_->obs_mu);
  for (const auto& [ip, l] : impl_->observed)
    out.push_back(l);
  return out;
}

std::optional<std::string> Server::mac_for_ip(std::uint32_t ip) const {
  for (const auto& s : impl_->segments)
    if (s->alloc)
      if (auto l = s->alloc->by_ip(ip)) return l->mac;
  std::lock_guard lock(impl_->obs_mu);
  if (auto it = impl_->observed.find(ip); it != impl_->observed.end()) return it->second.mac;
  return std::nullopt;
}

}  // namespace labctl::dhcp
