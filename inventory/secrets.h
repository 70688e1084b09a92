// Reading secrets where a device needs them, and checking how they are kept.
//
// A secret's value is read at the last moment, by the code that sends it to the device, and is
// never logged, printed or journaled. Files must not be readable by group or others.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/error.h"
#include "inventory/inventory.h"

namespace labctl::inventory {

struct SecretOptions {
  std::chrono::milliseconds command_timeout{10'000};
  std::size_t max_bytes = 64 * 1024;
};

// The secret's value. A single trailing newline (from `echo` or an editor) is removed from file
// and command output. Errors name the source (describe()), never the value.
Result<std::string> resolve_secret(const SecretRef& ref, const SecretOptions& options = {});

// Problems with how a secret is kept, for audits and `validate`: a literal in the inventory, a
// file readable by group or others, a file that does not exist. Empty when all is well.
std::vector<std::string> secret_findings(const SecretRef& ref);

}  // namespace labctl::inventory
