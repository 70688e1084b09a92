#include "plugins/cisco_phone/doctor.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

namespace labctl::cisco_phone {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// "termNN.default.loads" -> "NN", else "".
std::string term_code(std::string_view name) {
  const std::string n = lower(name);
  if (n.size() == 20 && n.rfind("term", 0) == 0 && ends_with(n, ".default.loads") &&
      std::isdigit(static_cast<unsigned char>(n[4])) &&
      std::isdigit(static_cast<unsigned char>(n[5])))
    return n.substr(4, 2);
  return "";
}

std::string clock_text(std::int64_t ms) {
  if (ms <= 0) return "?";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%b %d %H:%M:%S", &tm);
  return buf;
}

struct Request {
  std::int64_t t = 0;
  std::string name;
  bool refused = false;
  std::string why;
};

// A catalog release (of a family with term files) that lists `name` among its files.
const inventory::Release* release_with_file(const inventory::Catalog* catalog,
                                            std::string_view name, const inventory::Family** fam) {
  if (catalog == nullptr) return nullptr;
  const std::string n = lower(name);
  for (const auto& f : catalog->families)
    for (const auto& r : f.releases)
      for (const auto& file : r.files)
        if (lower(file.name) == n && ends_with(n, ".sbn")) {
          *fam = &f;
          return &r;
        }
  return nullptr;
}

// The releases of the phone family that install a bootloader: the hop a looping phone needs.
std::vector<const inventory::Release*> bootloader_releases(const inventory::Catalog* catalog,
                                                           const std::string& code) {
  std::vector<const inventory::Release*> out;
  if (catalog == nullptr) return out;
  for (const auto& f : catalog->families) {
    if (!f.quirks.is_object() || !f.quirks.contains("term-files")) continue;
    bool has_code = false;
    for (const auto& [model, file] : f.quirks["term-files"].items())
      if (file.is_string() && term_code(file.get<std::string>()) == code) has_code = true;
    if (!has_code) continue;
    for (const auto& r : f.releases)
      if (r.provides.count("bootloader")) out.push_back(&r);
  }
  return out;
}

void diagnose_client(const std::string& client, const std::vector<Request>& reqs,
                     const inventory::Catalog* catalog, std::vector<Diagnosis>& out) {
  // 1. Runs of term-file requests with no other request between them.
  for (std::size_t i = 0; i < reqs.size();) {
    const std::string code = term_code(reqs[i].name);
    if (code.empty()) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < reqs.size() && term_code(reqs[j].name) == code)
      ++j;
    // The last term request of a run that a .sbn follows is the one the phone accepted.
    const std::size_t next = j;
    if (j < reqs.size() && ends_with(lower(reqs[j].name), ".sbn")) --j;
    const std::size_t run = j - i;
    if (run >= 3) {
      Diagnosis d;
      d.client = client;
      d.severity = "critical";
      d.code = "term-file-loop";
      d.first_ms = reqs[i].t;
      d.last_ms = reqs[j - 1].t;
      d.message = "asked " + reqs[i].name + " " + std::to_string(run) + " times (" +
                  clock_text(d.first_ms) + " to " + clock_text(d.last_ms) +
                  ") and never a .sbn: the phone refuses the load that file names. Most often "
                  "the load is too new for its bootloader (SIP 9.x needs the bootloader an SCCP "
                  "8.3(3)-8.5(2) load installs)";
      const auto hops = bootloader_releases(catalog, code);
      if (!hops.empty()) {
        d.message += "; serve " + hops.front()->version.text;
        if (!hops.front()->bundle.empty()) d.message += " (" + hops.front()->bundle + ")";
        d.message += " first, then the target load -- `labctl plan` shows the hop";
      } else {
        d.message += "; serve an SCCP 8.5(2) load first";
      }
      if (j < reqs.size())
        d.message += ". It moved on at " + clock_text(reqs[j].t) + " (asked " + reqs[j].name +
                     (next > j ? ", then " + reqs[next].name : std::string()) + ")";
      for (std::size_t k = i; k < j && d.evidence.size() < 8; ++k)
        d.evidence.push_back(clock_text(reqs[k].t) + " " + reqs[k].name);
      out.push_back(std::move(d));
    }
    i = next;
  }
  // 2. Refusals.
  for (const auto& r : reqs) {
    if (!r.refused) continue;
    Diagnosis d;
    d.client = client;
    d.first_ms = d.last_ms = r.t;
    d.evidence.push_back(clock_text(r.t) + " " + r.name + ": " + r.why);
    const std::string n = lower(r.name);
    if (ends_with(n, ".cnf.xml") && n.rfind("sep", 0) == 0) {
      d.severity = "warning";
      d.code = "no-configuration";
      d.message = "asked its configuration " + r.name + " and was refused (" + r.why +
                  "): publish one for this MAC, or the phone falls back to XMLDefault.cnf.xml";
    } else {
      d.severity = ends_with(n, ".sbn") || ends_with(n, ".loads") ? "critical" : "warning";
      d.code = "missing-file";
      d.message = "asked " + r.name + " and was refused (" + r.why + ")";
      if (d.severity == "critical")
        d.message +=
            ": the load is incomplete in the TFTP root, so the phone cannot install it "
            "(names are matched as requested: check the case on disk)";
    }
    out.push_back(std::move(d));
  }
  // 3. Loads: which catalog release the .sbn requests belong to, and whether all were asked.
  std::map<const inventory::Release*, std::pair<std::set<std::string>, std::int64_t>> fetched;
  std::map<const inventory::Release*, std::int64_t> first_seen;
  for (const auto& r : reqs) {
    if (r.refused) continue;
    const inventory::Family* fam = nullptr;
    if (const auto* rel = release_with_file(catalog, r.name, &fam)) {
      fetched[rel].first.insert(lower(r.name));
      fetched[rel].second = r.t;
      if (!first_seen.count(rel)) first_seen[rel] = r.t;
    }
  }
  for (const auto& [rel, got] : fetched) {
    std::vector<std::string> missing;
    for (const auto& f : rel->files)
      if (ends_with(lower(f.name), ".sbn") && !got.first.count(lower(f.name)))
        missing.push_back(f.name);
    Diagnosis d;
    d.client = client;
    d.first_ms = first_seen[rel];
    d.last_ms = got.second;
    if (missing.empty()) {
      d.severity = "info";
      d.code = "load-fetched";
      d.message = "fetched every file of " + rel->version.display() + " (" + rel->version.text +
                  ") by " + clock_text(d.last_ms) + ": the phone is installing it";
    } else {
      d.severity = "warning";
      d.code = "incomplete-load";
      std::string list;
      for (const auto& m : missing)
        list += (list.empty() ? "" : ", ") + m;
      d.message = "fetched " + std::to_string(got.first.size()) + " of the .sbn files of " +
                  rel->version.text + " and never asked " + list +
                  " (a transfer that failed, or a file the phone could not find)";
    }
    out.push_back(std::move(d));
  }
  // 4. Configuration.
  bool sep = false, xml_default = false;
  std::int64_t t = 0;
  std::string sep_name;
  for (const auto& r : reqs) {
    const std::string n = lower(r.name);
    if (ends_with(n, ".cnf.xml") && n.rfind("sep", 0) == 0 && !r.refused) {
      sep = true;
      sep_name = r.name;
      t = r.t;
    }
    if (n == "xmldefault.cnf.xml" && !r.refused) xml_default = true;
  }
  if (sep) {
    Diagnosis d{client,
                "info",
                "configuration",
                "asked its configuration " + sep_name + " (MAC " + sep_name.substr(3, 12) + ")",
                t,
                t,
                {}};
    out.push_back(std::move(d));
  } else if (xml_default) {
    out.push_back({client,
                   "warning",
                   "default-configuration",
                   "asked only XMLDefault.cnf.xml: no configuration of its own",
                   0,
                   0,
                   {}});
  }
}

}  // namespace

