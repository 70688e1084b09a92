// `labctl drive scan` and `labctl drive --device PATH VERB`: the optical drive commands that need
// no inventory (plugins/optical_drive/README.md).
#pragma once

#include <optional>
#include <string>

#include "controller/context.h"
#include "inventory/inventory.h"

namespace labctl::controller {

// Lists the optical drives under `sysfs` (default "/sys"): exit 0, also when there is none (it
// says so, and why: no SCSI generic driver, or no device of type 5).
int cmd_drive_scan(const std::string& sysfs, bool json);

// A one-device inventory for a drive in no inventory: the device at `path` (/dev/sgN, /dev/srN,
// emulator:SOCKET), type optical-drive, no model (identified by what INQUIRY says), with the
// catalog (--catalog or the shipped one) so audit and flash find its family. The device's name
// is the path's last component. nullopt after printing why.
std::optional<inventory::Inventory> adhoc_drive_inventory(Context& ctx, const std::string& path,
                                                          std::string& device_name);

}  // namespace labctl::controller
