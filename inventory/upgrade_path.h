// The one generic upgrade planner: the shortest chain of catalog releases from what a device runs
// to what the inventory wants, such that every release's rules hold when it is installed.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "inventory/catalog.h"

namespace labctl::inventory {

struct Hop {
  const Release* release = nullptr;  // points into the Family passed in
  Version from;
  Version to;
  // Why this hop is in the path, for the plan: for an intermediate hop the rule of a later release
  // it satisfies ("SCCP 8.5(2) first: SIP 9.4(2)SR1 requires installed >= 8.3(3): <reason>"); for
  // the last hop "target of the inventory".
  std::string reason;
};

struct PathOptions {
  bool allow_downgrade = false;  // may the target (and hops) be older than the installed version?
};

// Empty vector: the device is already at the target. Errors:
//  NotFound            target not in the family's releases
//  PreconditionFailed  target older than installed without allow_downgrade, or no chain exists;
//                      the message names the rule that blocks ("SIP 9.4(2)SR1 requires installed
//                      >= 8.3(3) ...; no release reachable from SCCP 7.2(1) satisfies it")
// Among equally short chains the result is deterministic: at each step the highest version wins.
Result<std::vector<Hop>> find_upgrade_path(const Family& family, const DeviceState& observed,
                                           const Version& target, const PathOptions& options = {});

}  // namespace labctl::inventory
