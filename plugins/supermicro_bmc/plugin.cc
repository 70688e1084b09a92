#include "plugins/supermicro_bmc/plugin.h"

#include <sys/random.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "common/text.h"
#include "plugins/supermicro_bmc/aten_image.h"
#include "plugins/supermicro_bmc/device_target.h"

namespace labctl::supermicro_bmc {

using sdk::json;
namespace key = inventory::key;

namespace {

const char* kCiphers =
    "cipher suites: 3 (HMAC-SHA1, AES-128: the safe choice on X8), 17 where offered";

std::string privilege_name(int p) {
  switch (p) {
    case 1:
      return "callback";
    case 2:
      return "user";
    case 3:
      return "operator";
    case 4:
      return "administrator";
    case 5:
      return "oem";
    case 0x0F:
      return "no-access";
    default:
      return "unknown";
  }
}

// Where a BMC's SDR repository is cached between runs.
std::filesystem::path sdr_cache(sdk::DeviceContext& ctx, const Target& t) {
  return ctx.plugin_state_dir() / "sdr" / (t.host + "_" + std::to_string(t.port) + ".sdr");
}

std::string random_password() {
  unsigned char b[15] = {};
  std::size_t got = 0;
  while (got < sizeof b) {
    const ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  static const char* alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  std::string out;
  for (auto c : b)
    out += alphabet[c % 56];
  return out;
}

json sensor_json(const Sensor& s) {
  json j = {{"number", s.number},
            {"name", s.name},
            {"type", s.type},
            {"units", s.units},
            {"state", s.state}};
  auto put = [&](const char* k, const std::optional<double>& v) {
    if (v) j[k] = std::round(*v * 1000) / 1000;
  };
  put("value", s.value);
  put("lower_critical", s.lower_critical);
  put("lower_non_critical", s.lower_non_critical);
  put("upper_non_critical", s.upper_non_critical);
  put("upper_critical", s.upper_critical);
  put("maximum", s.maximum);
  return j;
}

json users_json(const std::vector<User>& users) {
  json a = json::array();
  for (const auto& u : users)
    if (!u.name.empty() || u.enabled || u.id <= 2)
      a.push_back({{"id", u.id},
                   {"name", u.name},
                   {"enabled", u.enabled},
                   {"enable_status", u.enable_status},
                   {"ipmi_messaging", u.ipmi_messaging},
                   {"privilege", privilege_name(u.privilege)}});
  return a;
}

json lan_json(const LanConfig& l) {
  return {{"channel", l.channel}, {"source", l.source},   {"address", l.address},
          {"netmask", l.netmask}, {"gateway", l.gateway}, {"mac", l.mac}};
}

std::string fmt_value(const std::optional<double>& v, const std::string& units) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, units == "RPM" || units == "C" ? "%.0f" : "%.2f", *v);
  return std::string(buf) + (units.empty() ? "" : " " + units);
}

// Fans at full speed or stopped, temperatures and voltages outside their thresholds.
void sensor_findings(const std::vector<Sensor>& sensors, std::vector<sdk::Finding>& out) {
  for (const auto& s : sensors) {
    if (!s.value) continue;
    if (s.type == "fan") {
      if (s.maximum && *s.maximum > 0 && *s.value >= 0.95 * *s.maximum)
        out.push_back(
            {"warning", "fan-full-speed",
             s.name + " runs at " + fmt_value(s.value, s.units) + ", " +
                 std::to_string(static_cast<int>(std::lround(100 * *s.value / *s.maximum))) +
                 "% of its top reading: on X8 boards a 3-pin fan on a PWM header runs "
                 "flat out (the BIOS's fan mode decides)"});
      if (s.lower_critical && *s.value <= *s.lower_critical)
        out.push_back({"critical", "fan-failed",
                       s.name + " reads " + fmt_value(s.value, s.units) +
                           ", at or below its lower critical threshold " +
                           fmt_value(s.lower_critical, s.units)});
    } else if (s.state == "above-upper-critical" || s.state == "below-lower-critical") {
      out.push_back({"critical", "sensor-critical",
                     s.name + " reads " + fmt_value(s.value, s.units) + " (" + s.state + ")"});
    }
  }
}

}  // namespace

