// The `cisco-phone` plugin: Cisco Unified IP Phone 7906G / 7911G (SCCP and SIP loads).
//
// This first part validates the inventory before anything runs (SIP password against the model's
// limit from the catalog, phone label, duplicate extensions), probes a phone through its web
// server (DeviceInformationX: running load, bootloader, model, MAC) and renders its configuration
// files. Staged upgrades (publish through labctl's TFTP service, trigger, watch the phone's
// requests) are the next part: until then hop_steps says so and the plan shows the phone blocked.
#pragma once

#include "plugins/sdk/plugin.h"

namespace labctl::cisco_phone {

class CiscoPhonePlugin : public sdk::Plugin {
 public:
  CiscoPhonePlugin();
  const inventory::DeviceSchema& schema() const override { return schema_; }
  std::string_view cli_noun() const override { return "phone"; }
  void check_device(const sdk::Device& device, const sdk::Inventory& inv,
                    inventory::DeviceReport& report) const override;
  Result<std::vector<sdk::Step>> hop_steps(const sdk::Device& device,
                                           const sdk::HopInfo& hop) const override;
  Result<sdk::Observation> probe(sdk::DeviceContext& ctx, const sdk::Device& device) override;
  Result<bool> step_done(sdk::DeviceContext& ctx, const sdk::Device& device,
                         const sdk::Step& step) override;
  Status run_step(sdk::DeviceContext& ctx, const sdk::Device& device,
                  const sdk::Step& step) override;
  std::vector<sdk::VerbSpec> verbs() const override;
  Result<sdk::VerbResult> run_verb(sdk::DeviceContext& ctx, const sdk::Device& device,
                                   const std::string& verb, const sdk::json& args) override;
  sdk::NetHooks* net_hooks() override { return &hooks_; }

  // TFTP virtual files: each phone of the inventory gets its own SEP<MAC>.cnf.xml, rendered from
  // the inventory (password from its secret, loadInformation the firmware target) -- only when
  // the request comes from the phone's own address (the file carries its SIP secret).
  class Hooks : public sdk::NetHooks {
   public:
    void attach(const inventory::Inventory* inv) override { inv_ = inv; }
    std::optional<std::string> tftp_virtual_file(const sdk::TftpRequestInfo& request) override;

   private:
    const inventory::Inventory* inv_ = nullptr;
  };

 private:
  inventory::DeviceSchema schema_;
  Hooks hooks_;
};

}  // namespace labctl::cisco_phone
