#include "controller/firmware_commands.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "controller/firmware_fetch.h"
#include "controller/firmware_store.h"
#include "inventory/catalog.h"
#include "plugins/supermicro_bmc/aten_image.h"

namespace labctl::controller {

namespace {

namespace fs = std::filesystem;
using firmware::FirmwareStore;
using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kFormatVersion = 1;

std::string short_sha(const std::string& sha) {
  return sha.substr(0, 12);
}

std::string human_size(std::uint64_t n) {
  std::ostringstream ss;
  if (n < 1024) {
    ss << n << " B";
  } else if (n < 1024 * 1024) {
    ss << std::fixed << std::setprecision(1) << static_cast<double>(n) / 1024 << " KiB";
  } else {
    ss << std::fixed << std::setprecision(1) << static_cast<double>(n) / (1024.0 * 1024) << " MiB";
  }
  return ss.str();
}

Result<std::unique_ptr<FirmwareStore>> open_store(Context& ctx) {
  auto s = FirmwareStore::open(ctx.state_dir());
  if (!s) return fail(std::move(s.error()));
  return s;
}

// The catalog: --catalog, else the shipped one ($LABCTL_CATALOG, the source tree, the data dir),
// as the inventory loader finds it.
std::optional<inventory::Catalog> load_catalog(Context& ctx, const std::string& cmd) {
  const fs::path path = ctx.options().catalog.empty() ? inventory::default_catalog_path()
                                                      : fs::path(ctx.options().catalog);
  inventory::Diagnostics diags;
  auto c = inventory::load_catalog(path, diags);
  for (const auto& d : diags.sorted())
    if (d.severity == inventory::Severity::Error || !ctx.options().quiet)
      std::cerr << d.format() << "\n";
  if (!c)
    std::cerr << "labctl " << cmd << ": cannot use the firmware catalog " << path.string()
              << " (--catalog FILE names another)\n";
  return c;
}

json error_json(const Error& e) {
  return {{"code", std::string(errc_name(e.code()))}, {"message", e.message()}};
}

json import_json(const firmware::ImportReport& r) {
  json files = json::array();
  for (const auto& f : r.files) {
    json j = {{"name", f.name},
              {"sha256", f.sha256},
              {"size", f.size},
              {"member", f.member},
              {"kind", std::string(firmware::kind_name(f.info.kind))},
              {"new", f.new_blob}};
    if (!f.info.protocol.empty()) j["protocol"] = f.info.protocol;
    if (!f.info.model_code.empty()) j["model_code"] = f.info.model_code;
    if (!f.info.component.empty()) j["component"] = f.info.component;
    if (!f.info.version.empty()) j["version"] = f.info.version;
    if (!f.info.load_id.empty()) j["load_id"] = f.info.load_id;
    files.push_back(std::move(j));
  }
  json out = {
      {"file", r.path},
      {"status",
       r.already_present ? (r.repaired > 0 ? "repaired" : "already-present") : "imported"},
      {"repaired", r.repaired},
      {"bundle", {{"name", r.name}, {"sha256", r.sha256}, {"size", r.size}, {"format", r.format}}},
      {"imported_at", r.imported_at},
      {"identification", firmware::to_json(r.id)},
      {"files", files},
      {"ignored", r.ignored},
      {"nested", r.nested},
      {"new_pins", r.new_pins},
      {"warnings", r.warnings}};
  if (r.already_present) out["previous_name"] = r.previous_name;
  return out;
}

// The JSON document of import and fetch: one result per file asked for.
void print_results(const std::unique_ptr<FirmwareStore>& store, const char* format,
                   const inventory::Catalog& catalog, const json& results) {
  std::cout << json{{"format", format},
                    {"format_version", kFormatVersion},
                    {"store", store->root().string()},
                    {"catalog", catalog.file},
                    {"results", results}}
                   .dump(2)
            << "\n";
}

void print_identification(const firmware::Identification& id) {
  if (!id.load_id.empty()) {
    std::cout << "  load " << id.load_id;
    std::vector<std::string> parts;
    if (!id.version.empty()) parts.push_back(id.version);
    if (!id.model_code.empty()) parts.push_back("model family " + id.model_code);
    if (!parts.empty()) std::cout << ": " << text::join_list(parts, ", ");
    std::cout << "\n";
  } else if (!id.load_ids.empty()) {
    std::cout << "  loads " << text::join_list(id.load_ids, ", ") << "\n";
  }
  if (!id.models.empty()) std::cout << "  term files for " << text::join_list(id.models) << "\n";
  bool any = false;
  for (const auto& m : id.releases) {
    if (!m.identified) continue;
    any = true;
    std::cout << "  catalog: " << m.family << " " << m.release
              << (m.complete ? ", complete (" + std::to_string(m.present.size()) + " files)"
                             : ", INCOMPLETE: missing " + text::join_list(m.missing, ", "))
              << "\n";
  }
  if (!any) {
    std::cout << "  catalog: no release is complete in this bundle";
    for (const auto& m : id.releases)
      if (!m.complete)
        std::cout << "\n    " << m.family << " " << m.release << ": " << m.present.size() << " of "
                  << m.present.size() + m.missing.size() << " files, missing "
                  << text::join_list(m.missing, ", ");
    std::cout << "\n";
  }
}

void print_import(const firmware::ImportReport& r) {
  if (r.already_present) {
    std::cout << r.name << ": already in the store";
    if (r.previous_name != r.name) std::cout << " (as " << r.previous_name << ")";
    std::cout << ", imported " << text::format_local_time(r.imported_at);
    if (r.repaired > 0)
      std::cout << "; put back " << r.repaired << " damaged or missing file"
                << (r.repaired == 1 ? "" : "s") << "\n";
    else
      std::cout << "; nothing changed\n";
    return;
  }
  std::size_t fresh = 0;
  for (const auto& f : r.files)
    if (f.new_blob) ++fresh;
  std::cout << r.name << ": imported " << r.files.size() << " file"
            << (r.files.size() == 1 ? "" : "s") << " (" << r.format << ", " << human_size(r.size)
            << "; " << fresh << " new in the store, "
            << (r.repaired > 0 ? std::to_string(r.repaired) + " repaired, " : std::string())
            << r.new_pins << " checksum" << (r.new_pins == 1 ? "" : "s") << " pinned)\n";
  print_identification(r.id);
  std::size_t width = 4;
  for (const auto& f : r.files)
    width = std::max(width, f.name.size());
  for (const auto& f : r.files)
    std::cout << "    " << std::left << std::setw(static_cast<int>(width) + 2) << f.name
              << std::right << std::setw(10) << human_size(f.size) << "  " << short_sha(f.sha256)
              << (f.new_blob ? "" : "  (already stored)") << "\n";
  if (!r.nested.empty()) std::cout << "  nested: " << text::join_list(r.nested, ", ") << "\n";
  if (!r.ignored.empty()) std::cout << "  ignored: " << text::join_list(r.ignored, ", ") << "\n";
  for (const auto& w : r.warnings)
    std::cout << "  warning: " << w << "\n";
}

json stored_json(const firmware::StoredFile& f) {
  return {{"name", f.name}, {"sha256", f.sha256}, {"size", f.size}, {"path", f.path.string()}};
}

json blob_json(const firmware::BlobCheck& b) {
  json j = {{"sha256", b.sha256}, {"size", b.size}, {"names", b.names}, {"status", b.status}};
  if (!b.actual_sha256.empty()) j["actual_sha256"] = b.actual_sha256;
  if (b.status != "ok" && b.status != "missing") j["actual_size"] = b.actual_size;
  return j;
}

// What a file's own structure says, for the formats labctl can verify offline (today: Supermicro
// ATEN BMC images). Files larger than this are not read for it.
constexpr std::uintmax_t kMaxFormatCheck = 64ull << 20;

struct FormatCheck {
  std::string kind = "unknown";  // "aten-wpcm450", "aspeed", "unknown", "too-large", "unreadable"
  bool recognised = false;       // a format labctl verifies
  bool ok = false;               // recognised and without a problem
  std::string text;              // the report, for humans
  json detail;                   // the report, for --json
};

FormatCheck check_format(const std::string& path) {
  FormatCheck fc;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) {
    fc.kind = "unreadable";
    return fc;
  }
  if (size > kMaxFormatCheck) {
    fc.kind = "too-large";
    return fc;
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    fc.kind = "unreadable";
    return fc;
  }
  namespace bmc = supermicro_bmc;
  const auto kind = bmc::detect_bmc_image(bytes);
  if (kind.kind == bmc::BmcImageKind::Unknown) return fc;
  fc.recognised = true;
  auto img = bmc::parse_aten_image(bytes);
  if (!img) {
    fc.kind = kind.kind == bmc::BmcImageKind::Aspeed ? "aspeed" : "aten-wpcm450";
    fc.text = "REFUSED   " + path + ": " + img.error().message() + "\n";
    fc.detail = error_json(img.error());
    return fc;
  }
  fc.kind = "aten-wpcm450";
  fc.ok = img->ok();
  fc.text = path + ": " + bmc::describe(*img);
  fc.detail = bmc::to_json(*img);
  return fc;
}

std::string blob_problem(const firmware::BlobCheck& b) {
  std::string names = b.names.empty() ? std::string() : " (" + text::join_list(b.names, ", ") + ")";
  if (b.status == "missing") return "MISSING  sha256/" + b.sha256 + names;
  if (b.status == "not-a-file") return "NOT A FILE  sha256/" + b.sha256 + names;
  if (b.status == "size-mismatch")
    return "SIZE  sha256/" + b.sha256 + names + ": " + std::to_string(b.actual_size) +
           " bytes, the index says " + std::to_string(b.size);
  return "CORRUPT  sha256/" + b.sha256 + names + ": its bytes hash to " +
         (b.actual_sha256.empty() ? std::string("something else") : b.actual_sha256);
}

}  // namespace

