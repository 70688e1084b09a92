#include "inventory/loader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "common/text.h"
#include "inventory/yaml_util.h"

namespace labctl::inventory {

namespace fs = std::filesystem;
using nlohmann::json;

void DeviceReport::error(const std::string& pointer, std::string message) {
  diags_.error(file_, device_.mark_of(pointer), "device '" + device_.name + "': " + message);
}
void DeviceReport::warning(const std::string& pointer, std::string message) {
  diags_.warning(file_, device_.mark_of(pointer), "device '" + device_.name + "': " + message);
}

std::vector<std::string> SchemaSource::capabilities(std::string_view type) const {
  if (const auto* s = schema(type)) return s->capabilities;
  return {};
}

namespace {

const std::vector<std::string> kTopKeys = {"version",  "site",   "catalog",
                                           "segments", "agents", "devices"};
const std::vector<std::string> kSegmentKeys = {"name",  "interface", "subnet",
                                               "agent", "dhcp",      "tftp"};
const std::vector<std::string> kDhcpKeys = {
    "mode", "range", "router", "dns", "ntp", "domain", "lease-time", "unknown-clients", "classes"};
const std::vector<std::string> kDhcpClassKeys = {
    "name",         "vendor-class",     "oui",        "types", "router", "dns", "ntp", "domain",
    "tftp-servers", "tftp-server-name", "always-send"};
const std::vector<std::string> kTftpKeys = {"enabled", "root", "servers", "port"};
const std::vector<std::string> kAgentKeys = {"name", "url", "description", "pki"};
const std::vector<std::string> kDeviceCommonKeys = {
    "name", "type", "model", "description", "mac", "ip", "segment", "agent", "firmware", "after"};
const std::vector<std::string> kFirmwareKeys = {"target", "allow-downgrade"};

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool valid_env_name(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  if (std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// A scalar's value as JSON: quoted text stays text; plain scalars become numbers or booleans
// where they clearly are.
json scalar_to_json(const YAML::Node& n) {
  if (n.IsNull()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  long long i = 0;
  if (YAML::convert<long long>::decode(n, i)) return i;
  if (s == "true" || s == "false") return s == "true";
  return s;
}

json yaml_to_json(const YAML::Node& n, int depth = 0) {
  if (depth > 64) return nullptr;
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& e : yaml::map_entries(n, "", nullptr, ""))
      o[e.name] = yaml_to_json(e.value, depth + 1);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& e : n)
      a.push_back(yaml_to_json(e, depth + 1));
    return a;
  }
  if (n.IsScalar() || n.IsNull()) return scalar_to_json(n);
  return nullptr;
}

// Why text is not a network in CIDR notation, for a message "subnet 'TEXT' <reason>".
std::string cidr_problem(std::string_view s) {
  constexpr std::string_view kExample = " (e.g. 192.168.0.0/24)";
  const auto slash = s.find('/');
  if (slash == std::string_view::npos) return "has no prefix length" + std::string(kExample);
  const auto addr = parse_ipv4(s.substr(0, slash));
  if (!addr) return "is not an IPv4 network" + std::string(kExample);
  const auto ps = s.substr(slash + 1);
  int prefix = -1;
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), prefix);
  if (ec != std::errc() || p != ps.data() + ps.size() || prefix < 1 || prefix > 32)
    return "has prefix length '" + std::string(ps) + "'; expected 1 to 32";
  const std::uint32_t mask = prefix >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
  if ((*addr & mask) != *addr)
    return "has host bits set; the network is " + format_ipv4(*addr & mask) + "/" +
           std::to_string(prefix);
  return "is not an IPv4 network" + std::string(kExample);
}

std::string expected_msg(std::string_view what, const YAML::Node& n) {
  return "expected " + std::string(what) + ", found " + std::string(yaml::describe(n));
}

}  // namespace

class Loader {
 public:
  Loader(const std::string& file, fs::path base, const SchemaSource& schemas,
         const LoadOptions& options, Diagnostics& diags)
      : file_(file), base_(std::move(base)), schemas_(schemas), options_(options), diags_(diags) {}

  std::optional<Inventory> run(const YAML::Node& root);

 private:
  void err(Mark m, std::string msg) { diags_.error(file_, m, std::move(msg)); }
  // A node's position; an empty value (`key:` and nothing else) is placed at its key.
  Mark at(const YAML::Node& n) const {
    if (n.IsDefined() && n.IsNull())
      for (auto [it, end] = empty_values_.equal_range(n.Mark().pos); it != end; ++it)
        if (it->second.value.is(n)) return it->second.key_mark;
    return yaml::mark_of(n);
  }
  void warn(Mark m, std::string msg) { diags_.warning(file_, m, std::move(msg)); }

