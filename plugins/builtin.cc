// The explicit list of plugins built into labctl. Add a plugin here, nowhere else.
#include "plugins/cisco_phone/plugin.h"
#include "plugins/esxi/plugin.h"
#include "plugins/optical_drive/plugin.h"
#include "plugins/registry.h"
#include "plugins/sim/sim_plugin.h"
#include "plugins/supermicro_bmc/plugin.h"

namespace labctl::plugins {

void register_builtin_plugins(Registry& registry) {
  for (auto kind : {sim::Kind::Bmc, sim::Kind::Phone, sim::Kind::Hypervisor, sim::Kind::Drive})
    registry.add(std::make_unique<sim::SimPlugin>(kind));
  registry.add(std::make_unique<cisco_phone::CiscoPhonePlugin>());
  registry.add(std::make_unique<supermicro_bmc::SupermicroBmcPlugin>());
  registry.add(std::make_unique<esxi::EsxiPlugin>());
  registry.add(std::make_unique<optical_drive::OpticalDrivePlugin>());
}

}  // namespace labctl::plugins
