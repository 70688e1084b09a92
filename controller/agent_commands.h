// `labctl agent init|status|events|install-unit`: the remote agents' certificates, health,
// event stream and systemd unit.
#pragma once

#include <string>
#include <vector>

#include "controller/context.h"

namespace labctl::controller {

struct AgentInitArgs {
  std::string dir;
  std::vector<std::string> agents;
  std::vector<std::string> hosts;  // NAME=HOST[,HOST...]
  std::string listen = "0.0.0.0:7443";
  int days = 825;
  bool renew_controller = false;
};
int cmd_agent_init(const AgentInitArgs& a);

struct AgentCallArgs {
  std::string name;
  std::string inventory;
  bool json = false;
  bool follow = false;  // events: keep waiting for more
  std::uint64_t after = 0;
  int max_seconds = 0;  // events --follow: stop after this long (0: until interrupted)
};
int cmd_agent_status(Context& ctx, const AgentCallArgs& a);
int cmd_agent_events(Context& ctx, const AgentCallArgs& a);

struct AgentUnitArgs {
  std::string config;
  std::string binary;  // labctl-agent's absolute path; "" = next to labctl, else PATH's
  std::string unit_dir = "/etc/systemd/system";
  bool install = false;
};
int cmd_agent_install_unit(const AgentUnitArgs& a);
// The unit text (for tests and --install).
std::string agent_unit(const std::string& binary, const std::string& config,
                       const std::string& name);

}  // namespace labctl::controller
