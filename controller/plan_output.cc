#include "controller/plan_output.h"

#include <ostream>

namespace labctl::controller {

namespace {

std::string paint(const TextStyle& st, const char* code, const std::string& s) {
  if (!st.color) return s;
  return std::string("\x1b[") + code + "m" + s + "\x1b[0m";
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

void print_plan(std::ostream& out, const Plan& plan, const TextStyle& st) {
  out << "Plan for " << plan.site << " (" << plan.inventory
      << "): " << plural(plan.devices.size(), "device", "devices") << ", "
      << plan.count(DevicePlan::Status::Changes) << " to change, "
      << plural(plan.step_count(), "step", "steps");
  if (auto n = plan.count(DevicePlan::Status::Unreachable)) out << ", " << n << " unreachable";
  if (auto n = plan.count(DevicePlan::Status::Blocked)) out << ", " << n << " blocked";
  out << "\n";
  for (const auto& d : plan.devices) {
    out << "\n" << paint(st, "1", d.device) << "  " << d.type;
    if (!d.model.empty()) out << " " << d.model;
    if (d.agent != "local") out << "  (agent " << d.agent << ")";
    switch (d.status) {
      case DevicePlan::Status::UpToDate:
        out << "  " << paint(st, "32", "up to date");
        if (!d.installed.empty()) out << " (firmware " << d.installed << ")";
        out << "\n";
        break;
      case DevicePlan::Status::Unreachable:
        out << "  " << paint(st, "31", "unreachable") << ": " << d.problem.message() << "\n";
        break;
      case DevicePlan::Status::Blocked:
        out << "  " << paint(st, "31", "blocked") << ": " << d.problem.message() << "\n";
        break;
      case DevicePlan::Status::Changes:
        if (!d.hops.empty())
          out << "  firmware " << d.hops.front().from_display << " -> " << d.hops.back().to_display
              << " (" << plural(d.hops.size(), "hop", "hops") << ")";
        out << "\n";
        break;
    }
    if (!d.after.empty()) {
      out << "  after:";
      for (const auto& a : d.after)
        out << " " << a;
      out << "\n";
    }
    for (std::size_t h = 0; h < d.hops.size(); ++h) {
      const auto& hop = d.hops[h];
      out << "  hop " << h + 1 << "/" << d.hops.size() << "  " << hop.from_display << " -> "
          << hop.to_display << ": " << hop.reason;
      if (!hop.bundle.empty()) out << " [" << hop.bundle << "]";
      out << "\n";
    }
    int n = 0;
    for (const auto& s : d.steps) {
      out << "    " << ++n << ". " << s.title;
      if (!s.writes) out << paint(st, "2", " (read-only)");
      if (s.hop == 0 && !s.reason.empty()) out << " — " << s.reason;
      out << "\n";
    }
    for (const auto& f : d.findings)
      out << "  " << paint(st, f.severity == "critical" ? "31" : "33", f.severity) << ": "
          << f.message << " [" << f.code << "]\n";
  }
}

}  // namespace labctl::controller
