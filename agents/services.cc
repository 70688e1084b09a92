#include "agents/services.h"

#include <unistd.h>

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "plugins/sdk/net_hooks.h"
#include "plugins/sdk/plugin.h"

namespace labctl::agents {

namespace {

// Vendor class (option 60) prefix Cisco IP phones send: "Cisco Systems, Inc. IP Phone CP-7911G".
constexpr const char* kCiscoPhoneVendorClass = "Cisco Systems, Inc. IP Phone";

}  // namespace

void dhcp_segment_options(dhcp::Options& o, std::optional<std::uint32_t> router,
                          const std::vector<std::uint32_t>& dns,
                          const std::vector<std::uint32_t>& ntp, const std::string& domain) {
  if (router) o.set(dhcp::opt::kRouter, dhcp::encode_ipv4_list(std::array{*router}));
  if (!dns.empty()) o.set(dhcp::opt::kDnsServers, dhcp::encode_ipv4_list(dns));
  if (!ntp.empty()) o.set(42, dhcp::encode_ipv4_list(ntp));
  if (!domain.empty()) o.set(dhcp::opt::kDomainName, dhcp::encode_text(domain));
}

void dhcp_tftp_options(dhcp::Options& o, const std::vector<std::uint32_t>& servers,
                       const std::string& name) {
  if (!servers.empty()) o.set(dhcp::opt::kCiscoTftpServers, dhcp::encode_ipv4_list(servers));
  const std::string n = !name.empty() ? name : servers.empty() ? "" : dhcp::ipv4_string(servers[0]);
  if (!n.empty()) o.set(dhcp::opt::kTftpServerName, dhcp::encode_text(n));
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
  dhcp_segment_options(s.options, seg.dhcp.router, seg.dhcp.dns, seg.dhcp.ntp, seg.dhcp.domain);
  if (!seg.tftp.servers.empty()) {
    dhcp::ClientClass c;
    c.name = "tftp-boot";
    c.vendor_class_prefixes = {kCiscoPhoneVendorClass};
    c.types = tftp_types;
    dhcp_tftp_options(c.options, seg.tftp.servers, "");
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
    dhcp_segment_options(c.options, ic.router, ic.dns, ic.ntp, ic.domain);
    dhcp_tftp_options(c.options, ic.tftp_servers, ic.tftp_server_name);
    c.always_send = ic.always_send;
    s.classes.push_back(std::move(c));
  }
  return s;
}

Result<std::unique_ptr<NetServices>> NetServices::start(const inventory::Inventory& inv,
                                                        const plugins::Registry& registry,
                                                        ServicesOptions o) {
  std::unique_ptr<NetServices> svc(new NetServices());
  auto say = [&o](const std::string& line) {
    if (o.say) o.say(line);
  };
  // Every segment's DHCP configuration is checked before any service starts.
  std::vector<dhcp::SegmentConfig> dhcp_segments;
  for (const auto& seg : inv.segments) {
    if (seg.agent != o.agent) continue;
    if (seg.dhcp.mode == inventory::DhcpMode::Off) continue;
    auto where = dhcp::interface_ipv4(
        seg.interface, [&seg](std::uint32_t a, int) { return seg.subnet.contains(a); });
    if (!where)
      return fail(Errc::InvalidInput, "segment " + seg.name + ": dhcp: " + where.error().message());
    if (!seg.subnet.contains(where->first))
      return fail(Errc::InvalidInput, "segment " + seg.name + ": interface " + seg.interface +
                                          " has address " + dhcp::ipv4_string(where->first) +
                                          ", outside subnet " + seg.subnet.to_string());
    auto sc = dhcp_segment_config(inv, seg, registry, where->first);
    if (!sc) return fail(std::move(sc.error()).context("segment " + seg.name));
    dhcp_segments.push_back(std::move(*sc));
  }
  for (const auto& seg : inv.segments) {
    if (seg.agent != o.agent) continue;
    if (seg.tftp.enabled) svc->tftp_segments_.push_back(seg.name);
    if (seg.dhcp.mode != inventory::DhcpMode::Off) svc->dhcp_segments_.push_back(seg.name);
  }
  if (svc->tftp_segments_.empty() && svc->dhcp_segments_.empty())
    return fail(Errc::NotFound, "no segment of " + o.inventory_label +
                                    " has tftp or dhcp (mode serve or observe) on agent '" +
                                    o.agent + "'");

  // One service set per state directory: it owns the lease table, and steps that need its TFTP
  // service (phone upgrades) ask this lock whether it runs and which segments it serves.
  nlohmann::json served = {{"pid", ::getpid()},
                           {"agent", o.agent},
                           {"inventory", o.inventory_label},
                           {"tftp", svc->tftp_segments_},
                           {"dhcp", svc->dhcp_segments_}};
  auto lock = RunLock::acquire(serve_lock_path(o.state_dir), served.dump() + "\n");
  if (!lock)
    return fail(Errc::PreconditionFailed,
                "another labctl serve runs with state directory " + o.state_dir.string() +
                    " (labctl serve and labctl-agent each keep one): " + lock.error().message());
  svc->lock_.emplace(std::move(*lock));

  // The hooks keep `env`, which asks the DHCP service for leases: it lives as long as `svc`.
  svc->env_ = std::make_unique<sdk::ServiceEnv>();
  svc->env_->inventory = &inv;
  svc->env_->state_dir = o.state_dir;
  svc->env_->mac_for_ip = [s = svc.get()](std::uint32_t ip) -> std::optional<std::string> {
    auto* d = s->leases_.load();
    return d ? d->mac_for_ip(ip) : std::nullopt;
  };
  std::vector<sdk::NetHooks*> hooks;
  for (const auto& d : inv.devices)
    if (auto* p = registry.find(d.type))
      if (auto* h = p->net_hooks())
        if (std::find(hooks.begin(), hooks.end(), h) == hooks.end()) {
          h->attach(*svc->env_);
          hooks.push_back(h);
        }
  const auto log_dir = o.log_dir.empty() ? o.state_dir / "logs" : o.log_dir;
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  for (const auto& seg : inv.segments) {
    if (seg.agent != o.agent || !seg.tftp.enabled) continue;
    tftp::ServerConfig c;
    c.root = seg.tftp.root;
    c.port = static_cast<std::uint16_t>(o.tftp_port ? o.tftp_port : seg.tftp.port);
    c.log_path = o.log_dir.empty() ? sdk::tftp_event_log_path(o.state_dir, seg.name)
                                   : log_dir / ("tftp-" + seg.name + ".jsonl");
    c.hooks = hooks;
    if (o.on_tftp_event)
      c.on_event = [f = o.on_tftp_event, name = seg.name](const tftp::Event& e) { f(name, e); };
    auto s = tftp::Server::start(std::move(c));
    if (!s) {
      svc->stop();
      return fail(std::move(s.error()).context("segment " + seg.name + ": tftp"));
    }
    say("segment " + seg.name + ": tftp on port " + std::to_string((*s)->port()) + ", root " +
        seg.tftp.root);
    svc->tftp_.emplace_back(seg.name, std::move(*s));
  }
  if (!dhcp_segments.empty()) {
    dhcp::ServerConfig c;
    c.segments = std::move(dhcp_segments);
    c.port = static_cast<std::uint16_t>(o.dhcp_port);
    c.lease_db = dhcp::default_lease_db_path(o.state_dir);
    c.log_path = log_dir / "dhcp.jsonl";
    c.hooks = hooks;
    c.on_event = o.on_dhcp_event;
    auto s = dhcp::Server::start(std::move(c));
    if (!s) {
      svc->stop();
      return fail(std::move(s.error()).context("dhcp"));
    }
    svc->dhcp_ = std::move(*s);
    svc->leases_.store(svc->dhcp_.get());
    say("dhcp on port " + std::to_string(o.dhcp_port) + " for " +
        std::to_string(svc->dhcp_->leases().size()) + " known leases");
  }
  return svc;
}

std::uint16_t NetServices::tftp_port(const std::string& segment) const {
  for (const auto& [name, s] : tftp_)
    if (name == segment) return s->port();
  return 0;
}

void NetServices::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& [name, t] : tftp_)
    t->stop();
  leases_.store(nullptr);
  if (dhcp_) dhcp_->stop();
}

NetServices::~NetServices() {
  stop();
}

}  // namespace labctl::agents
