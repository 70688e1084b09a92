#include "controller/cli.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>

#include "agents/net/tftp/client.h"
#include "agents/net/tftp/server.h"
#include "agents/net/tftp/syslog.h"
#include "common/text.h"
#include "controller/agent_commands.h"
#include "controller/apply.h"
#include "controller/audit.h"
#include "controller/context.h"
#include "controller/drive_commands.h"
#include "controller/firmware_commands.h"
#include "controller/net_commands.h"
#include "controller/plan_output.h"
#include "controller/planner.h"
#include "controller/schedule.h"
#include "controller/verb_steps.h"
#include "plugins/cisco_phone/doctor.h"

namespace labctl::controller {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitReport = 2;

using nlohmann::json;

bool stdout_is_terminal() {
  return ::isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
}

// Every command's result lands here; CLI11 callbacks cannot return values.
struct Outcome {
  int code = kExitOk;
};

// validate ---------------------------------------------------------------------------------------
struct ValidateArgs {
  std::string inventory;
  bool json = false;
};

int cmd_validate(Context& ctx, const ValidateArgs& a) {
  inventory::Diagnostics diags;
  std::ostringstream sink;
  auto inv = ctx.load_inventory(a.inventory, a.json ? sink : std::cerr, &diags);
  if (a.json) {
    json items = json::array();
    for (const auto& d : diags.sorted())
      items.push_back({{"severity", d.severity == inventory::Severity::Error ? "error" : "warning"},
                       {"file", d.file},
                       {"line", d.mark.line},
                       {"column", d.mark.column},
                       {"message", d.message}});
    json out = {{"valid", inv.has_value()}, {"diagnostics", items}};
    if (inv)
      out["counts"] = {{"devices", inv->devices.size()},
                       {"segments", inv->segments.size()},
                       {"agents", inv->agents.size()}};
    std::cout << out.dump(2) << "\n";
    return inv ? kExitOk : kExitError;
  }
  if (!inv) {
    std::cerr << a.inventory << ": " << diags.error_count()
              << (diags.error_count() == 1 ? " error" : " errors") << "; nothing was changed\n";
    return kExitError;
  }
  if (!ctx.options().quiet)
    std::cout << a.inventory << ": valid: " << inv->devices.size() << " devices, "
              << inv->segments.size() << " segments, " << inv->agents.size() << " agents ("
              << "catalog " << (inv->catalog ? inv->catalog->file : std::string("none")) << ")\n";
  return kExitOk;
}

// plan ------------------------------------------------------------------------------------------
struct PlanArgs {
  std::string inventory;
  bool json = false;
  int parallel = 16;
  std::vector<std::string> only;
};

int cmd_plan(Context& ctx, const PlanArgs& a) {
  auto inv = ctx.load_inventory(a.inventory, std::cerr);
  if (!inv) return kExitError;
  for (const auto& name : a.only)
    if (!inv->device(name)) {
      std::vector<std::string> names;
      for (const auto& d : inv->devices)
        names.push_back(d.name);
      auto g = text::closest(name, names);
      std::cerr << "labctl plan: --only " << name << ": no such device in " << a.inventory
                << (g.empty() ? std::string() : " (did you mean '" + g + "'?)") << "\n";
      return kExitError;
    }
  std::set<std::string> only(a.only.begin(), a.only.end());
  auto select = [&](const inventory::Device& d) { return only.empty() || only.count(d.name) > 0; };
  auto observations = probe_all(*inv, ctx.agents(*inv), a.parallel, select);
  Plan plan = make_plan(*inv, ctx.registry(), observations);
  if (!only.empty())
    std::erase_if(plan.devices, [&](const DevicePlan& d) { return !only.count(d.device); });
  const nlohmann::json doc = plan.to_json();

  // Remember what was observed: `history` shows it, and later audits compare against it.
  if (auto store = ctx.store()) {
    auto abs = std::filesystem::absolute(a.inventory).string();
    if (auto run = (*store)->begin_run("plan", abs, file_sha256(a.inventory))) {
      const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      if (auto r = (*store)->record_observations(observation_records(observations, *run, now)); !r)
        std::cerr << "labctl plan: observations not recorded: " << r.error().message() << "\n";
      (void)(*store)->finish_run(*run, "done", doc["summary"]);
    }
  } else if (ctx.options().verbose) {
    std::cerr << "labctl plan: not recording observations: " << store.error().message() << "\n";
  }

  if (a.json)
    std::cout << doc.dump(2) << "\n";
  else
    print_plan(std::cout, plan, {.color = stdout_is_terminal()});
  bool trouble =
      plan.count(DevicePlan::Status::Unreachable) + plan.count(DevicePlan::Status::Blocked) > 0;
  return trouble ? kExitReport : kExitOk;
}

// audit -----------------------------------------------------------------------------------------
struct AuditArgs {
  std::string inventory, format, output;
  int parallel = 32;
};

Status write_atomically(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
    out.flush();
    if (!out) return fail(Errc::PreconditionFailed, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::permissions(
      tmp,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
          std::filesystem::perms::group_read | std::filesystem::perms::others_read,
      ec);
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return fail(Errc::PreconditionFailed, "cannot write " + path + ": " + ec.message());
  }
  return {};
}

int cmd_audit(Context& ctx, const AuditArgs& a) {
  auto inv = ctx.load_inventory(a.inventory, std::cerr);
  if (!inv) return kExitError;
  AuditReport report = run_audit(*inv, ctx.registry(), ctx.agents(*inv), a.parallel);
  std::string format = a.format;
  if (format.empty()) format = (a.output.empty() && stdout_is_terminal()) ? "table" : "json";
  std::string text;
  if (format == "json")
    text = report.to_json().dump(2) + "\n";
  else if (format == "prometheus")
    text = report.to_prometheus();
  else {
    std::ostringstream ss;
    report.print_table(ss, a.output.empty() && stdout_is_terminal());
    text = ss.str();
  }
  if (auto store = ctx.store()) {
    AuditRecord rec;
    rec.inventory = std::filesystem::absolute(a.inventory).lexically_normal().string();
    rec.started_at = report.started_at;
    rec.finished_at = report.finished_at;
    rec.exit_code = report.exit_code();
    rec.report = report.to_json();
    if (auto r = (*store)->record_audit(rec); !r)
      std::cerr << "labctl audit: not recorded: " << r.error().message() << "\n";
  } else {
    std::cerr << "labctl audit: not recorded: " << store.error().message() << "\n";
  }
  if (a.output.empty()) {
    std::cout << text;
  } else {
    if (auto r = write_atomically(a.output, text); !r) {
      std::cerr << "labctl audit: " << r.error().message() << "\n";
      return kExitError;
    }
    if (!ctx.options().quiet)
      std::cout << "audit: " << (report.compliant() ? "compliant" : "not compliant") << "; "
                << format << " report written to " << a.output << "\n";
  }
  return report.exit_code();
}

struct ScheduleArgs {
  std::string inventory, cron, on_calendar = "*-*-* 03:17:00",
                               textfile = "/var/lib/prometheus/node-exporter/labctl.prom",
                               unit_name = "labctl-audit", unit_dir = "/etc/systemd/system";
  bool systemd = false, install = false;
};

int cmd_schedule(Context& ctx, const ScheduleArgs& a) {
  if (a.cron.empty() && !a.systemd) {
    std::cerr << "labctl audit schedule: give --cron EXPR or --systemd\n";
    return kExitError;
  }
  if (!ctx.load_inventory(a.inventory, std::cerr)) return kExitError;
  ScheduleOptions o;
  std::error_code ec;
  o.labctl = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  o.inventory = std::filesystem::absolute(a.inventory).lexically_normal().string();
  o.state_dir = std::filesystem::absolute(ctx.state_dir()).lexically_normal().string();
  // The scheduled audit locks a file there; make sure the directory exists before its first run.
  std::filesystem::create_directories(o.state_dir, ec);
  o.textfile = a.textfile;
  o.cron = a.cron;
  o.on_calendar = a.on_calendar;
  o.unit_name = a.unit_name;
  if (!a.systemd) {
    auto line = cron_line(o);
    if (!line) {
      std::cerr << "labctl audit schedule: --cron: " << line.error().message() << "\n";
      return kExitError;
    }
    if (!a.install) {
      std::cout << *line << "\n";
      return kExitOk;
    }
    auto r = install_cron(*line, o.inventory);
    if (!r) {
      std::cerr << "labctl audit schedule: " << r.error().message() << "\n";
      return kExitError;
    }
    std::cout << *r << ":\n" << *line << "\n";
    return kExitOk;
  }
  auto units = systemd_units(o);
  if (!a.install) {
    std::cout << "# " << a.unit_name << ".service\n"
              << units.service << "\n# " << a.unit_name << ".timer\n"
              << units.timer;
    return kExitOk;
  }
  auto r = install_systemd(units, a.unit_name, a.unit_dir);
  if (!r) {
    std::cerr << "labctl audit schedule: " << r.error().message() << "\n";
    return kExitError;
  }
  std::cout << *r << "\nenable it with: systemctl daemon-reload && systemctl enable --now "
            << a.unit_name << ".timer\n";
  return kExitOk;
}

// history ---------------------------------------------------------------------------------------
struct HistoryArgs {
  std::int64_t run = 0;
  std::string device;
  bool json = false;
  std::size_t limit = 20;
};

json step_json(const StepRecord& s) {
  json j = {{"id", s.id},
            {"run", s.run_id},
            {"device", s.device},
            {"seq", s.seq},
            {"key", s.key},
            {"action", s.action},
            {"title", s.title},
            {"status", step_status_name(s.status)},
            {"attempts", s.attempts},
            {"error_code", s.error_code},
            {"error", s.error_message}};
  j["started_at"] = s.started_at ? json(*s.started_at) : json(nullptr);
  j["finished_at"] = s.finished_at ? json(*s.finished_at) : json(nullptr);
  return j;
}

int cmd_history(Context& ctx, const HistoryArgs& a) {
  auto store = ctx.store();
  if (!store) {
    std::cerr << "labctl history: " << store.error().message() << "\n";
    return kExitError;
  }
  if (!a.device.empty()) {
    auto steps = (*store)->steps_for_device(a.device, a.limit);
    if (!steps) {
      std::cerr << "labctl history: " << steps.error().message() << "\n";
      return kExitError;
    }
    if (a.json) {
      json arr = json::array();
      for (const auto& s : *steps)
        arr.push_back(step_json(s));
      std::cout << json{{"device", a.device}, {"steps", arr}}.dump(2) << "\n";
    } else if (steps->empty()) {
      std::cout << "no steps recorded for " << a.device << "\n";
    } else {
      for (const auto& s : *steps)
        std::cout << (s.started_at ? text::format_local_time(*s.started_at) : std::string(19, ' '))
                  << "  run " << s.run_id << "  " << std::left << std::setw(8)
                  << step_status_name(s.status) << "  " << s.title
                  << (s.error_message.empty() ? "" : "  (" + s.error_message + ")") << "\n";
    }
    return kExitOk;
  }
  if (a.run > 0) {
    auto run = (*store)->run(a.run);
    if (!run || !*run) {
      std::cerr << "labctl history: no run " << a.run << "\n";
      return kExitError;
    }
    auto steps = (*store)->steps(a.run);
    if (!steps) {
      std::cerr << "labctl history: " << steps.error().message() << "\n";
      return kExitError;
    }
    const auto& r = **run;
    if (a.json) {
      json arr = json::array();
      for (const auto& s : *steps)
        arr.push_back(step_json(s));
      std::cout << json{{"id", r.id},
                        {"kind", r.kind},
                        {"inventory", r.inventory},
                        {"status", r.status},
                        {"started_at", r.started_at},
                        {"summary", r.summary},
                        {"steps", arr}}
                       .dump(2)
                << "\n";
      return kExitOk;
    }
    std::cout << "run " << r.id << "  " << r.kind << "  " << r.status << "  "
              << text::format_local_time(r.started_at) << "  " << r.inventory << "\n";
    for (const auto& s : *steps)
      std::cout << "  " << std::left << std::setw(16) << s.device << std::setw(9)
                << step_status_name(s.status) << s.title
                << (s.error_message.empty() ? "" : "  (" + s.error_message + ")") << "\n";
    if (steps->empty()) std::cout << "  (no steps)\n";
    return kExitOk;
  }
  auto runs = (*store)->runs(a.limit);
  auto audits = (*store)->audits(a.limit);
  if (!runs || !audits) {
    std::cerr << "labctl history: " << (!runs ? runs.error() : audits.error()).message() << "\n";
    return kExitError;
  }
  if (a.json) {
    json rs = json::array(), as = json::array();
    for (const auto& r : *runs)
      rs.push_back({{"id", r.id},
                    {"kind", r.kind},
                    {"inventory", r.inventory},
                    {"status", r.status},
                    {"started_at", r.started_at},
                    {"finished_at", r.finished_at ? json(*r.finished_at) : json(nullptr)},
                    {"summary", r.summary}});
    for (const auto& x : *audits)
      as.push_back({{"id", x.id},
                    {"inventory", x.inventory},
                    {"started_at", x.started_at},
                    {"exit_code", x.exit_code}});
    std::cout << json{{"runs", rs}, {"audits", as}}.dump(2) << "\n";
    return kExitOk;
  }
  if (runs->empty() && audits->empty()) {
    std::cout << "no runs recorded yet in " << ctx.state_dir().string() << "\n";
    return kExitOk;
  }
  for (const auto& r : *runs) {
    std::cout << std::right << std::setw(5) << r.id << "  " << text::format_local_time(r.started_at)
              << "  " << std::left << std::setw(6) << r.kind << "  " << std::setw(11) << r.status
              << "  " << r.inventory;
    if (r.summary.is_object() && r.summary.contains("steps"))
      std::cout << "  (" << r.summary.value("devices", 0) << " devices, "
                << r.summary.value("steps", 0) << " steps)";
    std::cout << "\n";
  }
  for (const auto& x : *audits)
    std::cout << "audit " << x.id << "  " << text::format_local_time(x.started_at) << "  exit "
              << x.exit_code << "  " << x.inventory << "\n";
  return kExitOk;
}

// per-device verbs ------------------------------------------------------------------------------
struct DeviceVerbArgs {
  std::string inventory;
  std::string device;
  std::string verb;
  std::vector<std::string> rest;
  bool json = false;
  std::string log;  // phone doctor --log FILE
  int year = 0;
  // A device outside any inventory (`labctl bmc --host H[:P] --user U --password-env V VERB`).
  std::string host, user, password_env, password_file;
  int cipher_suite = -1;
  // A hypervisor outside any inventory (`labctl hypervisor --uri URI [--user U] VERB`).
  std::string uri;
  bool no_verify = false;
  // A drive outside any inventory (`labctl drive --device /dev/sg1 VERB`), consent to flash it,
  // and where `labctl drive scan` reads sysfs.
  std::string device_path, sysfs;
  bool accept_brick_risk = false;
  // `bmc NAME firmware flash FILE` options; --model for a --host BMC.
  bool preserve_config = false, factory_reset = false, accept_unconfirmed = false;
  std::string profile, model;
  std::string web_scheme;  // with --host: how to reach its web interface
  int web_port = 0;
};

// `labctl phone doctor --log FILE`: what an in.tftpd syslog says about the phones it served.
int cmd_phone_log_doctor(Context& ctx, const DeviceVerbArgs& a) {
  std::ifstream in(a.log);
  if (!in) {
    std::cerr << "labctl phone doctor: cannot read " << a.log << ": " << std::strerror(errno)
              << "\n";
    return kExitError;
  }
  // labctl's own JSON event log (`labctl serve`), or an in.tftpd syslog.
  std::vector<tftp::Event> events;
  std::size_t bad_lines = 0;
  if (char first = 0; (in >> std::ws).get(first) && first == '{') {
    in.unget();
    std::string line;
    while (std::getline(in, line)) {
      if (text::trim(line).empty()) continue;
      auto j = json::parse(line, nullptr, false);
      auto e = j.is_discarded() ? Result<tftp::Event>(fail(Errc::InvalidInput, "not JSON"))
                                : tftp::event_from_json(j);
      if (e)
        events.push_back(std::move(*e));
      else
        ++bad_lines;
    }
  } else {
    in.clear();
    in.seekg(0);
    events = tftp::parse_syslog(in, a.year);
  }
  if (bad_lines)
    std::cerr << "labctl phone doctor: " << a.log << ": " << bad_lines
              << " lines are not TFTP events (skipped)\n";
  inventory::Diagnostics diags;
  const std::filesystem::path cat_path = ctx.options().catalog.empty()
                                             ? inventory::default_catalog_path()
                                             : std::filesystem::path(ctx.options().catalog);
  auto catalog = inventory::load_catalog(cat_path, diags);
  if (!catalog)
    std::cerr << "labctl phone doctor: catalog " << cat_path.string()
              << " unusable; loads are named from file names only\n";
  const auto ds = cisco_phone::diagnose(events, catalog ? &*catalog : nullptr);
  bool notable = false;
  for (const auto& d : ds)
    notable |= d.severity != "info";
  if (a.json) {
    json out = {{"log", a.log}, {"requests", events.size()}, {"diagnoses", json::array()}};
    for (const auto& d : ds)
      out["diagnoses"].push_back(cisco_phone::to_json(d));
    std::cout << out.dump(2) << "\n";
  } else {
    std::size_t requests = 0;
    for (const auto& e : events)
      requests += e.kind == tftp::EventKind::Request || e.kind == tftp::EventKind::Refused;
    std::cout << a.log << ": " << requests << " TFTP requests and refusals\n";
    if (ds.empty()) std::cout << "nothing to say about any phone\n";
    for (const auto& d : ds)
      std::cout << cisco_phone::to_text(d);
  }
  return notable ? kExitReport : kExitOk;
}

std::string default_inventory() {
  if (const char* e = std::getenv("LABCTL_INVENTORY"); e && *e) return e;
  return "/etc/labctl/inventory.yaml";
}

// The real (not simulated) plugin that answers `noun` for a device in no inventory; and, since
// such a command names no device, what parsed as NAME is the verb: `labctl bmc --host H info`.
const sdk::Plugin* adhoc_plugin(Context& ctx, const std::string& noun, const std::string& where,
                                DeviceVerbArgs& a) {
  const sdk::Plugin* plugin = nullptr;
  for (const auto& type : ctx.registry().types())
    if (auto* p = ctx.registry().find(type);
        p && p->cli_noun() == noun && type.rfind("sim-", 0) != 0)
      plugin = p;
  if (plugin == nullptr) {
    std::cerr << where << ": no plugin answers '" << noun << "' outside an inventory\n";
    return nullptr;
  }
  if (!a.device.empty()) {
    if (!a.verb.empty()) a.rest.insert(a.rest.begin(), a.verb);
    a.verb = a.device;
  }
  return plugin;
}

json adhoc_secret(const DeviceVerbArgs& a) {
  return a.password_env.empty() ? json{{"$secret", {{"file", a.password_file}}}}
                                : json{{"$secret", {{"env", a.password_env}}}};
}

// An inventory of one device made from --host/--user/--password-env: the verbs of a BMC that
// is in no inventory, as with ipmitool. The password never appears on the command line.
std::optional<inventory::Inventory> adhoc_inventory(Context& ctx, const std::string& noun,
                                                    DeviceVerbArgs& a) {
  const std::string where = "labctl " + noun + " --host";
  const sdk::Plugin* plugin = adhoc_plugin(ctx, noun, where, a);
  if (plugin == nullptr) return std::nullopt;
  if (a.password_env.empty() == a.password_file.empty()) {
    std::cerr << where
              << ": give the password with exactly one of --password-env VAR or "
                 "--password-file FILE (never on the command line)\n";
    return std::nullopt;
  }
  std::string host = a.host;
  std::int64_t port = 0;
  if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(':') == colon) {
    const std::string p = host.substr(colon + 1);
    char* end = nullptr;
    port = std::strtoll(p.c_str(), &end, 10);
    if (p.empty() || *end != '\0' || port < 1 || port > 65535) {
      std::cerr << where << ": '" << a.host << "': the port must be 1..65535\n";
      return std::nullopt;
    }
    host = host.substr(0, colon);
  }
  if (host.empty() || !inventory::parse_ipv4(host)) {
    std::cerr << where << ": '" << a.host << "' is not an IPv4 address [and :port]\n";
    return std::nullopt;
  }
  inventory::Inventory inv;
  inventory::Device d;
  d.name = host;
  d.type = plugin->type();
  d.ip = host;
  d.params["credentials"] = {{"user", a.user.empty() ? std::string("ADMIN") : a.user},
                             {"password", adhoc_secret(a)}};
  if (port) d.params["port"] = port;
  if (a.cipher_suite >= 0) d.params["cipher-suite"] = a.cipher_suite;
  d.model = a.model;
  if (!a.web_scheme.empty()) {
    if (a.web_scheme != "http" && a.web_scheme != "https") {
      std::cerr << where << ": --web-scheme must be http or https\n";
      return std::nullopt;
    }
    d.params["web"]["scheme"] = a.web_scheme;
  }
  if (a.web_port != 0) {
    if (a.web_port < 1 || a.web_port > 65535) {
      std::cerr << where << ": --web-port must be 1..65535\n";
      return std::nullopt;
    }
    d.params["web"]["port"] = a.web_port;
  }
  inv.devices.push_back(std::move(d));
  a.device = host;
  return inv;
}

