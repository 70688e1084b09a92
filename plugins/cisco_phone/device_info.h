// What a 79xx phone says about itself on its web server: `http://PHONE/DeviceInformationX`, an XML
// document (<DeviceInformation> with MACAddress, HostName, phoneDN, appLoadID, bootLoadID,
// versionID, modelNumber, serialNumber ...). The probe reads it; an unreachable web server just
// means the phone is not up (or its web access is disabled in its configuration).
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace labctl::cisco_phone {

struct DeviceInfo {
  std::string mac;           // as reported, e.g. "000B8201FC42"
  std::string host_name;     // "SEP000B8201FC42"
  std::string phone_dn;      // the first line's number
  std::string app_load_id;   // the running load, e.g. "SIP11.9-4-2SR1-1S" / "SCCP11.8-5-2S"
  std::string boot_load_id;  // the bootloader, e.g. "tnp11.8-5-2TH1-9"
  std::string version_id;    // the version the phone shows, e.g. "9.4(2SR1.1)"
  std::string model;         // "CP-7911G"
  std::string serial;
};

// Parses the XML. InvalidInput (with the reason) for anything that is not a DeviceInformation
// document or lacks the load id; input over 256 KiB is refused before parsing.
Result<DeviceInfo> parse_device_info(std::string_view xml);

// The protocol a load id runs: "sip", "sccp", or "" when the id is not recognised.
std::string load_protocol(std::string_view load_id);

}  // namespace labctl::cisco_phone
