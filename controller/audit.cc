#include "controller/audit.h"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>

#include "inventory/secrets.h"

namespace labctl::controller {

using nlohmann::json;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Prometheus label values: backslash, double quote and line feed escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

}  // namespace

bool AuditReport::compliant() const {
  if (!findings.empty()) return false;
  return std::none_of(devices.begin(), devices.end(), [](const DeviceAudit& d) {
    return !d.reachable || d.firmware_drift || !d.changes.empty() || !d.blocked.empty();
  });
}

AuditReport run_audit(const inventory::Inventory& inv, const plugins::Registry& registry,
                      agents::AgentSet& agents, int parallel) {
  AuditReport r;
  r.site = inv.site;
  r.inventory = inv.file;
  r.started_at = now_ms();
  auto observations = probe_all(inv, agents, parallel);
  Plan plan = make_plan(inv, registry, observations);
  for (const auto& d : plan.devices) {
    DeviceAudit a;
    a.device = d.device;
    a.type = d.type;
    a.model = d.model;
    a.installed = d.installed;
    a.target = d.target;
    if (d.status == DevicePlan::Status::Unreachable) {
      a.reachable = false;
      a.error = d.problem.message();
    } else if (d.status == DevicePlan::Status::Blocked) {
      a.blocked = d.problem.message();
      // A blocked device was still probed when the probe itself did not fail.
      auto it = observations.find(d.device);
      if (it == observations.end() || !it->second) {
        a.reachable = false;
        a.error = d.problem.message();
      }
    }
    for (const auto& h : d.hops)
      a.path.push_back(h.to_display);
    a.firmware_drift = !d.target.empty() && a.reachable && (!d.hops.empty() || !a.blocked.empty());
    for (const auto& s : d.steps)
      if (s.hop == 0) a.changes.push_back(s.title);
    for (const auto& f : d.findings)
      r.findings.push_back({d.device, f.severity, f.code, f.message});
    r.devices.push_back(std::move(a));
  }
  // How the inventory keeps its secrets.
  for (const auto& use : inv.secrets) {
    for (const auto& msg : inventory::secret_findings(use.ref)) {
      const bool literal = use.ref.source == inventory::SecretRef::Source::Literal;
      r.findings.push_back({use.device, literal ? "warning" : "critical",
                            literal ? "literal-secret" : "secret-file",
                            msg + " (at " + use.pointer + ")"});
    }
  }
  r.finished_at = now_ms();
  return r;
}

json AuditReport::to_json() const {
  json devs = json::array();
  for (const auto& d : devices) {
    devs.push_back({{"name", d.device},
                    {"type", d.type},
                    {"model", d.model},
                    {"reachable", d.reachable},
                    {"error", d.error.empty() ? json(nullptr) : json(d.error)},
                    {"firmware",
                     {{"installed", d.installed},
                      {"target", d.target},
                      {"drift", d.firmware_drift},
                      {"path", d.path},
                      {"blocked", d.blocked.empty() ? json(nullptr) : json(d.blocked)}}},
                    {"changes", d.changes}});
  }
  json fs = json::array();
  std::map<std::string, int> by_severity{{"critical", 0}, {"warning", 0}, {"info", 0}};
  for (const auto& f : findings) {
    fs.push_back({{"device", f.device.empty() ? json(nullptr) : json(f.device)},
                  {"severity", f.severity},
                  {"code", f.code},
                  {"message", f.message}});
    ++by_severity[f.severity];
  }
  std::size_t unreachable = 0, drift = 0, changes = 0;
  for (const auto& d : devices) {
    unreachable += !d.reachable;
    drift += d.firmware_drift;
    changes += !d.changes.empty();
  }
  return {{"format", "labctl-audit"},
          {"format_version", 1},
          {"site", site},
          {"inventory", inventory},
          {"started_at", started_at},
          {"finished_at", finished_at},
          {"compliant", compliant()},
          {"exit_code", exit_code()},
          {"summary",
           {{"devices", devices.size()},
            {"unreachable", unreachable},
            {"firmware_drift", drift},
            {"configuration_drift", changes},
            {"findings", by_severity}}},
          {"devices", devs},
          {"findings", fs}};
}

