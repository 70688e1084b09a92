// The Agent interface: how the controller reaches devices. The controller never touches hardware
// itself; it asks an agent, which hosts the plugins' device sessions (and, near the devices, the
// network services). The embedded LocalAgent runs in the labctl process; a remote agent speaks
// the same interface over HTTPS with mutual TLS (libvirt's remote driver in spirit).
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/error.h"
#include "plugins/registry.h"
#include "plugins/sdk/plugin.h"

namespace labctl::agents {

// Step progress, as the plugin reports it.
using ProgressFn =
    std::function<void(std::uint64_t done, std::uint64_t total, std::string_view note)>;

// How the engine bounds one step: the plugin sees cancelled() once `cancel` is set or the
// deadline has passed, and its waits end early.
struct StepControl {
  const std::atomic<bool>* cancel = nullptr;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  ProgressFn progress;
};

class Agent {
 public:
  virtual ~Agent() = default;
  virtual std::string name() const = 0;
  virtual Result<sdk::Observation> probe(const sdk::Device& device) = 0;
  virtual Result<bool> step_done(const sdk::Device& device, const sdk::Step& step) = 0;
  virtual Status run_step(const sdk::Device& device, const sdk::Step& step,
                          const StepControl& control) = 0;
  virtual Result<sdk::VerbResult> run_verb(const sdk::Device& device, const std::string& verb,
                                           const sdk::json& args) = 0;
};

struct LocalAgentOptions {
  std::filesystem::path state_dir;  // plugin state lives in state_dir/plugins/<type>
  const inventory::Catalog* catalog = nullptr;
  const std::atomic<bool>* cancel = nullptr;  // set by SIGINT handling; may be null
  // The verified files of a release from the firmware store (DeviceContext::firmware_images);
  // unset: NotSupported.
  std::function<Result<std::vector<sdk::FirmwareImage>>(const inventory::Family&,
                                                        const inventory::Release&)>
      firmware;
  // Another device's verb by its inventory name (DeviceContext::run_device_verb); unset:
  // NotSupported.
  std::function<Result<sdk::VerbResult>(const std::string& device, const std::string& verb,
                                        const sdk::json& args)>
      device_verb;
};

// The agent embedded in the labctl process: calls the registered plugins directly.
class LocalAgent : public Agent {
 public:
  LocalAgent(const plugins::Registry& registry, LocalAgentOptions options);
  std::string name() const override { return "local"; }
  Result<sdk::Observation> probe(const sdk::Device& device) override;
  Result<bool> step_done(const sdk::Device& device, const sdk::Step& step) override;
  Status run_step(const sdk::Device& device, const sdk::Step& step,
                  const StepControl& control) override;
  Result<sdk::VerbResult> run_verb(const sdk::Device& device, const std::string& verb,
                                   const sdk::json& args) override;

 private:
  Result<sdk::Plugin*> plugin_for(const sdk::Device& device) const;
  const plugins::Registry& registry_;
  LocalAgentOptions options_;
};

// Which agent serves which device: the inventory's `agent:` key; "local" is the embedded one.
class AgentSet {
 public:
  explicit AgentSet(std::unique_ptr<Agent> local);
  void add(std::unique_ptr<Agent> agent);
  // The agent for a device; Unreachable when the inventory names an agent that is not connected.
  Result<Agent*> for_device(const sdk::Device& device);
  // The agent called `name`; nullptr when there is none.
  Agent* get(const std::string& name);

 private:
  std::map<std::string, std::unique_ptr<Agent>> agents_;
};

}  // namespace labctl::agents
