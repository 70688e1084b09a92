#include "controller/executor.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace labctl::controller {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds since(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t);
}

// Sleeps up to `d`, returning early (false) when the operator asks to stop.
bool backoff(milliseconds d, const std::atomic<bool>& stop) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    if (stop.load()) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(), milliseconds(20)));
  }
  return !stop.load();
}

class Runner {
 public:
  Runner(const inventory::Inventory& inv, agents::AgentSet& agents, StateStore& store,
         std::vector<StepRecord> steps, const ApplyOptions& options, ProgressSink& progress,
         const std::atomic<bool>& stop, const std::atomic<bool>& cancel)
      : inv_(inv),
        agents_(agents),
        store_(store),
        options_(options),
        progress_(progress),
        stop_(stop),
        cancel_(cancel) {
    for (auto& s : steps) {
      if (!by_device_.count(s.device)) order_.push_back(s.device);
      by_device_[s.device].push_back(std::move(s));
    }
    for (auto& [d, list] : by_device_)
      std::sort(list.begin(), list.end(),
                [](const auto& a, const auto& b) { return a.seq < b.seq; });
    const std::set<std::string> in_run(order_.begin(), order_.end());
    for (const auto& d : order_) {
      state_[d] = State::Waiting;
      if (const auto* dev = inv_.device(d))
        for (const auto& dep : device_dependencies(*dev))
          if (in_run.count(dep) && dep != d) deps_[d].push_back(dep);
    }
  }

  ApplyReport run() {
    auto start = Clock::now();
    std::size_t total = 0, done = 0;
    for (const auto& [d, list] : by_device_)
      for (const auto& s : list) {
        ++total;
        done += s.status == StepStatus::Done;
      }
    progress_.run_started(order_.size(), total, done);
    const int n = std::clamp(options_.parallel, 1, std::max(1, static_cast<int>(order_.size())));
    std::vector<std::thread> threads;
    for (int i = 1; i < n; ++i)
      threads.emplace_back([this] { worker(); });
    worker();
    for (auto& t : threads)
      t.join();
    for (const auto& d : order_)  // only a dependency cycle leaves a device waiting
      if (state_[d] == State::Waiting)
        outcomes_[d] = {d,  DeviceOutcome::Status::Skipped,          0, already_done(d),
                        "", "skipped: its dependencies form a cycle"};
    progress_.run_finished();
    ApplyReport report;
    report.elapsed = since(start);
    for (const auto& d : order_)
      report.devices.push_back(outcomes_[d]);
    report.interrupted =
        std::any_of(report.devices.begin(), report.devices.end(),
                    [](const auto& o) { return o.status == DeviceOutcome::Status::Interrupted; });
    return report;
  }

 private:
  enum class State { Waiting, Running, Done, Failed, Skipped, Interrupted };

  // Picks a device whose dependencies are done; marks devices whose dependencies failed as
  // skipped. Returns "" when nothing is left to start.
  std::string next_device() {
    std::unique_lock lock(mu_);
    while (true) {
      bool waiting_left = false;
      for (const auto& d : order_) {
        if (state_[d] != State::Waiting) continue;
        if (stop_.load()) {
          state_[d] = State::Interrupted;
          outcomes_[d] = {d,  DeviceOutcome::Status::Interrupted,    0, already_done(d),
                          "", "not started: stopped by the operator"};
          continue;
        }
        bool ready = true;
        std::string blocked_by;
        for (const auto& dep : deps_[d]) {
          State s = state_[dep];
          if (s == State::Failed || s == State::Skipped || s == State::Interrupted)
            blocked_by = dep;
          else if (s != State::Done)
            ready = false;
        }
        if (!blocked_by.empty()) {
          state_[d] = State::Skipped;
          outcomes_[d] = {d,  DeviceOutcome::Status::Skipped,
                          0,  already_done(d),
                          "", "skipped: it comes after '" + blocked_by + "', which did not finish"};
          progress_.device_finished(d, false, outcomes_[d].reason);
          cv_.notify_all();
          continue;
        }
        if (ready) {
          state_[d] = State::Running;
          return d;
        }
        waiting_left = true;
      }
      bool running = std::any_of(state_.begin(), state_.end(),
                                 [](const auto& kv) { return kv.second == State::Running; });
      if (!waiting_left || !running) return "";
      cv_.wait(lock);
    }
  }

