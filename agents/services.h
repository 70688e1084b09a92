// The network services one agent runs for its segments: a TFTP server per segment with `tftp:`,
// one DHCP server for the segments with `dhcp:` (serve or observe), and the plugins' hooks joined
// to both. `labctl serve INV` runs them for the embedded agent ("local"); `labctl-agent` for the
// segments the inventory assigns to it.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agents/net/dhcp/server.h"
#include "agents/net/tftp/server.h"
#include "common/error.h"
#include "common/run_lock.h"
#include "inventory/inventory.h"
#include "plugins/registry.h"

namespace labctl::agents {

// Option helpers shared with `labctl dhcp serve`.
void dhcp_segment_options(dhcp::Options& o, std::optional<std::uint32_t> router,
                          const std::vector<std::uint32_t>& dns,
                          const std::vector<std::uint32_t>& ntp, const std::string& domain);
// Option 150 (binary list) and 66 (text: the name given, else the first address).
void dhcp_tftp_options(dhcp::Options& o, const std::vector<std::uint32_t>& servers,
                       const std::string& name);

// The DHCP configuration of one inventory segment: pool, options, a reservation per device with a
// MAC, and the client classes (the inventory's, plus "tftp-boot": devices whose plugin boots by
// TFTP and Cisco phones by vendor class get options 150 and 66 from the segment's tftp.servers).
Result<dhcp::SegmentConfig> dhcp_segment_config(const inventory::Inventory& inv,
                                                const inventory::Segment& seg,
                                                const plugins::Registry& registry,
                                                std::uint32_t server_address);

struct ServicesOptions {
  std::string agent = "local";      // serve the segments whose `agent:` is this
  std::filesystem::path state_dir;  // lease table, serve.lock, plugins' published state
  std::filesystem::path log_dir;    // JSON event logs; empty: state_dir/logs
  int dhcp_port = 67;               // tests move these off the privileged ports
  int tftp_port = 0;                // 0: each segment's tftp.port
  std::string inventory_label;      // written into serve.lock ("what is served")
  std::function<void(const std::string& segment, const tftp::Event&)> on_tftp_event;
  std::function<void(const dhcp::Event&)> on_dhcp_event;
  std::function<void(const std::string&)> say;  // one line of what happens (stderr, a log)
};

class NetServices {
 public:
  // Checks every segment's configuration first, takes the state directory's serve lock, then
  // starts the services. `inv` and `registry` must outlive the services. InvalidInput when a
  // segment's configuration is wrong, PreconditionFailed when another process serves this state
  // directory, NotFound when no segment of this agent has TFTP or DHCP.
  static Result<std::unique_ptr<NetServices>> start(const inventory::Inventory& inv,
                                                    const plugins::Registry& registry,
                                                    ServicesOptions options);
  ~NetServices();
  NetServices(const NetServices&) = delete;
  NetServices& operator=(const NetServices&) = delete;

  void stop();
  const std::vector<std::string>& tftp_segments() const { return tftp_segments_; }
  const std::vector<std::string>& dhcp_segments() const { return dhcp_segments_; }
  // The TFTP port of a segment (0 when not served).
  std::uint16_t tftp_port(const std::string& segment) const;

 private:
  NetServices() = default;
  std::atomic<dhcp::Server*> leases_{nullptr};
  std::unique_ptr<sdk::ServiceEnv> env_;
  std::optional<RunLock> lock_;
  std::vector<std::pair<std::string, std::unique_ptr<tftp::Server>>> tftp_;
  std::unique_ptr<dhcp::Server> dhcp_;
  std::vector<std::string> tftp_segments_, dhcp_segments_;
  bool stopped_ = false;
};

}  // namespace labctl::agents
