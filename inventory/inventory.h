// The inventory model: what the lab should look like, fully validated.
//
// Only a fully valid inventory is ever built (Kea's staging config): the loader parses into a
// staging object, checks everything, and hands out an Inventory only when there were no errors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "inventory/catalog.h"
#include "inventory/diagnostics.h"

namespace labctl::inventory {

// Where a secret comes from. The value itself is only read when a device needs it.
struct SecretRef {
  enum class Source { Env, File, Command, Literal };
  Source source = Source::Env;
  std::string ref;                // Env: variable name; File: path (absolute after loading)
  std::vector<std::string> argv;  // Command
  std::string literal;            // Literal: the secret itself (never printed)
  Mark mark;

  // Safe to print: "env BMC1_PASSWORD", "file /etc/labctl/bmc1", "command pass show bmc1",
  // "literal (hidden)".
  std::string describe() const;
  // {"$secret": {"env": "X"}} and friends; the form secrets take inside Device::params.
  nlohmann::json to_json() const;
  static std::optional<SecretRef> from_json(const nlohmann::json& j);
};

enum class DhcpMode { Off, Serve, Observe };
std::string_view dhcp_mode_name(DhcpMode m);

struct Ipv4Net {
  std::uint32_t network = 0;  // host byte order
  int prefix = 0;
  bool contains(std::uint32_t addr) const;
  std::string to_string() const;
};

// Parses a dotted quad; nullopt on anything else (no leading zeros beyond "0", no spaces).
std::optional<std::uint32_t> parse_ipv4(std::string_view s);
std::string format_ipv4(std::uint32_t addr);
std::optional<Ipv4Net> parse_cidr(std::string_view s);
// Normalises "00-25-90-AA-BB-CC" / "00:25:90:aa:bb:cc" / "0025.90aa.bbcc" to "00:25:90:aa:bb:cc".
std::optional<std::string> normalize_mac(std::string_view s);

struct Segment {
  std::string name;
  std::string interface;
  Ipv4Net subnet;
  std::string agent = "local";
  struct Dhcp {
    DhcpMode mode = DhcpMode::Off;
    std::optional<std::uint32_t> range_first, range_last;
    std::optional<std::uint32_t> router;
    std::vector<std::uint32_t> dns, ntp;
    std::string domain;
    std::int64_t lease_time_ms = 86'400'000;
    bool deny_unknown = false;
    // Client classes (`dhcp: classes:`): who gets which extra options.
    struct Class {
      std::string name;
      std::vector<std::string> vendor_class;  // option 60 prefixes
      std::vector<std::string> oui;           // "00:0b:82", normalised
      std::vector<std::string> types;         // inventory device types
      std::optional<std::uint32_t> router;
      std::vector<std::uint32_t> dns, ntp, tftp_servers;
      std::string domain, tftp_server_name;
      std::vector<std::uint8_t> always_send;  // option codes
      Mark mark;
    };
    std::vector<Class> classes;
  } dhcp;
  struct Tftp {
    bool enabled = false;
    std::string root;                    // absolute after loading
    std::vector<std::uint32_t> servers;  // announced in option 150 (and the first in option 66)
    int port = 69;
  } tftp;
  Mark mark;
};

struct AgentDef {
  std::string name;
  std::string url;
  std::string description;
  // The directory of `labctl agent init` holding ca.pem, controller.pem and controller.key;
  // empty: $LABCTL_AGENT_PKI, else STATE/agent-pki.
  std::filesystem::path pki;
  Mark mark;
};

struct FirmwareTarget {
  std::string target;  // version text as written; "" = no firmware management
  bool allow_downgrade = false;
  Mark mark;
};

struct Device {
  std::string name;
  std::string type;
  std::string model;
  std::string description;
  std::string mac;      // normalised, "" when absent
  std::string ip;       // dotted quad, "" when absent
  std::string segment;  // "" when absent
  std::string agent = "local";
  FirmwareTarget firmware;
  std::vector<std::string> after;       // devices whose steps must finish first (`after:`)
  std::vector<std::string> references;  // devices named by the plugin's keys (e.g. a host's BMC)
  nlohmann::json params = nlohmann::json::object();  // the plugin's keys, validated, defaults set
  std::unordered_map<std::string, Mark> marks;       // JSON pointer into params -> source position
  Mark mark;

  // Position of a plugin key (JSON pointer, "/credentials/password"), or of the device.
  Mark mark_of(const std::string& pointer) const;
};

// A secret used somewhere in the inventory, for audits (literal secrets, readable files).
struct SecretUse {
  std::string device;   // "" for non-device secrets
  std::string pointer;  // JSON pointer in the device params
  SecretRef ref;
};

struct Inventory {
  std::string file;  // as given, for diagnostics
  std::filesystem::path base_dir;
  int version = 1;
  std::string site;
  std::vector<Segment> segments;
  std::vector<AgentDef> agents;
  std::vector<Device> devices;
  std::vector<SecretUse> secrets;
  std::shared_ptr<const Catalog> catalog;

  const Device* device(std::string_view name) const;
  const Segment* segment(std::string_view name) const;
  const AgentDef* agent(std::string_view name) const;  // nullptr for "local"

 private:
  friend class Loader;
  std::unordered_map<std::string, std::size_t> device_index_;
};

}  // namespace labctl::inventory
