// Loading and validating an inventory: every problem reported with file:line:column.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "inventory/diagnostics.h"
#include "inventory/inventory.h"
#include "inventory/schema.h"

namespace labctl::inventory {

// Reports problems found by a plugin's own checks at positions inside a device.
class DeviceReport {
 public:
  DeviceReport(Diagnostics& diags, const std::string& file, const Device& device)
      : diags_(diags), file_(file), device_(device) {}
  // `pointer` is a JSON pointer into the device's params ("/sip/password"), or "" for the device.
  void error(const std::string& pointer, std::string message);
  void warning(const std::string& pointer, std::string message);

 private:
  Diagnostics& diags_;
  const std::string& file_;
  const Device& device_;
};

// What the loader needs to know about device types: their schemas, and checks beyond a schema.
class SchemaSource {
 public:
  virtual ~SchemaSource() = default;
  virtual const DeviceSchema* schema(std::string_view type) const = 0;
  virtual std::vector<std::string> types() const = 0;
  // Semantic checks that need the whole inventory or the catalog (a phone's SIP password against
  // its model's limit). Called once per device that passed the schema checks.
  virtual void check_device(const Device& /*device*/, const Inventory& /*inv*/,
                            DeviceReport& /*report*/) const {}
  // Capabilities of a type (for references), empty when unknown.
  std::vector<std::string> capabilities(std::string_view type) const;
};

struct LoadOptions {
  // Use this catalog instead of the one the inventory names (or the default).
  std::optional<std::filesystem::path> catalog;
  // Inputs larger than this are refused before parsing.
  std::size_t max_bytes = 64u << 20;
};

struct LoadResult {
  std::optional<Inventory> inventory;  // set only when diags has no errors
  Diagnostics diags;
};

LoadResult load_inventory(const std::filesystem::path& path, const SchemaSource& schemas,
                          const LoadOptions& options = {});
// For tests and fuzzing: `display_name` is what diagnostics call the file; relative paths in the
// inventory resolve against `base_dir`.
LoadResult load_inventory_text(const std::string& text, const std::string& display_name,
                               const std::filesystem::path& base_dir, const SchemaSource& schemas,
                               const LoadOptions& options = {});

}  // namespace labctl::inventory
