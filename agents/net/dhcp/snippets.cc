#include "agents/net/dhcp/snippets.h"

#include <algorithm>

#include "agents/net/dhcp/codec.h"
#include "common/text.h"

namespace labctl::dhcp {

namespace {

// What each snippet's first line says after the format's comment marker.
constexpr std::string_view kAbout =
    "labctl dhcp options: TFTP for Cisco phones; option 150 is binary (4 bytes per IPv4 address, "
    "never text), 66 is text";

std::string joined(const std::vector<std::uint32_t>& ips, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < ips.size(); ++i) {
    if (i != 0) out += sep;
    out += ipv4_string(ips[i]);
  }
  return out;
}

Status check_servers(const std::vector<std::uint32_t>& ips) {
  if (ips.empty()) return fail(Errc::InvalidInput, "no TFTP server address given");
  if (ips.size() > 63)
    return fail(Errc::InvalidInput,
                std::to_string(ips.size()) + " TFTP server addresses: option 150 holds at most 63");
  for (std::size_t i = 0; i < ips.size(); ++i) {
    const std::uint32_t a = ips[i];
    const std::string shown = ipv4_string(a);
    if (a == 0)
      return fail(Errc::InvalidInput, "TFTP server " + shown + " is the unspecified address");
    if (a == 0xffffffffu)
      return fail(Errc::InvalidInput, "TFTP server " + shown + " is the broadcast address");
    if ((a >> 24) == 127)
      return fail(Errc::InvalidInput, "TFTP server " + shown + " is a loopback address");
    if ((a >> 28) == 0xe)
      return fail(Errc::InvalidInput, "TFTP server " + shown + " is a multicast address");
    if (std::find(ips.begin(), ips.begin() + static_cast<std::ptrdiff_t>(i), a) !=
        ips.begin() + static_cast<std::ptrdiff_t>(i))
      return fail(Errc::InvalidInput, "TFTP server " + shown + " is listed twice");
  }
  return {};
}

// Names go unquoted into IOS and inside quotes everywhere else: a host name or an address, so no
// format needs escaping.
Status check_name(std::string_view name) {
  if (name.empty()) return fail(Errc::InvalidInput, "empty TFTP server name");
  if (name.size() > 255)
    return fail(Errc::InvalidInput, "TFTP server name of " + std::to_string(name.size()) +
                                        " bytes: option 66 holds at most 255");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_';
    if (!ok) {
      std::string shown;
      for (char d : name.substr(0, 64))
        shown.push_back((d >= 0x20 && d < 0x7f) ? d : '?');
      return fail(Errc::InvalidInput, "TFTP server name '" + shown +
                                          "': only letters, digits, '.', '-' and '_' are allowed");
    }
  }
  return {};
}

std::string isc(const std::vector<std::uint32_t>& ips, const std::string& name) {
  std::string s = "# " + std::string(kAbout) + "\n";
  s += "# The definition must be global; the two values may go globally or into a subnet, pool\n";
  s += "# or class. dhcpd sends them to clients that ask for 66 and 150 (Cisco phones do).\n";
  s += "option cisco-tftp-servers code 150 = array of ip-address;\n";
  s += "option cisco-tftp-servers " + joined(ips, ", ") + ";\n";
  s += "option tftp-server-name \"" + name + "\";\n";
  return s;
}

std::string kea(const std::vector<std::uint32_t>& ips, const std::string& name) {
  std::string s = "// " + std::string(kAbout) + "\n";
  s += "// Paste into \"Dhcp4\" (merge with existing \"option-def\" / \"option-data\" lists; the\n";
  s += "// \"option-data\" entries may also go into a \"subnet4\" entry).\n";
  s += "\"option-def\": [\n";
  s += "  { \"name\": \"cisco-tftp-servers\", \"code\": 150, \"space\": \"dhcp4\", "
       "\"type\": \"ipv4-address\", \"array\": true }\n";
  s += "],\n";
  s += "\"option-data\": [\n";
  s += "  { \"name\": \"cisco-tftp-servers\", \"code\": 150, \"space\": \"dhcp4\", \"data\": \"" +
       joined(ips, ", ") + "\", \"always-send\": true },\n";
  s += "  { \"name\": \"tftp-server-name\", \"code\": 66, \"space\": \"dhcp4\", \"data\": \"" +
       name + "\", \"always-send\": true }\n";
  s += "]\n";
  return s;
}

