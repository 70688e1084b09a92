// `labctl apply`: plan, confirm, journal, execute, resume.
#pragma once

#include <string>
#include <vector>

#include "controller/context.h"
#include "controller/executor.h"

namespace labctl::controller {

struct ApplyArgs {
  std::string inventory;
  bool yes = false;
  bool dry_run = false;
  std::vector<std::string> only;
  int probe_parallel = 16;  // at least; --parallel raises it
  ApplyOptions exec;
};

// Exit status: 0 converged (or nothing to do), 1 a device failed, was skipped, unreachable or
// blocked, 130 interrupted by the operator (resumable).
int cmd_apply(Context& ctx, const ApplyArgs& args);

}  // namespace labctl::controller
