#include "controller/drive_commands.h"

#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "plugins/optical_drive/scan.h"
#include "plugins/optical_drive/transport.h"

namespace labctl::controller {

int cmd_drive_scan(const std::string& sysfs, bool as_json) {
  const std::string root = sysfs.empty() ? "/sys" : sysfs;
  auto r = optical_drive::scan_sysfs(root);
  if (!r) {
    std::cerr << "labctl drive scan: " << r.error().message() << "\n";
    return 1;
  }
  const auto drives = r->drives();
  if (as_json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& d : drives)
      list.push_back(d.to_json());
    std::cout << nlohmann::json{{"sysfs", root},
                                {"scsi_generic", r->dir.string()},
                                {"sg_driver", r->class_present},
                                {"devices", r->all.size()},
                                {"drives", list}}
                     .dump(2)
              << "\n";
    return 0;
  }
  if (!r->class_present) {
    std::cout << "no optical drives: " << r->dir.string()
              << " does not exist (no SCSI generic driver: modprobe sg)\n";
    return 0;
  }
  if (drives.empty()) {
    std::cout << "no optical drives: " << r->all.size() << " SCSI generic device"
              << (r->all.size() == 1 ? "" : "s") << " in " << r->dir.string()
              << (r->all.empty() ? "" : ", none of type 5 (CD/DVD/BD)") << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(11) << "DEVICE" << std::setw(10) << "BLOCK" << std::setw(10)
            << "H:C:T:L" << std::setw(10) << "VENDOR" << std::setw(18) << "MODEL"
            << "REVISION\n";
  for (const auto& d : drives)
    std::cout << std::setw(11) << d.sg << std::setw(10) << (d.block.empty() ? "-" : d.block)
              << std::setw(10) << (d.hctl.empty() ? "-" : d.hctl) << std::setw(10) << d.vendor
              << std::setw(18) << d.model << d.revision << "\n";
  return 0;
}

std::optional<inventory::Inventory> adhoc_drive_inventory(Context& ctx, const std::string& path,
                                                          std::string& device_name) {
  const std::string where = "labctl drive --device";
  const bool emulator = path.starts_with(optical_drive::kEmulatorPrefix);
  if (!emulator && !path.starts_with("/dev/")) {
    std::cerr << where << ": '" << path
              << "' is not a device node (/dev/sgN, /dev/srN) or emulator:/path/to/socket\n";
    return std::nullopt;
  }
  const sdk::Plugin* plugin = ctx.registry().find("optical-drive");
  if (!plugin) {
    std::cerr << where << ": this labctl has no optical-drive plugin\n";
    return std::nullopt;
  }
  const std::filesystem::path cat_path = ctx.options().catalog.empty()
                                             ? inventory::default_catalog_path()
                                             : std::filesystem::path(ctx.options().catalog);
  inventory::Diagnostics diags;
  auto catalog = inventory::load_catalog(cat_path, diags);
  for (const auto& d : diags.sorted())
    std::cerr << d.format() << "\n";
  if (!catalog) {
    std::cerr << where << ": cannot use the firmware catalog " << cat_path.string()
              << " (--catalog FILE names another)\n";
    return std::nullopt;
  }
  inventory::Inventory inv;
  inv.file = "(--device " + path + ")";
  inv.catalog = std::make_shared<const inventory::Catalog>(std::move(*catalog));
  inventory::Device d;
  d.name =
      std::filesystem::path(emulator ? path.substr(optical_drive::kEmulatorPrefix.size()) : path)
          .filename()
          .string();
  if (d.name.empty()) d.name = "drive";
  d.type = plugin->type();
  d.params = {{"device", path},           {"accept-brick-risk", false}, {"command-timeout", 10'000},
              {"write-timeout", 120'000}, {"reboot-timeout", 120'000},  {"poll-interval", 500}};
  device_name = d.name;
  inv.devices.push_back(std::move(d));
  return inv;
}

}  // namespace labctl::controller
