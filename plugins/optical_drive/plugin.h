// The `optical-drive` plugin: CD/DVD/BD drives through SCSI pass-through (libsgutils2), first of
// all the seed's Panasonic UJ240AS (INQUIRY vendor MATSHITA). CLI noun `drive`.
//
// Probe: INQUIRY (vendor, product, revision), the unit serial number page, TEST UNIT READY (disc,
// tray, busy) and GET CONFIGURATION (the current profile: BD, DVD, CD or none). Firmware: per
// catalog hop, six journaled steps -- verify the image, identify the drive, check that it is idle
// with no disc, WRITE BUFFER download, wait for it to come back, INQUIRY shows the new revision --
// only with the operator's consent (`accept-brick-risk`). Verbs: identify, audit, flash FILE; and
// `labctl drive scan` / `labctl drive --device PATH VERB` outside an inventory (controller/cli.cc).
#pragma once

#include "plugins/optical_drive/drive.h"
#include "plugins/sdk/plugin.h"

namespace labctl::optical_drive {

class OpticalDrivePlugin : public sdk::Plugin {
 public:
  OpticalDrivePlugin();
  const inventory::DeviceSchema& schema() const override { return schema_; }
  std::string_view cli_noun() const override { return "drive"; }
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

 private:
  Result<sdk::VerbResult> flash_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                     const sdk::json& args);
  inventory::DeviceSchema schema_;
};

// The verb argument that carries `--accept-brick-risk` from the command line.
inline constexpr const char* kConsentArg = "accept_brick_risk";

}  // namespace labctl::optical_drive
