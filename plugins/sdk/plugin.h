// The plugin SDK: the only API a device plugin sees.
//
// A plugin handles one device type. It describes its inventory keys (schema), probes devices
// read-only, turns firmware hops and inventory differences into steps (pure functions, so `plan`
// needs no device), and carries steps out idempotently: every executor can tell whether its effect
// is already there, so a resumed run never redoes verified work.
//
// Threading: calls for different devices may run concurrently on different threads; calls for one
// device never overlap. Plugins must not throw across this interface; failures are labctl::Error.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "inventory/catalog.h"
#include "inventory/inventory.h"
#include "inventory/loader.h"
#include "inventory/schema.h"
#include "plugins/sdk/net_hooks.h"

namespace labctl::sdk {

using inventory::Device;
using inventory::Inventory;
using nlohmann::json;

// A problem a probe found on a device (default credentials, a fan at full speed, ...).
struct Finding {
  std::string severity;  // "critical", "warning", "info"
  std::string code;      // stable identifier, e.g. "default-credentials", "fan-full-speed"
  std::string message;   // human text; never contains a secret
};

// What a device reports about itself. Read-only to obtain.
struct Observation {
  std::string model;
  std::string serial;
  std::string version;                            // installed firmware, in the family's scheme
  std::map<std::string, std::string> components;  // e.g. "bootloader" -> version, when known
  json health = json::object();                   // sensors, fans, power state: plugin's shape
  json facts = json::object();                    // anything else the plugin's steps derive from
  std::vector<Finding> findings;

  json to_json() const;
  static Result<Observation> from_json(const json& j);
};

// One unit of work on one device. Steps are data: the engine journals them, shows them in plans,
// and hands them back to the plugin's executor, possibly in another process after a crash.
struct Step {
  std::string key;     // unique within the device's plan and stable across runs: "flash@1.04"
  std::string action;  // executor name: "stage", "flash", "wait-online", "verify", ...
  std::string title;   // "flash 1.04 (hop 1/2)"
  std::string reason;  // why this step is needed; shown by `plan`
  json args = json::object();            // what the executor needs; never secrets
  int weight = 1;                        // relative duration, for one honest progress bar
  bool writes = true;                    // changes the device (false: waits and read-backs)
  int hop = 0, hops = 0;                 // 1-based hop index and count, 0 for non-firmware steps
  std::chrono::milliseconds timeout{0};  // 0: the engine's default

