#include "controller/agent_commands.h"

#include <unistd.h>

#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "agents/net/tftp/server.h"
#include "agents/rpc/pki.h"
#include "agents/rpc/remote_agent.h"
#include "agents/rpc/server.h"
#include "common/text.h"
#include "controller/schedule.h"

namespace labctl::controller {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitAttention = 2;

// The remote driver of the inventory's agent `name`, or nullptr after printing why not.
agents::rpc::RemoteAgent* remote_for(Context& ctx, const inventory::Inventory& inv,
                                     const std::string& name, const std::string& cmd) {
  if (inv.agent(name) == nullptr) {
    std::vector<std::string> names;
    for (const auto& a : inv.agents)
      names.push_back(a.name);
    std::cerr << "labctl agent " << cmd << ": no agent '" << name << "' in " << inv.file
              << (names.empty() ? " (it defines none)"
                                : " (agents: " + text::join_list(names) + ")")
              << "\n";
    return nullptr;
  }
  auto* a = ctx.agents(inv).get(name);
  return dynamic_cast<agents::rpc::RemoteAgent*>(a);
}

}  // namespace

int cmd_agent_init(const AgentInitArgs& a) {
  agents::rpc::PkiOptions o;
  o.dir = a.dir;
  o.agents = a.agents;
  o.listen = a.listen;
  o.days = a.days;
  o.renew_controller = a.renew_controller;
  for (const auto& h : a.hosts) {
    const auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == h.size()) {
      std::cerr << "labctl agent init: --host '" << h << "': expected NAME=HOST[,HOST...]\n";
      return kExitError;
    }
    const std::string name = h.substr(0, eq);
    if (std::find(a.agents.begin(), a.agents.end(), name) == a.agents.end()) {
      std::cerr << "labctl agent init: --host names '" << name << "', which no --agent names\n";
      return kExitError;
    }
    for (const auto& part : text::split(h.substr(eq + 1), ','))
      if (!text::trim(part).empty()) o.hosts[name].push_back(std::string(text::trim(part)));
  }
  if (a.days < 1 || a.days > 3650) {
    std::cerr << "labctl agent init: --days must be 1..3650\n";
    return kExitError;
  }
  auto r = agents::rpc::init_pki(o);
  if (!r) {
    std::cerr << "labctl agent init: " << r.error().message() << "\n";
    return kExitError;
  }
  if (r->ca_created) std::cout << "created a new CA in " << a.dir << "\n";
  for (const auto& p : r->written)
    std::cout << "wrote " << p.string() << "\n";
  if (r->written.empty()) std::cout << "nothing to do: the CA and controller certificate exist\n";
  std::cout << "\nIn the inventory, for each agent:\n"
            << "  agents:\n";
  for (const auto& n : a.agents)
    std::cout << "    - {name: " << n << ", url: https://HOST:7443, pki: " << a.dir << "}\n";
  std::cout << "Copy ca.pem, controller.pem, NAME.pem, NAME.key and NAME.yaml to the agent's "
               "machine; keep ca.key and controller.key where the controller runs.\n";
  return kExitOk;
}

int cmd_agent_status(Context& ctx, const AgentCallArgs& a) {
  auto inv = ctx.load_inventory(a.inventory, std::cerr);
  if (!inv) return kExitError;
  auto* remote = remote_for(ctx, *inv, a.name, "status");
  if (!remote) return kExitError;
  auto st = remote->status();
  if (!st) {
    if (a.json) {
      std::cout << json{{"agent", a.name},
                        {"reachable", false},
                        {"error", std::string(errc_name(st.error().code()))},
                        {"message", st.error().message()}}
                       .dump(2)
                << "\n";
    } else {
      std::cerr << "labctl agent status: " << st.error().message() << "\n";
    }
    return kExitAttention;
  }
  const std::string wanted = agents::rpc::config_id(
      agents::rpc::ConfigPush{fs::path(inv->file).filename().string(), read_text(inv->file),
                              inv->catalog ? read_text(inv->catalog->file) : ""});
  const bool current = st->config == wanted;
  const bool healthy = st->services_error.empty();
  if (a.json) {
    json j = agents::rpc::encode(*st);
    j["reachable"] = true;
    j["config-current"] = current;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "agent " << st->agent << " (labctl-agent " << st->version << ", API v" << st->api
              << "): up since " << text::format_local_time(st->started_ms) << "\n"
              << "  configuration: "
              << (st->config.empty() ? std::string("none yet (pushed on the first call)")
                  : current          ? "this inventory's"
                                     : "another (" + st->config.substr(0, 12) +
                                  "...); pushed again on the next call")
              << "\n"
              << "  tftp: "
              << (st->tftp_segments.empty() ? "-" : text::join_list(st->tftp_segments, ", "))
              << "   dhcp: "
              << (st->dhcp_segments.empty() ? "-" : text::join_list(st->dhcp_segments, ", "))
              << "\n"
              << "  running steps: " << st->running_steps << "   events: " << st->events << "\n";
    if (!healthy) std::cout << "  services: " << st->services_error << "\n";
  }
  return healthy ? kExitOk : kExitAttention;
}

