#include "plugins/cisco_phone/config.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

#include <pugixml.hpp>

namespace labctl::cisco_phone {

namespace {

// Twelve hex digits, from "00:0b:82:01:fc:42", "00-0B-82-01-FC-42", "000b.8201.fc42" or plain.
std::string hex12(const std::string& mac) {
  std::string out;
  for (char ch : mac) {
    if (std::isxdigit(static_cast<unsigned char>(ch)))
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
    else if (ch != ':' && ch != '-' && ch != '.')
      return {};
  }
  return out.size() == 12 ? out : std::string();
}

bool printable_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c >= 0x20 && c < 0x7f;
  });
}

void text_node(pugi::xml_node parent, const char* name, const std::string& value) {
  parent.append_child(name).append_child(pugi::node_pcdata).set_value(value.c_str());
}

}  // namespace

std::string describe(const Problem& p) {
  return (p.device.empty() ? std::string() : p.device + ": ") + p.field + ": " + p.message;
}

std::vector<Problem> validate(const PhoneConfig& c, const Limits& limits) {
  std::vector<Problem> out;
  auto problem = [&](std::string field, std::string message) {
    out.push_back({c.device, std::move(field), std::move(message)});
  };
  if (hex12(c.mac).empty())
    problem("mac", "'" + c.mac + "' is not a MAC address (six bytes, e.g. 00:0b:82:01:fc:42)");
  if (c.sip_server.empty()) problem("sip.server", "no SIP server to register with");
  if (c.sip_port < 1 || c.sip_port > 65535)
    problem("sip.port", std::to_string(c.sip_port) + " is outside 1..65535");
  if (c.phone_label.size() > limits.phone_label_max)
    problem("label", std::to_string(c.phone_label.size()) + " characters; the " + c.model +
                         " shows at most " + std::to_string(limits.phone_label_max));
  if (c.phone_label.find(' ') != std::string::npos)
    problem("label", "contains a space; the 79xx phones refuse a <phoneLabel> with spaces");
  if (!printable_ascii(c.phone_label)) problem("label", "only printable ASCII is shown");
  if (c.lines.empty()) problem("extension", "no line to register");
  for (std::size_t i = 0; i < c.lines.size(); ++i) {
    const auto& l = c.lines[i];
    const std::string at = c.lines.size() > 1 ? "lines[" + std::to_string(i) + "]." : "";
    if (l.extension.empty() || !printable_ascii(l.extension) ||
        l.extension.find_first_of(" @:;<>\"") != std::string::npos)
      problem(at + "extension", "'" + l.extension + "' is not a SIP user name");
    if (l.password.empty()) problem(at + "sip.password", "empty; the line cannot register");
    // Length only: the value itself never appears in a message or a log.
    if (l.password.size() > limits.sip_password_max)
      problem(at + "sip.password",
              std::to_string(l.password.size()) + " characters; the " + c.model +
                  " registers with at most " + std::to_string(limits.sip_password_max) +
                  " (catalog quirk sip-password-max; FreePBX generates 32: set a shorter secret "
                  "for this extension)");
    if (!printable_ascii(l.password))
      problem(at + "sip.password", "contains characters the phone cannot send");
    if (!printable_ascii(l.display_name)) problem(at + "display-name", "only printable ASCII");
  }
  return out;
}

std::vector<Problem> validate_all(const std::vector<PhoneConfig>& phones, const Limits& limits) {
  std::vector<Problem> out;
  std::map<std::string, std::string> macs, extensions;
  for (const auto& p : phones) {
    auto own = validate(p, limits);
    out.insert(out.end(), own.begin(), own.end());
    const std::string m = hex12(p.mac);
    if (!m.empty()) {
      auto [it, fresh] = macs.emplace(m, p.device);
      if (!fresh) out.push_back({p.device, "mac", "same MAC as " + it->second});
    }
    for (const auto& l : p.lines) {
      if (l.extension.empty()) continue;
      auto [it, fresh] = extensions.emplace(l.extension, p.device);
      if (!fresh)
        out.push_back(
            {p.device, "extension", "'" + l.extension + "' is also " + it->second + "'s"});
    }
  }
  return out;
}

