// The esxi plugin's pure half: what the inventory asks of a host (HostSpec, read from a device's
// params with the schema's defaults, so ad hoc devices from `--uri` read the same) and the steps
// that bring the host's VMs there from what a probe saw. No I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugins/sdk/plugin.h"

namespace labctl::esxi {

inline constexpr std::int64_t kDefaultShutdownTimeoutMs = 180'000;  // Windows guests are slow
inline constexpr std::int64_t kDefaultPowerWaitMs = 600'000;        // an ESXi boot takes minutes

struct VmSpec {
  std::string name;
  std::string state = "running";  // running, stopped, absent
  bool autostart = false;
  std::vector<std::string> after;
  std::string template_path;  // absolute (the loader resolved it); "" = none
  bool allow_destroy = false;
  bool snapshot_before_destroy = false;
  std::int64_t shutdown_timeout_ms = kDefaultShutdownTimeoutMs;
  std::int64_t boot_wait_ms = 0;
};

struct HostSpec {
  std::string uri;  // what libvirt is given: the inventory's, or esx://IP/, plus no_verify=1
  bool no_verify = false;
  std::string user;
  bool has_password = false;
  std::string bmc;  // the device that powers the host ("" = none)
  std::int64_t power_wait_ms = kDefaultPowerWaitMs;
  bool report_unexpected = true;
  std::vector<VmSpec> vms;  // inventory order
  VmSpec defaults;          // the host's shutdown-timeout, allow-destroy, snapshot-before-destroy

  // The VM's settings; the host's defaults for a VM the inventory does not list.
  VmSpec vm(const std::string& name) const;
};

HostSpec host_spec(const sdk::Device& device);

// The URI a device's connection uses. no_verify=1 is added for vSphere URIs when `no_verify`.
std::string effective_uri(const sdk::Device& device);

// Steps, in the order they must run: first the VMs that go down or away, in reverse start order
// (a VM before the VMs it starts after), then definitions, autostart and starts in start order
// (`after:`), so the DNS VM the host needs is up before the VMs that resolve names through it.
// `have` is the probe's facts.vms ({name: {state, autostart, ...}}).
std::vector<sdk::Step> plan_vms(const HostSpec& spec, const nlohmann::json& have);

// Step actions.
inline constexpr const char* kDefine = "vm-define";
inline constexpr const char* kUndefine = "vm-undefine";
inline constexpr const char* kSnapshot = "vm-snapshot";
inline constexpr const char* kAutostart = "vm-autostart";
inline constexpr const char* kStart = "vm-start";
inline constexpr const char* kStop = "vm-stop";
// The snapshot a vm-snapshot step takes before a VM is removed.
inline constexpr const char* kSnapshotBeforeUndefine = "labctl-before-undefine";

}  // namespace labctl::esxi
