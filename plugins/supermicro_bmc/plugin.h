// The `supermicro-bmc` plugin: Supermicro boards' IPMI BMCs (X8SIL-F era: Winbond WPCM450, ATEN
// firmware) over IPMI 2.0 / RMCP+ through libfreeipmi (ipmi.h).
//
// Probe: Get Device ID, chassis status, users, LAN configuration, sensors from the SDR, and the
// security checks an operator wants from an audit (the factory login still accepted, an anonymous
// login, cipher suite 0). Reconcile: the inventory's login (and the factory one disabled) and LAN
// settings, each read back through a fresh session with the new credentials. Firmware: flashing
// through the BMC's web interface as journaled steps (flash.h), with the login and LAN settings
// set again after a reset to factory settings. Verbs: info, power, sensors, users, lan,
// reset-bmc, firmware verify|flash.
#pragma once

#include "plugins/sdk/plugin.h"
#include "plugins/supermicro_bmc/device_target.h"
#include "plugins/supermicro_bmc/flash.h"
#include "plugins/supermicro_bmc/ipmi.h"

namespace labctl::supermicro_bmc {

class SupermicroBmcPlugin : public sdk::Plugin {
 public:
  SupermicroBmcPlugin();
  const inventory::DeviceSchema& schema() const override { return schema_; }
  std::string_view cli_noun() const override { return "bmc"; }
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
  Result<sdk::VerbResult> firmware_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                        const sdk::json& args);
  inventory::DeviceSchema schema_;
  FlashRunner flash_;
};

}  // namespace labctl::supermicro_bmc
