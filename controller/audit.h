// `labctl audit`: probe every device at once and report firmware drift (with the planned path),
// configuration drift, unreachable devices and security findings, for people (table), scripts
// (JSON, docs/audit.md) and Prometheus (text exposition for node_exporter's textfile collector).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/agent.h"
#include "controller/planner.h"
#include "inventory/inventory.h"
#include "plugins/registry.h"

namespace labctl::controller {

struct AuditFinding {
  std::string device;    // "" for inventory-wide findings
  std::string severity;  // critical, warning, info
  std::string code;      // default-credentials, literal-secret, secret-file-mode, ...
  std::string message;
};

struct DeviceAudit {
  std::string device, type, model;
  bool reachable = true;
  std::string error;                 // why it could not be probed
  std::string installed, target;     // firmware
  bool firmware_drift = false;       // installed differs from the target
  std::vector<std::string> path;     // planned hops, display form: "SCCP 8.5(2)", "SIP 9.4(2)SR1"
  std::string blocked;               // why no path exists ("" when one does)
  std::vector<std::string> changes;  // non-firmware steps apply would take (configuration drift)
};

struct AuditReport {
  std::string site, inventory;
  std::int64_t started_at = 0, finished_at = 0;  // unix ms
  std::vector<DeviceAudit> devices;
  std::vector<AuditFinding> findings;

  bool compliant() const;
  int exit_code() const { return compliant() ? 0 : 2; }
  nlohmann::json to_json() const;
  std::string to_prometheus() const;
  void print_table(std::ostream& out, bool color) const;
};

AuditReport run_audit(const inventory::Inventory& inv, const plugins::Registry& registry,
                      agents::AgentSet& agents, int parallel);

}  // namespace labctl::controller
