// `labctl audit schedule`: the crontab line or systemd units that run the audit unattended —
// never two at once (flock), output written atomically to a stable path for node_exporter's
// textfile collector.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace labctl::controller {

struct ScheduleOptions {
  std::string labctl;     // absolute path of the labctl binary to run
  std::string inventory;  // absolute path
  std::string state_dir;  // absolute path
  std::string textfile = "/var/lib/prometheus/node-exporter/labctl.prom";
  std::string cron;                            // cron expression (cron form)
  std::string on_calendar = "*-*-* 03:17:00";  // systemd OnCalendar= (systemd form)
  std::string unit_name = "labctl-audit";
};

// Checks a five-field cron expression (numbers, names, ranges, steps, lists) or an @-shortcut;
// the error names the field and what is wrong with it.
Status validate_cron(const std::string& expr);

Result<std::string> cron_line(const ScheduleOptions& o);

struct SystemdUnits {
  std::string service, timer;
};
SystemdUnits systemd_units(const ScheduleOptions& o);

// Adds the line to the invoking user's crontab (through `crontab -l` / `crontab -`). A no-op when
// the same line is there; refuses when another labctl audit line for the inventory differs.
Result<std::string> install_cron(const std::string& line, const std::string& inventory);
// Writes every file (creating directories), after checking that none exists with other contents;
// a no-op when all exist as they are.
Result<std::string> install_files(
    const std::vector<std::pair<std::filesystem::path, std::string>>& files);
// A value for a systemd unit's Exec*= line, quoted where systemd needs it.
std::string systemd_quote(const std::string& s);
// Writes <name>.service and <name>.timer into `dir`, refusing to overwrite different files.
Result<std::string> install_systemd(const SystemdUnits& units, const std::string& name,
                                    const std::filesystem::path& dir);

}  // namespace labctl::controller
