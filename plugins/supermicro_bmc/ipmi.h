// IPMI 2.0 over LAN (RMCP+) through FreeIPMI's libfreeipmi: one authenticated session to one BMC,
// and the standard commands the Supermicro plugin needs. Nothing vendor-specific is sent: no OEM
// command, ever (DESIGN.md).
//
// A Session is blocking and not thread-safe; sessions to different BMCs run on different threads
// (the engine's probe pool), each with its own libfreeipmi context.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace labctl::supermicro_bmc {

struct Target {
  std::string host;  // address or name
  int port = 623;
  std::string user;
  std::string password;  // never logged
  int cipher_suite = 3;  // 3: HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128, the safe choice on X8
  int privilege = 4;     // 2 user, 3 operator, 4 administrator
  std::chrono::milliseconds session_timeout{8000};
  std::chrono::milliseconds retransmission_timeout{250};
  // FreeIPMI workaround flags (IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_*). Default: tolerate an Open
  // Session Response that echoes maximum privilege 0 (ipmi_sim and some BMCs do).
  unsigned workarounds = 0x10;

  std::string where() const { return host + ":" + std::to_string(port); }
};

// "supermicro20" -> its flag, for the inventory's `workarounds:` list; nullopt when unknown.
std::optional<unsigned> workaround_flag(std::string_view name);
std::vector<std::string> workaround_names();

struct DeviceId {
  int device_id = 0, device_revision = 0;
  int firmware_major = 0;           // 7 bits
  int firmware_minor = 0;           // decoded from BCD: 0x50 -> 50
  bool update_in_progress = false;  // device available bit set: firmware/SDR update running
  std::uint32_t manufacturer = 0;   // IANA; 10876 = Super Micro Computer
  std::uint16_t product = 0;
  int ipmi_major = 0, ipmi_minor = 0;
  std::string firmware() const;  // "2.50"
};

struct ChassisStatus {
  bool power_on = false;
  std::string restore_policy;    // "always-off", "previous", "always-on", "unknown"
  std::string last_power_event;  // "ac-failed", "overload", "interlock", "fault", "ipmi", ""
  bool intrusion = false, fan_fault = false, drive_fault = false;
};

enum class PowerAction { Off, On, Cycle, Reset, Soft };

struct User {
  int id = 0;
  std::string name;
  bool enabled = false;         // enabled, or unspecified with IPMI messaging on
  std::string enable_status;    // as the BMC says: "enabled", "disabled", "unspecified"
  bool ipmi_messaging = false;  // on the channel
  bool link_auth = false;
  int privilege = 0;  // channel privilege limit; 0x0F no access
};

struct LanConfig {
  int channel = 1;
  std::string source;  // "static", "dhcp", "bios", "other", "unspecified"
  std::string address, netmask, gateway, mac;
};

struct Sensor {
  int number = 0;
  std::string name;
  std::string type;   // "temperature", "voltage", "fan", "current", "other"
  std::string units;  // "C", "V", "RPM", ...
  std::optional<double> value;
  std::optional<double> lower_critical, lower_non_critical, upper_non_critical, upper_critical;
  std::optional<double> maximum;  // the top of the sensor's reading range, when given
  std::string state;              // "ok", "unavailable", "below-lower-critical", ...
};

class Session {
 public:
  // Opens an RMCP+ session. AuthFailed for a refused user or password, Unreachable when nothing
  // answers in time, NotSupported for a cipher suite the BMC does not offer.
  static Result<std::unique_ptr<Session>> open(const Target& target);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Target& target() const { return target_; }

  Result<DeviceId> device_id();
  Result<ChassisStatus> chassis_status();
  Status chassis_control(PowerAction action);
  Status reset_bmc(bool cold);

  // Users 1..max on `channel` (at most `limit` of them when > 0), with names and access.
  Result<std::vector<User>> users(int channel = 1, int limit = 0);
  Status set_user_name(int id, const std::string& name);
  Status set_user_password(int id, const std::string& password);
  Status set_user_enabled(int id, bool enabled);
  // Channel access: privilege limit and IPMI messaging on.
  Status set_user_access(int channel, int id, int privilege, bool messaging);
  // Set User Password's "test password" operation (IPMI 2.0): whether `password` is user id's.
  Result<bool> test_password(int id, const std::string& password);

  Result<LanConfig> lan_config(int channel = 1);
  Status set_lan_source(int channel, const std::string& source);  // "static" / "dhcp"
  Status set_lan_address(int channel, const std::string& address, const std::string& netmask,
                         const std::string& gateway);

  // Every sensor with a full or compact SDR, read now. The SDR repository is cached in
  // `cache_file` (created when missing or out of date).
  Result<std::vector<Sensor>> sensors(const std::filesystem::path& cache_file);

 private:
  Session(void* ctx, Target target) : ctx_(ctx), target_(std::move(target)) {}
  Error error(const std::string& what) const;
  void* ctx_ = nullptr;  // ipmi_ctx_t
  Target target_;
};

// Supermicro's IANA enterprise number.
inline constexpr std::uint32_t kSupermicro = 10876;

}  // namespace labctl::supermicro_bmc