  std::size_t already_done(const std::string& d) {
    const auto& list = by_device_[d];
    return static_cast<std::size_t>(std::count_if(
        list.begin(), list.end(), [](const auto& s) { return s.status == StepStatus::Done; }));
  }

  void worker() {
    while (true) {
      std::string d = next_device();
      if (d.empty()) return;
      DeviceOutcome o = run_device(d);
      std::lock_guard lock(mu_);
      state_[d] = o.status == DeviceOutcome::Status::Done          ? State::Done
                  : o.status == DeviceOutcome::Status::Interrupted ? State::Interrupted
                                                                   : State::Failed;
      outcomes_[d] = std::move(o);
      cv_.notify_all();
    }
  }

  // Records a step outcome; a store failure is fatal for the device: without the journal a
  // resumed run could not tell what happened.
  bool journal(const std::function<Status()>& write, DeviceOutcome& o, const StepRecord& s) {
    auto r = write();
    if (r) return true;
    o.status = DeviceOutcome::Status::Failed;
    o.failed_step = s.title;
    o.reason = "state store: " + r.error().message();
    return false;
  }

  DeviceOutcome run_device(const std::string& name) {
    DeviceOutcome o;
    o.device = name;
    auto& list = by_device_[name];
    const inventory::Device* dev = inv_.device(name);
    auto fail_device = [&](const StepRecord& s, const std::string& why) {
      o.status = DeviceOutcome::Status::Failed;
      o.failed_step = s.title;
      o.reason = why;
      progress_.device_finished(name, false, s.title + ": " + why);
      return o;
    };
    if (!dev) {
      o.status = DeviceOutcome::Status::Failed;
      o.reason = "no longer in the inventory";
      progress_.device_finished(name, false, o.reason);
      return o;
    }
    Result<agents::Agent*> agent = [&] {
      std::lock_guard lock(mu_);
      return agents_.for_device(*dev);
    }();
    const int count = static_cast<int>(list.size());
    for (int i = 0; i < count; ++i) {
      StepRecord& rec = list[static_cast<std::size_t>(i)];
      if (rec.status == StepStatus::Done) {
        ++o.steps_already;
        continue;
      }
      if (!agent) return fail_device(rec, agent.error().message());
      if (stop_.load()) {
        o.status = DeviceOutcome::Status::Interrupted;
        o.reason = "stopped by the operator before '" + rec.title + "'";
        progress_.device_finished(name, false, o.reason);
        return o;
      }
      auto step = sdk::Step::from_json(rec.args);
      if (!step) return fail_device(rec, "journal: " + step.error().message());
      // Asks the device whether the step's effect is already there, and journals it done if so.
      enum class Check { NotDone, Done, JournalFailed };
      auto check_done = [&]() {
        auto done = (*agent)->step_done(*dev, *step);
        if (!done || !*done) return Check::NotDone;
        if (!journal([&] { return store_.step_finished(rec.id, StepStatus::Done); }, o, rec))
          return Check::JournalFailed;
        rec.status = StepStatus::Done;
        ++o.steps_already;
        progress_.step_finished(name, rec, StepStatus::Skipped, nullptr, false, milliseconds(0));
        return Check::Done;
      };
      // A step that was running (or failed) when an earlier invocation ended may have had its
      // effect: ask the device before doing it again.
      if (rec.status == StepStatus::Running || rec.status == StepStatus::Failed) {
        auto c = check_done();
        if (c == Check::JournalFailed) return o;
        if (c == Check::Done) continue;
      }
      for (int attempt = 1;; ++attempt) {
        if (!journal([&] { return store_.step_started(rec.id); }, o, rec)) return o;
        rec.status = StepStatus::Running;
        progress_.step_started(name, rec, i + 1, count, attempt);
        auto t0 = Clock::now();
        agents::StepControl control;
        control.cancel = &cancel_;
        control.deadline = t0 + (step->timeout.count() > 0 ? step->timeout : options_.step_timeout);
        control.progress = [&](std::uint64_t d, std::uint64_t t, std::string_view note) {
          progress_.step_progress(name, d, t, note);
        };
        auto r = (*agent)->run_step(*dev, *step, control);
        auto elapsed = since(t0);
        if (r) {
          if (!journal([&] { return store_.step_finished(rec.id, StepStatus::Done); }, o, rec))
            return o;
          rec.status = StepStatus::Done;
          ++o.steps_run;
          progress_.step_finished(name, rec, StepStatus::Done, nullptr, false, elapsed);
          break;
        }
        Error err = r.error();
        if (err.code() == Errc::Cancelled && !cancel_.load() && Clock::now() >= control.deadline)
          err = Error(
              Errc::Timeout,
              "no result within the step's limit of " +
                  std::to_string(
                      std::chrono::duration_cast<milliseconds>(control.deadline - t0).count()) +
                  " ms");
        if (err.code() == Errc::Cancelled) {
          // Aborted by the operator: stays "running" in the journal, so a resumed run re-checks it.
          o.status = DeviceOutcome::Status::Interrupted;
          o.reason = "aborted by the operator during '" + rec.title + "'";
          progress_.step_finished(name, rec, StepStatus::Failed, &err, false, elapsed);
          progress_.device_finished(name, false, o.reason);
          return o;
        }
        const bool retry =
            errc_retryable(err.code()) && attempt < options_.attempts && !stop_.load();
        if (!journal(
                [&] {
                  return store_.step_finished(rec.id, StepStatus::Failed,
                                              std::string(errc_name(err.code())), err.message());
                },
                o, rec))
          return o;
        rec.status = StepStatus::Failed;
        progress_.step_finished(name, rec, StepStatus::Failed, &err, retry, elapsed);
        if (!retry) {
          std::string why = std::string(errc_name(err.code())) + ": " + err.message();
          if (attempt > 1) why += " (after " + std::to_string(attempt) + " attempts)";
          return fail_device(rec, why);
        }
        if (!backoff(options_.retry_delay * (1 << (attempt - 1)), stop_)) {
          o.status = DeviceOutcome::Status::Interrupted;
          o.reason = "stopped by the operator while '" + rec.title + "' waited to retry";
          progress_.device_finished(name, false, o.reason);
          return o;
        }
        // The failed attempt may have done its work before the error (a lost answer).
        auto c = check_done();
        if (c == Check::JournalFailed) return o;
        if (c == Check::Done) break;
      }
    }
    o.status = DeviceOutcome::Status::Done;
    progress_.device_finished(
        name, true,
        std::to_string(o.steps_run) + " steps run" +
            (o.steps_already ? ", " + std::to_string(o.steps_already) + " already done" : ""));
    return o;
  }