SupermicroBmcPlugin::SupermicroBmcPlugin() {
  schema_.type = "supermicro-bmc";
  schema_.summary = "Supermicro IPMI BMC (X8SIL-F era: WPCM450, ATEN firmware) over IPMI 2.0";
  schema_.capabilities = {"power", "firmware"};
  schema_.keys.push_back(
      key::integer("port").range(1, 65535).defaults(623).describe("RMCP+ UDP port"));
  schema_.keys.push_back(
      key::map("credentials",
               {key::string("user").range(1, 16).defaults(kFactoryUser).describe("IPMI user name"),
                key::secret("password").req().describe("at most 20 characters (IPMI 2.0)")}));
  schema_.keys.push_back(key::integer("cipher-suite").range(0, 17).defaults(3).describe(kCiphers));
  schema_.keys.push_back(key::choice("privilege", {"user", "operator", "admin"}).defaults("admin"));
  schema_.keys.push_back(
      key::list("workarounds", key::choice("workaround", workaround_names()))
          .describe("FreeIPMI session workarounds, e.g. supermicro20 (some X8/X9 firmware)"));
  schema_.keys.push_back(key::duration("session-timeout").defaults(std::int64_t{8000}));
  schema_.keys.push_back(key::duration("retransmission-timeout")
                             .defaults(std::int64_t{250})
                             .describe("a request unanswered this long is sent again (FreeIPMI's "
                                       "default)"));
  schema_.keys.push_back(key::integer("channel").range(1, 15).defaults(1).describe("LAN channel"));
  schema_.keys.push_back(
      key::map("lan", {key::choice("source", {"static", "dhcp"}).req(), key::ipv4("address"),
                       key::ipv4("netmask"), key::ipv4("gateway")}));
  schema_.keys.push_back(key::boolean("security-checks")
                             .defaults(true)
                             .describe("probe tries the factory login, an anonymous login and "
                                       "cipher suite 0 (each one session attempt)"));
  schema_.keys.push_back(web_schema());
}

void SupermicroBmcPlugin::check_device(const sdk::Device& d, const sdk::Inventory&,
                                       inventory::DeviceReport& report) const {
  if (d.ip.empty()) report.error("", "a BMC needs its ip (where IPMI over LAN reaches it)");
  const json lan = d.params.value("lan", json::object());
  if (lan.value("source", "") == "static" && !lan.contains("address"))
    report.error("/lan/address", "a static LAN configuration needs an address");
  if (d.params.value("cipher-suite", std::int64_t{3}) == 0)
    report.error("/cipher-suite",
                 "cipher suite 0 has no authentication: anyone who knows a user name gets in");
  check_web_keys(d, report);
}

Result<std::vector<sdk::Step>> SupermicroBmcPlugin::hop_steps(const sdk::Device& d,
                                                              const sdk::HopInfo& hop) const {
  auto req = hop_request(d, hop);
  if (!req) return fail(req.error());
  return flash_steps(d, *req);
}

