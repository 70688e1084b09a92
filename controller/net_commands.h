// The network-service commands: `labctl serve INV`, `labctl dhcp serve|leases|options`.
#pragma once

#include <string>
#include <vector>

#include "agents/net/dhcp/server.h"
#include "agents/services.h"
#include "controller/context.h"
#include "inventory/inventory.h"

namespace labctl::controller {

struct DhcpServeArgs {
  std::string interface, range, router, dns, tftp, tftp_name, lease_db, lease_time = "1h", log;
  std::vector<std::string> reserve;  // MAC=IP
  bool deny_unknown = false;
  int port = 67;
};
int cmd_dhcp_serve(Context& ctx, const DhcpServeArgs& a);

struct DhcpLeasesArgs {
  std::string lease_db, segment;
  bool json = false;
};
int cmd_dhcp_leases(Context& ctx, const DhcpLeasesArgs& a);

struct DhcpOptionsArgs {
  std::string tftp, format = "isc", tftp_name;
};
int cmd_dhcp_options(const DhcpOptionsArgs& a);

struct ServeArgs {
  std::string inventory;
  int dhcp_port = 67;  // tests move these off the privileged ports
  int tftp_port = 0;   // 0: each segment's tftp.port
  std::string log_dir;
};
int cmd_serve(Context& ctx, const ServeArgs& a);

using agents::dhcp_segment_config;

}  // namespace labctl::controller
