// The agent API, version 1: what the controller and a labctl-agent say to each other over HTTPS
// with mutual TLS. Pure codec (no sockets, no TLS): requests and responses as JSON documents, the
// step-stream lines, errors and their HTTP statuses. Both sides decode everything they receive
// through here, strictly: a wrong type, a missing field or an oversized value is an InvalidInput
// naming the field, never an exception.
//
//   GET  /v1/status                 -> Status
//   PUT  /v1/config                 ConfigPush -> ConfigAck (422 with the inventory's diagnostics)
//   POST /v1/probe                  DeviceCall -> {"observation": Observation}
//   POST /v1/step-done              StepCall -> {"done": bool}
//   POST /v1/run-step               StepCall -> a stream of JSON lines (StreamLine), the last one a
//                                   result: {"ok": true} or {"error": ...}
//   POST /v1/verb                   VerbCall -> {"data": ..., "text": "..."}
//   POST /v1/firmware               FirmwareManifest -> {"missing": ["<sha256>", ...]}
//   PUT  /v1/blobs/<sha256>         the file's bytes -> 201 (the agent re-hashes them)
//   GET  /v1/events?after=N&wait=S  -> {"events": [...], "next": N}  (long poll)
//
// Every call that names a device carries the controller's configuration id (sha256 of the pushed
// inventory and catalog): an agent that has another (or none, after a restart) answers 409
// "config-mismatch" and the controller pushes its configuration again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "plugins/sdk/plugin.h"

namespace labctl::agents::rpc {

using nlohmann::json;

inline constexpr int kApiVersion = 1;
inline constexpr std::string_view kApiPrefix = "/v1";
inline constexpr std::size_t kMaxJsonBody = 1u << 20;      // one call
inline constexpr std::size_t kMaxConfigBody = 16u << 20;   // inventory + catalog
inline constexpr std::size_t kMaxBlobBody = 512ull << 20;  // one firmware file
inline constexpr std::size_t kMaxStreamLine = 256u << 10;  // one line of a step stream

struct ConfigPush {
  std::string inventory_name;  // the file name the controller loaded (for messages)
  std::string inventory;       // its text
  std::string catalog;         // the catalog's text
};
struct ConfigAck {
  std::string config;  // the id the agent now has
  std::vector<std::string> devices;
  std::vector<std::string> tftp_segments, dhcp_segments;
  std::string services_error;  // why the services of its segments did not start ("" when fine)
};
struct DeviceCall {
  std::string config;
  std::string device;
};
struct StepCall {
  std::string config;
  std::string device;
  sdk::Step step;
  std::int64_t timeout_ms = 0;  // how long the controller gives the step (0: no limit)
};
struct VerbCall {
  std::string config;
  std::string device;
  std::string verb;
  json args = json::object();
};
struct FirmwareFile {
  std::string name;
  std::string sha256;
  std::uint64_t size = 0;
};
struct FirmwareManifest {
  std::string family;
  std::string release;
  std::vector<FirmwareFile> files;
};
struct AgentStatus {
  int api = kApiVersion;
  std::string agent;
  std::string version;
  std::string config;  // "" before a configuration was pushed
  std::int64_t started_ms = 0;
  std::int64_t running_steps = 0;
  std::uint64_t events = 0;  // sequence number of the newest event
  std::vector<std::string> tftp_segments, dhcp_segments;
  std::string services_error;
};

// One line of a run-step stream.
struct StreamLine {
  enum class Kind { Progress, Log, Keepalive, Ok, Failed };
  Kind kind = Kind::Keepalive;
  std::uint64_t done = 0, total = 0;              // Progress
  std::string text;                               // Progress note, Log line
  std::optional<Error> error;                     // Failed
  std::optional<FirmwareManifest> need_firmware;  // Failed for want of firmware files
};

// The firmware a failed call needed: the agent lacks files of this release.
struct NeedFirmware {
  std::string family, release;
};

json encode(const ConfigPush&);
json encode(const ConfigAck&);
json encode(const DeviceCall&);
json encode(const StepCall&);
json encode(const VerbCall&);
json encode(const FirmwareManifest&);
json encode(const AgentStatus&);
std::string encode_line(const StreamLine&);  // one line, '\n'-terminated

Result<ConfigPush> decode_config_push(std::string_view body);
Result<ConfigAck> decode_config_ack(std::string_view body);
Result<DeviceCall> decode_device_call(std::string_view body);
Result<StepCall> decode_step_call(std::string_view body);
Result<VerbCall> decode_verb_call(std::string_view body);
Result<FirmwareManifest> decode_firmware_manifest(std::string_view body);
Result<AgentStatus> decode_status(std::string_view body);
Result<StreamLine> decode_line(std::string_view line);

// Errors on the wire: {"error": {"code": "unreachable", "message": "...", "need-firmware": {...}}}.
json encode_error(const Error& e, const std::optional<NeedFirmware>& need = std::nullopt);
// The error in a response body; a body that is not one becomes an Internal error that says so.
Error decode_error(std::string_view body, int http_status, std::optional<NeedFirmware>* need);
// The HTTP status an error class is answered with.
int http_status(Errc c);

// sha256 as 64 lower-case hex digits.
bool is_sha256_hex(std::string_view s);
// The configuration id of a pushed inventory and catalog.
std::string config_id(const ConfigPush& p);

// The API version a request's path asks for ("/v2/status" -> 2); nullopt when the path has none.
std::optional<int> path_version(std::string_view path);

}  // namespace labctl::agents::rpc