std::vector<sdk::Step> SupermicroBmcPlugin::reconcile_steps(
    const sdk::Device& d, const sdk::Observation& obs,
    const std::vector<sdk::Step>& firmware_steps) const {
  std::vector<sdk::Step> out;
  auto add = [&](const std::string& action, std::string title, std::string reason,
                 json args = json::object()) {
    if (std::any_of(out.begin(), out.end(), [&](const auto& s) { return s.key == action; })) return;
    sdk::Step s;
    s.key = s.action = action;
    s.title = std::move(title);
    s.reason = std::move(reason);
    s.args = std::move(args);
    out.push_back(std::move(s));
  };
  const std::string login = obs.facts.value("login", "");
  const bool factory_creds = inventory_user(d) == kFactoryUser;
  const bool inventory_is_factory = obs.facts.value("inventory_is_factory", false);
  // A flash that resets the BMC to factory settings leaves it with ADMIN/ADMIN only, whatever
  // the probe saw before it.
  const bool reset = resets_to_factory(firmware_steps);
  const std::string after_reset =
      "the flash resets the BMC to factory settings: afterwards only ADMIN/ADMIN works";
  const std::string set_title =
      "set the inventory's login (" + inventory_user(d) + ") on " + d.name;
  if (login == "factory" && !(factory_creds && inventory_is_factory))
    add("set-credentials", set_title, "the BMC accepts only the factory login ADMIN/ADMIN");
  if (reset && !inventory_is_factory) add("set-credentials", set_title, after_reset);
  const bool factory_open =
      std::any_of(obs.findings.begin(), obs.findings.end(),
                  [](const sdk::Finding& f) { return f.code == "default-credentials"; });
  if ((factory_open || login == "factory" || reset) && !factory_creds)
    add("disable-factory-login", "disable the factory login ADMIN on " + d.name,
        reset && !factory_open && login != "factory"
            ? after_reset
            : "ADMIN/ADMIN is accepted: anyone on the management network gets in");
  if (d.params.contains("lan")) {
    const json want = d.params.at("lan");
    const json have = obs.facts.value("lan", json::object());
    bool differs = want.value("source", "") != have.value("source", "");
    if (want.value("source", "") == "static")
      for (const char* k : {"address", "netmask", "gateway"})
        if (want.contains(k) && want.value(k, "") != have.value(k, "")) differs = true;
    const std::string title =
        "set LAN configuration of " + d.name + " (" + want.value("source", "") +
        (want.contains("address") ? " " + want.value("address", "") : "") + ")";
    if (reset)
      add("set-lan", title, "factory settings after the flash: the LAN settings are set again",
          {{"lan", want}});
    else if (differs && !have.empty())
      add("set-lan", title, "the BMC's LAN configuration differs from the inventory",
          {{"lan", want}});
  }
  return out;
}

