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
#include "agents/services.h"
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
  // The interface's address on the range's network (it may be a secondary one), else its first.
  auto where = dhcp::interface_ipv4(a.interface, [&](std::uint32_t address, int prefix) {
    return (address & dhcp::prefix_mask(prefix)) == (*first & dhcp::prefix_mask(prefix));
  });
  if (!where) {
    err << "labctl dhcp serve: " << where.error().message() << "\n";
    return kExitError;
  }
  const auto [server_ip, prefix] = *where;
  dhcp::SegmentConfig s;
  s.interface = a.interface;
  s.alloc.segment = a.interface;
  s.alloc.prefix = prefix;
  s.alloc.network = server_ip & dhcp::prefix_mask(prefix);
  s.alloc.server_address = server_ip;
  s.alloc.deny_unknown = a.deny_unknown;
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
  agents::dhcp_segment_options(s.options, router, *dns, {}, "");
  agents::dhcp_tftp_options(s.options, *tftp, a.tftp_name);
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
              << std::setw(21) << text::format_local_time(l.expires_at) << l.hostname << "\n";
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

int cmd_serve(Context& ctx, const ServeArgs& a) {
  auto& err = std::cerr;
  auto inv = ctx.load_inventory(a.inventory, err);
  if (!inv) return kExitError;
  StopSignals stop;
  agents::ServicesOptions o;
  o.state_dir = ctx.state_dir();
  if (!a.log_dir.empty()) o.log_dir = a.log_dir;
  o.dhcp_port = a.dhcp_port;
  o.tftp_port = a.tftp_port;
  o.inventory_label = std::filesystem::absolute(a.inventory).string();
  o.on_tftp_event = [](const std::string& segment, const tftp::Event& e) {
    if (e.kind == tftp::EventKind::Complete || e.kind == tftp::EventKind::Failed ||
        e.kind == tftp::EventKind::Refused)
      std::cerr << "labctl tftp [" << segment << "]: " << tftp::event_to_line(e) << "\n";
  };
  o.on_dhcp_event = print_notable_event;
  o.say = [](const std::string& line) { std::cerr << "labctl serve: " << line << "\n"; };
  auto services = agents::NetServices::start(*inv, ctx.registry(), o);
  if (!services) {
    err << "labctl serve: " << services.error().message() << "\n";
    return kExitError;
  }
  err << "labctl serve: running (SIGINT or SIGTERM stops); events in "
      << (a.log_dir.empty() ? (ctx.state_dir() / "logs").string() : a.log_dir) << "\n";
  stop.wait();
  (*services)->stop();
  err << "labctl serve: stopped\n";
  return kExitOk;
}

}  // namespace labctl::controller
