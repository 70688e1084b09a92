#include "inventory/yaml_util.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <sstream>
#include <unordered_set>

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
    if (c == '#')
      comment = true;
    else if (c == '"' || c == '\'')
      quote = c;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) return Mark{line, col};
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  // Block nesting by indentation is bounded by line length and yaml-cpp's own depth guard.
  return std::nullopt;
}

namespace {

Mark mark_at(std::string_view text, std::size_t offset) {
  Mark m{1, 1};
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++m.line;
      m.column = 1;
    } else {
      ++m.column;
    }
  }
  return m;
}

// The offset of the innermost flow collection ('[' or '{') still open at `end`, for a parser
// error that only says the end of a flow collection was not found.
std::optional<std::size_t> unclosed_flow(std::string_view text, std::size_t end) {
  std::vector<std::size_t> open;
  bool node_start = true;  // a node may start here: line start, after "- ", ": ", '[', '{', ','
  char quote = 0;
  auto blank_at = [&](std::size_t i) {
    return i >= text.size() || text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
           text[i] == '\r';
  };
  for (std::size_t i = 0; i < end && i < text.size(); ++i) {
    const char c = text[i];
    if (quote) {
      if (quote == '"' && c == '\\') {
        ++i;
      } else if (c == quote) {
        if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          ++i;  // '' inside single quotes
        } else {
          quote = 0;
          node_start = false;
        }
      }
      continue;
    }
    if (c == '\n') {
      node_start = true;
    } else if (c == ' ' || c == '\t' || c == '\r') {
      // keeps node_start
    } else if (c == '#' && (i == 0 || blank_at(i - 1))) {
      while (i + 1 < text.size() && text[i + 1] != '\n')
        ++i;
    } else if (node_start && (c == '"' || c == '\'')) {
      quote = c;
    } else if ((c == '[' || c == '{') && (node_start || !open.empty())) {
      open.push_back(i);
      node_start = true;
    } else if ((c == ']' || c == '}') && !open.empty()) {
      open.pop_back();
      node_start = false;
    } else if (c == ',' && !open.empty()) {
      node_start = true;
    } else if ((c == '-' && node_start && blank_at(i + 1)) ||
               (c == ':' && (blank_at(i + 1) || !open.empty()))) {
      node_start = true;
    } else {
      node_start = false;
    }
  }
  if (open.empty()) return std::nullopt;
  return open.back();
}

// Whether the quoted scalar opening at `offset` is closed before the end of the text.
bool quote_closed(std::string_view text, std::size_t offset) {
  const char q = text[offset];
  for (std::size_t i = offset + 1; i < text.size(); ++i) {
    if (q == '"' && text[i] == '\\') {
      ++i;
    } else if (text[i] == q) {
      if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'')
        ++i;
      else
        return true;
    }
  }
  return false;
}

// Visits every map entry of a document once (aliased collections are not walked twice), without
// recursion. `visit(&key, value)` for map entries, `visit(nullptr, item)` for sequence items.
template <typename Visit>
void walk(const YAML::Node& root, Visit&& visit) {
  std::vector<YAML::Node> stack{root};
  std::unordered_set<int> seen;  // offsets of collections walked already
  while (!stack.empty()) {
    YAML::Node n = stack.back();
    stack.pop_back();
    if (!n.IsMap() && !n.IsSequence()) continue;
    const int pos = n.Mark().pos;
    if (!seen.insert(pos).second) continue;
    if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        visit(&it->first, it->second);
        stack.push_back(it->first);
        stack.push_back(it->second);
      }
    } else {
      for (const auto& item : n) {
        visit(nullptr, item);
        stack.push_back(item);
      }
    }
  }
}

}  // namespace