  json to_json() const;
  static Result<Step> from_json(const json& j);
};

// One firmware hop the planner chose, as the plugin sees it.
struct HopInfo {
  const inventory::Release* release = nullptr;
  inventory::Version from, to;
  int index = 1, count = 1;  // 1-based
  std::string reason;
};

// A firmware file of a catalog release, from labctl's firmware store, re-hashed against its pin
// when it was handed out.
struct FirmwareImage {
  std::string name;    // as the catalog names it ("jar11sip.9-4-2ES9.sbn")
  std::string sha256;  // lower-case hex, equal to the pin
  std::uint64_t size = 0;
  std::filesystem::path path;  // the store's blob (read-only; never modify it)
};

struct VerbResult;

struct TftpServiceInfo {
  std::filesystem::path event_log;  // its JSON event log; empty when the device has no segment
  bool running = false;             // a `labctl serve` runs now and serves the segment
  std::string holder;               // what that process says about itself (pid, segments)
};

// Everything a plugin may use to reach the outside world while working on a device.
class DeviceContext {
 public:
  virtual ~DeviceContext() = default;
  // The value of the secret at `pointer` in the device's params (e.g. "/credentials/password").
  virtual Result<std::string> secret(const Device& device, const std::string& pointer) = 0;
  // A directory private to this plugin type that survives runs (simulated devices keep state).
  virtual std::filesystem::path plugin_state_dir() const = 0;
  virtual const inventory::Catalog* catalog() const = 0;
  // Progress of the current step: bytes or units done of total (0 = unknown), and a short note.
  virtual void progress(std::uint64_t done, std::uint64_t total, std::string_view note) = 0;
  // The operator asked to stop: finish or abandon the current wait promptly.
  virtual bool cancelled() const = 0;
  virtual void log(std::string_view message) = 0;
  // Sleep up to `d`, waking early on cancellation. Returns false when cancelled.
  bool sleep_for(std::chrono::milliseconds d);
  // Every file the catalog lists for `release` of `family`, from the firmware store, each re-hashed
  // and equal to its pin (and to the catalog's sha256 when it gives one). NotFound names the
  // bundle to import when a file is missing; VerifyMismatch when a blob does not match.
  virtual Result<std::vector<FirmwareImage>> firmware_images(const inventory::Family& family,
                                                             const inventory::Release& release);
  // The TFTP service of the device's segment, as `labctl serve` runs it.
  virtual TftpServiceInfo tftp_service(const Device& device) const;
  // Runs a verb of another device of the inventory, named `device`, through the agent that serves
  // it: a hypervisor powers its host through the host's BMC without knowing the BMC's type.
  // NotSupported where the context has no inventory (the default).
  virtual Result<VerbResult> run_device_verb(const std::string& device, const std::string& verb,
                                             const json& args);
};

// A per-device CLI verb: `labctl bmc server1 power cycle`.
struct VerbArg {
  std::string name;
  std::string help;
  bool required = true;
  std::vector<std::string> choices;  // empty = free text
};
struct VerbSpec {
  std::string name;     // "power", "sensors", "info"
  std::string summary;  // one line for --help
  std::vector<VerbArg> args;
  bool writes = false;  // changes the device: the CLI says so in --help
};
struct VerbResult {
  json data = json::object();  // what --json prints
  std::string text;            // what a person reads
};

class Plugin {
 public:
  virtual ~Plugin() = default;

  // Type name, keys, capabilities, models. `schema().type` is the registry key.
  virtual const inventory::DeviceSchema& schema() const = 0;
  const std::string& type() const { return schema().type; }
  // The CLI noun whose verbs this type answers ("bmc", "phone", "hypervisor", "drive").
  virtual std::string_view cli_noun() const = 0;
  // Checks beyond the schema, on a structurally valid inventory (see inventory::SchemaSource).
  virtual void check_device(const Device&, const Inventory&, inventory::DeviceReport&) const {}

  // Pure planning. The steps that carry out one firmware hop; NotSupported when this type does
  // not install firmware (the plan shows the device as blocked, with the message).
  virtual Result<std::vector<Step>> hop_steps(const Device& device, const HopInfo& hop) const;
  // Steps that bring non-firmware state to what the inventory says (credentials, VMs), given what
  // the device reported and the firmware steps already planned (which may do part of the work,
  // e.g. re-provision after a factory reset). Run after those firmware steps.
  virtual std::vector<Step> reconcile_steps(const Device& device, const Observation& obs,
                                            const std::vector<Step>& firmware_steps) const;

  // Device I/O.
  virtual Result<Observation> probe(DeviceContext& ctx, const Device& device) = 0;
  // Whether the step's effect is already in place (idempotence; used before retrying a step that
  // was running when a run was interrupted, and to skip work that is already done).
  virtual Result<bool> step_done(DeviceContext& ctx, const Device& device, const Step& step) = 0;
  virtual Status run_step(DeviceContext& ctx, const Device& device, const Step& step) = 0;

  virtual std::vector<VerbSpec> verbs() const { return {}; }
  virtual Result<VerbResult> run_verb(DeviceContext& ctx, const Device& device,
                                      const std::string& verb, const json& args);

  // Network hooks (DHCP options, TFTP virtual files, watchers); nullptr when the type has none.
  virtual NetHooks* net_hooks() { return nullptr; }
};

}  // namespace labctl::sdk
