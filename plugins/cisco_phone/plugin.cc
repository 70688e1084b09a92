#include "plugins/cisco_phone/plugin.h"

#include <curl/curl.h>

#include <map>

#include "inventory/secrets.h"
#include "plugins/cisco_phone/config.h"
#include "plugins/cisco_phone/device_info.h"

namespace labctl::cisco_phone {

using sdk::json;
namespace key = inventory::key;

namespace {

Limits limits_for(const inventory::Catalog* catalog, const std::string& model) {
  Limits l;
  if (catalog == nullptr) return l;
  const auto* fam = catalog->family_for_model(model);
  if (fam == nullptr || !fam->quirks.is_object()) return l;
  if (auto v = fam->quirks.value("sip-password-max", 0); v > 0)
    l.sip_password_max = static_cast<std::size_t>(v);
  if (auto v = fam->quirks.value("phone-label-max", 0); v > 0)
    l.phone_label_max = static_cast<std::size_t>(v);
  return l;
}

// The configuration the inventory describes, with `password` as given (the caller resolves it).
PhoneConfig config_of(const sdk::Device& d, std::string password) {
  const json& p = d.params;
  PhoneConfig c;
  c.device = d.name;
  c.mac = d.mac;
  c.model = d.model;
  const json sip = p.value("sip", json::object());
  c.sip_server = sip.value("server", "");
  c.sip_port = static_cast<int>(sip.value("port", std::int64_t{5060}));
  c.phone_label = p.value("label", "");
  c.ntp_server = p.value("ntp", "");
  c.time_zone = p.value("time-zone", "UTC");
  Line l;
  l.extension = p.value("extension", "");
  l.display_name = p.value("display-name", "");
  l.auth_name = sip.value("auth-name", "");
  l.password = std::move(password);
  c.lines.push_back(std::move(l));
  return c;
}

// Field names of config.h's problems -> JSON pointers into the device's params.
std::string pointer_of(const std::string& field) {
  static const std::map<std::string, std::string> m = {{"sip.password", "/sip/password"},
                                                       {"sip.port", "/sip/port"},
                                                       {"sip.server", "/sip/server"},
                                                       {"label", "/label"},
                                                       {"extension", "/extension"},
                                                       {"display-name", "/display-name"},
                                                       {"mac", ""}};
  auto it = m.find(field);
  return it == m.end() ? "" : it->second;
}

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (s->size() + size * n > 256 * 1024) return 0;  // more than any phone sends: abort
  s->append(data, size * n);
  return size * n;
}

// GET http://ip:port/DeviceInformationX. Unreachable when nothing answers, Timeout when slow.
Result<std::string> fetch_device_info(const std::string& ip, int port) {
  CURL* h = curl_easy_init();
  if (h == nullptr) return fail(Errc::Internal, "curl_easy_init failed");
  std::string body;
  const std::string url = "http://" + ip + ":" + std::to_string(port) + "/DeviceInformationX";
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  if (rc == CURLE_OPERATION_TIMEDOUT) return fail(Errc::Timeout, url + ": no answer in time");
  if (rc != CURLE_OK) return fail(Errc::Unreachable, url + ": " + curl_easy_strerror(rc));
  if (status != 200)
    return fail(Errc::NotSupported, url + ": HTTP " + std::to_string(status) +
                                        " (web access disabled in the phone's configuration?)");
  return body;
}

}  // namespace

CiscoPhonePlugin::CiscoPhonePlugin() {
  schema_.type = "cisco-phone";
  schema_.summary = "Cisco Unified IP Phone 7906G / 7911G (SCCP and SIP loads)";
  schema_.capabilities = {"firmware", "tftp-boot"};
  schema_.model_required = true;
  schema_.models = {"CP-7906G", "CP-7911G"};
  schema_.keys.push_back(
      key::string("extension").req().range(1, 32).describe("the line's SIP user name"));
  schema_.keys.push_back(key::string("display-name").range(1, 40).describe("caller id"));
  schema_.keys.push_back(
      key::string("label").range(0, 64).describe("<phoneLabel>: at most 12 characters, no spaces"));
  schema_.keys.push_back(
      key::map("sip", {key::string("server").req().describe("the PBX the phone registers with"),
                       key::integer("port").range(1, 65535).defaults(5060),
                       key::secret("password").req().describe("the extension's SIP secret"),
                       key::string("auth-name").range(1, 64).describe("default: the extension")}));
  schema_.keys.push_back(key::string("ntp").describe("NTP server written into the configuration"));
  schema_.keys.push_back(key::string("time-zone").defaults("UTC"));
  schema_.keys.push_back(
      key::integer("web-port")
          .range(1, 65535)
          .defaults(80)
          .describe("the phone's web server, read by probe (DeviceInformationX)"));
}

