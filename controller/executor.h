// The executor: carries out a journaled run, one step at a time per device, many devices at once.
//
// Every step's start and outcome is committed to the state store before the next begins, so a
// run killed at any point resumes: steps journaled as done are never run again, a step journaled as
// running is first re-checked through the plugin's idempotent step_done(), and nothing is skipped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "controller/planner.h"
#include "controller/state_store.h"
#include "inventory/inventory.h"

namespace labctl::controller {

struct ApplyOptions {
  int parallel = 8;                                     // devices worked on at once
  int attempts = 3;                                     // per step, for unreachable/timeout errors
  std::chrono::milliseconds retry_delay{2000};          // first backoff; doubles per attempt
  std::chrono::milliseconds step_timeout{30 * 60'000};  // when a step names none
};

// What the executor reports as it goes (progress.h draws it).
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void run_started(std::size_t devices, std::size_t steps, std::size_t already_done) = 0;
  virtual void step_started(const std::string& device, const StepRecord& step, int index, int count,
                            int attempt) = 0;
  virtual void step_progress(const std::string& device, std::uint64_t done, std::uint64_t total,
                             std::string_view note) = 0;
  // status Done, Failed (retrying or not), Skipped (already done: verified by step_done).
  virtual void step_finished(const std::string& device, const StepRecord& step, StepStatus status,
                             const Error* error, bool will_retry,
                             std::chrono::milliseconds elapsed) = 0;
  virtual void device_finished(const std::string& device, bool ok, const std::string& summary) = 0;
  virtual void run_finished() = 0;
};

struct DeviceOutcome {
  enum class Status { Done, Failed, Skipped, Interrupted };
  std::string device;
  Status status = Status::Done;
  std::size_t steps_run = 0;      // executed in this invocation
  std::size_t steps_already = 0;  // done before (journal) or found done (step_done)
  std::string failed_step;        // title of the step that failed
  std::string reason;             // why it failed or was skipped
};

struct ApplyReport {
  std::int64_t run_id = 0;
  std::vector<DeviceOutcome> devices;
  bool interrupted = false;
  std::chrono::milliseconds elapsed{0};
  std::size_t failed() const;
};

// Steps of a plan as journal records (args hold the whole step, so any process can rebuild it).
std::vector<StepRecord> journal_steps(const Plan& plan);

// Runs the journaled steps of `run_id` that are not done. `stop`: start no new step (running ones
// finish); `cancel`: also abort running steps' waits. Both may be set from a signal handler.
ApplyReport execute_run(const inventory::Inventory& inv, agents::AgentSet& agents,
                        StateStore& store, std::int64_t run_id, std::vector<StepRecord> steps,
                        const ApplyOptions& options, ProgressSink& progress,
                        const std::atomic<bool>& stop, const std::atomic<bool>& cancel);

}  // namespace labctl::controller
