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
  // Agents for an inventory: the embedded one for "local", and a remote driver for each agent the
  // inventory defines (connected on first use).
  agents::AgentSet& agents(const inventory::Inventory& inv);
  // Where an agent's client certificate, key and CA are: its `pki:`, $LABCTL_AGENT_PKI, or
  // STATE/agent-pki.
  std::filesystem::path agent_pki_dir(const inventory::AgentDef& agent) const;

  std::atomic<bool>& cancel_flag() { return cancel_; }

 private:
  GlobalOptions options_;
  plugins::Registry registry_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<agents::AgentSet> agents_;
  std::atomic<bool> cancel_{false};
};

// A whole file's bytes ("" when unreadable).
std::string read_text(const std::filesystem::path& path);
// sha256 of a file's bytes, lower-case hex ("" when unreadable).
std::string file_sha256(const std::filesystem::path& path);

}  // namespace labctl::controller
