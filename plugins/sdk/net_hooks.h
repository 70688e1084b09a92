// Hooks through which a plugin joins labctl's network services without them knowing it
// (Kea's named hook points in spirit). The TFTP and DHCP services call these; the phone plugin
// is the first user. The services themselves arrive with their own issues; these are the seams.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
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

class NetHooks {
 public:
  virtual ~NetHooks() = default;
  // The inventory the services run for (`labctl serve`), before the first call below; it outlives
  // the services. Hooks that serve per-device content look their devices up in it.
  virtual void attach(const inventory::Inventory* /*inventory*/) {}
  // Options for a client the DHCP service is answering (matched by MAC, in lower-case hex pairs).
  virtual std::vector<DhcpOption> dhcp_options(const std::string& /*mac*/) { return {}; }
  // Generated content for a TFTP read request, or nullopt to fall back to the static tree.
  virtual std::optional<std::string> tftp_virtual_file(const TftpRequestInfo& /*request*/) {
    return std::nullopt;
  }
};

}  // namespace labctl::sdk
