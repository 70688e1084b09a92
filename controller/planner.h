// Plan: from inventory + observations + catalog to the steps that close the difference.
//
// Planning is pure (ninja's Plan/Builder split): probing is a separate phase, and make_plan never
// touches a device, so `plan` and `apply --dry-run` show exactly what `apply` would do.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/agent.h"
#include "controller/state_store.h"
#include "inventory/inventory.h"
#include "plugins/registry.h"

namespace labctl::controller {

struct HopView {
  std::string from, to;  // version texts
  std::string from_display, to_display;
  std::string reason;
  std::string bundle;  // vendor bundle the release comes in, if the catalog says
};

struct DevicePlan {
  enum class Status { UpToDate, Changes, Unreachable, Blocked };
  std::string device, type, model, agent;
  Status status = Status::UpToDate;
  std::string installed;  // observed firmware version text ("" when unknown)
  std::string target;     // inventory's firmware target ("" when none)
  std::vector<HopView> hops;
  std::vector<sdk::Step> steps;
  std::vector<std::string> after;     // devices whose steps must finish first
  Error problem{Errc::Internal, ""};  // why Unreachable / Blocked
  std::vector<sdk::Finding> findings;
};

std::string_view status_name(DevicePlan::Status s);  // "up-to-date", "changes", ...

struct Plan {
  std::string inventory, site;
  std::vector<DevicePlan> devices;  // inventory order

  std::size_t step_count() const;
  std::size_t count(DevicePlan::Status s) const;
  // The documented JSON document (docs/plan.md, docs/schemas/plan.schema.json).
  nlohmann::json to_json() const;
};

using Observations = std::unordered_map<std::string, Result<sdk::Observation>>;

// The devices' dependencies: `after:` plus devices the plugin keys reference (a host's BMC).
std::vector<std::string> device_dependencies(const inventory::Device& d);

Plan make_plan(const inventory::Inventory& inv, const plugins::Registry& registry,
               const Observations& observations);

// Observation records for the state store, stamped `now_ms` (unix milliseconds).
std::vector<ObservationRecord> observation_records(const Observations& observations,
                                                   std::optional<std::int64_t> run_id,
                                                   std::int64_t now_ms);

// Probes every device (or those `select` accepts) through its agent, `parallel` at a time.
Observations probe_all(const inventory::Inventory& inv, agents::AgentSet& agents, int parallel,
                       const std::function<bool(const inventory::Device&)>& select = {});

}  // namespace labctl::controller