namespace {

// Where a second YAML document starts, if the text has one. yaml-cpp 0.7's LoadAll never returns
// on a stray ',' outside a flow collection (it yields empty documents forever), so this parses at
// most two documents, discarding the events.
std::optional<YAML::Mark> second_document(const std::string& text) {
  struct Starts : YAML::EventHandler {
    std::optional<YAML::Mark> start;
    void OnDocumentStart(const YAML::Mark& m) override { start = m; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  };
  std::istringstream in(text);
  YAML::Parser parser(in);
  Starts first, second;
  if (!parser.HandleNextDocument(first)) return std::nullopt;
  if (!parser.HandleNextDocument(second)) return std::nullopt;
  return second.start;
}

}  // namespace

std::optional<YAML::Node> parse(const std::string& text, const std::string& file,
                                Diagnostics& diags) {
  if (auto m = excessive_nesting(text)) {
    diags.error(file, *m, "nesting deeper than 64 levels");
    return std::nullopt;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
    if (auto extra = second_document(text)) {
      diags.error(
          file, {extra->line + 1, extra->column + 1},
          "unexpected content after the first YAML document (the file must hold one document)");
      return std::nullopt;
    }
  } catch (const YAML::ParserException& e) {
    Mark m{e.mark.line >= 0 ? e.mark.line + 1 : 0, e.mark.column >= 0 ? e.mark.column + 1 : 0};
    if ((e.msg == YAML::ErrorMsg::END_OF_SEQ_FLOW || e.msg == YAML::ErrorMsg::END_OF_MAP_FLOW) &&
        e.mark.pos >= 0) {
      if (auto at = unclosed_flow(text, static_cast<std::size_t>(e.mark.pos))) {
        const char open = text[*at];
        diags.error(file, mark_at(text, *at),
                    std::string("YAML syntax: this '") + open +
                        "' is never closed by a matching '" + (open == '[' ? ']' : '}') + "'");
        return std::nullopt;
      }
    }
    std::string msg = "YAML syntax: " + e.msg;
    // yaml-cpp says this when a line is indented less or more than its siblings.
    if (e.msg == YAML::ErrorMsg::END_OF_SEQ || e.msg == YAML::ErrorMsg::END_OF_MAP)
      msg += " (is this line indented like the ones above it?)";
    diags.error(file, m, msg);
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    diags.error(file, {}, std::string("YAML: ") + e.what());
    return std::nullopt;
  }
  // An unterminated quoted scalar runs to the end of the input, so it is the last scalar.
  // (A Mark, not a Node: assigning to a yaml-cpp Node rebinds the data of the node it held.)
  int last_pos = -1;
  Mark last_mark;
  auto consider = [&](const YAML::Node& n) {
    if (n.IsDefined() && n.IsScalar() && n.Mark().pos > last_pos) {
      last_pos = n.Mark().pos;
      last_mark = mark_of(n);
    }
  };
  consider(root);
  walk(root, [&](const YAML::Node* k, const YAML::Node& v) {
    if (k) consider(*k);
    consider(v);
  });
  if (last_pos >= 0 && static_cast<std::size_t>(last_pos) < text.size()) {
    const auto at = static_cast<std::size_t>(last_pos);
    if ((text[at] == '"' || text[at] == '\'') && !quote_closed(text, at)) {
      diags.error(
          file, last_mark,
          std::string("YAML syntax: this quoted text is never closed by a matching ") + text[at]);
      return std::nullopt;
    }
  }
  return root;
}

std::vector<EmptyValue> empty_values(const YAML::Node& root) {
  std::vector<EmptyValue> out;
  walk(root, [&](const YAML::Node* k, const YAML::Node& v) {
    if (k && v.IsNull() && v.Mark().line != k->Mark().line) out.push_back({v, mark_of(*k)});
  });
  return out;
}

namespace {

// Adds the entries of a `<<` merge source (a mapping, or a list of mappings where earlier ones
// win) to `out`, skipping keys already present: explicit keys override merged ones (YAML 1.1).
// `seen` holds the mappings merged already, so aliases cannot make the work grow exponentially.
void add_merged(const YAML::Node& src, std::vector<KeyEntry>& out, int depth,
                std::vector<int>& seen) {
  if (depth > 16) return;
  auto add_map = [&](const YAML::Node& m) {
    if (!m.IsMap()) return;
    if (std::find(seen.begin(), seen.end(), m.Mark().pos) != seen.end()) return;
    seen.push_back(m.Mark().pos);
    std::vector<KeyEntry> own;
    // Only the first '<<' counts (map_entries reports a second one): assigning a yaml-cpp Node
    // that already holds a node would rebind that node's data, changing the document.
    YAML::Node nested;
    bool has_nested = false;
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      if (it->first.Scalar() == "<<") {
        if (!has_nested) nested = it->second;
        has_nested = true;
        continue;
      }
      own.push_back({it->first.Scalar(), it->second, mark_of(it->first)});
    }
    if (has_nested) add_merged(nested, own, depth + 1, seen);
    for (auto& e : own) {
      bool dup =
          std::any_of(out.begin(), out.end(), [&](const KeyEntry& o) { return o.name == e.name; });
      if (!dup) out.push_back(std::move(e));
    }
  };
  if (src.IsSequence()) {
    for (const auto& m : src)
      add_map(m);
  } else {
    add_map(src);
  }
}

}  // namespace

std::vector<KeyEntry> map_entries(const YAML::Node& map, const std::string& file,
                                  Diagnostics* diags, std::string_view what) {
  std::vector<KeyEntry> out;
  if (!map.IsMap()) return out;
  YAML::Node merge;
  bool has_merge = false;
  Mark merge_mark;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node k = it->first;  // a copy: `it->first` lives in a temporary proxy
    Mark km = mark_of(k);
    if (!k.IsScalar()) {
      if (diags)
        diags->error(file, km,
                     "keys of " + std::string(what) + " must be plain names, found " +
                         std::string(describe(k)));
      continue;
    }
    const std::string name = k.Scalar();
    if (name == "<<") {
      if (has_merge) {
        if (diags)
          diags->error(file, km,
                       "duplicate key '<<' in " + std::string(what) + " (first at line " +
                           std::to_string(merge_mark.line) + ")");
        continue;
      }
      if (!it->second.IsMap() && !it->second.IsSequence() && diags)
        diags->error(file, km,
                     "'<<' merges a mapping or a list of mappings, found " +
                         std::string(describe(it->second)));
      // Entries are reported at the '<<' key: an alias's own position is its anchor's.
      if (it->second.IsSequence() && diags)
        for (std::size_t n = 0; n < it->second.size(); ++n)
          if (!it->second[n].IsMap())
            diags->error(file, km,
                         "'<<' merges a mapping or a list of mappings; entry " +
                             std::to_string(n + 1) + " is " + std::string(describe(it->second[n])));
      merge = it->second;
      has_merge = true;
      merge_mark = km;
      continue;
    }
    auto dup =
        std::find_if(out.begin(), out.end(), [&](const KeyEntry& f) { return f.name == name; });
    if (dup != out.end()) {
      if (diags)
        diags->error(file, km,
                     "duplicate key '" + name + "' in " + std::string(what) + " (first at line " +
                         std::to_string(dup->key_mark.line) + ")");
      continue;
    }
    out.push_back({name, it->second, km});
  }
  if (has_merge) {
    std::vector<int> seen;
    add_merged(merge, out, 0, seen);
  }
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