Result<sdk::Observation> SupermicroBmcPlugin::probe(sdk::DeviceContext& ctx, const sdk::Device& d) {
  auto t = inventory_target(ctx, d);
  if (!t) return fail(t.error());
  sdk::Observation o;
  std::string login = "inventory";
  const bool inventory_is_factory = t->user == kFactoryUser && t->password == kFactoryPassword;
  auto session = Session::open(*t);
  if (!session && session.error().code() == Errc::AuthFailed && !inventory_is_factory) {
    // The seed's case in reverse: a BMC reset to factory settings (or never set up).
    auto factory = Session::open(factory_target(d));
    if (!factory)
      return fail(Errc::AuthFailed,
                  d.name + ": the BMC refuses the inventory's login (" + t->user +
                      ") and the factory one; if nobody knows its password, a firmware flash "
                      "with reset to factory settings brings back ADMIN/ADMIN");
    session = std::move(factory);
    login = "factory";
    o.findings.push_back({"critical", "default-credentials",
                          "the BMC accepts only the factory login ADMIN/ADMIN, not the "
                          "inventory's; apply sets the inventory's"});
  }
  if (!session) return fail(std::move(session.error()).context(d.name));
  Session& s = **session;
  auto id = s.device_id();
  if (!id) return fail(std::move(id.error()).context(d.name));
  o.version = id->firmware();
  o.model = d.model.empty() ? "product 0x" +
                                  [&] {
                                    char b[8];
                                    std::snprintf(b, sizeof b, "%04x", id->product);
                                    return std::string(b);
                                  }()
                            : d.model;
  o.components["ipmi"] = std::to_string(id->ipmi_major) + "." + std::to_string(id->ipmi_minor);
  o.facts["manufacturer"] = id->manufacturer;
  o.facts["product"] = id->product;
  o.facts["device_id"] = id->device_id;
  o.facts["login"] = login;
  o.facts["inventory_is_factory"] = inventory_is_factory;
  if (id->manufacturer != kSupermicro)
    o.findings.push_back({"warning", "not-supermicro",
                          "manufacturer " + std::to_string(id->manufacturer) +
                              " is not Supermicro (10876): this plugin's quirks may not apply"});
  if (id->update_in_progress)
    o.findings.push_back(
        {"warning", "update-in-progress", "the BMC reports a firmware or SDR update in progress"});
  if (auto c = s.chassis_status()) {
    o.health["power"] = c->power_on ? "on" : "off";
    o.health["restore_policy"] = c->restore_policy;
    o.health["last_power_event"] = c->last_power_event;
    o.health["fan_fault"] = c->fan_fault;
    o.health["intrusion"] = c->intrusion;
    if (c->fan_fault)
      o.findings.push_back({"critical", "fan-fault", "the chassis reports a cooling fan fault"});
  }
  const int channel = static_cast<int>(d.params.value("channel", std::int64_t{1}));
  // User 1 (the null user) only: a full list costs two commands per slot (63 on some BMCs) and
  // is what `labctl bmc NAME users` is for.
  if (auto users = s.users(channel, 1)) {
    o.facts["users"] = users_json(*users);
    for (const auto& u : *users)
      if (u.id == 1 && u.enabled && u.ipmi_messaging)
        o.findings.push_back({"critical", "null-user-enabled",
                              "user 1 (the null / anonymous user) is enabled for IPMI messaging"});
  }
  // The LAN configuration (five commands) when the inventory manages it; `lan` shows it anyway.
  if (d.params.contains("lan"))
    if (auto lan = s.lan_config(channel)) o.facts["lan"] = lan_json(*lan);
  const auto cache = sdr_cache(ctx, *t);
  if (auto sensors = s.sensors(cache)) {
    json a = json::array();
    for (const auto& x : *sensors)
      a.push_back(sensor_json(x));
    o.health["sensors"] = a;
    sensor_findings(*sensors, o.findings);
  } else {
    o.facts["sensors_error"] = sensors.error().message();
  }
  if (d.params.value("security-checks", true)) {
    const auto quick = std::chrono::milliseconds(3000);
    if (inventory_is_factory) {
      o.findings.push_back(
          {"critical", "default-credentials", "the inventory's login is the factory ADMIN/ADMIN"});
    } else if (login == "inventory") {
      if (auto ok = login_accepted(factory_target(d), quick); ok && *ok)
        o.findings.push_back(
            {"critical", "default-credentials", "the factory login ADMIN/ADMIN is still accepted"});
    }
    Target anon = base_target(d);
    anon.user = "";
    anon.password = "";
    if (auto ok = login_accepted(anon, quick); ok && *ok)
      o.findings.push_back({"critical", "anonymous-login",
                            "an anonymous login (empty user, empty password) is accepted"});
    // With the user the session is open for (the factory ADMIN on a factory BMC).
    Target zero = login == "factory" ? factory_target(d) : *t;
    zero.cipher_suite = 0;
    zero.password = random_password();  // cipher suite 0 does not check it
    if (auto ok = login_accepted(zero, quick); ok && *ok)
      o.findings.push_back(
          {"critical", "cipher-suite-0",
           "cipher suite 0 is enabled: a session opens for " + zero.user + " with any password"});
  }
  // How labctl would reach the web interface to flash it (nothing is sent there by a probe).
  if (const json w = d.params.value("web", json::object()); w.is_object()) {
    if (w.value("scheme", std::string("https")) == "http")
      o.findings.push_back({"warning", "web-plain-http",
                            "web.scheme is http: a flash sends the BMC's login in clear text"});
    else if (w.value("accept-self-signed", false))
      o.findings.push_back({"warning", "web-tls-unverified",
                            "web.accept-self-signed: the web interface's certificate is not "
                            "verified when flashing (anyone in the path could pose as the BMC)"});
  }
  return o;
}

