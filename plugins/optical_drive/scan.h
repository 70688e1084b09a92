// `labctl drive scan`: the optical drives this machine has, from sysfs. Every SCSI generic device
// is /sys/class/scsi_generic/sgN; its `device/` is the SCSI device with the kernel's copy of the
// INQUIRY strings (vendor, model, rev) and peripheral device type (`type`, 5 for CD/DVD/BD
// drives), and `device/block/srN` names its block device. Nothing is opened: a scan never wakes a
// drive or needs root.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace labctl::optical_drive {

struct ScannedDevice {
  std::string sg;     // "/dev/sg1"
  std::string block;  // "/dev/sr0", "" when none
  std::string hctl;   // "1:0:0:0" (host:channel:target:lun), "" when unknown
  int type = -1;      // peripheral device type, -1 when unreadable
  std::string vendor, model, revision;
  bool optical() const { return type == 5; }
  nlohmann::json to_json() const;
};

struct ScanResult {
  std::filesystem::path dir;                  // the scsi_generic directory read
  bool class_present = false;                 // the directory exists (the sg driver is there)
  std::vector<ScannedDevice> all;             // every SCSI generic device, by number
  std::vector<ScannedDevice> drives() const;  // the optical ones
};

// Reads `<sysfs>/class/scsi_generic`; `sysfs` is "/sys" on a running system (tests pass a tree of
// their own). At most 4096 devices; unreadable attributes are left empty.
Result<ScanResult> scan_sysfs(const std::filesystem::path& sysfs);

}  // namespace labctl::optical_drive