Result<std::string> sep_file_name(const std::string& mac) {
  const std::string h = hex12(mac);
  if (h.empty()) return fail(Errc::InvalidInput, "'" + mac + "' is not a MAC address");
  return "SEP" + h + ".cnf.xml";
}

Result<std::string> render_sep_config(const PhoneConfig& c, const Limits& limits) {
  if (auto problems = validate(c, limits); !problems.empty()) {
    std::string msg;
    for (const auto& p : problems)
      msg += (msg.empty() ? "" : "; ") + describe(p);
    return fail(Errc::InvalidInput, msg);
  }
  pugi::xml_document doc;
  auto decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  auto device = doc.append_child("device");
  text_node(device, "deviceProtocol", "SIP");
  auto pool = device.append_child("devicePool");
  auto dt = pool.append_child("dateTimeSetting");
  text_node(dt, "dateTemplate", "D.M.Y");
  text_node(dt, "timeZone", c.time_zone);
  if (!c.ntp_server.empty()) {
    auto ntp = dt.append_child("ntps").append_child("ntp");
    text_node(ntp, "name", c.ntp_server);
    text_node(ntp, "ntpMode", "Unicast");
  }
  auto member =
      pool.append_child("callManagerGroup").append_child("members").append_child("member");
  member.append_attribute("priority") = "0";
  auto cm = member.append_child("callManager");
  auto ports = cm.append_child("ports");
  text_node(ports, "ethernetPhonePort", "2000");
  text_node(ports, "sipPort", std::to_string(c.sip_port));
  text_node(cm, "processNodeName", c.sip_server);
  auto profile = device.append_child("sipProfile");
  auto proxies = profile.append_child("sipProxies");
  text_node(proxies, "registerWithProxy", "true");
  if (!c.phone_label.empty()) text_node(profile, "phoneLabel", c.phone_label);
  auto lines = profile.append_child("sipLines");
  for (std::size_t i = 0; i < c.lines.size(); ++i) {
    const auto& l = c.lines[i];
    auto line = lines.append_child("line");
    line.append_attribute("button") = static_cast<unsigned>(i + 1);
    text_node(line, "featureID", "9");
    text_node(line, "featureLabel", l.label.empty() ? l.extension : l.label);
    text_node(line, "proxy", "USECALLMANAGER");
    text_node(line, "port", std::to_string(c.sip_port));
    text_node(line, "name", l.extension);
    text_node(line, "displayName", l.display_name.empty() ? l.extension : l.display_name);
    // authName always: without it the phone registers with nothing (DESIGN.md, device facts).
    text_node(line, "authName", l.auth_name.empty() ? l.extension : l.auth_name);
    text_node(line, "authPassword", l.password);
    text_node(line, "contact", l.extension);
    text_node(line, "sharedLine", "false");
  }
  if (!c.load_information.empty()) text_node(device, "loadInformation", c.load_information);
  std::ostringstream ss;
  doc.save(ss, "  ", pugi::format_default, pugi::encoding_utf8);
  return ss.str();
}

std::string render_xml_default(const std::string& sip_server, int sip_port,
                               const std::string& load_information) {
  pugi::xml_document doc;
  auto decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  auto def = doc.append_child("Default");
  auto member = def.append_child("callManagerGroup").append_child("members").append_child("member");
  member.append_attribute("priority") = "0";
  auto cm = member.append_child("callManager");
  auto ports = cm.append_child("ports");
  text_node(ports, "ethernetPhonePort", "2000");
  text_node(ports, "sipPort", std::to_string(sip_port));
  text_node(cm, "processNodeName", sip_server);
  if (!load_information.empty()) text_node(def, "loadInformation", load_information);
  std::ostringstream ss;
  doc.save(ss, "  ", pugi::format_default, pugi::encoding_utf8);
  return ss.str();
}

}  // namespace labctl::cisco_phone