int cmd_firmware_import(Context& ctx, const std::vector<std::string>& files, bool as_json) {
  auto store = open_store(ctx);
  if (!store) {
    std::cerr << "labctl firmware import: " << store.error().message() << "\n";
    return kExitError;
  }
  auto catalog = load_catalog(ctx, "firmware import");
  if (!catalog) return kExitError;
  int code = kExitOk;
  json results = json::array();
  for (const auto& file : files) {
    auto r = (*store)->import(file, &*catalog);
    if (!r) {
      code = kExitError;
      std::cerr << "labctl firmware import: " << r.error().message() << "\n";
      results.push_back({{"file", file}, {"status", "error"}, {"error", error_json(r.error())}});
      continue;
    }
    if (as_json)
      results.push_back(import_json(*r));
    else if (!ctx.options().quiet)
      print_import(*r);
  }
  if (as_json) print_results(*store, "labctl-firmware-import", *catalog, results);
  return code;
}

int cmd_firmware_list(Context& ctx, bool as_json) {
  auto store = open_store(ctx);
  if (!store) {
    std::cerr << "labctl firmware list: " << store.error().message() << "\n";
    return kExitError;
  }
  auto bundles = (*store)->bundles();
  auto pins = (*store)->pins();
  if (!bundles || !pins) {
    std::cerr << "labctl firmware list: " << (!bundles ? bundles.error() : pins.error()).message()
              << "\n";
    return kExitError;
  }
  if (as_json) {
    json bs = json::array(), ps = json::array();
    for (const auto& b : *bundles) {
      json files = json::array();
      for (const auto& f : b.files)
        files.push_back(stored_json(f));
      bs.push_back({{"name", b.name},
                    {"sha256", b.sha256},
                    {"size", b.size},
                    {"format", b.format},
                    {"imported_at", b.imported_at},
                    {"load_id", b.load_id},
                    {"protocol", b.protocol},
                    {"identification", b.identification},
                    {"files", files}});
    }
    for (const auto& p : *pins)
      ps.push_back({{"family", p.family},
                    {"release", p.release},
                    {"name", p.name},
                    {"sha256", p.sha256},
                    {"size", p.size},
                    {"source", p.source},
                    {"pinned_at", p.pinned_at}});
    std::cout << json{{"format", "labctl-firmware-list"},
                      {"format_version", kFormatVersion},
                      {"store", (*store)->root().string()},
                      {"bundles", bs},
                      {"pins", ps}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  if (bundles->empty()) {
    std::cout << "the firmware store " << (*store)->root().string()
              << " is empty; add bundles with `labctl firmware import FILE...`\n";
    return kExitOk;
  }
  std::size_t nfiles = 0;
  std::uint64_t bytes = 0;
  for (const auto& b : *bundles)
    for (const auto& f : b.files) {
      ++nfiles;
      bytes += f.size;
    }
  std::cout << (*store)->root().string() << ": " << bundles->size() << " bundle"
            << (bundles->size() == 1 ? "" : "s") << ", " << nfiles << " files ("
            << human_size(bytes) << "), " << pins->size() << " pinned checksums\n";
  for (const auto& b : *bundles) {
    std::cout << "\n"
              << b.name << "  " << b.format << "  " << human_size(b.size) << "  imported "
              << text::format_local_time(b.imported_at) << "\n";
    if (!b.load_id.empty())
      std::cout << "  load " << b.load_id << (b.protocol.empty() ? "" : " (" + b.protocol + ")")
                << "\n";
    if (b.identification.is_object() && b.identification.contains("releases"))
      for (const auto& m : b.identification["releases"])
        if (m.value("identified", false))
          std::cout << "  catalog: " << m.value("family", "") << " " << m.value("release", "")
                    << (m.value("complete", false) ? " (complete)" : " (incomplete)") << "\n";
    std::size_t width = 4;
    for (const auto& f : b.files)
      width = std::max(width, f.name.size());
    for (const auto& f : b.files)
      std::cout << "    " << std::left << std::setw(static_cast<int>(width) + 2) << f.name
                << std::right << std::setw(10) << human_size(f.size) << "  " << f.sha256 << "\n";
  }
  return kExitOk;
}

int cmd_firmware_verify(Context& ctx, const std::vector<std::string>& files, bool as_json) {
  auto store = open_store(ctx);
  if (!store) {
    std::cerr << "labctl firmware verify: " << store.error().message() << "\n";
    return kExitError;
  }
  json out = {{"format", "labctl-firmware-verify"},
              {"format_version", kFormatVersion},
              {"store", (*store)->root().string()}};
  std::size_t problems = 0;
  if (files.empty()) {
    auto rep = (*store)->verify();
    if (!rep) {
      std::cerr << "labctl firmware verify: " << rep.error().message() << "\n";
      return kExitError;
    }
    problems = rep->problems();
    json blobs = json::array();
    for (const auto& b : rep->blobs)
      blobs.push_back(blob_json(b));
    out["blobs"] = blobs;
    out["orphans"] = rep->orphans;
    out["stale_temp"] = rep->stale_temp;
    if (!as_json) {
      for (const auto& b : rep->blobs)
        if (b.status != "ok") std::cout << blob_problem(b) << "\n";
      for (const auto& t : rep->stale_temp)
        std::cout << "note: " << ((*store)->root() / t).string()
                  << " is left from an interrupted import (safe to delete when no import runs)\n";
      if (!rep->orphans.empty())
        std::cout << "note: " << rep->orphans.size()
                  << " blob(s) in sha256/ that no index entry names (harmless)\n";
      if (problems == 0)
        std::cout << "verified " << rep->blobs.size() << " blob"
                  << (rep->blobs.size() == 1 ? "" : "s") << " in " << (*store)->root().string()
                  << ": every one matches its sha256\n";
      else
        std::cout << problems << " of " << rep->blobs.size()
                  << " blobs failed verification; import their bundles again to repair them\n";
    }
  } else {
    json items = json::array();
    for (const auto& arg : files) {
      std::error_code ec;
      json item = {{"argument", arg}};
      if (fs::is_regular_file(arg, ec)) {
        // A file on disk: is it what the store holds under its name?
        const std::string name = fs::path(arg).filename().string();
        auto sha = firmware::sha256_file(arg);
        auto known = (*store)->lookup_all(name);
        if (!sha || !known) {
          std::cerr << "labctl firmware verify: " << (!sha ? sha.error() : known.error()).message()
                    << "\n";
          return kExitError;
        }
        item["name"] = name;
        item["sha256"] = *sha;
        json expected = json::array();
        bool match = false;
        for (const auto& k : *known) {
          expected.push_back(k.sha256);
          if (k.sha256 == *sha) match = true;
        }
        item["known"] = expected;
        // Its own structure, when labctl knows the format: an image that fails is a problem even
        // when the store holds it; one that verifies needs no store entry.
        const FormatCheck format = check_format(arg);
        item["file_format"] = format.kind;
        if (!format.detail.is_null())
          item[format.detail.contains("code") ? "format_error" : "image"] = format.detail;
        item["in_store"] = !known->empty();
        const bool bad_image = format.recognised && !format.ok;
        if (bad_image)
          item["status"] = "bad-image";
        else if (match || (known->empty() && format.recognised))
          item["status"] = "ok";
        else
          item["status"] = known->empty() ? "unknown" : "mismatch";
        if (item["status"] != "ok") ++problems;
        if (!as_json) {
          std::cout << format.text;
          if (match)
            std::cout << "ok        " << arg << "  " << short_sha(*sha) << "\n";
          else if (known->empty() && format.recognised)
            std::cout << "note: the store holds no file named " << name
                      << " (import its bundle to pin its sha256)\n";
          else if (known->empty())
            std::cout << "UNKNOWN   " << arg << ": the store holds no file named " << name
                      << ", and it is in no format labctl can verify (unknown firmware format"
                      << (format.kind == "too-large" ? ", or larger than 64 MiB" : "") << ")\n";
          else
            std::cout << "MISMATCH  " << arg << ": sha256 " << *sha << ", the store has " << name
                      << " as " << text::join_list(expected.get<std::vector<std::string>>(), " or ")
                      << "\n";
        }
      } else {
        // A stored file name: re-hash its blob(s).
        auto known = (*store)->lookup_all(arg);
        if (!known) {
          std::cerr << "labctl firmware verify: " << known.error().message() << "\n";
          return kExitError;
        }
        item["name"] = arg;
        json blobs = json::array();
        for (const auto& k : *known) {
          auto b = (*store)->check_blob(k.sha256, k.size);
          b.names = {k.name};
          if (b.status != "ok") ++problems;
          if (!as_json)
            std::cout << (b.status == "ok" ? "ok        " + k.name + "  " + short_sha(k.sha256)
                                           : blob_problem(b))
                      << "\n";
          blobs.push_back(blob_json(b));
        }
        item["blobs"] = blobs;
        if (known->empty()) {
          ++problems;
          item["status"] = "not-found";
          if (!as_json)
            std::cout << "NOT FOUND " << arg << ": neither a file nor a name in the store\n";
        } else {
          bool ok = true;
          for (const auto& b : blobs)
            if (b["status"] != "ok") ok = false;
          item["status"] = ok ? "ok" : "failed";
        }
      }
      items.push_back(std::move(item));
    }
    out["files"] = items;
  }
  out["ok"] = problems == 0;
  out["problems"] = problems;
  if (as_json) std::cout << out.dump(2) << "\n";
  return problems == 0 ? kExitOk : kExitError;
}

namespace {

struct FetchTarget {
  const inventory::Family* family = nullptr;
  const inventory::Release* release = nullptr;
  const inventory::FirmwareFile* file = nullptr;
};

// NAME (a catalog file), FAMILY@VERSION (every file of a release), or nothing (every file with a
// mirror). nullopt after printing what is unknown.
std::optional<std::vector<FetchTarget>> fetch_targets(const inventory::Catalog& cat,
                                                      const std::vector<std::string>& args) {
  std::vector<FetchTarget> out;
  std::vector<std::string> names;
  for (const auto& fam : cat.families)
    for (const auto& rel : fam.releases)
      for (const auto& f : rel.files) {
        names.push_back(f.name);
        if (args.empty() && !f.mirrors.empty()) out.push_back({&fam, &rel, &f});
      }
  bool ok = true;
  for (const auto& a : args) {
    const std::size_t before = out.size();
    if (const auto at = a.find('@'); at != std::string::npos) {
      const auto* fam = cat.family(a.substr(0, at));
      const auto* rel = fam ? fam->find(a.substr(at + 1)) : nullptr;
      if (rel)
        for (const auto& f : rel->files)
          out.push_back({fam, rel, &f});
      if (rel && rel->files.empty()) {
        std::cerr << "labctl firmware fetch: " << a << ": the release has no files\n";
        ok = false;
        continue;
      }
    } else {
      for (const auto& fam : cat.families)
        for (const auto& rel : fam.releases)
          for (const auto& f : rel.files)
            if (text::iequals(f.name, a)) out.push_back({&fam, &rel, &f});
    }
    if (out.size() == before) {
      const auto g = text::closest(a, names);
      std::cerr << "labctl firmware fetch: " << a << ": no such file (or FAMILY@VERSION) in "
                << cat.file << (g.empty() ? std::string() : " (did you mean '" + g + "'?)") << "\n";
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace

int cmd_firmware_fetch(Context& ctx, const std::vector<std::string>& args, bool as_json) {
  auto store = open_store(ctx);
  if (!store) {
    std::cerr << "labctl firmware fetch: " << store.error().message() << "\n";
    return kExitError;
  }
  auto catalog = load_catalog(ctx, "firmware fetch");
  if (!catalog) return kExitError;
  auto targets = fetch_targets(*catalog, args);
  if (!targets) return kExitError;
  if (targets->empty() && !as_json) std::cout << "no catalog file has a mirror; nothing to fetch\n";
  int code = kExitOk;
  json results = json::array();
  const fs::path scratch = (*store)->root() / ".fetch";
  for (const auto& t : *targets) {
    const std::string what =
        t.file->name + " (" + t.family->name + " " + t.release->version.text + ")";
    json res = {
        {"file", t.file->name}, {"family", t.family->name}, {"release", t.release->version.text}};
    auto failed = [&](const Error& e) {
      code = kExitError;
      std::cerr << "labctl firmware fetch: " << what << ": " << e.message() << "\n";
      res["status"] = "error";
      res["error"] = error_json(e);
      results.push_back(res);
    };
    // What the file must be: the catalog's checksum, else what an earlier import pinned.
    std::string expected = t.file->sha256.value_or("");
    auto pinned = (*store)->release_files(t.family->name, t.release->version.text);
    if (!pinned) {
      failed(pinned.error());
      continue;
    }
    bool present = false;
    for (const auto& f : *pinned)
      if (text::iequals(f.name, t.file->name)) {
        if (expected.empty()) expected = f.sha256;
        present = (*store)->check_blob(f.sha256, f.size).status == "ok";
      }
    if (present) {
      res["status"] = "already-present";
      res["sha256"] = expected;
      results.push_back(res);
      if (!as_json && !ctx.options().quiet)
        std::cout << what << ": already in the store (sha256 " << short_sha(expected) << ")\n";
      continue;
    }
    firmware::FetchOptions opts;
    // On a terminal, one line that counts the bytes (at most ten updates a second).
    const bool live = !as_json && !ctx.options().quiet && ::isatty(STDERR_FILENO) == 1;
    auto last = std::chrono::steady_clock::time_point{};
    if (live)
      opts.progress = [&](std::uint64_t done, std::uint64_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(100)) return;
        last = now;
        std::cerr << "\r" << t.file->name << ": " << human_size(done)
                  << (total ? " of " + human_size(total) : std::string()) << "   " << std::flush;
      };
    auto got =
        firmware::download(t.file->mirrors, t.file->name, scratch, expected, t.file->size, opts);
    if (live) std::cerr << "\r\033[K" << std::flush;
    if (!got) {
      failed(got.error());
      continue;
    }
    json attempts = json::array();
    for (const auto& a : got->attempts)
      attempts.push_back(firmware::to_json(a));
    res["url"] = got->url;
    res["sha256"] = got->sha256;
    res["size"] = got->size;
    res["attempts"] = attempts;
    res["checked_against"] = expected.empty() ? "nothing (pinned on this first download)"
                             : t.file->sha256 ? "catalog"
                                              : "pin";
    auto imported = (*store)->import(got->file, &*catalog);
    std::error_code ec;
    fs::remove(got->file, ec);
    if (!imported) {
      failed(imported.error());
      continue;
    }
    res["status"] = "fetched";
    res["import"] = import_json(*imported);
    results.push_back(res);
    if (!as_json && !ctx.options().quiet) {
      std::uint64_t resumed = 0;
      for (const auto& a : got->attempts)
        resumed = std::max(resumed, a.resumed_from);
      std::cout << what << ": fetched from " << got->url << " (" << human_size(got->size)
                << ", sha256 " << short_sha(got->sha256) << ", "
                << (expected.empty() ? std::string("pinned now: no checksum to check against yet")
                                     : "matches the " + res["checked_against"].get<std::string>())
                << (got->attempts.size() > 1
                        ? "; " + std::to_string(got->attempts.size()) + " attempts, resumed at " +
                              std::to_string(resumed) + " bytes"
                        : std::string())
                << ")\n";
      print_import(*imported);
    }
  }
  if (as_json) print_results(*store, "labctl-firmware-fetch", *catalog, results);
  return code;
}

}  // namespace labctl::controller