Result<bool> SupermicroBmcPlugin::step_done(sdk::DeviceContext& ctx, const sdk::Device& d,
                                            const sdk::Step& step) {
  if (is_flash_action(step.action)) return flash_.step_done(ctx, d, step);
  auto t = inventory_target(ctx, d);
  if (!t) return fail(t.error());
  if (step.action == "set-credentials") {
    auto ok = login_accepted(*t, std::chrono::milliseconds(5000));
    if (!ok) return fail(ok.error());
    return *ok;
  }
  if (step.action == "disable-factory-login") {
    auto ok = login_accepted(factory_target(d), std::chrono::milliseconds(5000));
    if (!ok) return fail(ok.error());
    return !*ok;
  }
  if (step.action == "set-lan") {
    auto s = Session::open(*t);
    if (!s) return fail(s.error());
    auto lan = (*s)->lan_config(static_cast<int>(d.params.value("channel", std::int64_t{1})));
    if (!lan) return fail(lan.error());
    const json want = step.args.value("lan", json::object());
    if (lan->source != want.value("source", "")) return false;
    if (want.value("source", "") == "static")
      for (const auto& [k, have] : {std::pair<std::string, std::string>{"address", lan->address},
                                    {"netmask", lan->netmask},
                                    {"gateway", lan->gateway}})
        if (want.contains(k) && want.value(k, "") != have) return false;
    return true;
  }
  return fail(Errc::NotSupported, d.name + ": no executor for step '" + step.action + "'");
}

Status SupermicroBmcPlugin::run_step(sdk::DeviceContext& ctx, const sdk::Device& d,
                                     const sdk::Step& step) {
  if (is_flash_action(step.action)) return flash_.run_step(ctx, d, step);
  auto t = inventory_target(ctx, d);
  if (!t) return fail(t.error());
  const int channel = static_cast<int>(d.params.value("channel", std::int64_t{1}));
  if (step.action == "set-credentials") {
    auto s = Session::open(factory_target(d));
    if (!s) return fail(std::move(s.error()).context(d.name + ": factory login"));
    auto users = (*s)->users(channel);
    if (!users) return fail(std::move(users.error()).context(d.name));
    int slot = 0;
    for (const auto& u : *users)
      if (u.name == t->user) slot = u.id;
    if (slot == 0)
      for (const auto& u : *users)
        if (u.id >= 3 && u.name.empty() && !u.enabled) {
          slot = u.id;
          break;
        }
    if (slot == 0)
      return fail(Errc::PreconditionFailed, d.name + ": no free user slot for " + t->user +
                                                " (users 3.." + std::to_string(users->size()) +
                                                " are taken)");
    if (auto r = (*s)->set_user_name(slot, t->user); !r && slot != 2) return r;
    if (auto r = (*s)->set_user_password(slot, t->password); !r) return r;
    if (auto r = (*s)->set_user_access(channel, slot, t->privilege, true); !r) return r;
    if (auto r = (*s)->set_user_enabled(slot, true); !r) return r;
    // Read back through a fresh session with the new login.
    auto check = Session::open(*t);
    if (!check)
      return fail(Errc::VerifyMismatch,
                  d.name + ": the new login does not open a session: " + check.error().message());
    if (auto id = (*check)->device_id(); !id) return fail(id.error());
    ctx.log("user " + std::to_string(slot) + " (" + t->user + ") set and verified");
    return {};
  }
  if (step.action == "disable-factory-login") {
    auto s = Session::open(*t);
    if (!s) return fail(std::move(s.error()).context(d.name + ": inventory login"));
    auto users = (*s)->users(channel);
    if (!users) return fail(std::move(users.error()).context(d.name));
    for (const auto& u : *users) {
      if (u.name != kFactoryUser) continue;
      // A random password first (nobody knows it), then the user disabled.
      if (auto r = (*s)->set_user_password(u.id, random_password()); !r) return r;
      if (auto r = (*s)->set_user_enabled(u.id, false); !r) return r;
    }
    auto still = login_accepted(factory_target(d), std::chrono::milliseconds(5000));
    if (!still) return fail(still.error());
    if (*still) return fail(Errc::VerifyMismatch, d.name + ": ADMIN/ADMIN is still accepted");
    ctx.log("factory login ADMIN disabled; verified that ADMIN/ADMIN is refused");
    return {};
  }
  if (step.action == "set-lan") {
    auto s = Session::open(*t);
    if (!s) return fail(std::move(s.error()).context(d.name));
    const json want = step.args.value("lan", json::object());
    if (auto r = (*s)->set_lan_source(channel, want.value("source", "")); !r) return r;
    if (want.value("source", "") == "static")
      if (auto r = (*s)->set_lan_address(channel, want.value("address", ""),
                                         want.value("netmask", ""), want.value("gateway", ""));
          !r)
        return r;
    auto done = step_done(ctx, d, step);
    if (!done) return fail(done.error());
    if (!*done)
      return fail(Errc::VerifyMismatch, d.name + ": the LAN configuration read back differs");
    return {};
  }
  return fail(Errc::NotSupported, d.name + ": no executor for step '" + step.action + "'");
}