// A hypervisor in no inventory, from --uri [--user U --password-env VAR | --password-file F]
// [--no-verify], checked as the plugin checks an inventory's.
std::optional<inventory::Inventory> adhoc_hypervisor(Context& ctx, DeviceVerbArgs& a) {
  const std::string where = "labctl hypervisor --uri";
  if (!a.password_env.empty() && !a.password_file.empty()) {
    std::cerr << where << ": give at most one of --password-env VAR and --password-file FILE\n";
    return std::nullopt;
  }
  const sdk::Plugin* plugin = adhoc_plugin(ctx, "hypervisor", where, a);
  if (plugin == nullptr) return std::nullopt;
  inventory::Inventory inv;
  inventory::Device d;
  d.name = a.uri;
  d.type = plugin->type();
  d.params["uri"] = a.uri;
  d.params["no-verify"] = a.no_verify;
  d.params["unexpected-vms"] = "ignore";  // no inventory lists its VMs
  if (!a.user.empty()) d.params["credentials"]["user"] = a.user;
  if (!a.password_env.empty() || !a.password_file.empty())
    d.params["credentials"]["password"] = adhoc_secret(a);
  inventory::Diagnostics diags;
  inventory::DeviceReport report(diags, where, d);
  plugin->check_device(d, inv, report);
  for (const auto& diag : diags.items())
    std::cerr << where << ": " << diag.message << "\n";
  if (diags.has_errors()) return std::nullopt;
  a.device = d.name;
  inv.devices.push_back(std::move(d));
  return inv;
}