void CiscoPhonePlugin::check_device(const sdk::Device& d, const sdk::Inventory& inv,
                                    inventory::DeviceReport& report) const {
  if (d.mac.empty())
    report.error("",
                 "a phone needs its mac: it is how the phone finds its configuration "
                 "(SEP<MAC>.cnf.xml) and how DHCP reserves its address");
  const Limits limits = limits_for(inv.catalog.get(), d.model);
  // The password's length is checked when the secret can be read now (env, file, literal): the
  // seed's FreePBX passwords (32 characters) must fail here, before any step runs.
  std::string password = "x";
  const json sip = d.params.value("sip", json::object());
  if (auto ref = inventory::SecretRef::from_json(sip.value("password", json())))
    if (ref->source != inventory::SecretRef::Source::Command)
      if (auto v = inventory::resolve_secret(*ref)) password = *v;
  for (const auto& p : validate(config_of(d, password), limits)) {
    if (p.field == "mac") continue;  // the loader checks MAC syntax
    report.error(pointer_of(p.field), p.field + ": " + p.message);
  }
  // Two phones on one extension: the second registration steals the first's calls.
  const std::string ext = d.params.value("extension", "");
  for (const auto& other : inv.devices) {
    if (&other == &d) break;
    if (other.type == d.type && other.params.value("extension", "") == ext && !ext.empty())
      report.error("/extension", "extension '" + ext + "' is also " + other.name + "'s");
  }
}

Result<std::vector<sdk::Step>> CiscoPhonePlugin::hop_steps(const sdk::Device& d,
                                                           const sdk::HopInfo& hop) const {
  return fail(Errc::NotSupported,
              d.name + ": load " + hop.to.text +
                  ": staged phone upgrades through labctl's TFTP service are not in this build "
                  "yet (plugins/cisco_phone/README.md); import the bundle and follow the hops "
                  "`labctl plan` shows by hand");
}

Result<sdk::Observation> CiscoPhonePlugin::probe(sdk::DeviceContext&, const sdk::Device& d) {
  if (d.ip.empty())
    return fail(Errc::PreconditionFailed,
                d.name + ": no ip in the inventory; the probe reads the phone's web server");
  auto body =
      fetch_device_info(d.ip, static_cast<int>(d.params.value("web-port", std::int64_t{80})));
  if (!body) return fail(std::move(body.error()).context(d.name));
  auto info = parse_device_info(*body);
  if (!info) return fail(std::move(info.error()).context(d.name));
  sdk::Observation o;
  o.model = info->model;
  o.serial = info->serial;
  o.version = info->app_load_id;
  if (!info->boot_load_id.empty()) o.components["bootloader"] = info->boot_load_id;
  o.components["protocol"] = load_protocol(info->app_load_id);
  o.facts = {{"host_name", info->host_name},
             {"phone_dn", info->phone_dn},
             {"version_id", info->version_id},
             {"mac", info->mac}};
  auto want = sep_file_name(d.mac);
  auto got = sep_file_name(info->mac);
  if (want && got && *want != *got)
    o.findings.push_back(
        {"critical", "wrong-device",
         "the phone at " + d.ip + " reports MAC " + info->mac + ", not the inventory's " + d.mac});
  if (!info->model.empty() && !d.model.empty() && info->model != d.model)
    o.findings.push_back(
        {"warning", "model-mismatch",
         "the phone reports model " + info->model + ", the inventory says " + d.model});
  const std::string ext = d.params.value("extension", "");
  if (!info->phone_dn.empty() && !ext.empty() && info->phone_dn != ext)
    o.findings.push_back({"warning", "extension-drift",
                          "the phone's line is " + info->phone_dn + ", the inventory says " + ext});
  return o;
}

