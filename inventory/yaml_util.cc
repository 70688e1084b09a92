#include "inventory/yaml_util.h"

#include <algorithm>

#include "common/text.h"

namespace labctl::inventory::yaml {

Mark mark_of(const YAML::Node& node) {
  if (!node.IsDefined()) return {};
  auto m = node.Mark();
  if (m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

std::string_view describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsScalar()) return "a scalar";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "an unknown node";
}

std::optional<Mark> excessive_nesting(std::string_view text, int max_depth) {
  int depth = 0, line = 1, col = 0;
  char quote = 0;
  bool comment = false;
  for (char c : text) {
    ++col;
    if (c == '\n') {
      ++line;
      col = 0;
      comment = false;
      if (quote == '\'') continue;  // single-quoted scalars may span lines
      continue;
    }
    if (comment) continue;
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '#') comment = true;
    else if (c == '"' || c == '\'') quote = c;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) return Mark{line, col};
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  // Block nesting by indentation is bounded by line length and yaml-cpp's own depth guard.
  return std::nullopt;
}

std::optional<YAML::Node> parse(const std::string& text, const std::string& file,
                                Diagnostics& diags) {
  if (auto m = excessive_nesting(text)) {
    diags.error(file, *m, "nesting deeper than 64 levels");
    return std::nullopt;
  }
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    Mark m{e.mark.line >= 0 ? e.mark.line + 1 : 0, e.mark.column >= 0 ? e.mark.column + 1 : 0};
    diags.error(file, m, "YAML syntax: " + e.msg);
  } catch (const YAML::Exception& e) {
    diags.error(file, {}, std::string("YAML: ") + e.what());
  }
  return std::nullopt;
}

namespace {

// Adds the entries of a `<<` merge source (a mapping, or a list of mappings where earlier ones
// win) to `out`, skipping keys already present: explicit keys override merged ones (YAML 1.1).
void add_merged(const YAML::Node& src, std::vector<KeyEntry>& out, int depth) {
  if (depth > 16) return;
  auto add_map = [&](const YAML::Node& m) {
    if (!m.IsMap()) return;
    std::vector<KeyEntry> own;
    YAML::Node nested;
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      if (it->first.Scalar() == "<<") {
        nested = it->second;
        continue;
      }
      own.push_back({it->first.Scalar(), it->second, mark_of(it->first)});
    }
    if (nested) add_merged(nested, own, depth + 1);
    for (auto& e : own) {
      bool dup = std::any_of(out.begin(), out.end(), [&](const KeyEntry& o) { return o.name == e.name; });
      if (!dup) out.push_back(std::move(e));
    }
  };
  if (src.IsSequence()) {
    for (const auto& m : src) add_map(m);
  } else {
    add_map(src);
  }
}

}  // namespace

std::vector<KeyEntry> map_entries(const YAML::Node& map, const std::string& file, Diagnostics* diags,
                                  std::string_view what) {
  std::vector<KeyEntry> out;
  if (!map.IsMap()) return out;
  YAML::Node merge;
  Mark merge_mark;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node& k = it->first;
    Mark km = mark_of(k);
    if (!k.IsScalar()) {
      if (diags)
        diags->error(file, km, "keys of " + std::string(what) + " must be plain names, found " +
                                   std::string(describe(k)));
      continue;
    }
    const std::string name = k.Scalar();
    if (name == "<<") {
      if (!it->second.IsMap() && !it->second.IsSequence() && diags)
        diags->error(file, km, "'<<' merges a mapping or a list of mappings, found " +
                                   std::string(describe(it->second)));
      merge = it->second;
      merge_mark = km;
      continue;
    }
    auto dup = std::find_if(out.begin(), out.end(), [&](const KeyEntry& f) { return f.name == name; });
    if (dup != out.end()) {
      if (diags)
        diags->error(file, km,
                     "duplicate key '" + name + "' in " + std::string(what) + " (first at line " +
                         std::to_string(dup->key_mark.line) + ")");
      continue;
    }
    out.push_back({name, it->second, km});
  }
  if (merge) add_merged(merge, out, 0);
  return out;
}

YAML::Node map_get(const YAML::Node& map, std::string_view key) {
  for (auto& e : map_entries(map, "", nullptr, ""))
    if (e.name == key) return e.value;
  return YAML::Node(YAML::NodeType::Undefined);
}

MapReader::MapReader(const YAML::Node& map, const std::string& file, Diagnostics& diags,
                     std::vector<std::string> known, std::string_view what)
    : map_(map), file_(file), diags_(diags), what_(what) {
  for (auto& e : map_entries(map, file, &diags, what)) {
    if (std::find(known.begin(), known.end(), e.name) == known.end()) {
      std::string msg = "unknown key '" + e.name + "' in " + what_;
      auto guess = text::closest(e.name, known);
      if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
      diags.error(file, e.key_mark, std::move(msg));
      continue;
    }
    found_.push_back({e.name, {e.value, e.key_mark}});
  }
}

YAML::Node MapReader::get(std::string_view key) const {
  for (const auto& f : found_)
    if (f.first == key) return f.second.first;
  return YAML::Node(YAML::NodeType::Undefined);
}

Mark MapReader::key_mark(std::string_view key) const {
  for (const auto& f : found_)
    if (f.first == key) return f.second.second;
  return mark_of(map_);
}

bool MapReader::has(std::string_view key) const {
  return std::any_of(found_.begin(), found_.end(), [&](const auto& f) { return f.first == key; });
}

bool MapReader::require(std::string_view key) {
  if (has(key)) return true;
  diags_.error(file_, mark_of(map_), "missing required key '" + std::string(key) + "' in " + what_);
  return false;
}

}  // namespace labctl::inventory::yaml