std::vector<Diagnosis> diagnose(const std::vector<tftp::Event>& events,
                                const inventory::Catalog* catalog) {
  std::map<std::string, std::vector<Request>> by_client;
  std::vector<std::string> order;
  for (const auto& e : events) {
    if (e.kind != tftp::EventKind::Request && e.kind != tftp::EventKind::Refused) continue;
    if (e.op != "RRQ" && !e.op.empty()) continue;
    auto [it, fresh] = by_client.try_emplace(e.client);
    if (fresh) order.push_back(e.client);
    auto& reqs = it->second;
    if (e.kind == tftp::EventKind::Request) {
      reqs.push_back({e.time_ms, e.name, false, ""});
    } else {
      // labctl's server emits Refused without a Request before it; the syslog parser pairs a NAK
      // with the request it follows.
      if (!reqs.empty() && reqs.back().name == e.name && !reqs.back().refused) {
        reqs.back().refused = true;
        reqs.back().why = e.reason;
      } else {
        reqs.push_back({e.time_ms, e.name, true, e.reason});
      }
    }
  }
  std::vector<Diagnosis> out;
  for (const auto& c : order) {
    auto& reqs = by_client[c];
    std::stable_sort(reqs.begin(), reqs.end(),
                     [](const Request& a, const Request& b) { return a.t < b.t; });
    diagnose_client(c, reqs, catalog, out);
  }
  return out;
}

nlohmann::json to_json(const Diagnosis& d) {
  return {{"client", d.client},    {"severity", d.severity}, {"code", d.code},
          {"message", d.message},  {"first_ms", d.first_ms}, {"last_ms", d.last_ms},
          {"evidence", d.evidence}};
}

std::string to_text(const Diagnosis& d) {
  std::string s = d.client + ": " + d.severity + ": " + d.message + "\n";
  for (const auto& e : d.evidence)
    s += "    " + e + "\n";
  return s;
}

}  // namespace labctl::cisco_phone