int cmd_device_verb(Context& ctx, const std::string& noun, DeviceVerbArgs a) {
  std::optional<inventory::Inventory> inv;
  if (!a.uri.empty() && noun == "hypervisor") {
    inv = adhoc_hypervisor(ctx, a);
  } else if (!a.host.empty()) {
    inv = adhoc_inventory(ctx, noun, a);
  } else if (!a.device_path.empty()) {
    // NAME is the verb here, as with --host.
    if (!a.device.empty()) {
      if (!a.verb.empty()) a.rest.insert(a.rest.begin(), a.verb);
      a.verb = a.device;
    }
    inv = adhoc_drive_inventory(ctx, a.device_path, a.device);
  } else {
    if (a.device.empty()) {
      std::cerr << "labctl " << noun << ": give a device name"
                << (noun == "bmc"          ? " (or --host H[:PORT] --user U --password-env VAR)"
                    : noun == "hypervisor" ? " (or --uri URI [--user U --password-env VAR])"
                    : noun == "drive"      ? " (or --device /dev/sgN; labctl drive scan lists them)"
                                           : "")
                << "\n";
      return kExitError;
    }
    if (a.inventory.empty()) a.inventory = default_inventory();
    inv = ctx.load_inventory(a.inventory, std::cerr);
  }
  if (!inv) return kExitError;
  const inventory::Device* dev = inv->device(a.device);
  std::vector<std::string> candidates;
  for (const auto& d : inv->devices) {
    auto* p = ctx.registry().find(d.type);
    if (p && p->cli_noun() == noun) candidates.push_back(d.name);
  }
  if (!dev) {
    auto g = text::closest(a.device, candidates);
    std::cerr << "labctl " << noun << ": no device '" << a.device << "' in " << a.inventory
              << (g.empty() ? "" : " (did you mean '" + g + "'?)") << "; " << noun << " devices: "
              << (candidates.empty() ? std::string("none") : text::join_list(candidates, ", "))
              << "\n";
    return kExitError;
  }
  auto* plugin = ctx.registry().find(dev->type);
  if (!plugin || plugin->cli_noun() != noun) {
    std::cerr << "labctl " << noun << ": '" << dev->name << "' is a " << dev->type << ", not a "
              << noun << "\n";
    return kExitError;
  }
  auto verbs = plugin->verbs();
  auto list_verbs = [&](std::ostream& os) {
    os << "verbs for " << dev->name << " (" << dev->type << "):\n";
    for (const auto& v : verbs) {
      std::string usage = v.name;
      for (const auto& arg : v.args)
        usage += arg.required ? " " + arg.name : " [" + arg.name + "]";
      os << "  " << std::left << std::setw(24) << usage << v.summary
         << (v.writes ? " (changes the device)" : "") << "\n";
    }
  };
  if (a.verb.empty()) {
    list_verbs(std::cout);
    return kExitOk;
  }
  auto vit =
      std::find_if(verbs.begin(), verbs.end(), [&](const auto& v) { return v.name == a.verb; });
  if (vit == verbs.end()) {
    std::vector<std::string> names;
    for (const auto& v : verbs)
      names.push_back(v.name);
    auto g = text::closest(a.verb, names);
    std::cerr << "labctl " << noun << " " << dev->name << ": unknown verb '" << a.verb << "'"
              << (g.empty() ? "" : " (did you mean '" + g + "'?)") << "\n";
    list_verbs(std::cerr);
    return kExitError;
  }
  json args = json::object();
  std::size_t i = 0;
  for (const auto& arg : vit->args) {
    if (i >= a.rest.size()) {
      if (arg.required) {
        std::cerr << "labctl " << noun << " " << dev->name << " " << a.verb << ": missing "
                  << arg.name << " (" << arg.help << ")\n";
        return kExitError;
      }
      continue;
    }
    const std::string& v = a.rest[i++];
    if (!arg.choices.empty() &&
        std::find(arg.choices.begin(), arg.choices.end(), v) == arg.choices.end()) {
      std::cerr << "labctl " << noun << " " << dev->name << " " << a.verb << ": " << arg.name
                << " '" << v << "' is not one of " << text::join_list(arg.choices, ", ") << "\n";
      return kExitError;
    }
    args[arg.name] = v;
  }
  if (i < a.rest.size()) {
    std::cerr << "labctl " << noun << " " << dev->name << " " << a.verb << ": unexpected argument '"
              << a.rest[i] << "'\n";
    return kExitError;
  }
  if (a.accept_brick_risk) args["accept_brick_risk"] = true;
  for (auto [flag, name] : {std::pair{a.preserve_config, "preserve-config"},
                            {a.factory_reset, "factory-reset"},
                            {a.accept_unconfirmed, "accept-unconfirmed-profile"}})
    if (flag) args[name] = true;
  if (!a.profile.empty()) args["profile"] = a.profile;
  auto agent = ctx.agents(*inv).for_device(*dev);
  if (!agent) {
    std::cerr << "labctl " << noun << " " << dev->name << ": " << agent.error().message() << "\n";
    return kExitError;
  }
  auto r = (*agent)->run_verb(*dev, a.verb, args);
  if (!r) {
    std::cerr << "labctl " << noun << " " << dev->name << " " << a.verb << ": "
              << r.error().message() << " [" << errc_name(r.error().code()) << "]\n";
    return kExitError;
  }
  // A verb that hands back steps: they run journaled, like apply's.
  if (r->data.is_object() && r->data.contains("run_steps")) {
    (a.json ? std::cerr : std::cout) << r->text;
    const std::string where =
        a.host.empty() ? std::filesystem::absolute(a.inventory).lexically_normal().string()
                       : "--host " + a.host;
    return run_verb_steps(ctx, *inv, *dev,
                          noun + " " + a.verb + (a.rest.empty() ? "" : " " + a.rest[0]) + " " +
                              dev->name + " (" + where + ")",
                          r->data, a.json);
  }
  if (a.json)
    std::cout << r->data.dump(2) << "\n";
  else
    std::cout << r->text;
  return kExitOk;
}

