// A simulated device's state, kept in a JSON file so that it survives the labctl process: a run
// killed mid-flash and resumed sees the same device, and tests can count every write.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace labctl::sim {

// Reads the state file; an absent file gives an empty object (a device never touched).
Result<nlohmann::json> load_state(const std::filesystem::path& file);
// Replaces the state file atomically (write to a temporary, fsync, rename, fsync the directory),
// so a kill at any moment leaves either the old state or the new one.
Status save_state(const std::filesystem::path& file, const nlohmann::json& state);

}  // namespace labctl::sim
