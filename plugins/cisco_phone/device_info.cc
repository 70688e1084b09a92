#include "plugins/cisco_phone/device_info.h"

#include <cctype>

#include <pugixml.hpp>

namespace labctl::cisco_phone {

namespace {

std::string trimmed(const char* s) {
  std::string_view v(s);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front())))
    v.remove_prefix(1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back())))
    v.remove_suffix(1);
  return std::string(v);
}

bool starts_with_ci(std::string_view s, std::string_view p) {
  if (s.size() < p.size()) return false;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != p[i]) return false;
  return true;
}

}  // namespace

Result<DeviceInfo> parse_device_info(std::string_view xml) {
  if (xml.size() > 256 * 1024)
    return fail(Errc::InvalidInput, "DeviceInformationX: " + std::to_string(xml.size()) +
                                        " bytes, more than a phone sends (256 KiB)");
  pugi::xml_document doc;
  // No DOCTYPE or entity expansion: pugixml does not fetch or expand external entities.
  const auto r = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!r)
    return fail(Errc::InvalidInput, std::string("DeviceInformationX: not XML: ") + r.description() +
                                        " at byte " + std::to_string(r.offset));
  auto root = doc.child("DeviceInformation");
  if (!root)
    return fail(Errc::InvalidInput, std::string("DeviceInformationX: root element is <") +
                                        (doc.first_child() ? doc.first_child().name() : "") +
                                        ">, not <DeviceInformation>");
  DeviceInfo d;
  d.mac = trimmed(root.child_value("MACAddress"));
  d.host_name = trimmed(root.child_value("HostName"));
  d.phone_dn = trimmed(root.child_value("phoneDN"));
  d.app_load_id = trimmed(root.child_value("appLoadID"));
  d.boot_load_id = trimmed(root.child_value("bootLoadID"));
  d.version_id = trimmed(root.child_value("versionID"));
  d.model = trimmed(root.child_value("modelNumber"));
  d.serial = trimmed(root.child_value("serialNumber"));
  if (d.app_load_id.empty())
    return fail(Errc::InvalidInput, "DeviceInformationX: no <appLoadID> (the running load)");
  return d;
}

std::string load_protocol(std::string_view id) {
  if (starts_with_ci(id, "sip")) return "sip";
  if (starts_with_ci(id, "sccp")) return "sccp";
  return "";
}

}  // namespace labctl::cisco_phone
