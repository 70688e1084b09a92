// Hooks through which a plugin joins labctl's network services without them knowing it
// (Kea's named hook points in spirit). The TFTP and DHCP services call these; the phone plugin
// is the first user. The services themselves arrive with their own issues; these are the seams.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::inventory {
struct Inventory;
}

namespace labctl::sdk {

// A DHCP option a plugin wants sent to a client: code and raw value bytes (binary, already
// encoded: option 150 is 4 bytes per address, never text).
struct DhcpOption {
  std::uint8_t code = 0;
  std::vector<std::uint8_t> value;
};

struct TftpRequestInfo {
  std::uint32_t client_ip = 0;  // host byte order
  std::string name;             // as requested, normalised (no leading '/', '/' separators)
};

// What the services tell the hooks before the first call (`labctl serve`); it outlives them.
struct ServiceEnv {
  const inventory::Inventory* inventory = nullptr;  // hooks look their devices up in it
  std::filesystem::path state_dir;  // plugins' published state: state_dir/plugins/<type>
  // The MAC (lower-case, colon-separated) the DHCP service leased `ip` (host byte order) to, or
  // nullopt (no DHCP service, or no lease). Safe to call from any thread.
  std::function<std::optional<std::string>(std::uint32_t ip)> mac_for_ip;
};

// Where a segment's TFTP service writes its JSON event log: what `labctl serve` writes and what
// plugins that follow a device's requests read.
inline std::filesystem::path tftp_event_log_path(const std::filesystem::path& state_dir,
                                                 std::string_view segment) {
  return state_dir / "logs" / ("tftp-" + std::string(segment) + ".jsonl");
}

class NetHooks {
 public:
  virtual ~NetHooks() = default;
  virtual void attach(const ServiceEnv& /*env*/) {}
  // Options for a client the DHCP service is answering (matched by MAC, in lower-case hex pairs).
  virtual std::vector<DhcpOption> dhcp_options(const std::string& /*mac*/) { return {}; }
  // Generated content for a TFTP read request, or nullopt to fall back to the static tree.
  virtual std::optional<std::string> tftp_virtual_file(const TftpRequestInfo& /*request*/) {
    return std::nullopt;
  }
  // A file outside the TFTP root published to this client (e.g. a verified firmware blob in the
  // store), served from disk like the static tree; nullopt to fall through. Consulted after
  // tftp_virtual_file. The path must name a regular file (symbolic links are refused).
  virtual std::optional<std::filesystem::path> tftp_published_file(
      const TftpRequestInfo& /*request*/) {
    return std::nullopt;
  }
};

}  // namespace labctl::sdk
