#include "controller/schedule.h"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/text.h"

namespace labctl::controller {

namespace fs = std::filesystem;

namespace {

struct Field {
  const char* name;
  int lo, hi;
  std::vector<std::string> names;  // names[i] stands for lo + i
};

const std::array<Field, 5> kFields{{
    {"minute", 0, 59, {}},
    {"hour", 0, 23, {}},
    {"day of month", 1, 31, {}},
    {"month",
     1,
     12,
     {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
    {"day of week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}};

std::optional<int> value(const Field& f, const std::string& s) {
  if (s.empty()) return std::nullopt;
  if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (s.size() > 2) return std::nullopt;
    int v = std::stoi(s);
    if (v < f.lo || v > f.hi) return std::nullopt;
    return v;
  }
  const std::string l = text::lower(s);
  for (std::size_t i = 0; i < f.names.size(); ++i)
    if (f.names[i] == l) return f.lo + static_cast<int>(i);
  return std::nullopt;
}

Status check_field(const Field& f, const std::string& field) {
  auto bad = [&](const std::string& part, const std::string& why) {
    return fail(Errc::InvalidInput, std::string(f.name) + " field '" + field + "': '" + part +
                                        "' " + why + " (allowed " + std::to_string(f.lo) + "-" +
                                        std::to_string(f.hi) + ")");
  };
  for (const auto& part : text::split(field, ',')) {
    std::string range = part, step;
    if (auto slash = part.find('/'); slash != std::string::npos) {
      range = part.substr(0, slash);
      step = part.substr(slash + 1);
      if (step.empty() || step.size() > 2 ||
          !std::all_of(step.begin(), step.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          std::stoi(step) == 0)
        return bad(part, "has a bad step");
    }
    if (range == "*") continue;
    auto dash = range.find('-');
    if (dash == std::string::npos) {
      if (!value(f, range)) return bad(part, "is not a valid value");
      continue;
    }
    auto a = value(f, range.substr(0, dash)), b = value(f, range.substr(dash + 1));
    if (!a || !b) return bad(part, "is not a valid range");
    if (*a > *b) return bad(part, "is a range that ends before it starts");
  }
  return {};
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() &&
      s.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@+,") ==
          std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string systemd_quote(const std::string& s) {
  if (s.find_first_of(" \t\"'\\$%") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '%') out += '%';  // specifiers
    if (c == '$') out += '$';  // environment expansion
    out += c;
  }
  return out + "\"";
}

namespace {

std::vector<std::string> audit_argv(const ScheduleOptions& o) {
  return {o.labctl,    "--quiet",  "--state-dir", o.state_dir, "audit",
          o.inventory, "--format", "prometheus",  "--output",  o.textfile};
}

Result<std::string> run_capture(const std::string& cmd, int* status) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return fail(Errc::Internal, "cannot run " + cmd);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int st = ::pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

}  // namespace

Status validate_cron(const std::string& expr) {
  const auto e = std::string(text::trim(expr));
  static const std::vector<std::string> shortcuts{"@hourly",  "@daily",  "@midnight", "@weekly",
                                                  "@monthly", "@yearly", "@annually"};
  if (!e.empty() && e[0] == '@') {
    if (std::find(shortcuts.begin(), shortcuts.end(), e) != shortcuts.end()) return {};
    return fail(Errc::InvalidInput, "'" + e + "' is not a cron shortcut; use one of " +
                                        text::join_list(shortcuts, ", "));
  }
  std::vector<std::string> fields;
  std::istringstream ss(e);
  for (std::string f; ss >> f;)
    fields.push_back(f);
  if (fields.size() != 5)
    return fail(Errc::InvalidInput,
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), '" +
                    e + "' has " + std::to_string(fields.size()));
  for (std::size_t i = 0; i < 5; ++i)
    if (auto r = check_field(kFields[i], fields[i]); !r) return r;
  return {};
}

Result<std::string> cron_line(const ScheduleOptions& o) {
  if (auto r = validate_cron(o.cron); !r) return std::unexpected(r.error());
  std::string cmd = "flock -n " + shell_quote(o.state_dir + "/audit.lock");
  for (const auto& a : audit_argv(o))
    cmd += " " + shell_quote(a);
  // cron mails what a job prints; the report goes to the textfile, errors still reach the mail.
  return std::string(text::trim(o.cron)) + " " + cmd + " >/dev/null";
}

SystemdUnits systemd_units(const ScheduleOptions& o) {
  std::string exec = "/usr/bin/flock -n " + systemd_quote(o.state_dir + "/audit.lock");
  for (const auto& a : audit_argv(o))
    exec += " " + systemd_quote(a);
  SystemdUnits u;
  u.service =
      "[Unit]\n"
      "Description=labctl audit of " +
      o.inventory +
      "\n"
      "After=network-online.target\n"
      "Wants=network-online.target\n"
      "\n"
      "[Service]\n"
      "Type=oneshot\n"
      "ExecStart=" +
      exec +
      "\n"
      "# 2 means the audit ran and found drift or findings: the report says which; not a unit "
      "failure.\n"
      "SuccessExitStatus=2\n"
      "Nice=10\n"
      "TimeoutStartSec=1h\n";
  u.timer =
      "[Unit]\n"
      "Description=Run the labctl audit of " +
      o.inventory +
      " on a schedule\n"
      "\n"
      "[Timer]\n"
      "OnCalendar=" +
      o.on_calendar +
      "\n"
      "RandomizedDelaySec=5m\n"
      "Persistent=true\n"
      "Unit=" +
      o.unit_name +
      ".service\n"
      "\n"
      "[Install]\n"
      "WantedBy=timers.target\n";
  return u;
}

Result<std::string> install_cron(const std::string& line, const std::string& inventory) {
  int status = 0;
  auto current = run_capture("crontab -l 2>/dev/null", &status);
  if (!current) return std::unexpected(current.error());
  std::string existing = status == 0 ? *current : "";
  for (const auto& l : text::split(existing, '\n')) {
    if (l == line) return std::string("already installed in the crontab");
    if (l.find(" audit ") != std::string::npos && l.find("labctl") != std::string::npos &&
        l.find(inventory) != std::string::npos)
      return fail(Errc::PreconditionFailed, "the crontab already has a different labctl audit of " +
                                                inventory + ":\n  " + l +
                                                "\nremove it first (crontab -e)");
  }
  if (!existing.empty() && existing.back() != '\n') existing += '\n';
  existing += line + "\n";
  FILE* p = ::popen("crontab -", "w");
  if (!p) return fail(Errc::Internal, "cannot run crontab");
  std::fwrite(existing.data(), 1, existing.size(), p);
  int st = ::pclose(p);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return fail(Errc::PreconditionFailed, "crontab refused the new table");
  return std::string("added to the crontab");
}

Result<std::string> install_files(
    const std::vector<std::pair<std::filesystem::path, std::string>>& files) {
  // Check every file before writing any: never leave half an installation.
  bool all_same = true;
  for (const auto& [path, content] : files) {
    std::ifstream in(path);
    if (!in) {
      all_same = false;
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str() != content)
      return fail(Errc::PreconditionFailed,
                  path.string() + " exists with different contents; remove it first");
  }
  std::string names;
  for (const auto& [path, content] : files)
    names += (names.empty() ? "" : " and ") + path.string();
  if (all_same) return "already installed: " + names;
  std::error_code ec;
  for (const auto& [path, content] : files) {
    fs::create_directories(path.parent_path(), ec);
    const fs::path tmp = path.string() + ".tmp";
    {
      std::ofstream out(tmp);
      out << content;
      if (!out) return fail(Errc::PreconditionFailed, "cannot write " + tmp.string());
    }
    fs::rename(tmp, path, ec);
    if (ec)
      return fail(Errc::PreconditionFailed, "cannot write " + path.string() + ": " + ec.message());
  }
  return "installed " + names;
}

Result<std::string> install_systemd(const SystemdUnits& units, const std::string& name,
                                    const fs::path& dir) {
  auto r = install_files(
      {{dir / (name + ".service"), units.service}, {dir / (name + ".timer"), units.timer}});
  if (!r && r.error().message().find("different contents") != std::string::npos)
    return fail(Errc::PreconditionFailed, r.error().message() + " (or choose another --unit-name)");
  return r;
}

}  // namespace labctl::controller