  // Scalars -------------------------------------------------------------------------------------
  std::optional<std::string> text(const YAML::Node& n, std::string_view what) {
    if (!n.IsScalar()) {
      err(at(n), what.empty() ? expected_msg("text", n)
                              : std::string(what) + ": " + expected_msg("text", n));
      return std::nullopt;
    }
    return n.Scalar();
  }
  std::optional<std::int64_t> integer(const YAML::Node& n, std::string_view what) {
    long long v = 0;
    if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v)) {
      err(at(n), std::string(what) + ": " + expected_msg("an integer", n) +
                     (n.IsScalar() ? " '" + n.Scalar() + "'" : ""));
      return std::nullopt;
    }
    return v;
  }
  std::optional<bool> boolean(const YAML::Node& n, std::string_view what) {
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
      err(at(n), std::string(what) + ": " + expected_msg("true or false", n) +
                     (n.IsScalar() ? " '" + n.Scalar() + "'" : ""));
      return std::nullopt;
    }
    return v;
  }
  std::optional<std::uint32_t> ipv4(const YAML::Node& n, std::string_view what) {
    auto s = text(n, what);
    if (!s) return std::nullopt;
    auto a = parse_ipv4(*s);
    if (!a) err(at(n), std::string(what) + ": '" + *s + "' is not an IPv4 address");
    return a;
  }
  std::vector<std::uint32_t> ipv4_list(const YAML::Node& n, std::string_view what) {
    std::vector<std::uint32_t> out;
    if (n.IsScalar()) {  // a single address is accepted where a list is expected
      if (auto a = ipv4(n, what)) out.push_back(*a);
      return out;
    }
    if (!n.IsSequence()) {
      err(at(n), std::string(what) + ": " + expected_msg("a list of IPv4 addresses", n));
      return out;
    }
    for (const auto& e : n)
      if (auto a = ipv4(e, what)) out.push_back(*a);
    return out;
  }

  // A list of texts; a single text is accepted where a list is expected.
  std::vector<std::string> text_list(const YAML::Node& n, std::string_view what) {
    std::vector<std::string> out;
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
      return out;
    }
    if (!n.IsSequence()) {
      err(at(n), std::string(what) + ": " + expected_msg("a list", n));
      return out;
    }
    for (const auto& e : n)
      if (auto t = text(e, what)) out.push_back(*t);
    return out;
  }

  // `dhcp: classes:` -- each a name, what it matches and the options it adds.
  void dhcp_classes(const YAML::Node& list, Segment& seg, const std::string& what) {
    each_mapping(list, "classes", "dhcp class", [&](const YAML::Node& n) {
      yaml::MapReader cr(n, file_, diags_, kDhcpClassKeys, what + " dhcp class");
      Segment::Dhcp::Class c;
      c.mark = at(n);
      if (!cr.require("name")) return;
      if (auto t = text(cr.get("name"), "class name")) c.name = *t;
      for (const auto& other : seg.dhcp.classes)
        if (other.name == c.name)
          err(at(cr.get("name")), what + ": dhcp class '" + c.name + "' defined twice");
      if (cr.has("vendor-class"))
        c.vendor_class = text_list(cr.get("vendor-class"), "vendor-class");
      if (cr.has("types")) c.types = text_list(cr.get("types"), "types");
      if (cr.has("oui")) {
        for (const auto& o : text_list(cr.get("oui"), "oui")) {
          auto full = normalize_mac(o + ":00:00:00");
          if (!full)
            err(at(cr.get("oui")), "oui '" + o + "' is not three hex bytes (e.g. 00:0b:82)");
          else
            c.oui.push_back(full->substr(0, 8));
        }
      }
      if (!cr.has("vendor-class") && !cr.has("types") && !cr.has("oui"))
        err(at(n), what + ": dhcp class '" + c.name +
                       "' matches nothing: give vendor-class, oui or types");
      if (cr.has("router")) c.router = ipv4(cr.get("router"), "class router");
      if (cr.has("dns")) c.dns = ipv4_list(cr.get("dns"), "class dns");
      if (cr.has("ntp")) c.ntp = ipv4_list(cr.get("ntp"), "class ntp");
      if (cr.has("tftp-servers"))
        c.tftp_servers = ipv4_list(cr.get("tftp-servers"), "class tftp-servers");
      if (cr.has("domain"))
        if (auto t = text(cr.get("domain"), "class domain")) c.domain = *t;
      if (cr.has("tftp-server-name"))
        if (auto t = text(cr.get("tftp-server-name"), "tftp-server-name")) c.tftp_server_name = *t;
      if (cr.has("always-send")) {
        const auto& as = cr.get("always-send");
        if (!as.IsSequence()) {
          err(at(as), "always-send: " + expected_msg("a list of option codes", as));
        } else {
          for (const auto& e : as)
            if (auto v = integer(e, "always-send")) {
              if (*v < 1 || *v > 254 || *v == 52)
                err(at(e), "always-send: option code " + std::to_string(*v) +
                               " is not one a class can send (1-254, not 52)");
              else
                c.always_send.push_back(static_cast<std::uint8_t>(*v));
            }
        }
      }
      seg.dhcp.classes.push_back(std::move(c));
    });
  }

  // Generic plugin-schema values -------------------------------------------------------------
  json value(const YAML::Node& n, const KeySpec& spec, const std::string& pointer, Device& dev);
  json map_value(const YAML::Node& n, const std::vector<KeySpec>& fields, bool open,
                 const std::string& pointer, Device& dev, std::string_view what);
  std::optional<SecretRef> secret(const YAML::Node& n, const std::string& what);

  // Calls `f` for each mapping of a list section ('segments', 'agents', 'devices'), reporting a
  // section that is not a list and entries that are not mappings.
  template <typename F>
  void each_mapping(const YAML::Node& list, std::string_view section, std::string_view item, F f) {
    if (!list.IsSequence()) {
      err(at(list), "'" + std::string(section) + "': " + expected_msg("a list", list));
      return;
    }
    for (const auto& entry : list) {
      if (!entry.IsMap()) {
        err(at(entry), std::string(item) + ": " + expected_msg("a mapping", entry));
        continue;
      }
      f(entry);
    }
  }

  // Sections --------------------------------------------------------------------------------
  void read_segments(const YAML::Node& n);
  void read_agents(const YAML::Node& n);
  void read_devices(const YAML::Node& n);
  void read_device(const YAML::Node& n);
  void load_catalog(const YAML::Node& catalog_key);
  void check_references();
  void check_after_cycles();
  void check_firmware();

  const std::string& file_;
  fs::path base_;
  const SchemaSource& schemas_;
  const LoadOptions& options_;
  Diagnostics& diags_;
  Inventory inv_;

  struct PendingRef {
    std::string device, what, target;
    std::vector<std::string> capabilities;
    Mark mark;
  };
  std::vector<PendingRef> refs_;
  std::unordered_map<std::string, Mark> names_;
  std::unordered_map<std::string, std::pair<std::string, Mark>> macs_, ips_;  // -> first device
  // Positions of common device keys, parallel to inv_.devices.
  struct DeviceMarks {
    Mark model, ip;
    std::vector<Mark> after;  // one per entry of Device::after
  };
  std::vector<DeviceMarks> device_marks_;
  std::unordered_multimap<int, yaml::EmptyValue> empty_values_;  // by the value's offset
};

