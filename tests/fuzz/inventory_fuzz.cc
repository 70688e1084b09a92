// libFuzzer target: arbitrary bytes as inventory YAML through the whole loader (parse, schema
// checks, references, plugin checks, catalog). It must never crash, leak or hang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "inventory/loader.h"
#include "plugins/registry.h"

#ifndef LABCTL_FUZZ_CATALOG
#define LABCTL_FUZZ_CATALOG "catalog/catalog.yaml"
#endif

namespace {

const labctl::plugins::Registry& registry() {
  static const labctl::plugins::Registry* r = [] {
    auto* reg = new labctl::plugins::Registry();
    labctl::plugins::register_builtin_plugins(*reg);
    return reg;
  }();
  return *r;
}

// The shipped catalog: $LABCTL_CATALOG when set, else the source tree's (compile definition).
const std::filesystem::path& catalog_path() {
  static const std::filesystem::path p = [] {
    const char* env = std::getenv("LABCTL_CATALOG");
    return std::filesystem::path(env != nullptr && *env != '\0' ? env : LABCTL_FUZZ_CATALOG);
  }();
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  labctl::inventory::LoadOptions opts;
  opts.catalog = catalog_path();
  auto result = labctl::inventory::load_inventory_text(text, "fuzz.yaml", "/tmp", registry(), opts);
  // Touch the outcome so the work cannot be optimised away.
  if (result.inventory.has_value() && result.diags.error_count() != 0) __builtin_trap();
  return 0;
}
