#include "controller/net_commands.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agents/net/dhcp/snippets.h"
#include "agents/net/tftp/server.h"
#include "common/run_lock.h"
#include "common/text.h"
#include "inventory/loader.h"

namespace labctl::controller {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;

std::optional<std::vector<std::uint32_t>> ipv4_csv(const std::string& s, const std::string& what,
                                                   std::ostream& err) {
  std::vector<std::uint32_t> out;
  if (text::trim(s).empty()) return out;
  for (const auto& part : text::split(s, ',')) {
    auto a = dhcp::parse_ipv4(text::trim(part));
    if (!a) {
      err << what << ": '" << text::trim(part) << "' is not an IPv4 address\n";
      return std::nullopt;
    }
    out.push_back(*a);
  }
  return out;
}

std::string format_time(std::int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::ostringstream ss;
  ss << std::put_time(&tm, "%Y-%m-%d %H:%M:%S");
  return ss.str();
}

// SIGINT/SIGTERM blocked before any service thread starts (threads inherit the mask), then taken
// with sigwait on this thread, so services stop outside any signal handler.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~StopSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  int wait() {
    int sig = 0;
    ::sigwait(&set_, &sig);
    return sig;
  }

 private:
  sigset_t set_, old_;
};

void segment_options(dhcp::Options& o, std::optional<std::uint32_t> router,
                     const std::vector<std::uint32_t>& dns, const std::vector<std::uint32_t>& ntp,
                     const std::string& domain) {
  if (router) o.set(dhcp::opt::kRouter, dhcp::encode_ipv4_list(std::array{*router}));
  if (!dns.empty()) o.set(dhcp::opt::kDnsServers, dhcp::encode_ipv4_list(dns));
  if (!ntp.empty()) o.set(42, dhcp::encode_ipv4_list(ntp));
  if (!domain.empty()) o.set(dhcp::opt::kDomainName, dhcp::encode_text(domain));
}

// Option 150 (binary list) and 66 (text: the name given, else the first address).
void tftp_options(dhcp::Options& o, const std::vector<std::uint32_t>& servers,
                  const std::string& name) {
  if (!servers.empty()) o.set(dhcp::opt::kCiscoTftpServers, dhcp::encode_ipv4_list(servers));
  const std::string n = !name.empty() ? name : servers.empty() ? "" : dhcp::ipv4_string(servers[0]);
  if (!n.empty()) o.set(dhcp::opt::kTftpServerName, dhcp::encode_text(n));
}

// Vendor class (option 60) prefix Cisco IP phones send: "Cisco Systems, Inc. IP Phone CP-7911G".
constexpr const char* kCiscoPhoneVendorClass = "Cisco Systems, Inc. IP Phone";

// One line per event on stderr, offers left out (every ACK follows one). With a JSON log, which has
// them all, only what needs a person's eye: NAKs, refusals, declines, bad packets, errors.
void print_event(const dhcp::Event& e) {
  if (e.kind == dhcp::EventKind::Offer) return;
  std::cerr << "labctl dhcp: " + dhcp::event_to_line(e) + "\n";
}
void print_notable_event(const dhcp::Event& e) {
  using K = dhcp::EventKind;
  if (e.kind == K::Offer || e.kind == K::Ack || e.kind == K::Inform || e.kind == K::Release ||
      e.kind == K::Observed)
    return;
  std::cerr << "labctl dhcp: " + dhcp::event_to_line(e) + "\n";
}

}  // namespace