Result<bool> CiscoPhonePlugin::step_done(sdk::DeviceContext&, const sdk::Device& d,
                                         const sdk::Step& step) {
  return fail(Errc::NotSupported, d.name + ": no executor for step '" + step.action + "'");
}

Status CiscoPhonePlugin::run_step(sdk::DeviceContext&, const sdk::Device& d,
                                  const sdk::Step& step) {
  return fail(Errc::NotSupported, d.name + ": no executor for step '" + step.action + "'");
}

std::vector<sdk::VerbSpec> CiscoPhonePlugin::verbs() const {
  return {{"info", "what the phone reports: load, bootloader, model, MAC, line", {}, false},
          {"config",
           "the SEP<MAC>.cnf.xml labctl would publish for this phone (password hidden)",
           {},
           false}};
}

Result<sdk::VerbResult> CiscoPhonePlugin::run_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                                   const std::string& verb, const json&) {
  sdk::VerbResult r;
  if (verb == "info") {
    auto o = probe(ctx, d);
    if (!o) return fail(o.error());
    r.data = o->to_json();
    r.text = d.name + ": " + o->version + " (" + o->components["protocol"] + ")";
    if (o->components.count("bootloader")) r.text += ", bootloader " + o->components["bootloader"];
    if (!o->model.empty()) r.text += ", " + o->model;
    r.text += "\n";
    for (const auto& f : o->findings)
      r.text += "  " + f.severity + ": " + f.message + "\n";
    return r;
  }
  if (verb == "config") {
    const Limits limits = limits_for(ctx.catalog(), d.model);
    // The real password decides validity; the text shown carries a placeholder of its length.
    auto pw = ctx.secret(d, "/sip/password");
    if (!pw) return fail(std::move(pw.error()).context(d.name + ": sip.password"));
    if (auto problems = validate(config_of(d, *pw), limits); !problems.empty()) {
      std::string msg;
      for (const auto& p : problems)
        msg += (msg.empty() ? "" : "; ") + describe(p);
      return fail(Errc::InvalidInput, msg);
    }
    auto xml = render_sep_config(config_of(d, std::string(pw->size(), '*')), limits);
    if (!xml) return fail(xml.error());
    auto name = sep_file_name(d.mac);
    r.data = {{"file", name ? *name : ""}, {"content", *xml}};
    r.text = "<!-- " + (name ? *name : std::string("?")) + " (password hidden) -->\n" + *xml;
    return r;
  }
  return fail(Errc::NotSupported, "phone verb '" + verb + "'");
}

std::optional<std::string> CiscoPhonePlugin::Hooks::tftp_virtual_file(
    const sdk::TftpRequestInfo& request) {
  if (inv_ == nullptr) return std::nullopt;
  std::string want = request.name;
  for (auto& c : want)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (want.rfind("SEP", 0) != 0) return std::nullopt;
  for (const auto& d : inv_->devices) {
    if (d.type != "cisco-phone") continue;
    auto name = sep_file_name(d.mac);
    if (!name) continue;
    std::string upper = *name;
    for (auto& c : upper)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper != want) continue;
    // The file carries the line's SIP secret: only the phone's own address gets it.
    const auto ip = inventory::parse_ipv4(d.ip);
    if (!ip || *ip != request.client_ip) return std::nullopt;
    const json sip = d.params.value("sip", json::object());
    auto ref = inventory::SecretRef::from_json(sip.value("password", json()));
    if (!ref) return std::nullopt;
    auto pw = inventory::resolve_secret(*ref);
    if (!pw) return std::nullopt;
    PhoneConfig c = config_of(d, *pw);
    c.load_information = d.firmware.target;
    auto xml = render_sep_config(c, limits_for(inv_->catalog.get(), d.model));
    if (!xml) return std::nullopt;  // invalid (e.g. the password too long): no file at all
    return *xml;
  }
  return std::nullopt;
}

}  // namespace labctl::cisco_phone
