// The firmware catalog: what firmware exists per device family, and the rules for installing it.
//
// Upgrade-path rules are data here, never code in plugins (fwupd's requirements, LVFS style).
// The file format is documented in catalog/README.md; the shipped catalog is catalog/catalog.yaml.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "inventory/diagnostics.h"
#include "inventory/version.h"

namespace labctl::inventory {

// What the planner knows about a device at one point of a path.
struct DeviceState {
  Version version;                            // the installed firmware (for Cisco: with protocol)
  std::map<std::string, Version> components;  // e.g. "bootloader" -> version, when known
};

// One `requires` entry of a release. All of a release's rules must hold for the state the device
// is in just before installing it.
struct Rule {
  enum class Kind {
    Installed,  // installed version within [min, max] (either bound optional, both inclusive)
    Component,  // a named component's version within [min, max]; unknown component fails
    Protocol,   // installed protocol is one of `protocols`
  };
  Kind kind = Kind::Installed;
  std::string component;               // Kind::Component
  std::optional<Version> min, max;     // Installed / Component
  std::vector<std::string> protocols;  // Kind::Protocol, lower-case
  std::string reason;                  // why the rule exists, shown in plans
  Mark mark;

  bool holds(const DeviceState& state) const;
  // "installed >= SCCP 8.3(3)", "bootloader in [a, b]", "protocol sccp".
  std::string describe() const;
};

struct FirmwareFile {
  std::string name;
  std::optional<std::string> sha256;  // lower-case hex; nullopt = pin on first import
  std::optional<std::uint64_t> size;
  std::vector<std::string> mirrors;  // URLs to fetch from
  // Optional extraction from a vendor container (e.g. a Windows updater): byte range and checksum.
  std::optional<std::uint64_t> offset, length;
};

struct Release {
  Version version;
  std::string protocol;  // "" when the family has no protocols
  std::string bundle;    // vendor bundle name, e.g. cmterm-7911_7906-sccp.8-5-2.cop.sgn
  std::vector<FirmwareFile> files;
  std::vector<Rule> requires_;
  std::map<std::string, Version> provides;  // components this release installs
  std::string notes;
  nlohmann::json options;  // plugin-specific install options (e.g. reset-to-factory)
  Mark mark;
};

struct Family {
  std::string name;                 // "cisco-7906-7911"
  std::vector<std::string> models;  // "CP-7906G", "CP-7911G"
  VersionScheme scheme = VersionScheme::Dotted;
  std::vector<Release> releases;  // sorted by version, oldest first
  nlohmann::json quirks;          // per-family data for plugins (e.g. sip-password-max)
  Mark mark;

  const Release* find(const Version& v) const;       // same_version match
  const Release* find(std::string_view text) const;  // parsed with the family scheme
};

struct Catalog {
  std::string file;  // where it was loaded from (for diagnostics)
  std::vector<Family> families;

  // Case-insensitive model match; nullptr when no family lists the model.
  const Family* family_for_model(std::string_view model) const;
  const Family* family(std::string_view name) const;
};

// Loads and checks a catalog. Every problem goes to `diags` with its location; the catalog is
// returned only when there were no errors. Checks: known keys only (did-you-mean), versions parse
// under the family scheme, no duplicate versions or models, sha256 is 64 hex digits or "pin",
// rule bounds parse, `provides` components parse.
std::optional<Catalog> load_catalog(const std::filesystem::path& path, Diagnostics& diags);
std::optional<Catalog> load_catalog_text(const std::string& text, const std::string& display_name,
                                         Diagnostics& diags);

// The catalog shipped with labctl: $LABCTL_CATALOG, else the source tree's catalog/catalog.yaml
// (development builds), else the installed data directory.
std::filesystem::path default_catalog_path();

}  // namespace labctl::inventory
