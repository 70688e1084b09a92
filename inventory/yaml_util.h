// yaml-cpp helpers for loaders that report positions: marks, scalars, and key checking.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "inventory/diagnostics.h"

namespace labctl::inventory::yaml {

// 1-based position of a node; {0,0} for a node without one.
Mark mark_of(const YAML::Node& node);

// What a node is, for "expected a mapping, found a list".
std::string_view describe(const YAML::Node& node);

// Refuses input that would make the YAML parser recurse too deeply (flow collections nested past
// `max_depth`), before it is handed to yaml-cpp. Returns the position of the offending bracket.
std::optional<Mark> excessive_nesting(std::string_view text, int max_depth = 64);

// Parses text into a document; a syntax error goes to diags with its position. An unclosed flow
// collection is reported at its opening bracket, and a quoted scalar that is never closed (which
// yaml-cpp 0.7 accepts, swallowing the rest of the file) is refused.
std::optional<YAML::Node> parse(const std::string& text, const std::string& file,
                                Diagnostics& diags);

// yaml-cpp places an empty value (`key:` with nothing after it) at the next token, which is often
// on a later line. These are the document's empty values with the position of their key instead,
// so that errors about them point at the right line.
struct EmptyValue {
  YAML::Node value;
  Mark key_mark;
};
std::vector<EmptyValue> empty_values(const YAML::Node& root);

struct KeyEntry {
  std::string name;
  YAML::Node value;
  Mark key_mark;
};

// A mapping's entries in order, with YAML merge keys (`<<: *anchor`, which yaml-cpp leaves to
// the application) resolved: explicit keys win over merged ones. Non-scalar and duplicate keys
// are reported to `diags` when it is given, and left out.
std::vector<KeyEntry> map_entries(const YAML::Node& map, const std::string& file,
                                  Diagnostics* diags, std::string_view what);
// One key's value with merges resolved; an undefined node when absent.
YAML::Node map_get(const YAML::Node& map, std::string_view key);

// Walks a mapping's keys once: reports duplicate keys and keys not in `known` (with a
// did-you-mean), and returns the value of each known key (a null Node when absent).
class MapReader {
 public:
  MapReader(const YAML::Node& map, const std::string& file, Diagnostics& diags,
            std::vector<std::string> known, std::string_view what);
  YAML::Node get(std::string_view key) const;
  Mark key_mark(std::string_view key) const;
  bool has(std::string_view key) const;
  // Reports "missing required key 'name' in <what>" at the mapping's position when absent.
  bool require(std::string_view key);

 private:
  const YAML::Node& map_;
  const std::string& file_;
  Diagnostics& diags_;
  std::string what_;
  std::vector<std::pair<std::string, std::pair<YAML::Node, Mark>>> found_;
};

}  // namespace labctl::inventory::yaml