// plugins ---------------------------------------------------------------------------------------
void describe_keys(std::ostream& os, const std::vector<inventory::KeySpec>& keys, int indent) {
  for (const auto& k : keys) {
    os << std::string(static_cast<std::size_t>(indent), ' ') << k.name << ": "
       << inventory::kind_name(k.kind);
    if (k.kind == inventory::Kind::List && !k.item.empty())
      os << " of " << inventory::kind_name(k.item[0].kind);
    if (k.required) os << ", required";
    if (!k.choices.empty()) os << " (" << text::join_list(k.choices, ", ") << ")";
    if (k.min || k.max)
      os << " [" << (k.min ? std::to_string(*k.min) : "") << ".."
         << (k.max ? std::to_string(*k.max) : "") << "]";
    if (!k.default_value.is_null()) os << ", default " << k.default_value.dump();
    if (!k.doc.empty()) os << " — " << k.doc;
    os << "\n";
    describe_keys(os, k.fields, indent + 2);
    if (!k.item.empty()) describe_keys(os, k.item[0].fields, indent + 2);
  }
}

int cmd_plugins(Context& ctx, const std::string& type) {
  if (type.empty()) {
    for (const auto& p : ctx.registry().all())
      std::cout << std::left << std::setw(18) << p->type() << std::setw(12) << p->cli_noun()
                << p->schema().summary << "\n";
    return kExitOk;
  }
  auto* p = ctx.registry().find(type);
  if (!p) {
    auto g = text::closest(type, ctx.registry().types());
    std::cerr << "labctl plugins: no type '" << type << "'"
              << (g.empty() ? "" : " (did you mean '" + g + "'?)") << "\n";
    return kExitError;
  }
  const auto& s = p->schema();
  std::cout << s.type << " — " << s.summary << "\n";
  std::cout << "CLI: labctl " << p->cli_noun() << " NAME VERB\n";
  if (!s.capabilities.empty())
    std::cout << "capabilities: " << text::join_list(s.capabilities, ", ") << "\n";
  std::cout << "common keys: name, type, model" << (s.model_required ? " (required)" : "")
            << ", description, mac, ip, segment, agent, firmware, after\n";
  std::cout << "keys:\n";
  describe_keys(std::cout, s.keys, 2);
  std::cout << "verbs:\n";
  for (const auto& v : p->verbs())
    std::cout << "  " << v.name << " — " << v.summary << "\n";
  return kExitOk;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"labctl — keep a homelab's hardware in the state its inventory describes"};
  app.set_version_flag("--version", std::string("labctl ") + "0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions g;
  app.add_option("--state-dir", g.state_dir,
                 "state directory (default $LABCTL_STATE_DIR, /var/lib/labctl as root, else "
                 "$XDG_STATE_HOME/labctl)");
  app.add_option("--catalog", g.catalog,
                 "firmware catalog to use instead of the inventory's or the shipped one");
  app.add_flag("-q,--quiet", g.quiet, "print errors only");
  app.add_flag("-v,--verbose", g.verbose, "more detail on stderr");

  Outcome outcome;
  std::unique_ptr<Context> ctx;
  auto context = [&]() -> Context& {
    if (!ctx) ctx = std::make_unique<Context>(g);
    return *ctx;
  };

  // validate
  ValidateArgs va;
  auto* validate = app.add_subcommand(
      "validate",
      "load and check an inventory and its catalog; every problem with file:line:column");
  validate->add_option("inventory", va.inventory, "inventory YAML file")->required();
  validate->add_flag("--json", va.json, "diagnostics as JSON");
  validate->callback([&] { outcome.code = cmd_validate(context(), va); });

  // plan
  PlanArgs pa;
  auto* plan = app.add_subcommand("plan",
                                  "what apply would do, device by device, step by step, every "
                                  "firmware hop with its reason; changes nothing");
  plan->add_option("inventory", pa.inventory, "inventory YAML file")->required();
  plan->add_flag("--json", pa.json, "the plan as JSON (docs/plan.md)");
  plan->add_option("--parallel", pa.parallel, "devices probed at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  plan->add_option("--only", pa.only, "plan only this device (repeatable)");
  plan->callback([&] { outcome.code = cmd_plan(context(), pa); });

  // apply
  ApplyArgs aa;
  std::string retry_delay = "2s", step_timeout = "30m";
  auto* apply = app.add_subcommand(
      "apply", "carry the plan out, journaling every step; resumes an interrupted run");
  apply->add_option("inventory", aa.inventory, "inventory YAML file")->required();
  apply->add_flag("-y,--yes", aa.yes, "do not ask for confirmation");
  apply->add_flag("--dry-run", aa.dry_run, "show what would run; execute nothing");
  apply->add_option("--parallel", aa.exec.parallel, "devices worked on at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  apply->add_option("--only", aa.only, "work on this device only (repeatable)");
  apply
      ->add_option("--attempts", aa.exec.attempts,
                   "tries per step when a device is unreachable or times out")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  apply->add_option("--retry-delay", retry_delay, "first wait before a retry; doubles each time")
      ->capture_default_str();
  apply->add_option("--step-timeout", step_timeout, "limit for a step that sets none")
      ->capture_default_str();
  apply->callback([&] {
    auto rd = text::parse_duration_ms(retry_delay), st = text::parse_duration_ms(step_timeout);
    if (!rd || !st)
      throw CLI::ValidationError("--retry-delay/--step-timeout",
                                 "expected a duration such as 500ms, 2s, 5m");
    aa.exec.retry_delay = std::chrono::milliseconds(*rd);
    aa.exec.step_timeout = std::chrono::milliseconds(*st);
    outcome.code = cmd_apply(context(), aa);
  });

  // audit
  AuditArgs au;
  auto* audit = app.add_subcommand(
      "audit",
      "probe every device and report firmware drift, unreachable devices and security findings "
      "(exit 0 compliant, 2 drift or findings, 1 could not complete)");
  audit->add_option("inventory", au.inventory, "inventory YAML file");
  audit
      ->add_option("--format", au.format,
                   "table (default on a terminal), json (docs/audit.md) or prometheus")
      ->check(CLI::IsMember({"table", "json", "prometheus"}));
  audit->add_option("--output", au.output,
                    "write the report to FILE atomically instead of standard output");
  audit->add_option("--parallel", au.parallel, "devices probed at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  ScheduleArgs sa;
  auto* schedule = audit->add_subcommand(
      "schedule",
      "print (or --install) the crontab line or the systemd service and timer that run the audit");
  schedule->add_option("inventory", sa.inventory, "inventory YAML file")->required();
  auto* cron_opt = schedule->add_option("--cron", sa.cron, "cron expression, e.g. '17 3 * * *'");
  auto* systemd_flag = schedule->add_flag("--systemd", sa.systemd,
                                          "a systemd service and timer instead of a crontab line");
  cron_opt->excludes(systemd_flag);
  schedule->add_option("--on-calendar", sa.on_calendar, "systemd OnCalendar= for --systemd")
      ->capture_default_str();
  schedule
      ->add_option("--textfile", sa.textfile,
                   "where the Prometheus report goes (node_exporter's textfile directory)")
      ->capture_default_str();
  schedule->add_option("--unit-name", sa.unit_name, "systemd unit name")->capture_default_str();
  schedule->add_option("--unit-dir", sa.unit_dir, "where --install writes systemd units")
      ->capture_default_str();
  schedule->add_flag("--install", sa.install, "install them (the user's crontab, or --unit-dir)");
  schedule->callback([&] { outcome.code = cmd_schedule(context(), sa); });
  audit->callback([&] {
    if (audit->got_subcommand(schedule)) return;
    if (au.inventory.empty()) throw CLI::RequiredError("inventory");
    outcome.code = cmd_audit(context(), au);
  });

  // history
  HistoryArgs ha;
  auto* history = app.add_subcommand("history", "past runs, steps and audits from the state store");
  history->add_option("run", ha.run, "show the steps of this run");
  history->add_option("--device", ha.device, "steps of one device, newest first");
  history->add_option("--limit", ha.limit, "how many entries")->capture_default_str();
  history->add_flag("--json", ha.json, "as JSON");
  history->callback([&] { outcome.code = cmd_history(context(), ha); });

  // firmware
  auto* firmware =
      app.add_subcommand("firmware", "the local firmware store (docs/firmware-store.md)");
  firmware->require_subcommand(1);
  std::vector<std::string> fw_files;
  bool fw_json = false;
  auto* fw_import = firmware->add_subcommand(
      "import",
      "unpack vendor bundles (.cop.sgn, .cop, .zip, .tar, .tar.gz) or catalog-named images into "
      "the store and pin their checksums");
  fw_import->add_option("files", fw_files, "bundles or images")->required();
  fw_import->add_flag("--json", fw_json, "the result as JSON (docs/firmware-store.md)");
  fw_import->callback([&] { outcome.code = cmd_firmware_import(context(), fw_files, fw_json); });
  auto* fw_list = firmware->add_subcommand(
      "list", "what the store holds: bundles, their files, the pinned checksums");
  fw_list->add_flag("--json", fw_json, "as JSON (docs/firmware-store.md)");
  fw_list->callback([&] { outcome.code = cmd_firmware_list(context(), fw_json); });
  auto* fw_fetch = firmware->add_subcommand(
      "fetch",
      "download catalog files from their mirrors (resuming interrupted downloads), check them "
      "against the catalog or the pin, and import them");
  fw_fetch->add_option("files", fw_files,
                       "catalog file names or FAMILY@VERSION (default: every file with a mirror)");
  fw_fetch->add_flag("--json", fw_json, "as JSON (docs/firmware-store.md)");
  fw_fetch->callback([&] { outcome.code = cmd_firmware_fetch(context(), fw_files, fw_json); });
  auto* fw_verify = firmware->add_subcommand(
      "verify",
      "re-hash the store's files against its index; with arguments, check files on disk (or "
      "stored file names) against the store, and verify images in a format labctl knows "
      "(Supermicro ATEN BMC images: every checksum)");
  fw_verify->add_option("files", fw_files,
                        "files to check, or names of stored files (default: the whole store)");
  fw_verify->add_flag("--json", fw_json, "as JSON (docs/firmware-store.md)");
  fw_verify->callback([&] { outcome.code = cmd_firmware_verify(context(), fw_files, fw_json); });

  // serve
  ServeArgs sv;
  auto* serve = app.add_subcommand(
      "serve", "run the network services (TFTP, DHCP) and device watchers in the foreground");
  serve->add_option("inventory", sv.inventory, "inventory YAML file")->required();
  serve->add_option("--dhcp-port", sv.dhcp_port, "DHCP server port (clients get port + 1)")
      ->check(CLI::Range(1, 65534));
  serve
      ->add_option("--tftp-port", sv.tftp_port,
                   "TFTP port for every segment (default: each "
                   "segment's tftp.port)")
      ->check(CLI::Range(1, 65535));
  serve->add_option("--log-dir", sv.log_dir, "where the JSON event logs go (default STATE/logs)");
  serve->callback([&] { outcome.code = cmd_serve(context(), sv); });

  // dhcp
  auto* dhcp = app.add_subcommand("dhcp", "the DHCP service and configuration helpers");
  dhcp->require_subcommand(1);
  DhcpOptionsArgs dopts;
  auto* dopt = dhcp->add_subcommand("options",
                                    "the exact lines for another DHCP server: option 150 as a list "
                                    "of addresses, option 66 as text");
  dopt->add_option("--tftp", dopts.tftp, "TFTP server addresses, comma-separated")->required();
  dopt->add_option("--format", dopts.format, "isc, kea, dnsmasq, cisco-ios, mikrotik or hex");
  dopt->add_option("--tftp-name", dopts.tftp_name, "option 66 text (default: the first address)");
  dopt->callback([&] { outcome.code = cmd_dhcp_options(dopts); });
  DhcpServeArgs ds;
  auto* dserve = dhcp->add_subcommand("serve", "serve one segment without an inventory");
  dserve->add_option("--interface", ds.interface, "interface (its IPv4 address is the server's)")
      ->required();
  dserve->add_option("--range", ds.range, "pool, FIRST-LAST")->required();
  dserve->add_option("--router", ds.router, "router address (option 3)");
  dserve->add_option("--dns", ds.dns, "DNS servers, comma-separated (option 6)");
  dserve->add_option("--tftp", ds.tftp, "TFTP servers, comma-separated (option 150, and 66)");
  dserve->add_option("--tftp-name", ds.tftp_name, "option 66 text (default: the first --tftp)");
  dserve->add_option("--lease-db", ds.lease_db, "lease database (default STATE/state.db)");
  dserve->add_option("--lease-time", ds.lease_time, "lease time (default 1h)");
  dserve->add_option("--log", ds.log, "JSON-lines event log");
  dserve->add_option("--reserve", ds.reserve, "a fixed address: MAC=IP (repeatable)");
  dserve->add_flag("--deny-unknown", ds.deny_unknown, "serve reserved MACs only");
  dserve->add_option("--port", ds.port, "server port (clients get port + 1)")
      ->check(CLI::Range(1, 65534));
  dserve->callback([&] { outcome.code = cmd_dhcp_serve(context(), ds); });
  DhcpLeasesArgs dl;
  auto* dleases = dhcp->add_subcommand("leases", "list the leases in the lease database");
  dleases->add_option("--lease-db", dl.lease_db, "lease database (default STATE/state.db)");
  dleases->add_option("--segment", dl.segment, "one segment only");
  dleases->add_flag("--json", dl.json, "as a JSON array");
  dleases->callback([&] { outcome.code = cmd_dhcp_leases(context(), dl); });

  // tftp
  auto* tftp = app.add_subcommand("tftp", "the TFTP server alone, and a diagnostic client");
  tftp->require_subcommand(1);
  struct {
    std::string root, bind = "0.0.0.0", log, url, out;
    int port = 69, blksize = 512, windowsize = 1, max_blksize = 65464, max_windowsize = 64,
        threads = 2;
  } tf;
  auto* tserve = tftp->add_subcommand("serve", "serve a directory, like in.tftpd");
  tserve->add_option("--root", tf.root, "directory to serve")->required();
  tserve->add_option("--port", tf.port, "UDP port")->check(CLI::Range(1, 65535));
  tserve->add_option("--bind", tf.bind, "address to listen on (\"::\" for IPv6 and IPv4)");
  tserve->add_option("--log", tf.log, "JSON-lines event log");
  tserve->add_option("--max-blksize", tf.max_blksize, "largest block size granted")
      ->check(CLI::Range(8, 65464));
  tserve->add_option("--max-windowsize", tf.max_windowsize, "largest window granted (RFC 7440)")
      ->check(CLI::Range(1, 65535));
  tserve->add_option("--threads", tf.threads, "event-loop threads")->check(CLI::Range(1, 16));
  tserve->callback([&] {
    tftp::ServerConfig c;
    c.root = tf.root;
    c.bind_address = tf.bind;
    c.port = static_cast<std::uint16_t>(tf.port);
    c.log_path = tf.log;
    c.max_blksize = static_cast<std::uint16_t>(tf.max_blksize);
    c.max_windowsize = static_cast<std::uint16_t>(tf.max_windowsize);
    c.threads = tf.threads;
    c.on_event = [](const tftp::Event& e) {
      if (e.kind == tftp::EventKind::Complete || e.kind == tftp::EventKind::Failed ||
          e.kind == tftp::EventKind::Refused)
        std::cerr << "labctl tftp: " << tftp::event_to_line(e) << "\n";
    };
    // SIGINT/SIGTERM are blocked before the loop threads start (they inherit the mask) and
    // taken here with sigwait, so stop() runs on this thread, never in a signal handler.
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
    auto server = tftp::Server::start(std::move(c));
    if (!server) {
      ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
      std::cerr << "labctl tftp serve: " << server.error().message() << "\n";
      outcome.code = kExitError;
      return;
    }
    std::cerr << "labctl tftp: serving " << tf.root << " on " << (*server)->address() << " port "
              << (*server)->port() << " (SIGINT or SIGTERM stops)\n";
    int sig = 0;
    ::sigwait(&stop_signals, &sig);
    (*server)->stop();
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    const auto st = (*server)->stats();
    std::cerr << "labctl tftp: stopped: " << st.completed << " transfers completed, " << st.failed
              << " failed, " << st.refused << " refused\n";
    outcome.code = kExitOk;
  });
  auto* tget = tftp->add_subcommand("get", "fetch a file: tftp://HOST[:PORT]/NAME");
  tget->add_option("url", tf.url, "tftp:// URL")->required();
  tget->add_option("-o,--output", tf.out, "output file (default: standard output)");
  tget->add_option("--blksize", tf.blksize, "block size")->check(CLI::Range(8, 65464));
  tget->add_option("--windowsize", tf.windowsize, "window size (RFC 7440)")
      ->check(CLI::Range(1, 65535));
  tget->callback([&] {
    auto url = tftp::parse_url(tf.url);
    if (!url) {
      std::cerr << "labctl tftp get: " << url.error().message() << "\n";
      outcome.code = kExitError;
      return;
    }
    tftp::ClientOptions o;
    o.host = url->host;
    o.port = url->port;
    o.name = url->name;
    o.blksize = static_cast<std::uint16_t>(tf.blksize);
    o.windowsize = static_cast<std::uint16_t>(tf.windowsize);
    const tftp::ClientSink to_stdout = [](std::span<const std::uint8_t> b) -> Status {
      if (std::fwrite(b.data(), 1, b.size(), stdout) != b.size())
        return fail(Errc::Internal, "standard output: write failed");
      return {};
    };
    auto r = tf.out.empty() ? tftp::get(o, to_stdout) : tftp::get_file(o, tf.out);
    if (r && tf.out.empty() && std::fflush(stdout) != 0)
      r = fail(Errc::Internal, "standard output: write failed");
    if (!r) {
      std::cerr << "labctl tftp get: " << r.error().message() << "\n";
      outcome.code = kExitError;
      return;
    }
    if (!tf.out.empty())
      std::cerr << "labctl tftp get: " << tf.out << ": " << r->bytes << " bytes in "
                << r->duration.count() << " ms (blksize " << r->blksize << ", window "
                << r->windowsize << ")\n";
    outcome.code = kExitOk;
  });

  // per-device nouns
  struct NounSpec {
    const char* noun;
    const char* help;
  };
  static const NounSpec nouns[] = {
      {"bmc",
       "a server's BMC: info, power, sensors, users, firmware (e.g. labctl bmc server1 power "
       "cycle)"},
      {"phone", "an IP phone: info, doctor, ..."},
      {"hypervisor", "a hypervisor host: info, vms, start, stop, snapshot"},
      {"drive",
       "an optical drive: scan, identify, audit, flash (labctl drive NAME flash FILE "
       "--accept-brick-risk; labctl drive --device /dev/sgN identify)"},
  };
  std::vector<std::pair<CLI::App*, std::unique_ptr<DeviceVerbArgs>>> noun_cmds;
  for (const auto& n : nouns) {
    auto args = std::make_unique<DeviceVerbArgs>();
    auto* sub = app.add_subcommand(n.noun, n.help);
    sub->add_option("-i,--inventory", args->inventory,
                    "inventory (default $LABCTL_INVENTORY or /etc/labctl/inventory.yaml)");
    sub->add_flag("--json", args->json, "as JSON");
    sub->add_option("name", args->device, "device name in the inventory");
    sub->add_option("verb", args->verb, "what to do; leave out to list the verbs");
    sub->add_option("args", args->rest, "the verb's arguments");
    auto* raw = args.get();
    std::string noun = n.noun;
    if (noun == "bmc") {
      sub->add_option("--host", args->host,
                      "a BMC in no inventory: address[:port]; then NAME is the verb");
      sub->add_option("--user", args->user, "with --host: IPMI user (default ADMIN)");
      sub->add_option("--password-env", args->password_env,
                      "with --host: the environment variable holding the password");
      sub->add_option("--password-file", args->password_file,
                      "with --host: a file (mode 0600) holding the password");
      sub->add_option("--cipher-suite", args->cipher_suite, "with --host: default 3");
      sub->add_option("--model", args->model, "with --host: the board (X8SIL-F), for firmware");
      sub->add_flag("--preserve-config", args->preserve_config,
                    "firmware flash: keep the BMC's users and network settings");
      sub->add_flag("--factory-reset", args->factory_reset,
                    "firmware flash: reset the BMC to factory settings (labctl then sets the "
                    "inventory's login and LAN settings again)");
      sub->add_flag("--accept-unconfirmed-profile", args->accept_unconfirmed,
                    "firmware flash: use a flasher profile never seen on a real board");
      sub->add_option("--profile", args->profile,
                      "firmware flash: the flasher profile to use (a name, or a profile file)");
      sub->add_option("--web-scheme", args->web_scheme, "with --host: http or https (default)");
      sub->add_option("--web-port", args->web_port, "with --host: the web interface's port");
    }
    if (noun == "hypervisor") {
      sub->add_option("--uri", args->uri,
                      "a hypervisor in no inventory: its libvirt URI (esx://HOST/, "
                      "qemu:///system, test:///...); then NAME is the verb");
      sub->add_option("--user", args->user, "with --uri: the user (esx://: default root)");
      sub->add_option("--password-env", args->password_env,
                      "with --uri: the environment variable holding the password");
      sub->add_option("--password-file", args->password_file,
                      "with --uri: a file (mode 0600) holding the password");
      sub->add_flag("--no-verify", args->no_verify,
                    "with --uri: do not verify the host's TLS certificate (a finding)");
    }
    if (noun == "drive") {
      sub->add_option("--device", args->device_path,
                      "a drive in no inventory: /dev/sgN, /dev/srN (or emulator:SOCKET); then NAME "
                      "is the verb");
      sub->add_flag("--accept-brick-risk", args->accept_brick_risk,
                    "with flash: consent to write firmware (a failed flash can brick the drive)");
      sub->add_option("--sysfs", args->sysfs, "with scan: the sysfs to read (default /sys)");
    }
    if (noun == "phone") {
      sub->add_option("--log", args->log,
                      "with NAME 'doctor': explain an in.tftpd syslog (labctl phone doctor --log "
                      "FILE)");
      sub->add_option("--year", args->year, "the year of the log's BSD timestamps (default: now)");
    }
    sub->callback([&outcome, &context, raw, noun] {
      if (noun == "drive" && raw->device == "scan" && raw->verb.empty() &&
          raw->device_path.empty()) {
        outcome.code = cmd_drive_scan(raw->sysfs, raw->json);
        return;
      }
      if (noun == "phone" && raw->device == "doctor" && raw->verb.empty()) {
        if (raw->log.empty()) {
          std::cerr << "labctl phone doctor: give --log FILE (an in.tftpd syslog), or a phone: "
                       "labctl phone NAME doctor\n";
          outcome.code = kExitError;
          return;
        }
        outcome.code = cmd_phone_log_doctor(context(), *raw);
        return;
      }
      outcome.code = cmd_device_verb(context(), noun, *raw);
    });
    noun_cmds.emplace_back(sub, std::move(args));
  }

  // agent
  auto* agent =
      app.add_subcommand("agent", "remote agents: certificates, status, events, systemd unit");
  agent->require_subcommand(1);
  auto init_args = std::make_shared<AgentInitArgs>();
  auto* agent_init = agent->add_subcommand(
      "init", "create a CA, the controller's and agents' certificates, and agent configurations");
  agent_init->add_option("--dir", init_args->dir, "where to write them (0700)")->required();
  agent_init->add_option("--agent", init_args->agents, "an agent's name (repeat for more)")
      ->required();
  agent_init->add_option("--host", init_args->hosts,
                         "NAME=HOST[,HOST]: more names or addresses for an agent's certificate");
  agent_init
      ->add_option("--listen", init_args->listen,
                   "HOST:PORT written into the agents' configurations")
      ->capture_default_str();
  agent_init->add_option("--days", init_args->days, "validity of the issued certificates")
      ->capture_default_str();
  agent_init->add_flag("--renew-controller", init_args->renew_controller,
                       "issue the controller's certificate again");
  agent_init->callback([&outcome, init_args] { outcome.code = cmd_agent_init(*init_args); });
  auto status_args = std::make_shared<AgentCallArgs>();
  auto* agent_status = agent->add_subcommand("status", "an agent's health, services and version");
  agent_status->add_option("name", status_args->name, "the agent's name")->required();
  agent_status->add_option("-i,--inventory", status_args->inventory, "the inventory defining it")
      ->required();
  agent_status->add_flag("--json", status_args->json, "JSON output");
  agent_status->callback([&outcome, &context, status_args] {
    outcome.code = cmd_agent_status(context(), *status_args);
  });
  auto events_args = std::make_shared<AgentCallArgs>();
  auto* agent_events =
      agent->add_subcommand("events", "an agent's TFTP and DHCP events (newest 10000)");
  agent_events->add_option("name", events_args->name, "the agent's name")->required();
  agent_events->add_option("-i,--inventory", events_args->inventory, "the inventory defining it")
      ->required();
  agent_events->add_option("--after", events_args->after, "only events after this number");
  agent_events->add_flag("-f,--follow", events_args->follow, "keep printing new events");
  agent_events->add_option("--max-seconds", events_args->max_seconds,
                           "with --follow: stop after this many seconds");
  agent_events->add_flag("--json", events_args->json, "one JSON object per line");
  agent_events->callback([&outcome, &context, events_args] {
    outcome.code = cmd_agent_events(context(), *events_args);
  });
  auto unit_args = std::make_shared<AgentUnitArgs>();
  auto* agent_unit_cmd =
      agent->add_subcommand("install-unit", "print (or install) the agent's systemd unit");
  agent_unit_cmd->add_option("--config", unit_args->config, "the agent's configuration")
      ->required();
  agent_unit_cmd->add_option("--binary", unit_args->binary, "labctl-agent's path");
  agent_unit_cmd->add_option("--unit-dir", unit_args->unit_dir, "where --install writes")
      ->capture_default_str();
  agent_unit_cmd->add_flag("--install", unit_args->install, "write the unit file");
  agent_unit_cmd->callback(
      [&outcome, unit_args] { outcome.code = cmd_agent_install_unit(*unit_args); });

  // plugins
  std::string plugin_type;
  auto* plugins_cmd =
      app.add_subcommand("plugins", "device types this labctl knows, and their inventory keys");
  plugins_cmd->add_option("type", plugin_type, "describe one type's keys and verbs");
  plugins_cmd->callback([&] { outcome.code = cmd_plugins(context(), plugin_type); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "labctl: internal error: " << e.what() << "\n";
    return kExitError;
  }
  return outcome.code;
}

}  // namespace labctl::controller
