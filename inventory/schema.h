// How a device type describes its inventory keys, so `validate` can check them with locations.
//
// A plugin's schema is data (osquery's specs in spirit): the loader checks every key of a device
// against it and reports unknown keys, wrong types, values out of range, and dangling references.
// The same description prints as documentation (`labctl plugins describe TYPE`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace labctl::inventory {

enum class Kind {
  String,     // any scalar text; min/max bound the length
  Int,        // integer; min/max bound the value
  Bool,       // true/false
  Enum,       // one of `choices`
  Secret,     // {env: NAME} | {file: PATH} | {command: [argv...]} | literal text (with a finding)
  DeviceRef,  // the name of another device; `ref_capabilities` constrain its type
  Mac,        // 00:11:22:33:44:55 (also '-' separated); stored lower-case with ':'
  Ipv4,       // dotted quad
  Version,    // a firmware version text (checked against the catalog where the device has a model)
  Duration,   // "90s", "5m", "1h", "250ms" or a plain number of seconds; stored as milliseconds
  List,       // a sequence of `item`; min/max bound the count
  Map,        // a mapping with `fields`; `open` allows keys not listed
  Path,  // a file path; relative paths resolve against the inventory's directory (stored absolute)
};

std::string_view kind_name(Kind k);  // "string", "integer", ...

struct KeySpec {
  std::string name;
  Kind kind = Kind::String;
  bool required = false;
  std::string doc;
  std::optional<std::int64_t> min, max;
  std::vector<std::string> choices;           // Enum
  std::vector<std::string> ref_capabilities;  // DeviceRef: target type offers one of these
  std::vector<KeySpec> item;                  // List: exactly one element spec
  std::vector<KeySpec> fields;                // Map
  bool open = false;                          // Map: accept unlisted keys as-is
  nlohmann::json default_value;               // filled in when the key is absent (null = none)

  // Builder-style helpers so schemas read like tables.
  KeySpec& req() {
    required = true;
    return *this;
  }
  KeySpec& describe(std::string d) {
    doc = std::move(d);
    return *this;
  }
  KeySpec& range(std::int64_t lo, std::int64_t hi) {
    min = lo;
    max = hi;
    return *this;
  }
  KeySpec& at_most(std::int64_t hi) {
    max = hi;
    return *this;
  }
  KeySpec& defaults(nlohmann::json v) {
    default_value = std::move(v);
    return *this;
  }
};

namespace key {
KeySpec string(std::string name);
KeySpec integer(std::string name);
KeySpec boolean(std::string name);
KeySpec choice(std::string name, std::vector<std::string> choices);
KeySpec secret(std::string name);
KeySpec device_ref(std::string name, std::vector<std::string> capabilities = {});
KeySpec mac(std::string name);
KeySpec ipv4(std::string name);
KeySpec version(std::string name);
KeySpec duration(std::string name);
KeySpec list(std::string name, KeySpec item);
KeySpec map(std::string name, std::vector<KeySpec> fields);
KeySpec open_map(std::string name);
KeySpec path(std::string name);
}  // namespace key

// A device type's schema: its keys (beyond the common ones every device has) and what it can do.
struct DeviceSchema {
  std::string type;                       // "supermicro-bmc", "sim-phone", ...
  std::string summary;                    // one line for listings
  std::vector<KeySpec> keys;              // plugin-specific keys
  std::vector<std::string> capabilities;  // e.g. "power" (a BMC), "hypervisor", "firmware"
  bool model_required = false;            // `model:` must be given (and known to the catalog)
  std::vector<std::string> models;        // models this type handles (empty = any)
};

}  // namespace labctl::inventory
