#include "plugins/supermicro_bmc/ipmi.h"

#include <arpa/inet.h>
#include <freeipmi/freeipmi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

namespace labctl::supermicro_bmc {

namespace {

ipmi_ctx_t C(void* p) {
  return static_cast<ipmi_ctx_t>(p);
}

struct Obj {
  explicit Obj(fiid_template_t t) : obj(fiid_obj_create(t)) {}
  ~Obj() {
    if (obj) fiid_obj_destroy(obj);
  }
  Obj(const Obj&) = delete;
  Obj& operator=(const Obj&) = delete;
  std::uint64_t get(const char* field, std::uint64_t fallback = 0) const {
    std::uint64_t v = 0;
    return obj && FIID_OBJ_GET(obj, field, &v) == 1 ? v : fallback;
  }
  fiid_obj_t obj;
};

const std::map<std::string, unsigned>& workaround_table() {
  static const std::map<std::string, unsigned> m = {
      {"authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_AUTHENTICATION_CAPABILITIES},
      {"intel20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_INTEL_2_0_SESSION},
      {"supermicro20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUPERMICRO_2_0_SESSION},
      {"sun20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUN_2_0_SESSION},
      {"opensesspriv", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE},
      {"integritycheckvalue", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NON_EMPTY_INTEGRITY_CHECK_VALUE},
      {"nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NO_CHECKSUM_CHECK},
  };
  return m;
}

int bcd(int v) {
  return ((v >> 4) & 0xF) * 10 + (v & 0xF);
}

std::string ipv4_text(std::uint32_t network_order) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{};
  a.s_addr = network_order;
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::optional<std::uint32_t> ipv4_value(const std::string& s) {
  in_addr a{};
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return a.s_addr;
}

// libfreeipmi's LAN parameters hold an address as read off the wire, first octet lowest.
std::string lan_address(const Obj& o, const char* field) {
  std::uint64_t v = o.get(field);
  return ipv4_text(static_cast<std::uint32_t>(v));
}

std::string sensor_type_name(std::uint8_t t) {
  switch (t) {
    case IPMI_SENSOR_TYPE_TEMPERATURE:
      return "temperature";
    case IPMI_SENSOR_TYPE_VOLTAGE:
      return "voltage";
    case IPMI_SENSOR_TYPE_CURRENT:
      return "current";
    case IPMI_SENSOR_TYPE_FAN:
      return "fan";
    default:
      return "other";
  }
}

std::string unit_name(std::uint8_t u) {
  switch (u) {
    case IPMI_SENSOR_UNIT_DEGREES_C:
      return "C";
    case IPMI_SENSOR_UNIT_DEGREES_F:
      return "F";
    case IPMI_SENSOR_UNIT_VOLTS:
      return "V";
    case IPMI_SENSOR_UNIT_AMPS:
      return "A";
    case IPMI_SENSOR_UNIT_WATTS:
      return "W";
    case IPMI_SENSOR_UNIT_RPM:
      return "RPM";
    default:
      return "";
  }
}

// Takes ownership of a double* libfreeipmi allocated.
std::optional<double> take(double* p) {
  if (p == nullptr) return std::nullopt;
  double v = *p;
  std::free(p);
  return v;
}

}  // namespace

std::optional<unsigned> workaround_flag(std::string_view name) {
  auto it = workaround_table().find(std::string(name));
  if (it == workaround_table().end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> workaround_names() {
  std::vector<std::string> out;
  for (const auto& [k, v] : workaround_table())
    out.push_back(k);
  return out;
}

std::string DeviceId::firmware() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%d.%02d", firmware_major, firmware_minor);
  return buf;
}

Error Session::error(const std::string& what) const {
  const int e = ipmi_ctx_errnum(C(ctx_));
  const std::string msg = target_.where() + ": " + what + ": " + ipmi_ctx_errormsg(C(ctx_));
  switch (e) {
    case IPMI_ERR_USERNAME_INVALID:
    case IPMI_ERR_PASSWORD_INVALID:
    case IPMI_ERR_K_G_INVALID:
    case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
    case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
      return Error(Errc::AuthFailed, msg);
    case IPMI_ERR_CONNECTION_TIMEOUT:
    case IPMI_ERR_SESSION_TIMEOUT:
      return Error(Errc::Unreachable, msg);
    case IPMI_ERR_MESSAGE_TIMEOUT:
      return Error(Errc::Timeout, msg);
    case IPMI_ERR_CIPHER_SUITE_ID_UNAVAILABLE:
    case IPMI_ERR_AUTHENTICATION_TYPE_UNAVAILABLE:
    case IPMI_ERR_IPMI_2_0_UNAVAILABLE:
    case IPMI_ERR_COMMAND_INVALID_OR_UNSUPPORTED:
      return Error(Errc::NotSupported, msg);
    case IPMI_ERR_BAD_COMPLETION_CODE:
      return Error(Errc::PreconditionFailed, msg);
    default:
      return Error(Errc::Internal, msg);
  }
}

Result<std::unique_ptr<Session>> Session::open(const Target& t) {
  if (t.user.size() > IPMI_MAX_USER_NAME_LENGTH)
    return fail(Errc::InvalidInput, t.where() + ": user name over " +
                                        std::to_string(IPMI_MAX_USER_NAME_LENGTH) + " characters");
  if (t.password.size() > IPMI_2_0_MAX_PASSWORD_LENGTH)
    return fail(Errc::InvalidInput, t.where() + ": password over " +
                                        std::to_string(IPMI_2_0_MAX_PASSWORD_LENGTH) +
                                        " characters (IPMI 2.0's limit)");
  ipmi_ctx_t ctx = ipmi_ctx_create();
  if (ctx == nullptr) return fail(Errc::Internal, "ipmi_ctx_create failed");
  std::unique_ptr<Session> s(new Session(ctx, t));
  const std::string host = t.host + ":" + std::to_string(t.port);
  const int rc = ipmi_ctx_open_outofband_2_0(
      ctx, host.c_str(), t.user.c_str(), t.password.c_str(), nullptr, 0,
      static_cast<std::uint8_t>(t.privilege), static_cast<std::uint8_t>(t.cipher_suite),
      static_cast<unsigned>(t.session_timeout.count()),
      static_cast<unsigned>(t.retransmission_timeout.count()), t.workarounds, IPMI_FLAGS_DEFAULT);
  if (rc < 0)
    return fail(s->error("open session (cipher suite " + std::to_string(t.cipher_suite) +
                         ", user '" + t.user + "')"));
  return s;
}

Session::~Session() {
  if (ctx_) {
    ipmi_ctx_close(C(ctx_));
    ipmi_ctx_destroy(C(ctx_));
  }
}

Result<DeviceId> Session::device_id() {
  Obj o(tmpl_cmd_get_device_id_rs);
  if (ipmi_cmd_get_device_id(C(ctx_), o.obj) < 0) return fail(error("Get Device ID"));
  DeviceId d;
  d.device_id = static_cast<int>(o.get("device_id"));
  d.device_revision = static_cast<int>(o.get("device_revision.revision"));
  d.firmware_major = static_cast<int>(o.get("firmware_revision1.major_revision"));
  d.update_in_progress = o.get("firmware_revision1.device_available") != 0;
  d.firmware_minor = bcd(static_cast<int>(o.get("firmware_revision2.minor_revision")));
  d.manufacturer = static_cast<std::uint32_t>(o.get("manufacturer_id.id"));
  d.product = static_cast<std::uint16_t>(o.get("product_id"));
  d.ipmi_major = static_cast<int>(o.get("ipmi_version_major"));
  d.ipmi_minor = static_cast<int>(o.get("ipmi_version_minor"));
  return d;
}

Result<ChassisStatus> Session::chassis_status() {
  Obj o(tmpl_cmd_get_chassis_status_rs);
  if (ipmi_cmd_get_chassis_status(C(ctx_), o.obj) < 0) return fail(error("Get Chassis Status"));
  ChassisStatus c;
  c.power_on = o.get("current_power_state.power_is_on") != 0;
  static const char* policies[] = {"always-off", "previous", "always-on", "unknown"};
  c.restore_policy = policies[o.get("current_power_state.power_restore_policy") & 3];
  if (o.get("last_power_event.ac_failed"))
    c.last_power_event = "ac-failed";
  else if (o.get("last_power_event.power_down_caused_by_power_overload"))
    c.last_power_event = "overload";
  else if (o.get("last_power_event.power_down_caused_by_power_interlock_being_activated"))
    c.last_power_event = "interlock";
  else if (o.get("last_power_event.power_down_caused_by_power_fault"))
    c.last_power_event = "fault";
  else if (o.get("last_power_event.power_on_entered_via_ipmi"))
    c.last_power_event = "ipmi";
  c.intrusion = o.get("misc_chassis_state.chassis_intrusion_active") != 0;
  c.fan_fault = o.get("misc_chassis_state.cooling_fan_fault_detected") != 0;
  c.drive_fault = o.get("misc_chassis_state.drive_fault") != 0;
  return c;
}

Status Session::chassis_control(PowerAction a) {
  std::uint8_t code = IPMI_CHASSIS_CONTROL_POWER_DOWN;
  switch (a) {
    case PowerAction::Off:
      code = IPMI_CHASSIS_CONTROL_POWER_DOWN;
      break;
    case PowerAction::On:
      code = IPMI_CHASSIS_CONTROL_POWER_UP;
      break;
    case PowerAction::Cycle:
      code = IPMI_CHASSIS_CONTROL_POWER_CYCLE;
      break;
    case PowerAction::Reset:
      code = IPMI_CHASSIS_CONTROL_HARD_RESET;
      break;
    case PowerAction::Soft:
      code = IPMI_CHASSIS_CONTROL_INITIATE_SOFT_SHUTDOWN;
      break;
  }
  Obj o(tmpl_cmd_chassis_control_rs);
  if (ipmi_cmd_chassis_control(C(ctx_), code, o.obj) < 0) return fail(error("Chassis Control"));
  return {};
}

Status Session::reset_bmc(bool cold) {
  Obj o(cold ? tmpl_cmd_cold_reset_rs : tmpl_cmd_warm_reset_rs);
  const int rc = cold ? ipmi_cmd_cold_reset(C(ctx_), o.obj) : ipmi_cmd_warm_reset(C(ctx_), o.obj);
  // A BMC that resets at once may never answer: a timeout here is the expected outcome.
  if (rc < 0 && ipmi_ctx_errnum(C(ctx_)) != IPMI_ERR_SESSION_TIMEOUT &&
      ipmi_ctx_errnum(C(ctx_)) != IPMI_ERR_MESSAGE_TIMEOUT)
    return fail(error(cold ? "Cold Reset" : "Warm Reset"));
  return {};
}

Result<std::vector<User>> Session::users(int channel, int limit) {
  std::vector<User> out;
  int max = 1;
  for (int id = 1; id <= max && id <= 63 && (limit <= 0 || id <= limit); ++id) {
    Obj a(tmpl_cmd_get_user_access_rs);
    if (ipmi_cmd_get_user_access(C(ctx_), static_cast<std::uint8_t>(channel),
                                 static_cast<std::uint8_t>(id), a.obj) < 0)
      return fail(error("Get User Access (user " + std::to_string(id) + ")"));
    if (id == 1) max = static_cast<int>(a.get("max_channel_user_ids", 1));
    User u;
    u.id = id;
    u.ipmi_messaging = a.get("user_ipmi_messaging") != 0;
    // 01b enabled, 10b disabled, 00b unspecified (some BMCs, ipmi_sim among them, never say).
    const auto status = a.get("user_id_enable_status");
    u.enabled = status == 1 || (status == 0 && u.ipmi_messaging);
    u.enable_status = status == 1 ? "enabled" : status == 2 ? "disabled" : "unspecified";
    u.link_auth = a.get("user_link_authentication") != 0;
    u.privilege = static_cast<int>(a.get("user_privilege_level_limit"));
    Obj n(tmpl_cmd_get_user_name_rs);
    if (ipmi_cmd_get_user_name(C(ctx_), static_cast<std::uint8_t>(id), n.obj) >= 0) {
      char name[IPMI_MAX_USER_NAME_LENGTH + 1] = {};
      const int len = fiid_obj_get_data(n.obj, "user_name", name, IPMI_MAX_USER_NAME_LENGTH);
      if (len > 0) u.name.assign(name, strnlen(name, static_cast<std::size_t>(len)));
    }
    out.push_back(std::move(u));
  }
  return out;
}

Status Session::set_user_name(int id, const std::string& name) {
  Obj o(tmpl_cmd_set_user_name_rs);
  if (ipmi_cmd_set_user_name(C(ctx_), static_cast<std::uint8_t>(id), name.c_str(),
                             static_cast<unsigned>(name.size()), o.obj) < 0)
    return fail(error("Set User Name (user " + std::to_string(id) + ")"));
  return {};
}

Status Session::set_user_password(int id, const std::string& password) {
  Obj o(tmpl_cmd_set_user_password_rs);
  const std::uint8_t size = password.size() > IPMI_1_5_MAX_PASSWORD_LENGTH
                                ? IPMI_PASSWORD_SIZE_20_BYTES
                                : IPMI_PASSWORD_SIZE_16_BYTES;
  if (ipmi_cmd_set_user_password(C(ctx_), static_cast<std::uint8_t>(id), size,
                                 IPMI_PASSWORD_OPERATION_SET_PASSWORD, password.c_str(),
                                 static_cast<unsigned>(password.size()), o.obj) < 0)
    return fail(error("Set User Password (user " + std::to_string(id) + ")"));
  return {};
}

Status Session::set_user_enabled(int id, bool enabled) {
  Obj o(tmpl_cmd_set_user_password_rs);
  if (ipmi_cmd_set_user_password(
          C(ctx_), static_cast<std::uint8_t>(id), IPMI_PASSWORD_SIZE_16_BYTES,
          enabled ? IPMI_PASSWORD_OPERATION_ENABLE_USER : IPMI_PASSWORD_OPERATION_DISABLE_USER,
          nullptr, 0, o.obj) < 0)
    return fail(error(std::string(enabled ? "enable" : "disable") + " user " + std::to_string(id)));
  return {};
}

Status Session::set_user_access(int channel, int id, int privilege, bool messaging) {
  Obj o(tmpl_cmd_set_user_access_rs);
  if (ipmi_cmd_set_user_access(C(ctx_), static_cast<std::uint8_t>(channel), messaging ? 1 : 0,
                               messaging ? 1 : 0, 0, IPMI_CHANGE_BITS_YES,
                               static_cast<std::uint8_t>(id), static_cast<std::uint8_t>(privilege),
                               0, o.obj) < 0)
    return fail(error("Set User Access (user " + std::to_string(id) + ")"));
  return {};
}

Result<bool> Session::test_password(int id, const std::string& password) {
  Obj o(tmpl_cmd_set_user_password_rs);
  const std::uint8_t size = password.size() > IPMI_1_5_MAX_PASSWORD_LENGTH
                                ? IPMI_PASSWORD_SIZE_20_BYTES
                                : IPMI_PASSWORD_SIZE_16_BYTES;
  if (ipmi_cmd_set_user_password(C(ctx_), static_cast<std::uint8_t>(id), size,
                                 IPMI_PASSWORD_OPERATION_TEST_PASSWORD, password.c_str(),
                                 static_cast<unsigned>(password.size()), o.obj) >= 0)
    return true;
  // 0x80: password test failed (wrong password); 0x81: wrong password size.
  const auto cc = o.get("comp_code");
  if (ipmi_ctx_errnum(C(ctx_)) == IPMI_ERR_BAD_COMPLETION_CODE && (cc == 0x80 || cc == 0x81))
    return false;
  return fail(error("test password (user " + std::to_string(id) + ")"));
}

Result<LanConfig> Session::lan_config(int channel) {
  LanConfig l;
  l.channel = channel;
  const auto ch = static_cast<std::uint8_t>(channel);
  {
    Obj o(tmpl_cmd_get_lan_configuration_parameters_ip_address_source_rs);
    if (ipmi_cmd_get_lan_configuration_parameters_ip_address_source(C(ctx_), ch, 0, 0, 0, o.obj) <
        0)
      return fail(error("Get LAN Configuration (address source)"));
    static const char* names[] = {"unspecified", "static", "dhcp", "bios", "other"};
    const auto v = o.get("ip_address_source");
    l.source = v < 5 ? names[v] : "other";
  }
  {
    Obj o(tmpl_cmd_get_lan_configuration_parameters_ip_address_rs);
    if (ipmi_cmd_get_lan_configuration_parameters_ip_address(C(ctx_), ch, 0, 0, 0, o.obj) < 0)
      return fail(error("Get LAN Configuration (address)"));
    l.address = lan_address(o, "ip_address");
  }
  {
    Obj o(tmpl_cmd_get_lan_configuration_parameters_subnet_mask_rs);
    if (ipmi_cmd_get_lan_configuration_parameters_subnet_mask(C(ctx_), ch, 0, 0, 0, o.obj) < 0)
      return fail(error("Get LAN Configuration (netmask)"));
    l.netmask = lan_address(o, "subnet_mask");
  }
  {
    Obj o(tmpl_cmd_get_lan_configuration_parameters_default_gateway_address_rs);
    if (ipmi_cmd_get_lan_configuration_parameters_default_gateway_address(C(ctx_), ch, 0, 0, 0,
                                                                          o.obj) < 0)
      return fail(error("Get LAN Configuration (gateway)"));
    l.gateway = lan_address(o, "ip_address");
  }
  {
    Obj o(tmpl_cmd_get_lan_configuration_parameters_mac_address_rs);
    if (ipmi_cmd_get_lan_configuration_parameters_mac_address(C(ctx_), ch, 0, 0, 0, o.obj) >= 0) {
      std::uint64_t v = o.get("mac_address");
      char buf[24];
      std::snprintf(
          buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", static_cast<unsigned>(v & 0xff),
          static_cast<unsigned>((v >> 8) & 0xff), static_cast<unsigned>((v >> 16) & 0xff),
          static_cast<unsigned>((v >> 24) & 0xff), static_cast<unsigned>((v >> 32) & 0xff),
          static_cast<unsigned>((v >> 40) & 0xff));
      l.mac = buf;
    }
  }
  return l;
}

Status Session::set_lan_source(int channel, const std::string& source) {
  std::uint8_t v = 0;
  if (source == "static")
    v = IPMI_IP_ADDRESS_SOURCE_STATIC;
  else if (source == "dhcp")
    v = IPMI_IP_ADDRESS_SOURCE_DHCP;
  else
    return fail(Errc::InvalidInput, "address source '" + source + "': static or dhcp");
  Obj o(tmpl_cmd_set_lan_configuration_parameters_rs);
  if (ipmi_cmd_set_lan_configuration_parameters_ip_address_source(
          C(ctx_), static_cast<std::uint8_t>(channel), v, o.obj) < 0)
    return fail(error("Set LAN Configuration (address source)"));
  return {};
}

Status Session::set_lan_address(int channel, const std::string& address, const std::string& netmask,
                                const std::string& gateway) {
  const auto ch = static_cast<std::uint8_t>(channel);
  struct Item {
    const std::string& text;
    const char* what;
  };
  for (const Item& it :
       {Item{address, "address"}, Item{netmask, "netmask"}, Item{gateway, "gateway"}}) {
    if (it.text.empty()) continue;
    auto v = ipv4_value(it.text);
    if (!v)
      return fail(Errc::InvalidInput, std::string(it.what) + " '" + it.text + "' is not IPv4");
    Obj o(tmpl_cmd_set_lan_configuration_parameters_rs);
    int rc = 0;
    if (std::strcmp(it.what, "address") == 0)
      rc = ipmi_cmd_set_lan_configuration_parameters_ip_address(C(ctx_), ch, *v, o.obj);
    else if (std::strcmp(it.what, "netmask") == 0)
      rc = ipmi_cmd_set_lan_configuration_parameters_subnet_mask(C(ctx_), ch, *v, o.obj);
    else
      rc =
          ipmi_cmd_set_lan_configuration_parameters_default_gateway_address(C(ctx_), ch, *v, o.obj);
    if (rc < 0) return fail(error(std::string("Set LAN Configuration (") + it.what + ")"));
  }
  return {};
}

Result<std::vector<Sensor>> Session::sensors(const std::filesystem::path& cache_file) {
  ipmi_sdr_ctx_t sdr = ipmi_sdr_ctx_create();
  if (sdr == nullptr) return fail(Errc::Internal, "ipmi_sdr_ctx_create failed");
  struct SdrGuard {
    ipmi_sdr_ctx_t s;
    ~SdrGuard() {
      ipmi_sdr_cache_close(s);
      ipmi_sdr_ctx_destroy(s);
    }
  } sdr_guard{sdr};
  std::error_code ec;
  std::filesystem::create_directories(cache_file.parent_path(), ec);
  if (ipmi_sdr_cache_open(sdr, C(ctx_), cache_file.c_str()) < 0) {
    // Missing or out of date: build it again from the BMC's repository.
    ipmi_sdr_cache_close(sdr);
    std::filesystem::remove(cache_file, ec);
    if (ipmi_sdr_cache_create(sdr, C(ctx_), cache_file.c_str(), IPMI_SDR_CACHE_CREATE_FLAGS_DEFAULT,
                              nullptr, nullptr) < 0) {
      // An empty repository (a BMC without sensors) is no error: no sensors.
      if (ipmi_sdr_ctx_errnum(sdr) == IPMI_SDR_ERR_CACHE_CREATE_INVALID_RECORD_COUNT)
        return std::vector<Sensor>{};
      return fail(Errc::Internal,
                  target_.where() + ": read the SDR repository: " + ipmi_sdr_ctx_errormsg(sdr));
    }
    if (ipmi_sdr_cache_open(sdr, C(ctx_), cache_file.c_str()) < 0)
      return fail(Errc::Internal, target_.where() + ": SDR cache: " + ipmi_sdr_ctx_errormsg(sdr));
  }
  ipmi_sensor_read_ctx_t rd = ipmi_sensor_read_ctx_create(C(ctx_));
  if (rd == nullptr) return fail(Errc::Internal, "ipmi_sensor_read_ctx_create failed");
  struct ReadGuard {
    ipmi_sensor_read_ctx_t r;
    ~ReadGuard() { ipmi_sensor_read_ctx_destroy(r); }
  } read_guard{rd};
  std::vector<Sensor> out;
  std::uint16_t count = 0;
  if (ipmi_sdr_cache_record_count(sdr, &count) < 0) return out;
  if (count == 0) return out;
  ipmi_sdr_cache_first(sdr);
  for (std::uint16_t i = 0; i < count; ++i, ipmi_sdr_cache_next(sdr)) {
    std::uint8_t buf[IPMI_SDR_MAX_RECORD_LENGTH];
    const int len = ipmi_sdr_cache_record_read(sdr, buf, sizeof buf);
    if (len <= 0) continue;
    std::uint16_t record_id = 0;
    std::uint8_t record_type = 0;
    if (ipmi_sdr_parse_record_id_and_type(sdr, buf, static_cast<unsigned>(len), &record_id,
                                          &record_type) < 0)
      continue;
    if (record_type != IPMI_SDR_FORMAT_FULL_SENSOR_RECORD &&
        record_type != IPMI_SDR_FORMAT_COMPACT_SENSOR_RECORD)
      continue;
    Sensor s;
    std::uint8_t number = 0, type = 0;
    ipmi_sdr_parse_sensor_number(sdr, buf, static_cast<unsigned>(len), &number);
    ipmi_sdr_parse_sensor_type(sdr, buf, static_cast<unsigned>(len), &type);
    s.number = number;
    s.type = sensor_type_name(type);
    char id[IPMI_SDR_MAX_ID_STRING_LENGTH + 1] = {};
    if (ipmi_sdr_parse_id_string(sdr, buf, static_cast<unsigned>(len), id, sizeof id - 1) >= 0)
      s.name = id;
    std::uint8_t percentage = 0, modifier_unit = 0, rate = 0, base = 0, modifier = 0;
    if (ipmi_sdr_parse_sensor_units(sdr, buf, static_cast<unsigned>(len), &percentage,
                                    &modifier_unit, &rate, &base, &modifier) >= 0)
      s.units = unit_name(base);
    if (record_type == IPMI_SDR_FORMAT_FULL_SENSOR_RECORD) {
      double *lnr = nullptr, *lc = nullptr, *lnc = nullptr, *unc = nullptr, *uc = nullptr,
             *unr = nullptr;
      // Only the thresholds the record marks readable: the others hold zeros, and a fan would
      // read "above upper critical" at any speed.
      std::uint8_t r_lnc = 1, r_lc = 1, r_lnr = 1, r_unc = 1, r_uc = 1, r_unr = 1;
      ipmi_sdr_parse_threshold_readable(sdr, buf, static_cast<unsigned>(len), &r_lnc, &r_lc, &r_lnr,
                                        &r_unc, &r_uc, &r_unr);
      auto keep = [](double* p, std::uint8_t readable) -> std::optional<double> {
        if (!readable) {
          std::free(p);
          return std::nullopt;
        }
        return take(p);
      };
      if (ipmi_sdr_parse_thresholds(sdr, buf, static_cast<unsigned>(len), &lnc, &lc, &lnr, &unc,
                                    &uc, &unr) >= 0) {
        s.lower_non_critical = keep(lnc, r_lnc);
        s.lower_critical = keep(lc, r_lc);
        s.upper_non_critical = keep(unc, r_unc);
        s.upper_critical = keep(uc, r_uc);
        std::free(lnr);
        std::free(unr);
      }
      double *nominal = nullptr, *nmax = nullptr, *nmin = nullptr, *smax = nullptr, *smin = nullptr;
      if (ipmi_sdr_parse_sensor_reading_ranges(sdr, buf, static_cast<unsigned>(len), &nominal,
                                               &nmax, &nmin, &smax, &smin) >= 0) {
        s.maximum = take(smax);
        std::free(nominal);
        std::free(nmax);
        std::free(nmin);
        std::free(smin);
      }
    }
    std::uint8_t raw = 0;
    double* value = nullptr;
    std::uint16_t events = 0;
    if (ipmi_sensor_read(rd, buf, static_cast<unsigned>(len), 0, &raw, &value, &events) > 0 &&
        value != nullptr) {
      s.value = take(value);
    } else {
      std::free(value);
      s.state = "unavailable";
    }
    if (s.state.empty()) {
      s.state = "ok";
      if (s.value && s.lower_critical && *s.value <= *s.lower_critical)
        s.state = "below-lower-critical";
      else if (s.value && s.upper_critical && *s.value >= *s.upper_critical)
        s.state = "above-upper-critical";
      else if (s.value && s.lower_non_critical && *s.value <= *s.lower_non_critical)
        s.state = "below-lower-non-critical";
      else if (s.value && s.upper_non_critical && *s.value >= *s.upper_non_critical)
        s.state = "above-upper-non-critical";
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace labctl::supermicro_bmc