int cmd_dhcp_serve(Context& ctx, const DhcpServeArgs& a) {
  auto& err = std::cerr;
  auto where = dhcp::interface_ipv4(a.interface);
  if (!where) {
    err << "labctl dhcp serve: " << where.error().message() << "\n";
    return kExitError;
  }
  const auto [server_ip, prefix] = *where;
  dhcp::SegmentConfig s;
  s.interface = a.interface;
  s.alloc.segment = a.interface;
  s.alloc.prefix = prefix;
  const std::uint32_t mask = prefix <= 0    ? 0u
                             : prefix >= 32 ? 0xffffffffu
                                            : ~((1u << (32 - prefix)) - 1);
  s.alloc.network = server_ip & mask;
  s.alloc.server_address = server_ip;
  s.alloc.deny_unknown = a.deny_unknown;
  auto parts = text::split(a.range, '-');
  std::optional<std::uint32_t> first, last;
  if (parts.size() == 2) {
    first = dhcp::parse_ipv4(text::trim(parts[0]));
    last = dhcp::parse_ipv4(text::trim(parts[1]));
  }
  if (!first || !last || *first > *last) {
    err << "labctl dhcp serve: --range '" << a.range
        << "' is not FIRST-LAST (e.g. 10.99.1.10-10.99.1.250)\n";
    return kExitError;
  }
  s.alloc.pool_first = *first;
  s.alloc.pool_last = *last;
  auto ms = text::parse_duration_ms(a.lease_time);
  if (!ms || *ms < 60'000) {
    err << "labctl dhcp serve: --lease-time '" << a.lease_time
        << "' must be a duration of at least 60s (e.g. 1h)\n";
    return kExitError;
  }
  s.alloc.lease_time_ms = *ms;
  std::optional<std::uint32_t> router;
  if (!a.router.empty()) {
    router = dhcp::parse_ipv4(a.router);
    if (!router) {
      err << "labctl dhcp serve: --router '" << a.router << "' is not an IPv4 address\n";
      return kExitError;
    }
  }
  auto dns = ipv4_csv(a.dns, "labctl dhcp serve: --dns", err);
  auto tftp = ipv4_csv(a.tftp, "labctl dhcp serve: --tftp", err);
  if (!dns || !tftp) return kExitError;
  segment_options(s.options, router, *dns, {}, "");
  tftp_options(s.options, *tftp, a.tftp_name);
  // Quick mode has no classes: option 150/66 go to every client that asks (phones do).
  for (const auto& r : a.reserve) {
    const auto eq = r.find('=');
    auto mac = eq == std::string::npos ? std::nullopt : inventory::normalize_mac(r.substr(0, eq));
    auto ip = eq == std::string::npos ? std::nullopt : dhcp::parse_ipv4(r.substr(eq + 1));
    if (!mac || !ip) {
      err << "labctl dhcp serve: --reserve '" << r << "' is not MAC=IP\n";
      return kExitError;
    }
    s.alloc.reservations.push_back({*mac, *ip, "", ""});
  }
  dhcp::ServerConfig c;
  c.segments.push_back(std::move(s));
  c.port = static_cast<std::uint16_t>(a.port);
  c.lease_db = a.lease_db.empty() ? dhcp::default_lease_db_path(ctx.state_dir())
                                  : std::filesystem::path(a.lease_db);
  c.log_path = a.log;
  c.on_event = a.log.empty() ? print_event : print_notable_event;
  StopSignals stop;
  auto server = dhcp::Server::start(std::move(c));
  if (!server) {
    err << "labctl dhcp serve: " << server.error().message() << "\n";
    return kExitError;
  }
  err << "labctl dhcp: serving " << a.interface << " (" << dhcp::ipv4_string(server_ip) << "/"
      << prefix << "), pool " << dhcp::ipv4_string(*first) << "-" << dhcp::ipv4_string(*last)
      << ", port " << a.port << " (SIGINT or SIGTERM stops)\n";
  stop.wait();
  (*server)->stop();
  const auto st = (*server)->stats();
  err << "labctl dhcp: stopped: " << st.acks << " acks, " << st.offers << " offers, " << st.naks
      << " naks, " << st.committed_leases << " lease writes in " << st.commits << " transactions, "
      << st.bad_packets << " bad packets\n";
  return kExitOk;
}

