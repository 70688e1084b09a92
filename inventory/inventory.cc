#include "inventory/inventory.h"

#include <cctype>
#include <charconv>

#include "common/text.h"

namespace labctl::inventory {

using nlohmann::json;

std::string SecretRef::describe() const {
  switch (source) {
    case Source::Env:
      return "env " + ref;
    case Source::File:
      return "file " + ref;
    case Source::Command: {
      std::string s = "command";
      for (const auto& a : argv)
        s += " " + a;
      return s;
    }
    case Source::Literal:
      return "literal (hidden)";
  }
  return "secret";
}

json SecretRef::to_json() const {
  json inner;
  switch (source) {
    case Source::Env:
      inner = {{"env", ref}};
      break;
    case Source::File:
      inner = {{"file", ref}};
      break;
    case Source::Command:
      inner = {{"command", argv}};
      break;
    case Source::Literal:
      inner = {{"literal", literal}};
      break;
  }
  return {{"$secret", inner}};
}

std::optional<SecretRef> SecretRef::from_json(const json& j) {
  if (!j.is_object() || !j.contains("$secret") || !j["$secret"].is_object()) return std::nullopt;
  const auto& in = j["$secret"];
  SecretRef r;
  if (in.contains("env") && in["env"].is_string()) {
    r.source = Source::Env;
    r.ref = in["env"].get<std::string>();
  } else if (in.contains("file") && in["file"].is_string()) {
    r.source = Source::File;
    r.ref = in["file"].get<std::string>();
  } else if (in.contains("command") && in["command"].is_array()) {
    r.source = Source::Command;
    for (const auto& a : in["command"]) {
      if (!a.is_string()) return std::nullopt;
      r.argv.push_back(a.get<std::string>());
    }
    if (r.argv.empty()) return std::nullopt;
  } else if (in.contains("literal") && in["literal"].is_string()) {
    r.source = Source::Literal;
    r.literal = in["literal"].get<std::string>();
  } else {
    return std::nullopt;
  }
  return r;
}

std::string_view dhcp_mode_name(DhcpMode m) {
  switch (m) {
    case DhcpMode::Off:
      return "off";
    case DhcpMode::Serve:
      return "serve";
    case DhcpMode::Observe:
      return "observe";
  }
  return "off";
}

bool Ipv4Net::contains(std::uint32_t addr) const {
  if (prefix == 0) return true;
  std::uint32_t mask = prefix >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
  return (addr & mask) == network;
}

std::string Ipv4Net::to_string() const {
  return format_ipv4(network) + "/" + std::to_string(prefix);
}

std::optional<std::uint32_t> parse_ipv4(std::string_view s) {
  std::uint32_t out = 0;
  int parts = 0;
  std::size_t i = 0;
  while (parts < 4) {
    std::size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i;
    std::size_t len = i - start;
    if (len == 0 || len > 3 || (len > 1 && s[start] == '0')) return std::nullopt;
    unsigned v = 0;
    std::from_chars(s.data() + start, s.data() + i, v);
    if (v > 255) return std::nullopt;
    out = (out << 8) | v;
    ++parts;
    if (parts < 4) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != s.size()) return std::nullopt;
  return out;
}

std::string format_ipv4(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

std::optional<Ipv4Net> parse_cidr(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = parse_ipv4(s.substr(0, slash));
  auto ps = s.substr(slash + 1);
  int prefix = -1;
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), prefix);
  if (!addr || ec != std::errc() || p != ps.data() + ps.size() || prefix < 1 || prefix > 32)
    return std::nullopt;
  Ipv4Net n;
  n.prefix = prefix;
  std::uint32_t mask = prefix >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
  if ((*addr & mask) != *addr) return std::nullopt;  // host bits set: 192.168.0.1/24 is ambiguous
  n.network = *addr;
  return n;
}

std::optional<std::string> normalize_mac(std::string_view s) {
  // Accepted spellings: 00:25:90:aa:bb:cc, 00-25-90-AA-BB-CC, 0025.90aa.bbcc, 002590aabbcc.
  char sep = 0;
  std::size_t group = 12;
  if (s.size() == 17 && (s[2] == ':' || s[2] == '-')) {
    sep = s[2];
    group = 2;
  } else if (s.size() == 14 && s[4] == '.') {
    sep = '.';
    group = 4;
  } else if (s.size() != 12) {
    return std::nullopt;
  }
  std::string hex;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool at_sep = sep && (i % (group + 1)) == group;
    if (at_sep) {
      if (s[i] != sep) return std::nullopt;
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  }
  if (hex.size() != 12) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < 12; i += 2) {
    if (!out.empty()) out += ':';
    out += hex.substr(i, 2);
  }
  return out;
}

Mark Device::mark_of(const std::string& pointer) const {
  if (pointer.empty()) return mark;
  // Fall back to the nearest enclosing key that has a position.
  std::string p = pointer;
  while (!p.empty()) {
    auto it = marks.find(p);
    if (it != marks.end()) return it->second;
    auto slash = p.rfind('/');
    if (slash == std::string::npos) break;
    p.resize(slash);
  }
  return mark;
}

const Device* Inventory::device(std::string_view name) const {
  auto it = device_index_.find(std::string(name));
  if (it != device_index_.end()) return &devices[it->second];
  for (const auto& d : devices)  // index not built (a hand-made Inventory in a test)
    if (d.name == name) return &d;
  return nullptr;
}

const Segment* Inventory::segment(std::string_view name) const {
  for (const auto& s : segments)
    if (s.name == name) return &s;
  return nullptr;
}

const AgentDef* Inventory::agent(std::string_view name) const {
  for (const auto& a : agents)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace labctl::inventory
