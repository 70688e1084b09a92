#include "controller/apply.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>

#include "common/text.h"
#include "controller/plan_output.h"
#include "controller/planner.h"
#include "controller/progress.h"
#include "controller/run_signals.h"

namespace labctl::controller {

namespace {

// One apply at a time per state directory: two would journal over each other.
class ApplyLock {
 public:
  static Result<ApplyLock> take(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const auto path = dir / "apply.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return fail(Errc::PreconditionFailed, path.string() + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return fail(Errc::PreconditionFailed,
                  "another labctl apply is running with state in " + dir.string());
    }
    return ApplyLock(fd);
  }
  ApplyLock(ApplyLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ~ApplyLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit ApplyLock(int fd) : fd_(fd) {}
  int fd_;
};

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool confirm(const std::string& question) {
  std::cout << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  answer = text::lower(text::trim(answer));
  return answer == "y" || answer == "yes";
}

std::string seconds(std::chrono::milliseconds d) {
  std::ostringstream ss;
  ss << std::fixed << std::setprecision(1) << static_cast<double>(d.count()) / 1000.0 << "s";
  return ss.str();
}

}  // namespace

int cmd_apply(Context& ctx, const ApplyArgs& a) {
  auto inv = ctx.load_inventory(a.inventory, std::cerr);
  if (!inv) return 1;
  for (const auto& name : a.only)
    if (!inv->device(name)) {
      std::cerr << "labctl apply: --only " << name << ": no such device in " << a.inventory << "\n";
      return 1;
    }
  auto store_r = ctx.store();
  if (!store_r) {
    std::cerr << "labctl apply: " << store_r.error().message() << "\n";
    return 1;
  }
  StateStore& store = **store_r;
  auto lock = ApplyLock::take(ctx.state_dir());
  if (!lock) {
    std::cerr << "labctl apply: " << lock.error().message() << "\n";
    return 1;
  }
  const std::string abs = std::filesystem::absolute(a.inventory).lexically_normal().string();
  const std::string hash = file_sha256(a.inventory);
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  const std::set<std::string> only(a.only.begin(), a.only.end());
  auto selected = [&](const std::string& d) { return only.empty() || only.count(d) > 0; };

  // Resume an interrupted run of the same inventory, or plan a new one.
  std::int64_t run_id = 0;
  std::vector<StepRecord> steps;
  Plan plan;
  bool resuming = false;
  auto unfinished = store.unfinished_run("apply", abs);
  if (!unfinished) {
    std::cerr << "labctl apply: " << unfinished.error().message() << "\n";
    return 1;
  }
  if (*unfinished) {
    const RunRecord& r = **unfinished;
    auto journal = store.steps(r.id);
    if (!journal) {
      std::cerr << "labctl apply: " << journal.error().message() << "\n";
      return 1;
    }
    if (r.inventory_hash != hash || journal->empty()) {
      const char* why = journal->empty() ? "abandoned" : "superseded";
      if (!a.dry_run)
        (void)store.finish_run(
            r.id, why,
            {{"reason", journal->empty() ? "no steps were journaled" : "the inventory changed"}});
      if (!journal->empty())
        std::cout << "Run " << r.id << " was interrupted, but " << a.inventory
                  << " changed since; planning afresh from the devices' current state.\n";
    } else {
      resuming = true;
      run_id = r.id;
      steps = std::move(*journal);
    }
  }

  if (resuming) {
    std::size_t done = 0, todo = 0;
    std::set<std::string> devices;
    for (const auto& s : steps) {
      if (s.status == StepStatus::Done)
        ++done;
      else if (selected(s.device)) {
        ++todo;
        devices.insert(s.device);
      }
    }
    std::cout << "Resuming run " << run_id << " ("
              << ((*unfinished)->status == "interrupted" ? "interrupted" : "stopped unexpectedly")
              << "): " << done << " of " << steps.size() << " steps done; " << todo << " left on "
              << devices.size() << " devices.\n";
    if (a.dry_run) {
      for (const auto& s : steps)
        if (s.status != StepStatus::Done && selected(s.device))
          std::cout << "  " << s.device << ": " << s.title
                    << (s.status == StepStatus::Running ? " (was running: re-checked first)" : "")
                    << "\n";
      std::cout << "Dry run: nothing was executed.\n";
      return 0;
    }
    if (!a.yes) {
      if (::isatty(STDIN_FILENO) != 1) {
        std::cerr << "labctl apply: standard input is not a terminal; pass --yes to resume without "
                     "confirmation\n";
        return 1;
      }
      if (!confirm("Resume run " + std::to_string(run_id) + "?")) {
        std::cout << "Nothing was changed.\n";
        return 1;
      }
    }
  } else {
    auto observations =
        probe_all(*inv, ctx.agents(*inv), std::max(a.probe_parallel, a.exec.parallel),
                  [&](const inventory::Device& d) { return selected(d.name); });
    plan = make_plan(*inv, ctx.registry(), observations);
    std::erase_if(plan.devices, [&](const DevicePlan& d) { return !selected(d.device); });
    if (auto r =
            store.record_observations(observation_records(observations, std::nullopt, unix_ms()));
        !r)
      std::cerr << "labctl apply: observations not recorded: " << r.error().message() << "\n";
    const bool trouble =
        plan.count(DevicePlan::Status::Unreachable) + plan.count(DevicePlan::Status::Blocked) > 0;
    if (plan.step_count() == 0 && !trouble) {
      std::cout << "Nothing to do: " << plan.devices.size() << " devices match " << a.inventory
                << ".\n";
      if (!a.dry_run) {
        auto id = store.begin_run("apply", abs, hash);
        if (id) (void)store.finish_run(*id, "done", plan.to_json()["summary"]);
      }
      return 0;
    }
    if (!a.yes || a.dry_run)
      print_plan(std::cout, plan, {.color = tty && std::getenv("NO_COLOR") == nullptr});
    else
      std::cout << "Applying " << plan.step_count() << " steps to "
                << plan.count(DevicePlan::Status::Changes) << " devices of " << plan.site << ".\n";
    if (a.dry_run) {
      std::cout << "\nDry run: nothing was executed.\n";
      return trouble ? 1 : 0;
    }
    if (!a.yes && plan.step_count() > 0) {
      if (::isatty(STDIN_FILENO) != 1) {
        std::cerr << "labctl apply: standard input is not a terminal; pass --yes to apply without "
                     "confirmation\n";
        return 1;
      }
      if (!confirm("\nApply " + std::to_string(plan.step_count()) + " steps to " +
                   std::to_string(plan.count(DevicePlan::Status::Changes)) + " devices?")) {
        std::cout << "Nothing was changed.\n";
        return 1;
      }
    }
    auto id = store.begin_run("apply", abs, hash);
    if (!id) {
      std::cerr << "labctl apply: " << id.error().message() << "\n";
      return 1;
    }
    run_id = *id;
    steps = journal_steps(plan);
    if (auto r = store.add_steps(run_id, steps); !r) {
      std::cerr << "labctl apply: " << r.error().message() << "\n";
      return 1;
    }
  }

  std::vector<StepRecord> to_run;
  for (auto& s : steps)
    if (selected(s.device)) to_run.push_back(s);
  RunSignals signals;
  auto progress = tty ? make_terminal_progress(std::cout, std::getenv("NO_COLOR") == nullptr)
                      : make_plain_progress(std::cout);
  ApplyReport report = execute_run(*inv, ctx.agents(*inv), store, run_id, std::move(to_run), a.exec,
                                   *progress, signals.stop(), signals.cancel());

  // Devices the plan could not reach count as failures of this run.
  std::vector<std::pair<std::string, std::string>> problems;
  for (const auto& d : plan.devices)
    if (d.status == DevicePlan::Status::Unreachable || d.status == DevicePlan::Status::Blocked)
      problems.push_back(
          {d.device, std::string(status_name(d.status)) + ": " + d.problem.message()});
  for (const auto& o : report.devices)
    if (o.status == DeviceOutcome::Status::Failed || o.status == DeviceOutcome::Status::Skipped)
      problems.push_back(
          {o.device, (o.failed_step.empty() ? "" : o.failed_step + ": ") + o.reason});

  std::size_t run = 0, already = 0, converged = 0;
  for (const auto& o : report.devices) {
    run += o.steps_run;
    already += o.steps_already;
    converged += o.status == DeviceOutcome::Status::Done;
  }
  // Steps of devices left out by --only keep the run open for a later apply.
  bool left_open = report.interrupted;
  for (const auto& s : steps)
    if (!selected(s.device) && s.status != StepStatus::Done) left_open = true;
  const std::string status = left_open ? "interrupted" : problems.empty() ? "done" : "failed";
  nlohmann::json summary = {{"devices", report.devices.size()},
                            {"converged", converged},
                            {"steps_run", run},
                            {"steps_already_done", already},
                            {"failed", problems.size()},
                            {"elapsed_ms", report.elapsed.count()}};
  (void)store.finish_run(run_id, status, summary);

  std::cout << "\nRun " << run_id << ": " << converged << " of " << report.devices.size()
            << " devices converged, " << run << " steps run"
            << (already ? ", " + std::to_string(already) + " already done" : "") << ", in "
            << seconds(report.elapsed) << ".\n";
  if (!problems.empty()) {
    std::cout << problems.size() << (problems.size() == 1 ? " device" : " devices")
              << " not converged:\n";
    for (const auto& [d, why] : problems)
      std::cout << "  " << d << ": " << why << "\n";
  }
  if (left_open) {
    std::cout << "Interrupted. Run 'labctl apply " << a.inventory << "' again to resume run "
              << run_id << ".\n";
    return report.interrupted ? kExitInterrupted : (problems.empty() ? 0 : 1);
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace labctl::controller