int cmd_dhcp_leases(Context& ctx, const DhcpLeasesArgs& a) {
  const auto path = a.lease_db.empty() ? dhcp::default_lease_db_path(ctx.state_dir())
                                       : std::filesystem::path(a.lease_db);
  if (!std::filesystem::exists(path)) {
    std::cerr << "labctl dhcp leases: no lease database at " << path.string() << "\n";
    return kExitError;
  }
  auto db = dhcp::LeaseDb::open(path);
  if (!db) {
    std::cerr << "labctl dhcp leases: " << db.error().message() << "\n";
    return kExitError;
  }
  auto rows = a.segment.empty() ? (*db)->load_all() : (*db)->load(a.segment);
  if (!rows) {
    std::cerr << "labctl dhcp leases: " << rows.error().message() << "\n";
    return kExitError;
  }
  if (a.json) {
    auto j = nlohmann::json::array();
    for (const auto& l : *rows)
      j.push_back({{"segment", l.segment},
                   {"ip", dhcp::ipv4_string(l.ip)},
                   {"mac", l.mac},
                   {"client_key", l.client_key},
                   {"hostname", l.hostname},
                   {"state", std::string(dhcp::lease_state_name(l.state))},
                   {"starts_at", l.starts_at},
                   {"expires_at", l.expires_at},
                   {"updated_at", l.updated_at}});
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (rows->empty()) {
    std::cout << "no leases in " << path.string() << "\n";
    return kExitOk;
  }
  std::cout << std::left << std::setw(12) << "SEGMENT" << std::setw(17) << "ADDRESS"
            << std::setw(19) << "MAC" << std::setw(10) << "STATE" << std::setw(21) << "EXPIRES"
            << "HOSTNAME\n";
  for (const auto& l : *rows)
    std::cout << std::left << std::setw(12) << l.segment << std::setw(17) << dhcp::ipv4_string(l.ip)
              << std::setw(19) << l.mac << std::setw(10) << dhcp::lease_state_name(l.state)
              << std::setw(21) << format_time(l.expires_at) << l.hostname << "\n";
  return kExitOk;
}

int cmd_dhcp_options(const DhcpOptionsArgs& a) {
  auto f = dhcp::parse_format(a.format);
  if (!f) {
    std::cerr << "labctl dhcp options: " << f.error().message() << "\n";
    return kExitError;
  }
  auto servers = ipv4_csv(a.tftp, "labctl dhcp options: --tftp", std::cerr);
  if (!servers) return kExitError;
  if (servers->empty()) {
    std::cerr << "labctl dhcp options: --tftp needs at least one address\n";
    return kExitError;
  }
  auto s = dhcp::dhcp_snippet(*f, *servers,
                              a.tftp_name.empty() ? std::nullopt : std::optional(a.tftp_name));
  if (!s) {
    std::cerr << "labctl dhcp options: " << s.error().message() << "\n";
    return kExitError;
  }
  std::cout << *s;
  if (!s->empty() && s->back() != '\n') std::cout << "\n";
  return kExitOk;
}

Result<dhcp::SegmentConfig> dhcp_segment_config(const inventory::Inventory& inv,
                                                const inventory::Segment& seg,
                                                const plugins::Registry& registry,
                                                std::uint32_t server_address) {
  dhcp::SegmentConfig s;
  s.mode = seg.dhcp.mode == inventory::DhcpMode::Observe ? dhcp::SegmentConfig::Mode::Observe
                                                         : dhcp::SegmentConfig::Mode::Serve;
  s.interface = seg.interface;
  s.alloc.segment = seg.name;
  s.alloc.network = seg.subnet.network;
  s.alloc.prefix = seg.subnet.prefix;
  s.alloc.pool_first = seg.dhcp.range_first.value_or(0);
  s.alloc.pool_last = seg.dhcp.range_last.value_or(0);
  s.alloc.lease_time_ms = seg.dhcp.lease_time_ms;
  s.alloc.deny_unknown = seg.dhcp.deny_unknown;
  s.alloc.server_address = server_address;
  std::vector<std::string> tftp_types;
  for (const auto& d : inv.devices) {
    if (d.segment != seg.name || d.mac.empty()) continue;
    std::uint32_t ip = 0;
    if (!d.ip.empty())
      if (auto a = dhcp::parse_ipv4(d.ip)) ip = *a;
    if (ip == 0) continue;  // no fixed address: served from the pool like anyone
    s.alloc.reservations.push_back({d.mac, ip, d.name, d.type});
    if (const auto* p = registry.find(d.type)) {
      const auto& caps = p->schema().capabilities;
      if (std::find(caps.begin(), caps.end(), "tftp-boot") != caps.end() &&
          std::find(tftp_types.begin(), tftp_types.end(), d.type) == tftp_types.end())
        tftp_types.push_back(d.type);
    }
  }
  segment_options(s.options, seg.dhcp.router, seg.dhcp.dns, seg.dhcp.ntp, seg.dhcp.domain);
  if (!seg.tftp.servers.empty()) {
    dhcp::ClientClass c;
    c.name = "tftp-boot";
    c.vendor_class_prefixes = {kCiscoPhoneVendorClass};
    c.types = tftp_types;
    tftp_options(c.options, seg.tftp.servers, "");
    // Phones that do not list 150 in their request still need it (the seed's 7911s asked only
    // for 66 and 150; older loads ask for neither).
    c.always_send = {dhcp::opt::kCiscoTftpServers, dhcp::opt::kTftpServerName};
    s.classes.push_back(std::move(c));
  }
  for (const auto& ic : seg.dhcp.classes) {
    dhcp::ClientClass c;
    c.name = ic.name;
    c.vendor_class_prefixes = ic.vendor_class;
    c.ouis = ic.oui;
    c.types = ic.types;
    segment_options(c.options, ic.router, ic.dns, ic.ntp, ic.domain);
    tftp_options(c.options, ic.tftp_servers, ic.tftp_server_name);
    c.always_send = ic.always_send;
    s.classes.push_back(std::move(c));
  }
  return s;
}

int cmd_serve(Context& ctx, const ServeArgs& a) {
  auto& err = std::cerr;
  auto inv = ctx.load_inventory(a.inventory, err);
  if (!inv) return kExitError;
  StopSignals stop;
  // Declared before the services, so it outlives them (the hooks keep `env`, which calls it).
  // The DHCP service starts after TFTP; until then (or without it) no address has a lease.
  std::atomic<dhcp::Server*> leases{nullptr};
  std::vector<std::unique_ptr<tftp::Server>> tftp_servers;
  std::vector<dhcp::SegmentConfig> dhcp_segments;
  std::vector<sdk::NetHooks*> hooks;
  sdk::ServiceEnv env;
  env.inventory = &*inv;
  env.state_dir = ctx.state_dir();
  env.mac_for_ip = [&leases](std::uint32_t ip) -> std::optional<std::string> {
    auto* s = leases.load();
    return s ? s->mac_for_ip(ip) : std::nullopt;
  };
  for (const auto& d : inv->devices)
    if (auto* p = ctx.registry().find(d.type))
      if (auto* h = p->net_hooks())
        if (std::find(hooks.begin(), hooks.end(), h) == hooks.end()) {
          h->attach(env);
          hooks.push_back(h);
        }
  const auto log_dir =
      a.log_dir.empty() ? ctx.state_dir() / "logs" : std::filesystem::path(a.log_dir);
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  for (const auto& seg : inv->segments) {
    if (seg.agent != "local") continue;  // served by that agent
    if (seg.dhcp.mode != inventory::DhcpMode::Off) {
      auto where = dhcp::interface_ipv4(seg.interface);
      if (!where) {
        err << "labctl serve: segment " << seg.name << ": dhcp: " << where.error().message()
            << "\n";
        return kExitError;
      }
      if (!seg.subnet.contains(where->first)) {
        err << "labctl serve: segment " << seg.name << ": interface "
            << seg.interface << " has address " << dhcp::ipv4_string(where->first)
            << ", outside subnet " << seg.subnet.to_string() << "\n";
        return kExitError;
      }
      auto sc = dhcp_segment_config(*inv, seg, ctx.registry(), where->first);
      if (!sc) {
        err << "labctl serve: segment " << seg.name << ": " << sc.error().message() << "\n";
        return kExitError;
      }
      dhcp_segments.push_back(std::move(*sc));
    }
  }
  // One `labctl serve` per state directory: it owns the lease table, and steps that need its
  // TFTP service (phone upgrades) ask this lock whether it runs and which segments it serves.
  nlohmann::json served = {{"pid", ::getpid()},
                           {"inventory", std::filesystem::absolute(a.inventory).string()},
                           {"tftp", nlohmann::json::array()},
                           {"dhcp", nlohmann::json::array()}};
  for (const auto& seg : inv->segments) {
    if (seg.agent != "local") continue;
    if (seg.tftp.enabled) served["tftp"].push_back(seg.name);
    if (seg.dhcp.mode != inventory::DhcpMode::Off) served["dhcp"].push_back(seg.name);
  }
  auto lock = RunLock::acquire(serve_lock_path(ctx.state_dir()), served.dump() + "\n");
  if (!lock) {
    err << "labctl serve: another labctl serve runs with state directory "
        << ctx.state_dir().string() << ": " << lock.error().message() << "\n";
    return kExitError;
  }
  // Every segment's DHCP configuration is checked above before any service starts.
  for (const auto& seg : inv->segments) {
    if (seg.agent != "local") continue;
    if (seg.tftp.enabled) {
      tftp::ServerConfig c;
      c.root = seg.tftp.root;
      c.port = static_cast<std::uint16_t>(a.tftp_port ? a.tftp_port : seg.tftp.port);
      c.log_path = a.log_dir.empty() ? sdk::tftp_event_log_path(ctx.state_dir(), seg.name)
                                     : log_dir / ("tftp-" + seg.name + ".jsonl");
      c.hooks = hooks;
      c.on_event = [name = seg.name](const tftp::Event& e) {
        if (e.kind == tftp::EventKind::Complete || e.kind == tftp::EventKind::Failed ||
            e.kind == tftp::EventKind::Refused)
          std::cerr << "labctl tftp [" << name << "]: " << tftp::event_to_line(e) << "\n";
      };
      auto s = tftp::Server::start(std::move(c));
      if (!s) {
        err << "labctl serve: segment " << seg.name << ": tftp: " << s.error().message() << "\n";
        return kExitError;
      }
      err << "labctl serve: segment " << seg.name << ": tftp on port " << (*s)->port() << ", root "
          << seg.tftp.root << "\n";
      tftp_servers.push_back(std::move(*s));
    }
  }
  std::unique_ptr<dhcp::Server> dhcp_server;
  if (!dhcp_segments.empty()) {
    dhcp::ServerConfig c;
    c.segments = std::move(dhcp_segments);
    c.port = static_cast<std::uint16_t>(a.dhcp_port);
    c.lease_db = dhcp::default_lease_db_path(ctx.state_dir());
    c.log_path = log_dir / "dhcp.jsonl";
    c.hooks = hooks;
    c.on_event = print_notable_event;
    auto s = dhcp::Server::start(std::move(c));
    if (!s) {
      err << "labctl serve: dhcp: " << s.error().message() << "\n";
      return kExitError;
    }
    dhcp_server = std::move(*s);
    leases.store(dhcp_server.get());
    err << "labctl serve: dhcp on port " << a.dhcp_port << " for " << dhcp_server->leases().size()
        << " known leases\n";
  }
  if (tftp_servers.empty() && !dhcp_server) {
    err << "labctl serve: nothing to serve: no segment of " << a.inventory
        << " has tftp or dhcp (mode serve or observe) on the local agent\n";
    return kExitError;
  }
  err << "labctl serve: running (SIGINT or SIGTERM stops); events in " << log_dir.string() << "\n";
  stop.wait();
  for (auto& t : tftp_servers)
    t->stop();
  leases.store(nullptr);
  if (dhcp_server) dhcp_server->stop();
  err << "labctl serve: stopped\n";
  return kExitOk;
}

}  // namespace labctl::controller
