#include "inventory/catalog.h"

#include "inventory/yaml_util.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/text.h"

namespace labctl::inventory {

// ---- Rules -------------------------------------------------------------------------------------

namespace {

bool within(const Version& v, const std::optional<Version>& min,
            const std::optional<Version>& max) {
  if (min && compare(v, *min) < 0) return false;
  if (max && compare(v, *max) > 0) return false;
  return true;
}

std::string bounds_text(const std::optional<Version>& min, const std::optional<Version>& max) {
  if (min && max) return " in [" + min->display() + ", " + max->display() + "]";
  if (min) return " >= " + min->display();
  if (max) return " <= " + max->display();
  return ": any version";
}

}  // namespace

bool Rule::holds(const DeviceState& state) const {
  switch (kind) {
    case Kind::Installed:
      return within(state.version, min, max);
    case Kind::Component: {
      auto it = state.components.find(component);
      return it != state.components.end() && within(it->second, min, max);
    }
    case Kind::Protocol:
      return std::find(protocols.begin(), protocols.end(), state.version.protocol) !=
             protocols.end();
  }
  return false;
}

std::string Rule::describe() const {
  switch (kind) {
    case Kind::Installed:
      return "installed" + bounds_text(min, max);
    case Kind::Component:
      return component + bounds_text(min, max);
    case Kind::Protocol:
      return "protocol " + text::join_list(protocols, " or ");
  }
  return "unknown rule";
}

// ---- Lookups -----------------------------------------------------------------------------------

const Release* Family::find(const Version& v) const {
  // A version that names its protocol only matches a release of that protocol (a family may ship
  // SCCP and SIP loads of the same number); one that does not matches the first of that number.
  for (const auto& r : releases) {
    if (!same_version(r.version, v)) continue;
    if (v.protocol.empty() || r.protocol.empty() || r.protocol == v.protocol) return &r;
  }
  return nullptr;
}

const Release* Family::find(std::string_view text) const {
  auto v = parse_version(scheme, text);
  return v ? find(*v) : nullptr;
}

const Family* Catalog::family_for_model(std::string_view model) const {
  for (const auto& f : families) {
    for (const auto& m : f.models) {
      if (text::iequals(m, model)) return &f;
    }
  }
  return nullptr;
}

const Family* Catalog::family(std::string_view name) const {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// ---- Loading -----------------------------------------------------------------------------------

namespace {

using YAML::Node;

const std::vector<std::string> kProtocols = {"sccp", "sip"};
const std::vector<std::string> kSchemeNames = {"cisco-load", "major-minor", "dotted", "esxi"};

// Free-form maps (quirks, options) are converted to JSON within these limits, so a hostile file
// (deep nesting, alias bombs) cannot exhaust the stack or memory.
constexpr int kMaxJsonDepth = 32;
constexpr std::size_t kMaxJsonNodes = 100000;

std::string kind_of(const Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return "a string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

Mark mark_of(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

Mark mark_of(const Node& n) {
  return mark_of(n.Mark());
}

// One key of a map, as written.
struct Entry {
  std::string key;
  Node key_node;
  Node value;

  // Where to point for a problem with the value: the value, or its key when the value is empty
  // (yaml-cpp places an empty value on the next line).
  Mark at() const { return value.IsNull() ? mark_of(key_node) : mark_of(value); }
};

// The known keys of a map, first occurrence of each.
struct Fields {
  Node map;
  std::vector<Entry> entries;

  const Entry* get(std::string_view key) const {
    for (const auto& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
};

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

class Loader {
 public:
  Loader(std::string file, Diagnostics& diags) : file_(std::move(file)), diags_(diags) {}

  std::optional<Catalog> load(const std::string& text) {
    const std::size_t before = diags_.error_count();
    auto parsed = yaml::parse(text, file_, diags_);
    if (!parsed) {
      errors_ += diags_.error_count() - before;
      return std::nullopt;
    }
    Node root = *parsed;
    if (root.IsNull()) {
      error({}, "empty catalog (expected a map with 'version' and 'families')");
      return std::nullopt;
    }

    Catalog catalog;
    catalog.file = file_;
    try {
      read_catalog(root, catalog);
    } catch (const std::exception& e) {
      // yaml-cpp accessors should not throw on a node we have type-checked; never let a surprise
      // escape the loader.
      error({}, std::string("internal error reading catalog: ") + e.what());
    }
    if (errors_ > 0) return std::nullopt;
    return catalog;
  }

 private:
  void error(Mark m, std::string message) {
    diags_.error(file_, m, std::move(message));
    ++errors_;
  }

  // Reads a map's keys: reports duplicates, non-string keys and unknown keys (with a suggestion).
  std::optional<Fields> fields(const Node& map, std::string_view what,
                               const std::vector<std::string>& known) {
    if (!map.IsMap()) {
      error(mark_of(map), std::string(what) + " must be a map, got " + kind_of(map));
      return std::nullopt;
    }
    Fields out{map, {}};
    std::vector<std::pair<std::string, Mark>> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const Node k = it->first;  // a copy: the iterator hands out a temporary proxy
      if (!k.IsScalar()) {
        error(mark_of(k), "keys of " + std::string(what) + " must be strings, got " + kind_of(k));
        continue;
      }
      const std::string& key = k.Scalar();
      auto dup = std::find_if(seen.begin(), seen.end(), [&](auto& s) { return s.first == key; });
      if (dup != seen.end()) {
        error(mark_of(k), "duplicate key '" + key + "' (first at line " +
                              std::to_string(dup->second.line) + ")");
        continue;
      }
      seen.emplace_back(key, mark_of(k));
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        error(mark_of(k), unknown_key_message(key, what, known));
        continue;
      }
      out.entries.push_back({key, k, it->second});
    }
    return out;
  }

  static std::string unknown_key_message(const std::string& key, std::string_view what,
                                         const std::vector<std::string>& known) {
    std::string msg = "unknown key '" + key + "' in " + std::string(what);
    auto guess = text::closest(key, known);
    if (!guess.empty()) return msg + " (did you mean '" + guess + "'?)";
    std::vector<std::string> quoted;
    for (const auto& k : known)
      quoted.push_back("'" + k + "'");
    return msg + " (expected " + text::join_list(quoted, " or ") + ")";
  }

  const Entry* require(const Fields& f, std::string_view key, std::string_view what) {
    const Entry* e = f.get(key);
    if (!e) {
      error(mark_of(f.map),
            std::string(what) + " is missing required key '" + std::string(key) + "'");
    }
    return e;
  }

  std::optional<std::string> string_of(const Entry& e, bool allow_empty = false) {
    if (!e.value.IsScalar()) {
      error(e.at(), "'" + e.key + "' must be a string, got " + kind_of(e.value));
      return std::nullopt;
    }
    if (!allow_empty && e.value.Scalar().empty()) {
      error(e.at(), "'" + e.key + "' must not be empty");
      return std::nullopt;
    }
    return e.value.Scalar();
  }

  std::optional<std::uint64_t> uint_of(const Entry& e) {
    if (e.value.IsScalar()) {
      const std::string& s = e.value.Scalar();
      std::uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (!s.empty() && ec == std::errc() && ptr == s.data() + s.size()) return v;
      error(e.at(), "'" + e.key + "' must be a non-negative integer, got '" + s + "'");
      return std::nullopt;
    }
    error(e.at(), "'" + e.key + "' must be a non-negative integer, got " + kind_of(e.value));
    return std::nullopt;
  }

  // A list of non-empty strings, with the mark of each.
  std::optional<std::vector<std::pair<std::string, Mark>>> strings_of(const Entry& e) {
    if (!e.value.IsSequence()) {
      error(e.at(), "'" + e.key + "' must be a list of strings, got " + kind_of(e.value));
      return std::nullopt;
    }
    std::vector<std::pair<std::string, Mark>> out;
    bool ok = true;
    for (const auto& item : e.value) {
      if (!item.IsScalar() || item.Scalar().empty()) {
        error(mark_of(item), "'" + e.key + "' must be a list of strings, got " +
                                 (item.IsScalar() ? "an empty string" : kind_of(item)));
        ok = false;
        continue;
      }
      out.emplace_back(item.Scalar(), mark_of(item));
    }
    if (!ok) return std::nullopt;
    return out;
  }

  std::optional<Version> version_of(const Entry& e, std::optional<VersionScheme> scheme) {
    auto text = string_of(e);
    if (!text || !scheme) return std::nullopt;
    auto v = parse_version(*scheme, *text);
    if (!v) {
      error(e.at(), v.error().message());
      return std::nullopt;
    }
    return *v;
  }

  std::optional<nlohmann::json> json_of(const Node& n, int depth, std::size_t& budget) {
    if (depth > kMaxJsonDepth || budget == 0) {
      error(mark_of(n), "value is too deeply nested or too large");
      return std::nullopt;
    }
    --budget;
    switch (n.Type()) {
      case YAML::NodeType::Scalar:
        return scalar_json(n);
      case YAML::NodeType::Sequence: {
        auto out = nlohmann::json::array();
        for (const auto& item : n) {
          auto j = json_of(item, depth + 1, budget);
          if (!j) return std::nullopt;
          out.push_back(std::move(*j));
        }
        return out;
      }
      case YAML::NodeType::Map: {
        auto out = nlohmann::json::object();
        for (auto it = n.begin(); it != n.end(); ++it) {
          if (!it->first.IsScalar()) {
            error(mark_of(it->first), "keys must be strings, got " + kind_of(it->first));
            return std::nullopt;
          }
          const std::string key = it->first.Scalar();
          if (out.contains(key)) {
            error(mark_of(it->first), "duplicate key '" + key + "'");
            return std::nullopt;
          }
          auto j = json_of(it->second, depth + 1, budget);
          if (!j) return std::nullopt;
          out[key] = std::move(*j);
        }
        return out;
      }
      default:
        return nlohmann::json(nullptr);
    }
  }

  // Plain scalars become YAML 1.2 core types (null, bool, integer, float); quoted ones stay text.
  static nlohmann::json scalar_json(const Node& n) {
    const std::string& s = n.Scalar();
    if (n.Tag() == "!") return s;
    if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    const char* end = s.data() + s.size();
    std::int64_t i = 0;
    if (auto [p, ec] = std::from_chars(s.data(), end, i);
        !s.empty() && ec == std::errc() && p == end)
      return i;
    double d = 0;
    if (auto [p, ec] = std::from_chars(s.data(), end, d, std::chars_format::fixed);
        !s.empty() && ec == std::errc() && p == end)
      return d;
    return s;
  }

  std::optional<nlohmann::json> free_map(const Entry& e) {
    if (!e.value.IsMap()) {
      error(e.at(), "'" + e.key + "' must be a map, got " + kind_of(e.value));
      return std::nullopt;
    }
    std::size_t budget = kMaxJsonNodes;
    return json_of(e.value, 0, budget);
  }

  void read_catalog(const Node& root, Catalog& catalog) {
    auto f = fields(root, "catalog", {"version", "families"});
    if (!f) return;
    if (const Entry* e = require(*f, "version", "catalog")) {
      if (auto v = uint_of(*e); v && *v != 1) {
        error(e->at(),
              "unsupported catalog version " + std::to_string(*v) + " (this labctl reads 1)");
      }
    }
    const Entry* fams = require(*f, "families", "catalog");
    if (!fams) return;
    if (!fams->value.IsSequence()) {
      error(fams->at(), "'families' must be a list, got " + kind_of(fams->value));
      return;
    }
    struct ModelSeen {
      std::string model;
      std::string family;
      Mark mark;
    };
    std::vector<ModelSeen> models;
    std::vector<std::pair<std::string, Mark>> names;
    for (const auto& node : fams->value) {
      Family family;
      std::vector<std::pair<std::string, Mark>> family_models;
      Mark name_mark;
      read_family(node, family, family_models, name_mark);
      if (!family.name.empty()) {
        auto dup = std::find_if(names.begin(), names.end(),
                                [&](auto& n) { return n.first == family.name; });
        if (dup != names.end()) {
          error(name_mark, "duplicate family '" + family.name + "' (first at line " +
                               std::to_string(dup->second.line) + ")");
        }
        names.emplace_back(family.name, name_mark);
      }
      for (const auto& [model, mark] : family_models) {
        auto dup = std::find_if(models.begin(), models.end(),
                                [&](auto& m) { return text::iequals(m.model, model); });
        if (dup != models.end()) {
          std::string where =
              dup->family == family.name ? "in this family" : "by family '" + dup->family + "'";
          error(mark, "model '" + model + "' is already listed " + where + " (line " +
                          std::to_string(dup->mark.line) + ")");
          continue;
        }
        models.push_back({model, family.name, mark});
      }
      catalog.families.push_back(std::move(family));
    }
  }

  void read_family(const Node& node, Family& family,
                   std::vector<std::pair<std::string, Mark>>& models, Mark& name_mark) {
    family.mark = mark_of(node);
    auto f = fields(node, "family", {"name", "models", "scheme", "quirks", "releases"});
    if (!f) return;
    if (const Entry* e = require(*f, "name", "family")) {
      name_mark = e->at();
      if (auto s = string_of(*e)) family.name = *s;
    }
    if (const Entry* e = require(*f, "models", "family")) {
      if (auto list = strings_of(*e)) {
        if (list->empty()) error(e->at(), "'models' must list at least one model");
        models = *list;
        for (const auto& [m, mark] : *list)
          family.models.push_back(m);
      }
    }
    std::optional<VersionScheme> scheme;
    if (const Entry* e = require(*f, "scheme", "family")) {
      if (auto s = string_of(*e)) {
        if (auto parsed = scheme_from_name(*s)) {
          scheme = *parsed;
          family.scheme = *parsed;
        } else {
          auto guess = text::closest(*s, kSchemeNames);
          error(e->at(), guess.empty() ? parsed.error().message()
                                       : "unknown version scheme '" + *s + "' (did you mean '" +
                                             guess + "'?)");
        }
      }
    }
    family.quirks = nlohmann::json::object();
    if (const Entry* e = f->get("quirks")) {
      if (auto j = free_map(*e)) family.quirks = std::move(*j);
    }
    const Entry* rels = require(*f, "releases", "family");
    if (!rels) return;
    if (!rels->value.IsSequence()) {
      error(rels->at(), "'releases' must be a list, got " + kind_of(rels->value));
      return;
    }
    std::vector<Mark> version_marks;
    for (const auto& rnode : rels->value) {
      Release release;
      Mark version_mark;
      if (read_release(rnode, scheme, release, version_mark)) {
        check_duplicate_release(family, release, version_mark, version_marks);
        family.releases.push_back(std::move(release));
        version_marks.push_back(version_mark);
      }
    }
    std::stable_sort(family.releases.begin(), family.releases.end(),
                     [](const Release& a, const Release& b) {
                       auto c = compare(a.version, b.version);
                       return c != 0 ? c < 0 : a.protocol < b.protocol;
                     });
  }

  // Two releases of a family may share a number only if they are loads of different protocols.
  void check_duplicate_release(const Family& family, const Release& release, Mark at,
                               const std::vector<Mark>& marks) {
    for (std::size_t i = 0; i < family.releases.size(); ++i) {
      const Release& other = family.releases[i];
      if (same_version(other.version, release.version) && other.protocol == release.protocol) {
        error(at, "duplicate release '" + release.version.text + "' in family '" + family.name +
                      "' (same as '" + other.version.text + "' at line " +
                      std::to_string(marks[i].line) + ")");
        return;
      }
    }
  }

  // True when the release has a usable version (so duplicates can be checked); other problems are
  // reported but do not drop the release.
  bool read_release(const Node& node, std::optional<VersionScheme> scheme, Release& release,
                    Mark& version_mark) {
    release.mark = mark_of(node);
    release.options = nlohmann::json::object();
    auto f = fields(
        node, "release",
        {"version", "protocol", "bundle", "notes", "provides", "options", "files", "requires"});
    if (!f) return false;
    bool have_version = false;
    if (const Entry* e = require(*f, "version", "release")) {
      version_mark = e->at();
      if (auto v = version_of(*e, scheme)) {
        release.version = std::move(*v);
        release.protocol = release.version.protocol;
        have_version = true;
      }
    }
    if (const Entry* e = f->get("protocol"))
      read_release_protocol(*e, scheme, have_version, release);
    if (const Entry* e = f->get("bundle")) {
      if (auto s = string_of(*e)) release.bundle = *s;
    }
    if (const Entry* e = f->get("notes")) {
      if (auto s = string_of(*e, true)) release.notes = *s;
    }
    if (const Entry* e = f->get("provides")) {
      if (auto pf = fields_of_free_keys(*e)) {
        for (const auto& c : pf->entries) {
          if (auto v = version_of(c, scheme)) release.provides[c.key] = std::move(*v);
        }
      }
    }
    if (const Entry* e = f->get("options")) {
      if (auto j = free_map(*e)) release.options = std::move(*j);
    }
    if (const Entry* e = require(*f, "files", "release")) read_files(*e, release);
    if (const Entry* e = f->get("requires")) {
      if (!e->value.IsSequence()) {
        error(e->at(), "'requires' must be a list, got " + kind_of(e->value));
      } else {
        for (const auto& rnode : e->value) {
          Rule rule;
          if (read_rule(rnode, scheme, rule)) release.requires_.push_back(std::move(rule));
        }
      }
    }
    return have_version;
  }

  void read_release_protocol(const Entry& e, std::optional<VersionScheme> scheme, bool have_version,
                             Release& release) {
    auto s = string_of(e);
    if (!s) return;
    if (scheme && *scheme != VersionScheme::CiscoLoad) {
      error(e.at(), "'protocol' applies only to cisco-load families");
      return;
    }
    std::string p = text::lower(*s);
    if (std::find(kProtocols.begin(), kProtocols.end(), p) == kProtocols.end()) {
      error(e.at(), "unknown protocol '" + *s + "' (expected 'sccp' or 'sip')");
      return;
    }
    if (!have_version) return;
    if (!release.version.protocol.empty() && release.version.protocol != p) {
      error(e.at(), "protocol '" + p + "' does not match version '" + release.version.text +
                        "', which is a " + release.version.protocol + " load");
      return;
    }
    release.version.protocol = p;
    release.protocol = p;
  }

  // A map whose keys are names chosen by the author (provides: {bootloader: ...}).
  std::optional<Fields> fields_of_free_keys(const Entry& e) {
    if (!e.value.IsMap()) {
      error(e.at(), "'" + e.key + "' must be a map, got " + kind_of(e.value));
      return std::nullopt;
    }
    Fields out{e.value, {}};
    for (auto it = e.value.begin(); it != e.value.end(); ++it) {
      const Node k = it->first;  // a copy: the iterator hands out a temporary proxy
      if (!k.IsScalar() || k.Scalar().empty()) {
        error(mark_of(k), "keys of '" + e.key + "' must be non-empty strings");
        continue;
      }
      if (const Entry* first = out.get(k.Scalar())) {
        error(mark_of(k), "duplicate key '" + k.Scalar() + "' (first at line " +
                              std::to_string(mark_of(first->key_node).line) + ")");
        continue;
      }
      out.entries.push_back({k.Scalar(), k, it->second});
    }
    return out;
  }

  void read_files(const Entry& e, Release& release) {
    if (!e.value.IsSequence()) {
      error(e.at(), "'files' must be a list, got " + kind_of(e.value));
      return;
    }
    for (const auto& node : e.value) {
      auto f = fields(node, "file", {"name", "sha256", "size", "mirrors", "offset", "length"});
      if (!f) continue;
      FirmwareFile file;
      if (const Entry* n = require(*f, "name", "file")) {
        if (auto s = string_of(*n)) {
          file.name = *s;
          for (const auto& other : release.files) {
            if (text::iequals(other.name, file.name)) {
              error(n->at(), "file '" + file.name + "' is listed twice in this release");
            }
          }
        }
      }
      if (const Entry* n = require(*f, "sha256", "file")) {
        if (auto s = string_of(*n)) {
          if (*s != "pin") {
            if (s->size() != 64 || !is_hex(*s)) {
              error(n->at(), "'sha256' must be 64 hex digits or 'pin', got '" +
                                 (s->size() > 70 ? s->substr(0, 70) + "..." : *s) + "' (" +
                                 std::to_string(s->size()) + " characters)");
            } else {
              file.sha256 = text::lower(*s);
            }
          }
        }
      }
      if (const Entry* n = f->get("size")) file.size = uint_of(*n);
      if (const Entry* n = f->get("mirrors")) {
        if (auto list = strings_of(*n)) {
          for (const auto& [url, mark] : *list)
            file.mirrors.push_back(url);
        }
      }
      const Entry* off = f->get("offset");
      const Entry* len = f->get("length");
      if (off) file.offset = uint_of(*off);
      if (len) file.length = uint_of(*len);
      if ((off == nullptr) != (len == nullptr)) {
        const Entry* given = off ? off : len;
        error(mark_of(given->key_node), "'offset' and 'length' go together: '" + given->key +
                                            "' needs '" + (off ? "length" : "offset") + "'");
      }
      release.files.push_back(std::move(file));
    }
  }

  bool read_rule(const Node& node, std::optional<VersionScheme> scheme, Rule& rule) {
    rule.mark = mark_of(node);
    auto f = fields(node, "rule", {"installed", "component", "protocol", "min", "max", "reason"});
    if (!f) return false;
    const Entry* kinds[] = {f->get("installed"), f->get("component"), f->get("protocol")};
    const Entry* kind = nullptr;
    for (const Entry* k : kinds) {
      if (!k) continue;
      if (kind) {
        error(mark_of(k->key_node),
              "rule has both '" + kind->key + "' and '" + k->key + "'; write one rule per kind");
        return false;
      }
      kind = k;
    }
    if (!kind) {
      error(rule.mark, "rule needs one of 'installed', 'component' or 'protocol'");
      return false;
    }
    if (const Entry* r = f->get("reason")) {
      if (auto s = string_of(*r)) rule.reason = *s;
    }
    const Entry* min = f->get("min");
    const Entry* max = f->get("max");
    bool ok = true;
    if (kind->key != "component") {
      for (const Entry* b : {min, max}) {
        if (!b) continue;
        error(mark_of(b->key_node),
              kind->key == "installed"
                  ? "'" + b->key + "' of an installed rule goes inside it: installed: {" + b->key +
                        ": ...}"
                  : "'" + b->key + "' does not apply to a protocol rule");
        ok = false;
      }
    }

    std::optional<Fields> bounds;  // outlives `min` and `max`, which may point into it
    if (kind->key == "installed") {
      rule.kind = Rule::Kind::Installed;
      bounds = fields(kind->value, "'installed'", {"min", "max"});
      if (!bounds) return false;
      const auto* bf = &*bounds;
      min = bf->get("min");
      max = bf->get("max");
      if (!min && !max) {
        error(kind->at(), "'installed' needs 'min', 'max' or both");
        return false;
      }
    } else if (kind->key == "component") {
      rule.kind = Rule::Kind::Component;
      auto s = string_of(*kind);
      if (!s) return false;
      rule.component = *s;
      if (!min && !max) {
        error(rule.mark, "component rule needs 'min', 'max' or both");
        return false;
      }
    } else {
      rule.kind = Rule::Kind::Protocol;
      return read_protocol_rule(*kind, scheme, rule) && ok;
    }

    if (min) {
      rule.min = version_of(*min, scheme);
      ok = ok && rule.min.has_value();
    }
    if (max) {
      rule.max = version_of(*max, scheme);
      ok = ok && rule.max.has_value();
    }
    if (rule.min && rule.max && compare(*rule.min, *rule.max) > 0) {
      error(max->at(), "'max' " + rule.max->display() + " is below 'min' " + rule.min->display());
      ok = false;
    }
    return ok;
  }

  bool read_protocol_rule(const Entry& e, std::optional<VersionScheme> scheme, Rule& rule) {
    if (scheme && *scheme != VersionScheme::CiscoLoad) {
      error(mark_of(e.key_node), "protocol rules apply only to cisco-load families");
      return false;
    }
    std::vector<std::pair<std::string, Mark>> values;
    if (e.value.IsScalar()) {
      if (auto s = string_of(e)) values.emplace_back(*s, e.at());
    } else if (auto list = strings_of(e)) {
      values = *list;
    }
    if (values.empty()) {
      if (e.value.IsSequence()) error(e.at(), "'protocol' must list at least one protocol");
      return false;
    }
    bool ok = true;
    for (const auto& [value, mark] : values) {
      std::string p = text::lower(value);
      if (std::find(kProtocols.begin(), kProtocols.end(), p) == kProtocols.end()) {
        auto guess = text::closest(p, kProtocols);
        error(mark,
              "unknown protocol '" + value + "' (" +
                  (guess.empty() ? "expected 'sccp' or 'sip'" : "did you mean '" + guess + "'?") +
                  ")");
        ok = false;
        continue;
      }
      rule.protocols.push_back(p);
    }
    return ok;
  }

  std::string file_;
  Diagnostics& diags_;
  std::size_t errors_ = 0;
};

}  // namespace

std::optional<Catalog> load_catalog_text(const std::string& text, const std::string& display_name,
                                         Diagnostics& diags) {
  return Loader(display_name, diags).load(text);
}

std::optional<Catalog> load_catalog(const std::filesystem::path& path, Diagnostics& diags) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    diags.error(path.string(), {}, "cannot read catalog: is a directory");
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.error(path.string(), {}, std::string("cannot read catalog: ") + std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    diags.error(path.string(), {}, "cannot read catalog: read error");
    return std::nullopt;
  }
  return load_catalog_text(buf.str(), path.string(), diags);
}

std::filesystem::path default_catalog_path() {
  if (const char* env = std::getenv("LABCTL_CATALOG"); env != nullptr && *env != '\0') return env;
#ifdef LABCTL_SOURCE_CATALOG
  {
    std::error_code ec;
    if (std::filesystem::is_regular_file(LABCTL_SOURCE_CATALOG, ec)) return LABCTL_SOURCE_CATALOG;
  }
#endif
#ifdef LABCTL_INSTALLED_CATALOG
  return LABCTL_INSTALLED_CATALOG;
#else
  return "/usr/share/labctl/catalog.yaml";
#endif
}

}  // namespace labctl::inventory