std::optional<SecretRef> Loader::secret(const YAML::Node& n, const std::string& what) {
  SecretRef ref;
  ref.mark = at(n);
  if (n.IsScalar()) {
    ref.source = SecretRef::Source::Literal;
    ref.literal = n.Scalar();
    warn(ref.mark, what +
                       ": literal secret in the inventory; use {env: NAME}, {file: PATH} or "
                       "{command: [...]} instead");
    return ref;
  }
  if (!n.IsMap()) {
    err(ref.mark,
        what + ": " + expected_msg("a secret ({env: NAME}, {file: PATH} or {command: [...]})", n));
    return std::nullopt;
  }
  yaml::MapReader r(n, file_, diags_, {"env", "file", "command"}, what);
  int kinds = r.has("env") + r.has("file") + r.has("command");
  if (kinds != 1) {
    err(ref.mark, what + ": a secret names exactly one of env, file or command");
    return std::nullopt;
  }
  if (r.has("env")) {
    auto s = text(r.get("env"), what + ".env");
    if (!s) return std::nullopt;
    if (!valid_env_name(*s)) {
      err(at(r.get("env")), what + ": '" + *s + "' is not a valid environment variable name");
      return std::nullopt;
    }
    ref.source = SecretRef::Source::Env;
    ref.ref = *s;
  } else if (r.has("file")) {
    auto s = text(r.get("file"), what + ".file");
    if (!s) return std::nullopt;
    if (s->empty()) {
      err(at(r.get("file")), what + ": empty file name");
      return std::nullopt;
    }
    ref.source = SecretRef::Source::File;
    fs::path p(*s);
    ref.ref = (p.is_absolute() ? p : base_ / p).lexically_normal().string();
  } else {
    const auto& c = r.get("command");
    if (!c.IsSequence() || c.size() == 0) {
      err(at(c), what + ": command must be a non-empty list of arguments");
      return std::nullopt;
    }
    ref.source = SecretRef::Source::Command;
    for (const auto& a : c) {
      auto s = text(a, what + ".command");
      if (!s) return std::nullopt;
      ref.argv.push_back(*s);
    }
  }
  return ref;
}

json Loader::map_value(const YAML::Node& n, const std::vector<KeySpec>& fields, bool open,
                       const std::string& pointer, Device& dev, std::string_view what) {
  if (!n.IsMap()) {
    err(at(n), std::string(what) + ": " + expected_msg("a mapping", n));
    return nullptr;
  }
  if (open) return yaml_to_json(n);
  std::vector<std::string> names;
  for (const auto& f : fields)
    names.push_back(f.name);
  yaml::MapReader r(n, file_, diags_, names, what);
  json out = json::object();
  for (const auto& f : fields) {
    const std::string p = pointer + "/" + f.name;
    if (!r.has(f.name)) {
      if (f.required)
        r.require(f.name);
      else if (!f.default_value.is_null())
        out[f.name] = f.default_value;
      continue;
    }
    dev.marks[p] = at(r.get(f.name));
    json v = value(r.get(f.name), f, p, dev);
    if (!v.is_null()) out[f.name] = std::move(v);
  }
  return out;
}

json Loader::value(const YAML::Node& n, const KeySpec& spec, const std::string& pointer,
                   Device& dev) {
  const Mark m = at(n);
  const std::string what = "'" + spec.name + "'";
  switch (spec.kind) {
    case Kind::String: {
      auto s = text(n, what);
      if (!s) return nullptr;
      auto len = static_cast<std::int64_t>(s->size());
      if (spec.min && len < *spec.min)
        err(m, what + " is " + std::to_string(len) + " characters; at least " +
                   std::to_string(*spec.min) + " required");
      if (spec.max && len > *spec.max)
        err(m, what + " is " + std::to_string(len) + " characters; at most " +
                   std::to_string(*spec.max) + " allowed");
      return *s;
    }
    case Kind::Int: {
      auto v = integer(n, what);
      if (!v) return nullptr;
      if ((spec.min && *v < *spec.min) || (spec.max && *v > *spec.max)) {
        err(m, what + " is " + std::to_string(*v) + ", outside " +
                   (spec.min ? std::to_string(*spec.min) : std::string("-inf")) + ".." +
                   (spec.max ? std::to_string(*spec.max) : std::string("inf")));
      }
      return *v;
    }
    case Kind::Bool: {
      auto v = boolean(n, what);
      return v ? json(*v) : json(nullptr);
    }
    case Kind::Enum: {
      auto s = text(n, what);
      if (!s) return nullptr;
      if (std::find(spec.choices.begin(), spec.choices.end(), *s) == spec.choices.end()) {
        std::string msg =
            what + " is '" + *s + "'; expected one of " + text::join_list(spec.choices, " or ");
        auto g = text::closest(*s, spec.choices);
        if (!g.empty()) msg += " (did you mean '" + g + "'?)";
        err(m, std::move(msg));
        return nullptr;
      }
      return *s;
    }
    case Kind::Secret: {
      auto ref = secret(n, what);
      if (!ref) return nullptr;
      inv_.secrets.push_back({dev.name, pointer, *ref});
      return ref->to_json();
    }
    case Kind::DeviceRef: {
      auto s = text(n, what);
      if (!s) return nullptr;
      refs_.push_back({dev.name, what, *s, spec.ref_capabilities, m});
      if (std::find(dev.references.begin(), dev.references.end(), *s) == dev.references.end())
        dev.references.push_back(*s);
      return *s;
    }
    case Kind::Mac: {
      auto s = text(n, what);
      if (!s) return nullptr;
      auto mac = normalize_mac(*s);
      if (!mac) {
        err(m, what + ": '" + *s +
                   "' is not a MAC address (expected six hex pairs, e.g. 00:1b:54:aa:bb:cc)");
        return nullptr;
      }
      return *mac;
    }
    case Kind::Ipv4: {
      auto a = ipv4(n, what);
      return a ? json(format_ipv4(*a)) : json(nullptr);
    }
    case Kind::Version: {
      auto s = text(n, what);
      if (!s) return nullptr;
      if (s->empty()) err(m, what + ": empty version");
      return *s;
    }
    case Kind::Duration: {
      auto s = text(n, what);
      if (!s) return nullptr;
      auto ms = text::parse_duration_ms(*s);
      if (!ms) {
        err(m, what + ": '" + *s + "' is not a duration (e.g. 90s, 5m, 1h, 250ms)");
        return nullptr;
      }
      if ((spec.min && *ms < *spec.min) || (spec.max && *ms > *spec.max))
        err(m, what + " is out of range");
      return *ms;
    }
    case Kind::List: {
      if (!n.IsSequence()) {
        err(m, what + ": " + expected_msg("a list", n));
        return nullptr;
      }
      auto count = static_cast<std::int64_t>(n.size());
      if (spec.min && count < *spec.min)
        err(m, what + " has " + std::to_string(count) + " entries; at least " +
                   std::to_string(*spec.min) + " required");
      if (spec.max && count > *spec.max)
        err(m, what + " has " + std::to_string(count) + " entries; at most " +
                   std::to_string(*spec.max) + " allowed");
      json arr = json::array();
      const KeySpec& item = spec.item.empty() ? spec : spec.item.front();
      if (spec.item.empty()) return yaml_to_json(n);
      std::size_t i = 0;
      for (const auto& e : n) {
        const std::string p = pointer + "/" + std::to_string(i++);
        dev.marks[p] = at(e);
        KeySpec named = item;
        named.name = spec.name + "[" + std::to_string(i - 1) + "]";
        arr.push_back(value(e, named, p, dev));
      }
      return arr;
    }
    case Kind::Map:
      return map_value(n, spec.fields, spec.open, pointer, dev, what);
    case Kind::Path: {
      auto s = text(n, what);
      if (!s) return nullptr;
      if (s->empty()) {
        err(m, what + ": empty path");
        return nullptr;
      }
      const fs::path p(*s);
      return (p.is_absolute() ? p : base_ / p).lexically_normal().string();
    }
  }
  return nullptr;
}