std::string dnsmasq(const std::vector<std::uint32_t>& ips, const std::string& name) {
  std::string s = "# " + std::string(kAbout) + "\n";
  s += "# dhcp-option-force: sent even when the client does not ask for it.\n";
  s += "dhcp-option-force=150," + joined(ips, ",") + "\n";
  s += "dhcp-option-force=66,\"" + name + "\"\n";
  return s;
}

std::string cisco_ios(const std::vector<std::uint32_t>& ips, const std::string& name) {
  std::string s = "! " + std::string(kAbout) + "\n";
  s += "! Use your phones' pool instead of labctl-phones.\n";
  s += "ip dhcp pool labctl-phones\n";
  s += " option 150 ip " + joined(ips, " ") + "\n";
  s += " option 66 ascii " + name + "\n";
  return s;
}

std::string mikrotik(const std::vector<std::uint32_t>& ips, const std::string& name) {
  std::string s = "# " + std::string(kAbout) + "\n";
  s += "/ip dhcp-server option add code=150 name=tftp-150 value=0x" +
       hex_string(encode_ipv4_list(ips)) + "\n";
  s += "/ip dhcp-server option add code=66 name=tftp-66 value=\"'" + name + "'\"\n";
  s += "/ip dhcp-server option sets add name=labctl-tftp options=tftp-150,tftp-66\n";
  s += "# then: /ip dhcp-server network set [find] dhcp-option-set=labctl-tftp\n";
  return s;
}

std::string hex(const std::vector<std::uint32_t>& ips, const std::string& name) {
  std::string s = "# " + std::string(kAbout) + "\n";
  s += "# Code, length and value bytes in hex, one option per line (150, then 66).\n";
  s += hex_string(encode_tlv(opt::kCiscoTftpServers, encode_ipv4_list(ips))) + "\n";
  s += hex_string(encode_tlv(opt::kTftpServerName, encode_text(name))) + "\n";
  return s;
}

}  // namespace

std::string_view format_name(Format f) {
  switch (f) {
    case Format::Isc:
      return "isc";
    case Format::Kea:
      return "kea";
    case Format::Dnsmasq:
      return "dnsmasq";
    case Format::CiscoIos:
      return "cisco-ios";
    case Format::Mikrotik:
      return "mikrotik";
    case Format::Hex:
      return "hex";
  }
  return "?";
}

const std::vector<Format>& all_formats() {
  static const std::vector<Format> kAll = {Format::Isc,      Format::Kea,      Format::Dnsmasq,
                                           Format::CiscoIos, Format::Mikrotik, Format::Hex};
  return kAll;
}

Result<Format> parse_format(std::string_view name) {
  std::vector<std::string> names;
  for (Format f : all_formats()) {
    if (text::iequals(name, format_name(f))) return f;
    names.emplace_back(format_name(f));
  }
  std::string message = "unknown DHCP server format '";
  for (char c : name.substr(0, 64))
    message.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
  message += "'";
  if (const std::string near = text::closest(text::lower(name), names); !near.empty())
    message += " (did you mean '" + near + "'?)";
  message += "; valid formats: " + text::join_list(names, ", ");
  return fail(Errc::InvalidInput, message);
}

Result<std::string> dhcp_snippet(Format f, const std::vector<std::uint32_t>& tftp_servers,
                                 std::optional<std::string> tftp_name) {
  if (auto s = check_servers(tftp_servers); !s) return fail(s.error());
  const std::string name = tftp_name ? *tftp_name : ipv4_string(tftp_servers.front());
  if (auto s = check_name(name); !s) return fail(s.error());
  switch (f) {
    case Format::Isc:
      return isc(tftp_servers, name);
    case Format::Kea:
      return kea(tftp_servers, name);
    case Format::Dnsmasq:
      return dnsmasq(tftp_servers, name);
    case Format::CiscoIos:
      return cisco_ios(tftp_servers, name);
    case Format::Mikrotik:
      return mikrotik(tftp_servers, name);
    case Format::Hex:
      return hex(tftp_servers, name);
  }
  return fail(Errc::Internal, "unknown snippet format");
}

}  // namespace labctl::dhcp
