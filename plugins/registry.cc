#include "plugins/registry.h"

#include <stdexcept>

namespace labctl::plugins {

void Registry::add(std::unique_ptr<sdk::Plugin> plugin) {
  if (find(plugin->type()))
    throw std::logic_error("plugin type registered twice: " + plugin->type());
  plugins_.push_back(std::move(plugin));
}

sdk::Plugin* Registry::find(std::string_view type) const {
  for (const auto& p : plugins_)
    if (p->type() == type) return p.get();
  return nullptr;
}

std::vector<sdk::Plugin*> Registry::for_noun(std::string_view noun) const {
  std::vector<sdk::Plugin*> out;
  for (const auto& p : plugins_)
    if (p->cli_noun() == noun) out.push_back(p.get());
  return out;
}

const inventory::DeviceSchema* Registry::schema(std::string_view type) const {
  auto* p = find(type);
  return p ? &p->schema() : nullptr;
}

std::vector<std::string> Registry::types() const {
  std::vector<std::string> out;
  for (const auto& p : plugins_)
    out.push_back(p->type());
  return out;
}

void Registry::check_device(const inventory::Device& device, const inventory::Inventory& inv,
                            inventory::DeviceReport& report) const {
  if (auto* p = find(device.type)) p->check_device(device, inv, report);
}

}  // namespace labctl::plugins
