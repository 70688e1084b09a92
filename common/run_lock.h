// Which long-running labctl service holds a state directory: `labctl serve` takes an exclusive
// flock(2) on <state-dir>/run/serve.lock for as long as it runs and writes what it serves into the
// file (pid, segments). Others only look: a step that needs the TFTP service asks whether the lock
// is held, instead of trusting a log file that an earlier run left behind. The kernel drops the
// lock when the process dies, however it dies.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "common/error.h"

namespace labctl {

class RunLock {
 public:
  // Creates the file (0644, its directory 0755), takes the lock without waiting and writes
  // `content`. PreconditionFailed naming the holder's content when another process has it.
  static Result<RunLock> acquire(const std::filesystem::path& path, const std::string& content);
  RunLock(RunLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RunLock& operator=(RunLock&&) = delete;
  RunLock(const RunLock&) = delete;
  ~RunLock();

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The holder's content when some process holds the lock at `path`; nullopt when nobody does (or
// there is no such file).
std::optional<std::string> run_lock_holder(const std::filesystem::path& path);

// <state-dir>/run/serve.lock
inline std::filesystem::path serve_lock_path(const std::filesystem::path& state_dir) {
  return state_dir / "run" / "serve.lock";
}

}  // namespace labctl