std::vector<sdk::VerbSpec> SupermicroBmcPlugin::verbs() const {
  return {
      {"info", "firmware, manufacturer, power, login and security findings", {}, false},
      {"power",
       "chassis power: status, on, off, cycle, reset, soft (ACPI shutdown)",
       {{"action", "what to do", true, {"status", "on", "off", "cycle", "reset", "soft"}}},
       true},
      {"sensors", "temperatures, fans and voltages from the SDR, with thresholds", {}, false},
      {"users", "the BMC's users on the LAN channel", {}, false},
      {"lan", "the LAN channel's address configuration", {}, false},
      {"reset-bmc",
       "restart the BMC itself (not the server)",
       {{"kind", "cold or warm", true, {"cold", "warm"}}},
       true},
      {"firmware",
       "verify FILE: check an SMT_*.bin image offline and against this BMC; flash FILE "
       "--preserve-config|--factory-reset: flash it through the web interface (journaled steps)",
       {{"action", "verify or flash", true, {"verify", "flash"}}, {"file", "the image", true, {}}},
       true},
  };
}

// `labctl bmc NAME firmware verify FILE`: the image checked offline (every checksum), then against
// the device: the board generation, the inventory's firmware target, and what the BMC runs now.
Result<sdk::VerbResult> SupermicroBmcPlugin::firmware_verb(sdk::DeviceContext& ctx,
                                                           const sdk::Device& d, const json& args) {
  const std::string action = args.value("action", "verify");
  const std::string file = args.value("file", "");
  if (action == "flash") {
    auto r = flash_.plan_verb(ctx, d, args);
    if (!r || !r->data.contains("run_steps")) return r;
    // After a reset to factory settings the inventory's login and LAN settings go back on.
    std::vector<sdk::Step> steps;
    for (const auto& j : r->data["run_steps"])
      if (auto s = sdk::Step::from_json(j)) steps.push_back(std::move(*s));
    for (const auto& s : reconcile_steps(d, sdk::Observation{}, steps))
      r->data["run_steps"].push_back(s.to_json());
    return r;
  }
  auto read = read_image_file(file);
  if (!read) return fail(read.error());
  const std::vector<std::uint8_t>& bytes = *read;
  auto img = parse_aten_image(bytes);
  if (!img) return fail(std::move(img.error()).context(file));
  sdk::VerbResult r;
  r.data = {{"file", file}, {"image", to_json(*img)}};
  r.text = describe(*img);
  const std::string version = img->footer.found ? img->footer.version() : "";
  const std::string want = d.firmware.target.empty() ? version : d.firmware.target;
  auto fit = check_image_for(*img, d.model, want);
  r.data["fits"] = static_cast<bool>(fit);
  if (!fit) {
    r.data["refused"] = fit.error().message();
    r.text += "refused for " + d.name + ": " + fit.error().message() + "\n";
    return r;
  }
  // What the BMC runs now (one session, Get Device ID): the flash would be an upgrade, the same
  // version again, or a downgrade.
  if (auto t = inventory_target(ctx, d))
    if (auto s = Session::open(*t))
      if (auto id = (*s)->device_id()) {
        r.data["running"] = id->firmware();
        r.text += d.name + " runs " + id->firmware() + "; the image is " + version + "\n";
      }
  r.text += "fits " + d.name + (d.model.empty() ? "" : " (" + d.model + ")") + "\n";
  return r;
}

