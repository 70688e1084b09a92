// libFuzzer target: arbitrary bytes as a firmware catalog. It must never crash, leak or hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "inventory/catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  labctl::inventory::Diagnostics diags;
  auto catalog = labctl::inventory::load_catalog_text(text, "fuzz-catalog.yaml", diags);
  // A catalog is returned only when there were no errors.
  if (catalog.has_value() && diags.error_count() != 0) __builtin_trap();
  if (catalog) {
    // Exercise the lookups on whatever was loaded.
    for (const auto& family : catalog->families) {
      for (const auto& model : family.models)
        if (catalog->family_for_model(model) == nullptr) __builtin_trap();
      for (const auto& release : family.releases) {
        (void)family.find(release.version);
        for (const auto& rule : release.requires_)
          (void)rule.describe();
      }
    }
  }
  return 0;
}