void Loader::read_segments(const YAML::Node& n) {
  if (!n.IsDefined()) return;
  std::unordered_map<std::string, Mark> names;
  each_mapping(n, "segments", "segment", [&](const YAML::Node& sn) {
    Segment seg;
    seg.mark = at(sn);
    yaml::MapReader r(sn, file_, diags_, kSegmentKeys, "segment");
    if (r.require("name")) {
      if (auto s = text(r.get("name"), "segment name")) {
        seg.name = *s;
        if (!valid_name(seg.name))
          err(at(r.get("name")),
              "segment name '" + seg.name + "' must be 1-63 letters, digits, '.', '-' or '_'");
        auto [it, fresh] = names.emplace(seg.name, at(r.get("name")));
        if (!fresh)
          err(at(r.get("name")), "duplicate segment name '" + seg.name + "' (first at line " +
                                     std::to_string(it->second.line) + ")");
      }
    }
    const std::string what = "segment '" + seg.name + "'";
    if (r.has("interface")) {
      if (auto s = text(r.get("interface"), "interface")) {
        seg.interface = *s;
        if (s->empty() || s->size() > 15 || s->find('/') != std::string::npos)
          err(at(r.get("interface")), "interface '" + *s + "' is not a valid interface name");
      }
    }
    if (r.require("subnet")) {
      if (auto s = text(r.get("subnet"), "subnet")) {
        if (auto net = parse_cidr(*s))
          seg.subnet = *net;
        else
          err(at(r.get("subnet")), "subnet '" + *s + "' " + cidr_problem(*s));
      }
    }
    if (r.has("agent")) {
      if (auto s = text(r.get("agent"), "agent")) {
        seg.agent = *s;
        refs_.push_back({"", what, "agent:" + *s, {}, at(r.get("agent"))});
      }
    }
    if (r.has("dhcp")) {
      const auto& d = r.get("dhcp");
      if (!d.IsMap()) {
        err(at(d), "'dhcp': " + expected_msg("a mapping", d));
      } else {
        yaml::MapReader dr(d, file_, diags_, kDhcpKeys, what + " dhcp");
        if (dr.has("mode")) {
          if (auto s = text(dr.get("mode"), "dhcp mode")) {
            if (*s == "serve")
              seg.dhcp.mode = DhcpMode::Serve;
            else if (*s == "observe")
              seg.dhcp.mode = DhcpMode::Observe;
            else if (*s == "off")
              seg.dhcp.mode = DhcpMode::Off;
            else {
              std::string msg = "dhcp mode '" + *s + "'; expected serve, observe or off";
              auto g = text::closest(*s, {"serve", "observe", "off"});
              if (!g.empty()) msg += " (did you mean '" + g + "'?)";
              err(at(dr.get("mode")), msg);
            }
          }
        }
        if (dr.has("range")) {
          const auto& rn = dr.get("range");
          if (auto s = text(rn, "dhcp range")) {
            auto parts = text::split(*s, '-');
            std::optional<std::uint32_t> a, b;
            if (parts.size() == 2) {
              a = parse_ipv4(text::trim(parts[0]));
              b = parse_ipv4(text::trim(parts[1]));
            }
            if (!a || !b) {
              err(at(rn),
                  "dhcp range '" + *s + "' is not FIRST-LAST (e.g. 192.168.0.100-192.168.0.199)");
            } else if (*a > *b) {
              err(at(rn), "dhcp range '" + *s + "' ends before it starts");
            } else if (seg.subnet.prefix > 0 &&
                       (!seg.subnet.contains(*a) || !seg.subnet.contains(*b))) {
              err(at(rn), "dhcp range '" + *s + "' is not inside subnet " + seg.subnet.to_string());
            } else {
              seg.dhcp.range_first = a;
              seg.dhcp.range_last = b;
            }
          }
        }
        if (dr.has("router")) {
          seg.dhcp.router = ipv4(dr.get("router"), "dhcp router");
          if (seg.dhcp.router && seg.subnet.prefix > 0 && !seg.subnet.contains(*seg.dhcp.router))
            err(at(dr.get("router")), "router " + format_ipv4(*seg.dhcp.router) +
                                          " is not inside subnet " + seg.subnet.to_string());
        }
        if (dr.has("dns")) seg.dhcp.dns = ipv4_list(dr.get("dns"), "dhcp dns");
        if (dr.has("ntp")) seg.dhcp.ntp = ipv4_list(dr.get("ntp"), "dhcp ntp");
        if (dr.has("domain"))
          if (auto s = text(dr.get("domain"), "dhcp domain")) seg.dhcp.domain = *s;
        if (dr.has("lease-time")) {
          if (auto s = text(dr.get("lease-time"), "lease-time")) {
            auto ms = text::parse_duration_ms(*s);
            if (!ms || *ms < 60'000)
              err(at(dr.get("lease-time")),
                  "lease-time '" + *s + "' must be a duration of at least 60s");
            else
              seg.dhcp.lease_time_ms = *ms;
          }
        }
        if (dr.has("unknown-clients")) {
          if (auto s = text(dr.get("unknown-clients"), "unknown-clients")) {
            if (*s == "deny")
              seg.dhcp.deny_unknown = true;
            else if (*s != "allow")
              err(at(dr.get("unknown-clients")),
                  "unknown-clients '" + *s + "'; expected allow or deny");
          }
        }
        if (dr.has("classes")) dhcp_classes(dr.get("classes"), seg, what);
        if (seg.dhcp.mode == DhcpMode::Serve && seg.interface.empty())
          err(at(dr.get("mode")), what + ": dhcp mode serve needs the segment's 'interface'");
        if (seg.dhcp.mode != DhcpMode::Serve && dr.has("range"))
          warn(at(dr.get("range")), what + ": dhcp range is only used in mode serve");
      }
    }
    if (r.has("tftp")) {
      const auto& t = r.get("tftp");
      if (!t.IsMap()) {
        err(at(t), "'tftp': " + expected_msg("a mapping", t));
      } else {
        yaml::MapReader tr(t, file_, diags_, kTftpKeys, what + " tftp");
        seg.tftp.enabled = true;
        if (tr.has("enabled"))
          if (auto b = boolean(tr.get("enabled"), "tftp enabled")) seg.tftp.enabled = *b;
        if (tr.has("root")) {
          if (auto s = text(tr.get("root"), "tftp root")) {
            fs::path p(*s);
            seg.tftp.root = (p.is_absolute() ? p : base_ / p).lexically_normal().string();
          }
        } else if (seg.tftp.enabled) {
          tr.require("root");
        }
        if (tr.has("servers")) seg.tftp.servers = ipv4_list(tr.get("servers"), "tftp servers");
        if (tr.has("port")) {
          if (auto p = integer(tr.get("port"), "tftp port")) {
            if (*p < 1 || *p > 65535)
              err(at(tr.get("port")), "tftp port " + std::to_string(*p) + " is outside 1..65535");
            else
              seg.tftp.port = static_cast<int>(*p);
          }
        }
      }
    }
    inv_.segments.push_back(std::move(seg));
  });
}

void Loader::read_agents(const YAML::Node& n) {
  if (!n.IsDefined()) return;
  std::unordered_map<std::string, Mark> names;
  each_mapping(n, "agents", "agent", [&](const YAML::Node& an) {
    AgentDef a;
    a.mark = at(an);
    yaml::MapReader r(an, file_, diags_, kAgentKeys, "agent");
    if (r.require("name")) {
      if (auto s = text(r.get("name"), "agent name")) {
        a.name = *s;
        if (!valid_name(a.name) || a.name == "local")
          err(at(r.get("name")),
              "agent name '" + a.name +
                  "' must be 1-63 letters, digits, '.', '-' or '_', and not 'local'");
        auto [it, fresh] = names.emplace(a.name, at(r.get("name")));
        if (!fresh)
          err(at(r.get("name")), "duplicate agent name '" + a.name + "' (first at line " +
                                     std::to_string(it->second.line) + ")");
      }
    }
    if (r.require("url")) {
      if (auto s = text(r.get("url"), "agent url")) {
        a.url = *s;
        if (!a.url.starts_with("https://") || a.url.size() <= 8)
          err(at(r.get("url")),
              "agent url '" + a.url +
                  "' must be https://HOST[:PORT] (agents speak HTTPS with mutual TLS)");
      }
    }
    if (r.has("description"))
      if (auto s = text(r.get("description"), "description")) a.description = *s;
    if (r.has("pki"))
      if (auto s = text(r.get("pki"), "pki")) {
        std::filesystem::path p(*s);
        a.pki = p.is_absolute() ? p : inv_.base_dir / p;
      }
    inv_.agents.push_back(std::move(a));
  });
}

void Loader::read_device(const YAML::Node& n) {
  Device dev;
  dev.mark = at(n);
  // The type decides which keys are valid, so read it before checking keys.
  const DeviceSchema* schema = nullptr;
  std::vector<std::string> known = kDeviceCommonKeys;
  bool type_known = false;
  {
    YAML::Node t = yaml::map_get(n, "type");
    if (t && t.IsScalar()) {
      schema = schemas_.schema(t.Scalar());
      if (schema) {
        for (const auto& k : schema->keys)
          known.push_back(k.name);
        type_known = true;
      }
    }
  }
  if (!type_known) {  // without a schema, only the common keys can be checked
    for (const auto& e : yaml::map_entries(n, file_, nullptr, "device"))
      known.push_back(e.name);
  }
  yaml::MapReader r(n, file_, diags_, known, "device");
  if (r.require("name")) {
    if (auto s = text(r.get("name"), "device name")) {
      dev.name = *s;
      const Mark m = at(r.get("name"));
      if (!valid_name(dev.name)) {
        err(m,
            "device name '" + dev.name +
                "' must be 1-63 letters, digits, '.', '-' or '_', starting with a letter or digit");
      } else {
        auto [it, fresh] = names_.emplace(dev.name, m);
        if (!fresh)
          err(m, "duplicate device name '" + dev.name + "' (first at line " +
                     std::to_string(it->second.line) + ")");
      }
    }
  }
  const std::string what = "device '" + dev.name + "'";
  if (r.require("type")) {
    if (auto s = text(r.get("type"), "device type")) {
      dev.type = *s;
      if (!schema) {
        std::string msg = what + ": unknown device type '" + *s + "'";
        auto g = text::closest(*s, schemas_.types());
        if (!g.empty())
          msg += " (did you mean '" + g + "'?)";
        else
          msg += "; known types: " + text::join_list(schemas_.types(), ", ");
        err(at(r.get("type")), std::move(msg));
      }
    }
  }
  DeviceMarks marks;
  if (r.has("model")) {
    marks.model = at(r.get("model"));
    if (auto s = text(r.get("model"), "model")) dev.model = *s;
  }
  if (r.has("description"))
    if (auto s = text(r.get("description"), "description")) dev.description = *s;
  if (r.has("mac")) {
    const auto& mn = r.get("mac");
    if (auto s = text(mn, "mac")) {
      if (auto mac = normalize_mac(*s)) {
        dev.mac = *mac;
        auto [it, fresh] = macs_.emplace(dev.mac, std::pair{dev.name, at(mn)});
        if (!fresh)
          err(at(mn), what + ": MAC " + dev.mac + " is already used by device '" +
                          it->second.first + "' (line " + std::to_string(it->second.second.line) +
                          ")");
      } else {
        err(at(mn), what + ": '" + *s +
                        "' is not a MAC address (expected six hex pairs, e.g. 00:1b:54:aa:bb:cc)");
      }
    }
  }
  if (r.has("ip")) {
    const auto& in = r.get("ip");
    marks.ip = at(in);
    if (auto a = ipv4(in, what + " ip")) {
      dev.ip = format_ipv4(*a);
      // Devices may share an address when each names its own port (BMCs behind one address's
      // port forwards, simulators on loopback): the address and port together are unique.
      std::string where = dev.ip;
      if (r.has("port"))
        if (auto p = text(r.get("port"), "port")) where += ":" + *p;
      auto [it, fresh] = ips_.emplace(where, std::pair{dev.name, at(in)});
      if (!fresh)
        err(at(in), what + ": IP " + where + " is already used by device '" + it->second.first +
                        "' (line " + std::to_string(it->second.second.line) + ")");
    }
  }
  if (r.has("segment")) {
    if (auto s = text(r.get("segment"), "segment")) {
      dev.segment = *s;
      refs_.push_back({dev.name, "segment", "segment:" + *s, {}, at(r.get("segment"))});
    }
  }
  if (r.has("agent")) {
    if (auto s = text(r.get("agent"), "agent")) {
      dev.agent = *s;
      refs_.push_back({dev.name, "agent", "agent:" + *s, {}, at(r.get("agent"))});
    }
  }
  if (r.has("firmware")) {
    const auto& f = r.get("firmware");
    dev.firmware.mark = at(f);
    if (f.IsScalar()) {
      dev.firmware.target = f.Scalar();
    } else if (f.IsMap()) {
      yaml::MapReader fr(f, file_, diags_, kFirmwareKeys, what + " firmware");
      if (fr.require("target"))
        if (auto s = text(fr.get("target"), "firmware target")) {
          dev.firmware.target = *s;
          dev.firmware.mark = at(fr.get("target"));
        }
      if (fr.has("allow-downgrade"))
        if (auto b = boolean(fr.get("allow-downgrade"), "allow-downgrade"))
          dev.firmware.allow_downgrade = *b;
    } else {
      err(dev.firmware.mark,
          what + ": 'firmware': " + expected_msg("a version or {target: VERSION}", f));
    }
  }
  if (r.has("after")) {
    const auto& a = r.get("after");
    const Mark after_mark = at(a);
    if (a.IsScalar()) {
      dev.after.push_back(a.Scalar());
      marks.after.push_back(after_mark);
      refs_.push_back({dev.name, "'after'", a.Scalar(), {}, after_mark});
    } else if (a.IsSequence()) {
      for (const auto& e : a)
        if (auto s = text(e, "after")) {
          dev.after.push_back(*s);
          marks.after.push_back(at(e));
          refs_.push_back({dev.name, "'after'", *s, {}, at(e)});
        }
    } else {
      err(after_mark, what + ": 'after': " + expected_msg("a device name or a list of them", a));
    }
  }
  if (schema) {
    for (const auto& k : schema->keys) {
      const std::string p = "/" + k.name;
      if (!r.has(k.name)) {
        if (k.required)
          r.require(k.name);
        else if (!k.default_value.is_null())
          dev.params[k.name] = k.default_value;
        continue;
      }
      dev.marks[p] = at(r.get(k.name));
      json v = value(r.get(k.name), k, p, dev);
      if (!v.is_null()) dev.params[k.name] = std::move(v);
    }
    if (schema->model_required && dev.model.empty()) r.require("model");
    if (!schema->models.empty() && !dev.model.empty()) {
      bool ok = std::any_of(schema->models.begin(), schema->models.end(),
                            [&](const std::string& m) { return text::iequals(m, dev.model); });
      if (!ok) {
        std::string msg = what + ": model '" + dev.model + "' is not handled by type '" + dev.type +
                          "'; known models: " + text::join_list(schema->models, ", ");
        auto g = text::closest(dev.model, schema->models);
        if (!g.empty()) msg += " (did you mean '" + g + "'?)";
        err(at(r.get("model")), std::move(msg));
      }
    }
  }
  device_marks_.push_back(std::move(marks));
  inv_.devices.push_back(std::move(dev));
}

void Loader::read_devices(const YAML::Node& n) {
  if (n.IsSequence()) inv_.devices.reserve(n.size());
  each_mapping(n, "devices", "device", [&](const YAML::Node& dn) { read_device(dn); });
}

void Loader::check_references() {
  std::unordered_map<std::string, const Device*> by_name;
  for (const auto& d : inv_.devices)
    by_name.emplace(d.name, &d);
  std::vector<std::string> device_names;
  auto all_devices = [&]() -> const std::vector<std::string>& {
    if (device_names.empty())
      for (const auto& d : inv_.devices)
        device_names.push_back(d.name);
    return device_names;
  };
  for (const auto& ref : refs_) {
    // Refs from outside a device (a segment's agent) carry their owner in `what`.
    const std::string who = !ref.device.empty() ? "device '" + ref.device + "': "
                            : ref.what.empty()  ? std::string()
                                                : ref.what + ": ";
    if (ref.target.starts_with("segment:")) {
      auto name = ref.target.substr(8);
      if (!inv_.segment(name)) {
        std::vector<std::string> names;
        for (const auto& s : inv_.segments)
          names.push_back(s.name);
        std::string msg = who + "segment '" + name + "' is not defined";
        auto g = text::closest(name, names);
        if (!g.empty()) msg += " (did you mean '" + g + "'?)";
        err(ref.mark, std::move(msg));
      }
      continue;
    }
    if (ref.target.starts_with("agent:")) {
      auto name = ref.target.substr(6);
      if (name != "local" && !inv_.agent(name)) {
        std::vector<std::string> names{"local"};
        for (const auto& a : inv_.agents)
          names.push_back(a.name);
        std::string msg = who + "agent '" + name + "' is not defined";
        auto g = text::closest(name, names);
        if (!g.empty()) msg += " (did you mean '" + g + "'?)";
        err(ref.mark, std::move(msg));
      }
      continue;
    }
    auto it = by_name.find(ref.target);
    if (it == by_name.end()) {
      std::string msg = who + ref.what + " names device '" + ref.target + "', which is not defined";
      auto g = text::closest(ref.target, all_devices());
      if (!g.empty()) msg += " (did you mean '" + g + "'?)";
      err(ref.mark, std::move(msg));
      continue;
    }
    if (ref.target == ref.device) {
      err(ref.mark, who + ref.what + " names the device itself");
      continue;
    }
    if (!ref.capabilities.empty()) {
      auto caps = schemas_.capabilities(it->second->type);
      bool ok = std::any_of(ref.capabilities.begin(), ref.capabilities.end(), [&](const auto& c) {
        return std::find(caps.begin(), caps.end(), c) != caps.end();
      });
      if (!ok) {
        std::vector<std::string> wanted, types;
        for (const auto& c : ref.capabilities)
          wanted.push_back("'" + c + "'");
        for (const auto& t : schemas_.types()) {
          auto tc = schemas_.capabilities(t);
          if (std::any_of(ref.capabilities.begin(), ref.capabilities.end(), [&](const auto& c) {
                return std::find(tc.begin(), tc.end(), c) != tc.end();
              }))
            types.push_back(t);
        }
        err(ref.mark,
            who + ref.what + " names device '" + ref.target + "' of type '" + it->second->type +
                "', which lacks the " + text::join_list(wanted, " or ") + " capability" +
                (types.empty() ? "" : " (types with it: " + text::join_list(types, ", ") + ")"));
      }
    }
  }
  // Devices on a segment must have addresses inside it.
  for (std::size_t i = 0; i < inv_.devices.size(); ++i) {
    const Device& d = inv_.devices[i];
    if (d.segment.empty() || d.ip.empty()) continue;
    const Segment* s = inv_.segment(d.segment);
    if (!s || s->subnet.prefix == 0) continue;
    if (!s->subnet.contains(*parse_ipv4(d.ip)))
      err(device_marks_[i].ip, "device '" + d.name + "': IP " + d.ip + " is not inside segment '" +
                                   s->name + "' (" + s->subnet.to_string() + ")");
  }
}

void Loader::check_after_cycles() {
  // Iterative three-colour DFS over `after` edges; reports each cycle once.
  std::unordered_map<std::string, std::size_t> idx;
  for (std::size_t i = 0; i < inv_.devices.size(); ++i)
    idx.emplace(inv_.devices[i].name, i);
  std::vector<int> colour(inv_.devices.size(), 0);
  std::vector<std::size_t> parent(inv_.devices.size(), SIZE_MAX);
  for (std::size_t start = 0; start < inv_.devices.size(); ++start) {
    if (colour[start]) continue;
    std::vector<std::pair<std::size_t, std::size_t>> stack{{start, 0}};
    colour[start] = 1;
    while (!stack.empty()) {
      auto& [v, next] = stack.back();
      const auto& after = inv_.devices[v].after;
      if (next >= after.size()) {
        colour[v] = 2;
        stack.pop_back();
        continue;
      }
      const std::size_t edge = next++;
      auto it = idx.find(after[edge]);
      if (it == idx.end() || it->second == v) continue;
      std::size_t w = it->second;
      if (colour[w] == 0) {
        colour[w] = 1;
        parent[w] = v;
        stack.push_back({w, 0});
      } else if (colour[w] == 1) {
        std::vector<std::string> cycle{inv_.devices[w].name};
        for (std::size_t u = v; u != w && u != SIZE_MAX; u = parent[u])
          cycle.push_back(inv_.devices[u].name);
        cycle.push_back(inv_.devices[w].name);
        std::reverse(cycle.begin() + 1, cycle.end() - 1);
        std::string path;
        for (const auto& c : cycle)
          path += (path.empty() ? "" : " -> ") + c;
        err(device_marks_[v].after[edge],
            "device '" + inv_.devices[v].name + "': 'after' makes a cycle: " + path);
      }
    }
  }
}

void Loader::load_catalog(const YAML::Node& catalog_key) {
  fs::path path;
  if (options_.catalog) {
    path = *options_.catalog;
  } else if (catalog_key.IsDefined()) {
    auto s = text(catalog_key, "catalog");
    if (!s) return;
    if (*s == "builtin")
      path = default_catalog_path();
    else
      path = fs::path(*s).is_absolute() ? fs::path(*s) : base_ / *s;
  } else {
    path = default_catalog_path();
  }
  Diagnostics cd;
  auto cat = inventory::load_catalog(path, cd);
  diags_.merge(cd);
  if (cat) inv_.catalog = std::make_shared<const Catalog>(std::move(*cat));
}

void Loader::check_firmware() {
  for (std::size_t i = 0; i < inv_.devices.size(); ++i) {
    const Device& d = inv_.devices[i];
    const DeviceSchema* schema = schemas_.schema(d.type);
    // A firmware target needs the model in the catalog, and so does a type that requires a model.
    if (d.firmware.target.empty() && !(schema && schema->model_required)) continue;
    const std::string what = "device '" + d.name + "'";
    if (d.model.empty()) {
      if (!d.firmware.target.empty())
        err(d.firmware.mark,
            what + ": firmware target needs the device's 'model' to find its catalog entry");
      continue;  // a missing required model is reported already
    }
    if (!inv_.catalog) continue;  // the catalog's own errors are reported already
    const Family* fam = inv_.catalog->family_for_model(d.model);
    if (!fam) {
      std::vector<std::string> models;
      for (const auto& f : inv_.catalog->families)
        models.insert(models.end(), f.models.begin(), f.models.end());
      std::string msg = what + ": model '" + d.model + "' is not in the firmware catalog (" +
                        inv_.catalog->file + ")";
      auto g = text::closest(d.model, models);
      if (!g.empty()) msg += " (did you mean '" + g + "'?)";
      err(device_marks_[i].model, std::move(msg));
      continue;
    }
    if (d.firmware.target.empty()) continue;
    auto v = parse_version(fam->scheme, d.firmware.target);
    if (!v) {
      err(d.firmware.mark, what + ": firmware target: " + v.error().message());
      continue;
    }
    if (!fam->find(*v)) {
      std::vector<std::string> known;
      for (const auto& rel : fam->releases)
        known.push_back(rel.version.text);
      err(d.firmware.mark, what + ": firmware target '" + d.firmware.target +
                               "' is not in the catalog for " + d.model + " (family " + fam->name +
                               "); known: " + text::join_list(known, ", "));
    }
  }
}

std::optional<Inventory> Loader::run(const YAML::Node& root) {
  for (auto& e : yaml::empty_values(root))
    empty_values_.emplace(e.value.Mark().pos, e);
  inv_.file = file_;
  inv_.base_dir = base_;
  if (!root.IsMap()) {
    err(at(root), "an inventory is a mapping with version, site and devices; found " +
                      std::string(yaml::describe(root)));
    return std::nullopt;
  }
  yaml::MapReader r(root, file_, diags_, kTopKeys, "the inventory");
  if (r.require("version")) {
    if (auto v = integer(r.get("version"), "version")) {
      if (*v != 1)
        err(at(r.get("version")), "inventory version " + std::to_string(*v) +
                                      " is not supported; this labctl reads version 1");
      inv_.version = static_cast<int>(*v);
    }
  }
  if (r.require("site"))
    if (auto s = text(r.get("site"), "site")) inv_.site = *s;
  read_segments(r.get("segments"));
  read_agents(r.get("agents"));
  if (r.require("devices")) read_devices(r.get("devices"));
  inv_.device_index_.reserve(inv_.devices.size());
  for (std::size_t i = 0; i < inv_.devices.size(); ++i)
    inv_.device_index_.emplace(inv_.devices[i].name, i);
  check_references();
  check_after_cycles();
  load_catalog(r.get("catalog"));
  check_firmware();
  if (diags_.has_errors()) return std::nullopt;
  // Plugin checks see a structurally valid inventory only, so they need no defensive code.
  for (const auto& d : inv_.devices) {
    DeviceReport report(diags_, file_, d);
    schemas_.check_device(d, inv_, report);
  }
  if (diags_.has_errors()) return std::nullopt;
  return std::move(inv_);
}

LoadResult load_inventory_text(const std::string& text, const std::string& display_name,
                               const fs::path& base_dir, const SchemaSource& schemas,
                               const LoadOptions& options) {
  LoadResult out;
  if (text.size() > options.max_bytes) {
    out.diags.error(display_name, {},
                    "inventory is " + std::to_string(text.size()) + " bytes; the limit is " +
                        std::to_string(options.max_bytes));
    return out;
  }
  auto root = yaml::parse(text, display_name, out.diags);
  if (!root) return out;
  Loader loader(display_name, base_dir, schemas, options, out.diags);
  try {
    out.inventory = loader.run(*root);
  } catch (const YAML::Exception& e) {
    out.diags.error(display_name, {}, std::string("YAML: ") + e.what());
    out.inventory.reset();
  }
  return out;
}

LoadResult load_inventory(const fs::path& path, const SchemaSource& schemas,
                          const LoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult out;
    out.diags.error(path.string(), {}, "cannot read: " + std::string(std::strerror(errno)));
    return out;
  }
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (!ec && size > options.max_bytes) {
    LoadResult out;
    out.diags.error(path.string(), {},
                    "inventory is " + std::to_string(size) + " bytes; the limit is " +
                        std::to_string(options.max_bytes));
    return out;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  fs::path base = fs::absolute(path, ec).parent_path();
  return load_inventory_text(ss.str(), path.string(), base, schemas, options);
}

}  // namespace labctl::inventory
