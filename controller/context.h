// What every command needs: the plugin registry, the inventory, the state store, the agents.
#pragma once

#include <atomic>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "agents/agent.h"
#include "controller/state_store.h"
#include "inventory/loader.h"
#include "plugins/registry.h"

namespace labctl::controller {

struct GlobalOptions {
  std::string state_dir;  // --state-dir; "" = default_state_dir()
  std::string catalog;    // --catalog; "" = the inventory's or the shipped one
  bool quiet = false;
  int verbose = 0;
};

class Context {
 public:
  explicit Context(GlobalOptions options);

  const GlobalOptions& options() const { return options_; }
  const plugins::Registry& registry() const { return registry_; }
  std::filesystem::path state_dir() const;

  // Loads and validates; prints every diagnostic to `err`. nullopt when invalid.
  std::optional<inventory::Inventory> load_inventory(const std::string& path, std::ostream& err,
                                                     inventory::Diagnostics* diags_out = nullptr);
  Result<StateStore*> store();
  // Agents for an inventory: the embedded one for "local"; others are not connected yet.
  agents::AgentSet& agents(const inventory::Inventory& inv);

  std::atomic<bool>& cancel_flag() { return cancel_; }

 private:
  GlobalOptions options_;
  plugins::Registry registry_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<agents::AgentSet> agents_;
  std::atomic<bool> cancel_{false};
};

// sha256 of a file's bytes, lower-case hex ("" when unreadable).
std::string file_sha256(const std::filesystem::path& path);

}  // namespace labctl::controller
