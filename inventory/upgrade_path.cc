#include "inventory/upgrade_path.h"

#include <algorithm>
#include <deque>
#include <unordered_map>

#include "common/text.h"

namespace labctl::inventory {
namespace {

// The state space is versions x component versions; a real catalog has a handful of each. The
// bound only stops a pathological catalog from running away.
constexpr std::size_t kMaxStates = 20000;

// Protocols match when equal or when either side does not say (a device whose load id carries no
// protocol, or a family without protocols).
bool protocol_matches(const std::string& a, const std::string& b) {
  return a.empty() || b.empty() || a == b;
}

bool same_release_state(const Version& installed, const Release& r) {
  return same_version(installed, r.version) && protocol_matches(installed.protocol, r.protocol);
}

std::string state_key(const DeviceState& s) {
  std::string k;
  auto add_version = [&k](const Version& v) {
    for (auto n : v.key)
      k += std::to_string(n) + ",";
    k += v.protocol + ";";
  };
  add_version(s.version);
  for (const auto& [name, v] : s.components) {
    k += name + "=";
    add_version(v);
  }
  return k;
}

DeviceState apply(const DeviceState& s, const Release& r) {
  DeviceState next = s;
  next.version = r.version;
  if (!r.protocol.empty()) next.version.protocol = r.protocol;
  for (const auto& [name, v] : r.provides)
    next.components[name] = v;
  return next;
}

// Whether `r` may be installed on a device in state `s`. An upgrade is a newer version, or the same
// version as another protocol (an SCCP -> SIP switch of one release number is not a downgrade).
bool may_install(const DeviceState& s, const Release& r, const PathOptions& options) {
  if (same_release_state(s.version, r)) return false;
  auto order = compare(r.version, s.version);
  if (order < 0 && !options.allow_downgrade) return false;
  return std::all_of(r.requires_.begin(), r.requires_.end(),
                     [&](const Rule& rule) { return rule.holds(s); });
}

std::string rule_text(const Release& r, const Rule& rule, std::string_view reason_sep,
                      std::string_view reason_end) {
  std::string out = r.version.display() + " requires " + rule.describe();
  if (!rule.reason.empty()) {
    out += reason_sep;
    out += rule.reason;
    out += reason_end;
  }
  return out;
}

// Why hop `i` of a path is there: the first rule of a later hop that did not hold before hop `i`
// and holds after it. When no single hop makes a rule hold (rules met over several hops) the
// first later rule not yet met before hop `i` is named.
std::string intermediate_reason(const std::vector<DeviceState>& states,
                                const std::vector<const Release*>& releases, std::size_t i) {
  const std::string head = releases[i]->version.display() + " first: ";
  for (bool strict : {true, false}) {
    for (std::size_t j = i + 1; j < releases.size(); ++j) {
      for (const auto& rule : releases[j]->requires_) {
        if (rule.holds(states[i])) continue;
        if (strict && !rule.holds(states[i + 1])) continue;
        return head + rule_text(*releases[j], rule, ": ", "");
      }
    }
  }
  return head + "on the way to " + releases.back()->version.display();
}

std::string known_versions(const Family& family) {
  std::vector<std::string> names;
  // As written in the catalog: display forms drop the build number, and a user who wrote one
  // that does not match needs the exact spelling to copy.
  for (const auto& r : family.releases)
    names.push_back(r.version.text);
  return names.empty() ? "none" : text::join_list(names, ", ");
}

}  // namespace

Result<std::vector<Hop>> find_upgrade_path(const Family& family, const DeviceState& observed,
                                           const Version& target, const PathOptions& options) {
  if (observed.version.scheme != family.scheme || target.scheme != family.scheme) {
    return fail(Errc::InvalidInput, "family '" + family.name + "' uses " +
                                        std::string(scheme_name(family.scheme)) +
                                        " versions; got installed " + observed.version.display() +
                                        " and target " + target.display());
  }
  // The target release: same number and, when the target names one, same protocol.
  const Release* goal = nullptr;
  for (const auto& r : family.releases) {
    if (same_version(r.version, target) &&
        (target.protocol.empty() || r.protocol == target.protocol)) {
      goal = &r;
      break;
    }
  }
  if (!goal) {
    return fail(Errc::NotFound, "family '" + family.name + "' has no release " + target.text +
                                    " (known: " + known_versions(family) + ")");
  }
  const std::string installed = observed.version.display();
  if (same_release_state(observed.version, *goal)) return std::vector<Hop>{};
  if (compare(goal->version, observed.version) < 0 && !options.allow_downgrade) {
    return fail(Errc::PreconditionFailed, goal->version.display() +
                                              " is older than the installed " + installed +
                                              "; downgrading was not allowed");
  }

  // Candidates, highest version first: breadth-first search with children in this order finds,
  // among the shortest chains, the one whose first hop is highest, then second, and so on.
  std::vector<const Release*> candidates;
  for (const auto& r : family.releases)
    candidates.push_back(&r);
  std::stable_sort(candidates.begin(), candidates.end(), [](const Release* a, const Release* b) {
    auto c = compare(a->version, b->version);
    return c != 0 ? c > 0 : a->protocol > b->protocol;
  });

  struct Node {
    DeviceState state;
    std::size_t parent;
    const Release* via;
  };
  std::vector<Node> nodes{{observed, 0, nullptr}};
  std::unordered_map<std::string, std::size_t> visited{{state_key(observed), 0}};
  std::deque<std::size_t> queue{0};
  std::optional<std::size_t> found;
  while (!queue.empty() && !found) {
    const std::size_t at = queue.front();
    queue.pop_front();
    for (const Release* r : candidates) {
      // Releases without files cannot be installed, so they are only ever a destination (the
      // plugin then says what to do), never a stepping stone.
      if (r != goal && r->files.empty()) continue;
      if (!may_install(nodes[at].state, *r, options)) continue;
      DeviceState next = apply(nodes[at].state, *r);
      auto [it, inserted] = visited.emplace(state_key(next), nodes.size());
      if (!inserted) continue;
      if (nodes.size() >= kMaxStates) {
        return fail(Errc::Internal, "upgrade path search for " + goal->version.display() +
                                        " gave up after " + std::to_string(kMaxStates) + " states");
      }
      nodes.push_back({std::move(next), at, r});
      if (r == goal) {
        found = nodes.size() - 1;
        break;
      }
      queue.push_back(nodes.size() - 1);
    }
  }

  if (!found) {
    // Name the target's rules that no reachable state meets; if each is met somewhere but never
    // all at once, the ones the installed state fails.
    std::vector<const Rule*> blocking;
    for (const auto& rule : goal->requires_) {
      bool met = std::any_of(nodes.begin(), nodes.end(),
                             [&](const Node& n) { return rule.holds(n.state); });
      if (!met) blocking.push_back(&rule);
    }
    if (blocking.empty()) {
      for (const auto& rule : goal->requires_) {
        if (!rule.holds(observed)) blocking.push_back(&rule);
      }
    }
    std::vector<std::string> parts;
    for (const Rule* rule : blocking)
      parts.push_back(rule_text(*goal, *rule, " (", ")"));
    std::string why = parts.empty() ? "no release leads there" : text::join_list(parts, "; ");
    return fail(Errc::PreconditionFailed,
                "cannot reach " + goal->version.display() + " from " + installed + ": " + why +
                    "; no release reachable from " + installed + " satisfies " +
                    (blocking.size() > 1 ? "them" : "it"));
  }

  // Walk back from the goal, then explain each hop.
  std::vector<std::size_t> chain;
  for (std::size_t at = *found; at != 0; at = nodes[at].parent)
    chain.push_back(at);
  std::reverse(chain.begin(), chain.end());
  std::vector<DeviceState> states{observed};
  std::vector<const Release*> releases;
  for (std::size_t at : chain) {
    states.push_back(nodes[at].state);
    releases.push_back(nodes[at].via);
  }
  std::vector<Hop> hops;
  for (std::size_t i = 0; i < releases.size(); ++i) {
    Hop hop;
    hop.release = releases[i];
    hop.from = states[i].version;
    hop.to = states[i + 1].version;
    hop.reason = i + 1 == releases.size() ? "target of the inventory"
                                          : intermediate_reason(states, releases, i);
    hops.push_back(std::move(hop));
  }
  return hops;
}

}  // namespace labctl::inventory
