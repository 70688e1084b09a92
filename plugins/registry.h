// The plugin registry: every device type labctl knows, registered at build time from an explicit
// list (plugins/builtin.cc) — no static-initialiser tricks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "plugins/sdk/plugin.h"

namespace labctl::plugins {

class Registry : public inventory::SchemaSource {
 public:
  void add(std::unique_ptr<sdk::Plugin> plugin);
  sdk::Plugin* find(std::string_view type) const;
  const std::vector<std::unique_ptr<sdk::Plugin>>& all() const { return plugins_; }
  // Plugins answering a CLI noun ("bmc": supermicro-bmc, sim-bmc).
  std::vector<sdk::Plugin*> for_noun(std::string_view noun) const;

  // inventory::SchemaSource
  const inventory::DeviceSchema* schema(std::string_view type) const override;
  std::vector<std::string> types() const override;
  void check_device(const inventory::Device& device, const inventory::Inventory& inv,
                    inventory::DeviceReport& report) const override;

 private:
  std::vector<std::unique_ptr<sdk::Plugin>> plugins_;
};

// Registers every plugin built into labctl.
void register_builtin_plugins(Registry& registry);

}  // namespace labctl::plugins
