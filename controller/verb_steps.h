// Plugin verbs that do long, device-changing work (`labctl bmc NAME firmware flash FILE`) hand
// their steps back in the verb's result ("run_steps") instead of doing the work inside the verb.
// They run here like apply's: journaled in the state store as a run of kind "verb", resumed by
// running the same command again, shown by `labctl history`, with apply's progress display.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "controller/context.h"
#include "inventory/inventory.h"

namespace labctl::controller {

// Runs data["run_steps"] on `dev` as a journaled run named `run_key` (the command and its
// target: an unfinished run with the same key and the same steps is resumed). Prints progress
// (to stderr with `json`), then the outcome; returns the exit code.
int run_verb_steps(Context& ctx, const inventory::Inventory& inv, const inventory::Device& dev,
                   const std::string& run_key, const nlohmann::json& data, bool json);

}  // namespace labctl::controller
