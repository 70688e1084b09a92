#include "controller/verb_steps.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>

#include "common/digest.h"
#include "controller/executor.h"
#include "controller/progress.h"
#include "controller/run_signals.h"

namespace labctl::controller {

using nlohmann::json;

namespace {

// Which steps a run is made of: the same command on the same device gives the same identity,
// whatever the device reported when it was planned (a resumed run keeps its own journal).
std::string steps_identity(const std::vector<sdk::Step>& steps) {
  json j = json::array();
  for (const auto& s : steps) {
    json args = s.args;
    if (args.is_object()) args.erase("from");
    j.push_back({s.key, s.action, args});
  }
  return sha256_hex(j.dump());
}

}  // namespace

int run_verb_steps(Context& ctx, const inventory::Inventory& inv, const inventory::Device& dev,
                   const std::string& run_key, const json& data, bool json_out) {
  const std::string who = "labctl: " + run_key;
  std::vector<sdk::Step> planned;
  for (const auto& j : data.value("run_steps", json::array())) {
    auto s = sdk::Step::from_json(j);
    if (!s) {
      std::cerr << who << ": the plugin's steps: " << s.error().message() << "\n";
      return 1;
    }
    planned.push_back(std::move(*s));
  }
  auto store_r = ctx.store();
  if (!store_r) {
    std::cerr << who << ": " << store_r.error().message() << "\n";
    return 1;
  }
  StateStore& store = **store_r;
  const std::string identity = steps_identity(planned);
  std::ostream& out = json_out ? std::cerr : std::cout;

  std::int64_t run_id = 0;
  std::vector<StepRecord> steps;
  auto unfinished = store.unfinished_run("verb", run_key);
  if (!unfinished) {
    std::cerr << who << ": " << unfinished.error().message() << "\n";
    return 1;
  }
  if (*unfinished) {
    auto journal = store.steps((*unfinished)->id);
    if (journal && !journal->empty() && (*unfinished)->inventory_hash == identity) {
      run_id = (*unfinished)->id;
      steps = std::move(*journal);
      std::size_t done = 0;
      for (const auto& s : steps)
        done += s.status == StepStatus::Done;
      out << "Resuming run " << run_id << ": " << done << " of " << steps.size()
          << " steps done.\n";
    } else {
      (void)store.finish_run((*unfinished)->id, "superseded",
                             {{"reason", "the same command was given with other steps"}});
    }
  }
  if (run_id == 0) {
    auto id = store.begin_run("verb", run_key, identity);
    if (!id) {
      std::cerr << who << ": " << id.error().message() << "\n";
      return 1;
    }
    run_id = *id;
    Plan plan;
    DevicePlan dp;
    dp.device = dev.name;
    dp.steps = planned;
    plan.devices.push_back(std::move(dp));
    steps = journal_steps(plan);
    if (auto r = store.add_steps(run_id, steps); !r) {
      std::cerr << who << ": " << r.error().message() << "\n";
      return 1;
    }
  }

  const bool tty = !json_out && ::isatty(STDOUT_FILENO) == 1;
  auto progress = tty ? make_terminal_progress(out, std::getenv("NO_COLOR") == nullptr)
                      : make_plain_progress(out);
  RunSignals signals;
  ApplyReport report = execute_run(inv, ctx.agents(inv), store, run_id, steps, ApplyOptions{},
                                   *progress, signals.stop(), signals.cancel());
  const DeviceOutcome* o = report.devices.empty() ? nullptr : &report.devices.front();
  const bool ok = o && o->status == DeviceOutcome::Status::Done;
  const std::string status = report.interrupted ? "interrupted" : ok ? "done" : "failed";
  (void)store.finish_run(run_id, status,
                         {{"device", dev.name},
                          {"steps_run", o ? o->steps_run : 0},
                          {"steps_already_done", o ? o->steps_already : 0},
                          {"elapsed_ms", report.elapsed.count()}});
  if (json_out) {
    json j = data;
    j.erase("run_steps");
    j["run"] = run_id;
    j["status"] = status;
    if (o && !ok) j["error"] = {{"step", o->failed_step}, {"reason", o->reason}};
    json list = json::array();
    if (auto journal = store.steps(run_id))
      for (const auto& s : *journal)
        list.push_back({{"key", s.key},
                        {"title", s.title},
                        {"status", step_status_name(s.status)},
                        {"attempts", s.attempts},
                        {"error_code", s.error_code},
                        {"error", s.error_message}});
    j["steps"] = list;
    std::cout << j.dump(2) << "\n";
  } else if (ok) {
    std::cout << "Run " << run_id << ": " << dev.name << " done (" << o->steps_run << " steps run"
              << (o->steps_already ? ", " + std::to_string(o->steps_already) + " already done"
                                   : std::string())
              << ").\n";
  } else if (report.interrupted) {
    std::cout << "Run " << run_id << ": " << dev.name << " interrupted"
              << (o ? " after " + std::to_string(o->steps_run) + " steps" : std::string()) << ".\n"
              << "Give the same command again to resume it.\n";
  } else {
    std::cout << "Run " << run_id << ": " << dev.name << " not done"
              << (o ? ": " + o->failed_step + ": " + o->reason : std::string()) << "\n"
              << "Give the same command again to resume it.\n";
  }
  if (report.interrupted) return kExitInterrupted;
  return ok ? 0 : 1;
}

}  // namespace labctl::controller
