#include "controller/planner.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "inventory/upgrade_path.h"

namespace labctl::controller {

using nlohmann::json;

std::string_view status_name(DevicePlan::Status s) {
  switch (s) {
    case DevicePlan::Status::UpToDate:
      return "up-to-date";
    case DevicePlan::Status::Changes:
      return "changes";
    case DevicePlan::Status::Unreachable:
      return "unreachable";
    case DevicePlan::Status::Blocked:
      return "blocked";
  }
  return "blocked";
}

std::size_t Plan::step_count() const {
  std::size_t n = 0;
  for (const auto& d : devices)
    n += d.steps.size();
  return n;
}

std::size_t Plan::count(DevicePlan::Status s) const {
  return static_cast<std::size_t>(std::count_if(
      devices.begin(), devices.end(), [s](const DevicePlan& d) { return d.status == s; }));
}

json Plan::to_json() const {
  json devs = json::array();
  for (const auto& d : devices) {
    json j = {{"name", d.device},
              {"type", d.type},
              {"model", d.model},
              {"agent", d.agent},
              {"status", status_name(d.status)},
              {"after", d.after}};
    if (!d.target.empty() || !d.installed.empty()) {
      json hops = json::array();
      for (const auto& h : d.hops)
        hops.push_back({{"from", h.from},
                        {"to", h.to},
                        {"from_display", h.from_display},
                        {"to_display", h.to_display},
                        {"reason", h.reason},
                        {"bundle", h.bundle}});
      j["firmware"] = {{"installed", d.installed}, {"target", d.target}, {"hops", hops}};
    } else {
      j["firmware"] = nullptr;
    }
    json steps = json::array();
    for (const auto& s : d.steps)
      steps.push_back(s.to_json());
    j["steps"] = steps;
    if (d.status == DevicePlan::Status::Unreachable || d.status == DevicePlan::Status::Blocked)
      j["problem"] = {{"code", errc_name(d.problem.code())}, {"message", d.problem.message()}};
    else
      j["problem"] = nullptr;
    json f = json::array();
    for (const auto& x : d.findings)
      f.push_back({{"severity", x.severity}, {"code", x.code}, {"message", x.message}});
    j["findings"] = f;
    devs.push_back(std::move(j));
  }
  return {{"format", "labctl-plan"},
          {"format_version", 1},
          {"inventory", inventory},
          {"site", site},
          {"summary",
           {{"devices", devices.size()},
            {"changes", count(DevicePlan::Status::Changes)},
            {"up_to_date", count(DevicePlan::Status::UpToDate)},
            {"unreachable", count(DevicePlan::Status::Unreachable)},
            {"blocked", count(DevicePlan::Status::Blocked)},
            {"steps", step_count()}}},
          {"devices", devs}};
}

std::vector<std::string> device_dependencies(const inventory::Device& d) {
  std::vector<std::string> out = d.after;
  for (const auto& r : d.references)
    if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  return out;
}

namespace {

void block(DevicePlan& p, Error e) {
  p.status = DevicePlan::Status::Blocked;
  p.problem = std::move(e);
  p.steps.clear();
  p.hops.clear();
}

void plan_device(const inventory::Inventory& inv, const plugins::Registry& registry,
                 const inventory::Device& d, const Observations& observations, DevicePlan& p) {
  p.device = d.name;
  p.type = d.type;
  p.model = d.model;
  p.agent = d.agent;
  p.target = d.firmware.target;
  p.after = device_dependencies(d);
  const sdk::Plugin* plugin = registry.find(d.type);
  if (!plugin) return block(p, Error(Errc::NotSupported, "no plugin for type '" + d.type + "'"));
  auto it = observations.find(d.name);
  if (it == observations.end()) {
    p.status = DevicePlan::Status::Unreachable;
    p.problem = Error(Errc::Unreachable, "not probed");
    return;
  }
  if (!it->second) {
    const Error& e = it->second.error();
    p.status =
        errc_retryable(e.code()) ? DevicePlan::Status::Unreachable : DevicePlan::Status::Blocked;
    p.problem = Error(e.code(), "probe: " + e.message());
    return;
  }
  const sdk::Observation& obs = *it->second;
  p.installed = obs.version;
  p.findings = obs.findings;

  if (!d.firmware.target.empty() && inv.catalog) {
    const auto* fam = inv.catalog->family_for_model(d.model);
    if (!fam)  // validation guarantees the family; keep the plan honest if it is bypassed
      return block(p, Error(Errc::NotFound, "model '" + d.model + "' is not in the catalog"));
    auto installed = inventory::parse_version(fam->scheme, obs.version);
    if (!installed)
      return block(p, Error(Errc::PreconditionFailed, "device reports firmware '" + obs.version +
                                                          "': " + installed.error().message()));
    auto target = inventory::parse_version(fam->scheme, d.firmware.target);
    if (!target) return block(p, target.error());
    inventory::DeviceState state{*installed, {}};
    for (const auto& [name, text] : obs.components)
      if (auto v = inventory::parse_version(fam->scheme, text)) state.components[name] = *v;
    auto path = inventory::find_upgrade_path(*fam, state, *target,
                                             {.allow_downgrade = d.firmware.allow_downgrade});
    if (!path) return block(p, std::move(path.error()).context("firmware"));
    int index = 0;
    for (const auto& hop : *path) {
      ++index;
      p.hops.push_back({hop.from.text, hop.to.text, hop.from.display(), hop.to.display(),
                        hop.reason, hop.release ? hop.release->bundle : ""});
      sdk::HopInfo info{hop.release, hop.from, hop.to, index, static_cast<int>(path->size()),
                        hop.reason};
      auto steps = plugin->hop_steps(d, info);
      if (!steps) return block(p, std::move(steps.error()).context("hop to " + hop.to.display()));
      for (auto& s : *steps)
        p.steps.push_back(std::move(s));
    }
  }
  for (auto& s : plugin->reconcile_steps(d, obs, p.steps))
    p.steps.push_back(std::move(s));
  p.status = p.steps.empty() ? DevicePlan::Status::UpToDate : DevicePlan::Status::Changes;
}

}  // namespace

Plan make_plan(const inventory::Inventory& inv, const plugins::Registry& registry,
               const Observations& observations) {
  Plan plan;
  plan.inventory = inv.file;
  plan.site = inv.site;
  plan.devices.resize(inv.devices.size());
  for (std::size_t i = 0; i < inv.devices.size(); ++i)
    plan_device(inv, registry, inv.devices[i], observations, plan.devices[i]);
  return plan;
}

std::vector<ObservationRecord> observation_records(const Observations& observations,
                                                   std::optional<std::int64_t> run_id,
                                                   std::int64_t now_ms) {
  std::vector<ObservationRecord> out;
  out.reserve(observations.size());
  for (const auto& [name, obs] : observations) {
    ObservationRecord rec;
    rec.run_id = run_id;
    rec.device = name;
    rec.observed_at = now_ms;
    rec.reachable = obs.has_value();
    if (obs) {
      rec.version = obs->version;
      rec.data = obs->to_json();
    } else {
      rec.error = obs.error().message();
    }
    out.push_back(std::move(rec));
  }
  return out;
}

Observations probe_all(const inventory::Inventory& inv, agents::AgentSet& agents, int parallel,
                       const std::function<bool(const inventory::Device&)>& select) {
  std::vector<const inventory::Device*> todo;
  for (const auto& d : inv.devices)
    if (!select || select(d)) todo.push_back(&d);
  std::vector<std::optional<Result<sdk::Observation>>> results(todo.size());
  std::atomic<std::size_t> next{0};
  std::mutex agents_mu;  // AgentSet lookups are cheap; agents themselves are thread-safe
  auto worker = [&] {
    while (true) {
      std::size_t i = next.fetch_add(1);
      if (i >= todo.size()) return;
      Result<agents::Agent*> agent = [&] {
        std::lock_guard lock(agents_mu);
        return agents.for_device(*todo[i]);
      }();
      if (!agent)
        results[i] = std::unexpected(agent.error());
      else
        results[i] = (*agent)->probe(*todo[i]);
    }
  };
  const std::size_t n = std::clamp<std::size_t>(static_cast<std::size_t>(std::max(parallel, 1)), 1,
                                                std::max<std::size_t>(todo.size(), 1));
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < n; ++t)
    threads.emplace_back(worker);
  worker();
  for (auto& t : threads)
    t.join();
  Observations out;
  out.reserve(todo.size());
  for (std::size_t i = 0; i < todo.size(); ++i)
    out.emplace(todo[i]->name, std::move(*results[i]));
  return out;
}

}  // namespace labctl::controller