std::string AuditReport::to_prometheus() const {
  std::ostringstream o;
  const std::string s = "site=\"" + label(site) + "\"";
  auto head = [&](const char* name, const char* help) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n";
  };
  head("labctl_audit_timestamp_seconds", "When the audit finished (unix time).");
  o << "labctl_audit_timestamp_seconds{" << s << "} " << finished_at / 1000 << '\n';
  head("labctl_audit_duration_seconds", "How long the audit took.");
  o << "labctl_audit_duration_seconds{" << s << "} " << std::fixed << std::setprecision(3)
    << static_cast<double>(finished_at - started_at) / 1000.0 << '\n';
  o.unsetf(std::ios::fixed);
  head("labctl_audit_compliant",
       "1 when no device drifts, every device answered and nothing was found.");
  o << "labctl_audit_compliant{" << s << "} " << (compliant() ? 1 : 0) << '\n';
  head("labctl_device_up", "1 when the device answered its probe.");
  for (const auto& d : devices)
    o << "labctl_device_up{" << s << ",device=\"" << label(d.device) << "\",type=\""
      << label(d.type) << "\",model=\"" << label(d.model) << "\"} " << (d.reachable ? 1 : 0)
      << '\n';
  head("labctl_device_firmware_info",
       "Installed and target firmware of a device (value always 1).");
  for (const auto& d : devices)
    if (!d.installed.empty() || !d.target.empty())
      o << "labctl_device_firmware_info{" << s << ",device=\"" << label(d.device)
        << "\",installed=\"" << label(d.installed) << "\",target=\"" << label(d.target)
        << "\"} 1\n";
  head("labctl_device_firmware_drift",
       "1 when the installed firmware differs from the inventory's target.");
  for (const auto& d : devices)
    o << "labctl_device_firmware_drift{" << s << ",device=\"" << label(d.device) << "\"} "
      << (d.firmware_drift ? 1 : 0) << '\n';
  head("labctl_device_upgrade_hops", "Firmware hops apply would take to reach the target.");
  for (const auto& d : devices)
    o << "labctl_device_upgrade_hops{" << s << ",device=\"" << label(d.device) << "\"} "
      << d.path.size() << '\n';
  head("labctl_device_pending_changes",
       "Non-firmware steps apply would take (configuration drift).");
  for (const auto& d : devices)
    o << "labctl_device_pending_changes{" << s << ",device=\"" << label(d.device) << "\"} "
      << d.changes.size() << '\n';
  head("labctl_findings", "Security and health findings by severity.");
  std::map<std::string, int> by{{"critical", 0}, {"warning", 0}, {"info", 0}};
  for (const auto& f : findings)
    ++by[f.severity];
  for (const auto& [sev, n] : by)
    o << "labctl_findings{" << s << ",severity=\"" << label(sev) << "\"} " << n << '\n';
  head("labctl_finding", "One finding (value always 1).");
  for (const auto& f : findings)
    o << "labctl_finding{" << s << ",device=\"" << label(f.device) << "\",severity=\""
      << label(f.severity) << "\",code=\"" << label(f.code) << "\"} 1\n";
  return o.str();
}

void AuditReport::print_table(std::ostream& out, bool color) const {
  auto paint = [&](const char* code, const std::string& t) {
    return color ? std::string("\x1b[") + code + "m" + t + "\x1b[0m" : t;
  };
  out << "Audit of " << site << " (" << inventory << "): " << devices.size() << " devices, "
      << (compliant() ? paint("32", "compliant") : paint("31", "not compliant")) << "\n\n";
  std::size_t w = 6;
  for (const auto& d : devices)
    w = std::max(w, d.device.size());
  out << std::left << std::setw(static_cast<int>(w) + 2) << "DEVICE" << std::setw(12) << "STATE"
      << std::setw(22) << "FIRMWARE"
      << "DETAIL\n";
  for (const auto& d : devices) {
    std::string state = !d.reachable         ? "unreachable"
                        : d.firmware_drift   ? "drift"
                        : !d.changes.empty() ? "changes"
                                             : "ok";
    std::string detail;
    if (!d.reachable)
      detail = d.error;
    else if (!d.blocked.empty())
      detail = "blocked: " + d.blocked;
    else if (d.firmware_drift) {
      detail = "-> " + (d.path.empty() ? d.target : d.path.back());
      if (d.path.size() > 1) {
        detail += " via";
        for (std::size_t i = 0; i + 1 < d.path.size(); ++i)
          detail += " " + d.path[i];
      }
    }
    if (!d.changes.empty())
      detail +=
          (detail.empty() ? "" : "; ") + std::to_string(d.changes.size()) + " pending changes";
    const char* c = state == "ok" ? "32" : state == "unreachable" ? "31" : "33";
    out << std::left << std::setw(static_cast<int>(w) + 2) << d.device << paint(c, state)
        << std::string(12 - std::min<std::size_t>(12, state.size()), ' ') << std::setw(22)
        << (d.installed.empty() ? "-" : d.installed) << detail << '\n';
  }
  if (!findings.empty()) {
    out << "\nFindings:\n";
    for (const auto& f : findings)
      out << "  " << paint(f.severity == "critical" ? "31" : "33", f.severity) << "  "
          << (f.device.empty() ? "inventory" : f.device) << ": " << f.message << " [" << f.code
          << "]\n";
  }
}

}  // namespace labctl::controller
