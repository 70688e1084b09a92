// The `cisco-phone` plugin: Cisco Unified IP Phone 7906G / 7911G (SCCP and SIP loads).
//
// Validates the inventory before anything runs (SIP password against the model's limit from the
// catalog, phone label, duplicate extensions), probes a phone through its web server
// (DeviceInformationX: running load, bootloader, model, MAC), renders its configuration files,
// and upgrades it in stages: per hop, publish the load to this phone through labctl's TFTP
// service, trigger (check-sync, or the operator's restart), watch its requests (upgrade.h).
#pragma once

#include <atomic>
#include <functional>
#include <optional>

#include "plugins/cisco_phone/upgrade.h"
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

  // What `labctl serve` gives each phone of the inventory over TFTP, by the address it asks from
  // (the inventory's ip, else the MAC the DHCP service leased it to):
  //  - SEP<MAC>.cnf.xml, rendered when asked (password from its secret; loadInformation the load
  //    published to the phone, none when nothing is published) -- only to the phone itself, since
  //    the file carries its SIP secret;
  //  - while a load is published to it (upgrade.h): its term file and the load's files, straight
  //    from the firmware store; other phones keep what the static root has.
  class Hooks : public sdk::NetHooks {
   public:
    void attach(const sdk::ServiceEnv& env) override { env_ = env; }
    std::optional<std::string> tftp_virtual_file(const sdk::TftpRequestInfo& request) override;
    std::optional<std::filesystem::path> tftp_published_file(
        const sdk::TftpRequestInfo& request) override;

   private:
    const sdk::Device* phone_at(std::uint32_t ip) const;
    std::optional<Publication> publication_of(const sdk::Device& d) const;
    sdk::ServiceEnv env_;
  };

 private:
  Result<sdk::Observation> probe_until(sdk::DeviceContext& ctx, const sdk::Device& d,
                                       std::chrono::milliseconds bound,
                                       const std::function<bool(const sdk::Observation&)>& good);
  Result<std::optional<Publication>> publication(sdk::DeviceContext& ctx,
                                                 const sdk::Device& d) const;
  // The publication of `load` for this phone; PreconditionFailed when another (or none) is.
  Result<Publication> published(sdk::DeviceContext& ctx, const sdk::Device& d,
                                const std::string& load) const;
  Status publish(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step);
  Status trigger(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step);
  Status watch(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step);
  Status verify(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step);
  Result<sdk::VerbResult> doctor(sdk::DeviceContext& ctx, const sdk::Device& d);

  inventory::DeviceSchema schema_;
  Hooks hooks_;
  std::atomic<bool> instructions_shown_{false};  // the operator's restart procedure, once
};

}  // namespace labctl::cisco_phone
