// The `vms:` list that hypervisor types share (sim-hypervisor, esxi): each VM a mapping with a
// `name` and an `after:` list of VMs of the same host that must be running before it starts.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "inventory/loader.h"

namespace labctl::sdk {

// Orders VMs so that every VM comes after the VMs it lists in `after` (inventory order
// otherwise); names that are not VMs of the host do not hold a VM back. VMs in a cycle are
// appended last in inventory order and, when `stuck` is given, listed there (check_vm_list
// refuses such inventories, so planning never sees them).
std::vector<const nlohmann::json*> vm_start_order(
    const nlohmann::json& vms, std::vector<const nlohmann::json*>* stuck = nullptr);

// Reports, at the key (`pointer` is the list's JSON pointer, "/vms"): a VM listed twice, an
// `after:` naming no VM of this host, VMs that wait for each other in a cycle.
void check_vm_list(const nlohmann::json& vms, const std::string& pointer,
                   inventory::DeviceReport& report);

}  // namespace labctl::sdk