  const inventory::Inventory& inv_;
  agents::AgentSet& agents_;
  StateStore& store_;
  const ApplyOptions& options_;
  ProgressSink& progress_;
  const std::atomic<bool>& stop_;
  const std::atomic<bool>& cancel_;

  std::vector<std::string> order_;
  std::map<std::string, std::vector<StepRecord>> by_device_;
  std::map<std::string, std::vector<std::string>> deps_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, State> state_;
  std::map<std::string, DeviceOutcome> outcomes_;
};

}  // namespace

std::size_t ApplyReport::failed() const {
  return static_cast<std::size_t>(std::count_if(devices.begin(), devices.end(), [](const auto& d) {
    return d.status == DeviceOutcome::Status::Failed || d.status == DeviceOutcome::Status::Skipped;
  }));
}

std::vector<StepRecord> journal_steps(const Plan& plan) {
  std::vector<StepRecord> out;
  for (const auto& d : plan.devices) {
    int seq = 0;
    for (const auto& s : d.steps) {
      StepRecord r;
      r.device = d.device;
      r.seq = seq++;
      r.key = s.key;
      r.action = s.action;
      r.title = s.title;
      r.args = s.to_json();
      out.push_back(std::move(r));
    }
  }
  return out;
}

ApplyReport execute_run(const inventory::Inventory& inv, agents::AgentSet& agents,
                        StateStore& store, std::int64_t run_id, std::vector<StepRecord> steps,
                        const ApplyOptions& options, ProgressSink& progress,
                        const std::atomic<bool>& stop, const std::atomic<bool>& cancel) {
  Runner runner(inv, agents, store, std::move(steps), options, progress, stop, cancel);
  auto report = runner.run();
  report.run_id = run_id;
  return report;
}

}  // namespace labctl::controller
