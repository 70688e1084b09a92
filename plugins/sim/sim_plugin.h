// Simulated devices: a BMC, an IP phone, a hypervisor and an optical drive that behave like the
// real ones at the plugin interface — scripted firmware versions, delays, injectable failures —
// and count every write. The example lab runs on them anywhere; the engine's tests use them to
// prove that a resumed run writes each thing exactly once (libvirt's test driver in spirit).
//
// Each device keeps its state in <plugin state dir>/<device>.json (see sim_state.h), so the
// simulated hardware outlives the labctl process, as real hardware does.
#pragma once

#include <mutex>

#include "plugins/sdk/plugin.h"

namespace labctl::sim {

enum class Kind { Bmc, Phone, Hypervisor, Drive };

class SimPlugin : public sdk::Plugin {
 public:
  explicit SimPlugin(Kind kind);

  const inventory::DeviceSchema& schema() const override { return schema_; }
  std::string_view cli_noun() const override;
  void check_device(const sdk::Device& device, const sdk::Inventory& inv,
                    inventory::DeviceReport& report) const override;

  Result<std::vector<sdk::Step>> hop_steps(const sdk::Device& device,
                                           const sdk::HopInfo& hop) const override;
  std::vector<sdk::Step> reconcile_steps(
      const sdk::Device& device, const sdk::Observation& obs,
      const std::vector<sdk::Step>& firmware_steps) const override;

  Result<sdk::Observation> probe(sdk::DeviceContext& ctx, const sdk::Device& device) override;
  Result<bool> step_done(sdk::DeviceContext& ctx, const sdk::Device& device,
                         const sdk::Step& step) override;
  Status run_step(sdk::DeviceContext& ctx, const sdk::Device& device,
                  const sdk::Step& step) override;

  std::vector<sdk::VerbSpec> verbs() const override;
  Result<sdk::VerbResult> run_verb(sdk::DeviceContext& ctx, const sdk::Device& device,
                                   const std::string& verb, const sdk::json& args) override;

 private:
  Kind kind_;
  inventory::DeviceSchema schema_;
};

}  // namespace labctl::sim