int cmd_agent_events(Context& ctx, const AgentCallArgs& a) {
  auto inv = ctx.load_inventory(a.inventory, std::cerr);
  if (!inv) return kExitError;
  auto* remote = remote_for(ctx, *inv, a.name, "events");
  if (!remote) return kExitError;
  std::uint64_t after = a.after;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const int wait = a.follow ? 20 : 0;
    auto j = remote->events(after, wait);
    if (!j) {
      std::cerr << "labctl agent events: " << j.error().message() << "\n";
      return kExitError;
    }
    for (const auto& e : (*j)["events"]) {
      if (a.json) {
        std::cout << e.dump() << "\n";
        continue;
      }
      const std::string service = e.value("service", "");
      std::string line = e["event"].dump();
      if (service == "tftp")
        if (auto t = tftp::event_from_json(e["event"])) line = tftp::event_to_line(*t);
      std::cout << "#" << e.value("seq", std::uint64_t{0}) << " " << service
                << (e.value("segment", "").empty() ? "" : " [" + e.value("segment", "") + "]")
                << " " << line << "\n";
    }
    std::cout.flush();
    if (j->contains("next") && (*j)["next"].is_number_unsigned())
      after = std::max(after, (*j)["next"].get<std::uint64_t>());
    if (!a.follow || ctx.cancel_flag().load()) break;
    if (a.max_seconds > 0 &&
        std::chrono::steady_clock::now() - start > std::chrono::seconds(a.max_seconds))
      break;
  }
  return kExitOk;
}

std::string agent_unit(const std::string& binary, const std::string& config,
                       const std::string& name) {
  return "[Unit]\n"
         "Description=labctl agent " +
         name +
         " (device plugins and TFTP/DHCP near the devices)\n"
         "After=network-online.target\n"
         "Wants=network-online.target\n"
         "\n"
         "[Service]\n"
         "Type=simple\n"
         "ExecStart=" +
         systemd_quote(binary) + " --config " + systemd_quote(config) +
         "\n"
         "# Device secrets (env: references in the inventory) are read here, on the agent:\n"
         "# put them in this file, mode 0600.\n"
         "EnvironmentFile=-/etc/labctl/agent-" +
         name +
         ".env\n"
         "Restart=on-failure\n"
         "RestartSec=2s\n"
         "# DHCP and TFTP bind ports 67 and 69.\n"
         "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW\n"
         "StateDirectory=labctl-agent\n"
         "NoNewPrivileges=yes\n"
         "ProtectSystem=full\n"
         "ProtectHome=read-only\n"
         "PrivateTmp=yes\n"
         "\n"
         "[Install]\n"
         "WantedBy=multi-user.target\n";
}

int cmd_agent_install_unit(const AgentUnitArgs& a) {
  const fs::path config = fs::absolute(a.config);
  auto cfg = agents::rpc::load_agent_config(config, "");
  if (!cfg) {
    std::cerr << "labctl agent install-unit: " << cfg.error().message() << "\n";
    return kExitError;
  }
  std::string binary = a.binary.empty() ? "" : fs::absolute(a.binary).string();
  if (binary.empty()) {
    // Next to this labctl (an install puts both in one bin directory), else from PATH.
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    fs::path beside;
    if (n > 0) beside = fs::path(std::string(self, static_cast<std::size_t>(n))).parent_path();
    const std::vector<fs::path> candidates = {
        beside / "labctl-agent", beside.parent_path() / "agents" / "labctl-agent",
        "/usr/local/bin/labctl-agent", "/usr/bin/labctl-agent"};
    for (const auto& c : candidates)
      if (!c.empty() && ::access(c.c_str(), X_OK) == 0) {
        binary = fs::weakly_canonical(c).string();
        break;
      }
    if (binary.empty()) {
      std::cerr << "labctl agent install-unit: labctl-agent not found; give --binary PATH\n";
      return kExitError;
    }
  }
  const std::string unit = agent_unit(binary, config.string(), cfg->name);
  const std::string name = "labctl-agent-" + cfg->name + ".service";
  if (!a.install) {
    std::cout << "# " << (fs::path(a.unit_dir) / name).string() << "\n" << unit;
    return kExitOk;
  }
  auto r = install_files({{fs::path(a.unit_dir) / name, unit}});
  if (!r) {
    std::cerr << "labctl agent install-unit: " << r.error().message() << "\n";
    return kExitError;
  }
  std::cout << *r << "\nthen: systemctl daemon-reload && systemctl enable --now " << name << "\n";
  return kExitOk;
}

}  // namespace labctl::controller