Result<sdk::VerbResult> SupermicroBmcPlugin::run_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                                      const std::string& verb, const json& args) {
  sdk::VerbResult r;
  if (verb == "info") {
    auto o = probe(ctx, d);
    if (!o) return fail(o.error());
    r.data = o->to_json();
    r.text = d.name + ": firmware " + o->version + ", " + o->model + ", power " +
             o->health.value("power", std::string("?")) + ", login " +
             o->facts.value("login", std::string("?")) + "\n";
    for (const auto& f : o->findings)
      r.text += "  " + f.severity + ": " + f.message + "\n";
    return r;
  }
  if (verb == "firmware") return firmware_verb(ctx, d, args);
  auto t = inventory_target(ctx, d);
  if (!t) return fail(t.error());
  auto s = Session::open(*t);
  if (!s) return fail(std::move(s.error()).context(d.name));
  const int channel = static_cast<int>(d.params.value("channel", std::int64_t{1}));
  if (verb == "power") {
    const std::string action = args.value("action", "status");
    if (action != "status") {
      static const std::map<std::string, PowerAction> m = {{"on", PowerAction::On},
                                                           {"off", PowerAction::Off},
                                                           {"cycle", PowerAction::Cycle},
                                                           {"reset", PowerAction::Reset},
                                                           {"soft", PowerAction::Soft}};
      if (auto rc = (*s)->chassis_control(m.at(action)); !rc) return fail(rc.error());
    }
    auto c = (*s)->chassis_status();
    if (!c) return fail(c.error());
    r.data = {{"action", action},
              {"power", c->power_on ? "on" : "off"},
              {"last_power_event", c->last_power_event}};
    r.text = d.name + ": " + (action == "status" ? "" : action + " sent; ") + "power is " +
             (c->power_on ? "on" : "off") + "\n";
    return r;
  }
  if (verb == "sensors") {
    auto list = (*s)->sensors(sdr_cache(ctx, *t));
    if (!list) return fail(list.error());
    r.data = json::array();
    char line[160];
    for (const auto& x : *list) {
      r.data.push_back(sensor_json(x));
      std::snprintf(line, sizeof line, "%-16s %-12s %12s  %s\n", x.name.c_str(), x.type.c_str(),
                    fmt_value(x.value, x.units).c_str(), x.state.c_str());
      r.text += line;
    }
    return r;
  }
  if (verb == "users") {
    auto users = (*s)->users(channel);
    if (!users) return fail(users.error());
    r.data = users_json(*users);
    for (const auto& u : r.data)
      r.text += std::to_string(u.value("id", 0)) + "  " + u.value("name", std::string()) +
                (u.value("enabled", false) ? "  enabled" : "  disabled") + "  " +
                u.value("privilege", std::string()) + "\n";
    return r;
  }
  if (verb == "lan") {
    auto lan = (*s)->lan_config(channel);
    if (!lan) return fail(lan.error());
    r.data = lan_json(*lan);
    r.text = "source " + lan->source + ", address " + lan->address + ", netmask " + lan->netmask +
             ", gateway " + lan->gateway + ", mac " + lan->mac + "\n";
    return r;
  }
  if (verb == "reset-bmc") {
    const bool cold = args.value("kind", "cold") == "cold";
    if (auto rc = (*s)->reset_bmc(cold); !rc) return fail(rc.error());
    r.data = {{"reset", cold ? "cold" : "warm"}};
    r.text = d.name + ": " + (cold ? "cold" : "warm") + " reset sent\n";
    return r;
  }
  return fail(Errc::NotSupported, "bmc verb '" + verb + "'");
}

}  // namespace labctl::supermicro_bmc
