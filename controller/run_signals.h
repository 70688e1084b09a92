// SIGINT and SIGTERM while a journaled run executes (`labctl apply`, a plugin verb's steps): the
// first asks the run to stop once its running steps finish (the run is left "interrupted" and
// resumes), the second asks the running steps themselves to stop. Nothing is cut mid-step by the
// first, which matters when a step is waiting on a device that is writing its firmware.
#pragma once

#include <signal.h>

#include <atomic>

namespace labctl::controller {

// The exit status of a run stopped this way, as a shell reports a process ended by SIGINT.
inline constexpr int kExitInterrupted = 130;

class RunSignals {
 public:
  RunSignals();   // installs the handlers; one at a time per process
  ~RunSignals();  // puts the previous ones back
  RunSignals(const RunSignals&) = delete;
  RunSignals& operator=(const RunSignals&) = delete;

  const std::atomic<bool>& stop() const;
  const std::atomic<bool>& cancel() const;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

}  // namespace labctl::controller
