#include "plugins/cisco_phone/plugin.h"

#include <curl/curl.h>

#include <map>
#include <thread>

#include "common/text.h"
#include "inventory/secrets.h"
#include "plugins/cisco_phone/config.h"
#include "plugins/cisco_phone/device_info.h"
#include "plugins/cisco_phone/doctor.h"
#include "plugins/cisco_phone/sip_notify.h"
#include "plugins/cisco_phone/upgrade.h"

namespace labctl::cisco_phone {

using text::iequals;
using text::join_list;
using text::lower;
using text::split;
using text::trim;

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

// "000B8201FC42" for any spelling of a MAC, "" when it is not one.
std::string mac12(const std::string& mac) {
  auto sep = sep_file_name(mac);
  if (!sep) return "";
  return sep->substr(3, 12);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The file a model asks TFTP for after a reset: the family's `term-files` quirk, else
// termNN.default.loads from the model number.
std::string term_file_for(const inventory::Family* fam, const std::string& model) {
  if (fam != nullptr && fam->quirks.is_object())
    if (auto t = fam->quirks.value("term-files", json::object()); t.is_object())
      for (const auto& [m, name] : t.items())
        if (iequals(m, model) && name.is_string()) return name.get<std::string>();
  return iequals(model, "CP-7906G") ? "term06.default.loads" : "term11.default.loads";
}

std::filesystem::path published_dir(const std::filesystem::path& plugin_dir) {
  return plugin_dir / "published";
}

std::string secs(std::int64_t ms) {
  return std::to_string((ms + 500) / 1000) + " s";
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
      key::integer("sip-port")
          .range(1, 65535)
          .defaults(5060)
          .describe("the port the phone listens on for SIP (check-sync NOTIFY)"));
  schema_.keys.push_back(
      key::duration("upgrade-timeout")
          .defaults(std::int64_t{30 * 60 * 1000})
          .describe("how long to wait for the phone to fetch one load (per hop)"));
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
  if (d.ip.empty())
    return fail(Errc::PreconditionFailed,
                d.name +
                    ": a staged upgrade needs the phone's ip (the TFTP requests that show its "
                    "progress come from that address; give it a DHCP reservation)");
  if (d.segment.empty())
    return fail(Errc::PreconditionFailed,
                d.name +
                    ": a staged upgrade needs the phone's segment (whose TFTP service "
                    "publishes the load)");
  if (hop.release == nullptr)
    return fail(Errc::NotFound, d.name + ": load " + hop.to.text + " is not in the catalog");
  const std::string& load = hop.to.text;
  const std::string of =
      " (hop " + std::to_string(hop.index) + "/" + std::to_string(hop.count) + ")";
  json files = json::array();
  for (const auto& f : hop.release->files)
    files.push_back(f.name);
  const json args = {{"load", load},      {"from", hop.from.text},         {"hop", hop.index},
                     {"hops", hop.count}, {"bundle", hop.release->bundle}, {"files", files}};
  std::vector<sdk::Step> out;
  sdk::Step publish;
  publish.key = "publish@" + load;
  publish.action = "publish";
  publish.title = "publish " + load + " to " + d.name + " over TFTP" + of;
  publish.reason =
      hop.reason.empty() ? "the inventory's target is " + d.firmware.target : hop.reason;
  publish.args = args;
  out.push_back(publish);
  sdk::Step trigger;
  trigger.key = "trigger@" + load;
  trigger.action = "trigger";
  trigger.title = "make " + d.name + " fetch " + load + of;
  trigger.reason = "check-sync on a SIP load; an SCCP load needs the operator to restart the phone";
  trigger.args = args;
  out.push_back(trigger);
  sdk::Step watch;
  watch.key = "watch@" + load;
  watch.action = "watch";
  watch.title = "follow " + d.name + " fetching " + load + of;
  watch.reason =
      "done when every file of the load was transferred and the phone asks for its "
      "configuration";
  watch.args = args;
  watch.writes = false;
  watch.weight = 10;
  watch.timeout =
      std::chrono::milliseconds(d.params.value("upgrade-timeout", std::int64_t{30 * 60 * 1000}));
  out.push_back(watch);
  if (hop.index == hop.count) {
    sdk::Step verify;
    verify.key = "verify@" + load;
    verify.action = "verify";
    verify.title = "check that " + d.name + " runs " + load;
    verify.reason = "the phone's own report (DeviceInformationX) is the proof";
    verify.args = args;
    verify.writes = false;
    out.push_back(verify);
  }
  for (auto& st : out) {
    st.hop = hop.index;
    st.hops = hop.count;
  }
  return out;
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

Result<sdk::Observation> CiscoPhonePlugin::probe_until(
    sdk::DeviceContext& ctx, const sdk::Device& d, std::chrono::milliseconds bound,
    const std::function<bool(const sdk::Observation&)>& good) {
  const auto end = std::chrono::steady_clock::now() + bound;
  for (;;) {
    auto o = probe(ctx, d);
    if (o && (!good || good(*o))) return o;
    if (std::chrono::steady_clock::now() >= end || ctx.cancelled()) return o;
    if (!ctx.sleep_for(std::chrono::seconds(2))) return o;
  }
}

Result<std::optional<Publication>> CiscoPhonePlugin::publication(sdk::DeviceContext& ctx,
                                                                 const sdk::Device& d) const {
  const std::string mac = mac12(d.mac);
  if (mac.empty()) return fail(Errc::InvalidInput, d.name + ": bad mac '" + d.mac + "'");
  return read_publication(publication_path(published_dir(ctx.plugin_state_dir()), mac));
}

Result<Publication> CiscoPhonePlugin::published(sdk::DeviceContext& ctx, const sdk::Device& d,
                                                const std::string& load) const {
  auto pub = publication(ctx, d);
  if (!pub) return fail(pub.error());
  if (!*pub || (*pub)->load != load)
    return fail(Errc::PreconditionFailed, load + " is not published to the phone (publish first)");
  return std::move(**pub);
}

Result<bool> CiscoPhonePlugin::step_done(sdk::DeviceContext& ctx, const sdk::Device& d,
                                         const sdk::Step& step) {
  const std::string load = step.args.value("load", "");
  if (step.action == "publish" || step.action == "trigger") {
    auto pub = publication(ctx, d);
    if (!pub) return fail(pub.error());
    if (!*pub || (*pub)->load != load) return false;
    if (step.action == "trigger") return (*pub)->triggered_ms > 0;
    for (const auto& f : (*pub)->files)
      if (file_size_or_zero(f.path) != f.size) return false;
    return true;
  }
  if (step.action == "watch" || step.action == "verify") {
    auto o = probe(ctx, d);
    return o && o->version == load;
  }
  return fail(Errc::NotSupported, d.name + ": no executor for step '" + step.action + "'");
}

Status CiscoPhonePlugin::publish(sdk::DeviceContext& ctx, const sdk::Device& d,
                                 const sdk::Step& step) {
  const std::string load = step.args.value("load", "");
  const std::string from = step.args.value("from", "");
  const auto* catalog = ctx.catalog();
  const auto* fam = catalog ? catalog->family_for_model(d.model) : nullptr;
  const auto* rel = fam ? fam->find(load) : nullptr;
  if (rel == nullptr)
    return fail(Errc::NotFound, "load " + load + " is not in the catalog for " + d.model);
  // The image first: every file of the release, re-hashed against its pin.
  auto images = ctx.firmware_images(*fam, *rel);
  if (!images) return fail(images.error());
  // Then the device: the phone at the inventory's address is this phone, on the load the plan
  // started from (or already on this one). A phone that is restarting gets a minute to answer.
  auto o = probe_until(ctx, d, std::chrono::seconds(60), nullptr);
  if (!o)
    return fail(std::move(o.error()).context("cannot check the phone before publishing " + load +
                                             " (its web server must answer: DeviceInformationX)"));
  for (const auto& f : o->findings)
    if (f.code == "wrong-device" || f.code == "model-mismatch")
      return fail(Errc::PreconditionFailed, f.message + "; nothing was published");
  if (o->version != from && o->version != load)
    return fail(Errc::PreconditionFailed, "the phone runs " + o->version + ", the plan expected " +
                                              from + "; run 'labctl plan' again");
  Publication pub;
  pub.device = d.name;
  pub.mac = mac12(d.mac);
  pub.load = load;
  pub.hop = step.args.value("hop", 1);
  pub.hops = step.args.value("hops", 1);
  pub.term = term_file_for(fam, d.model);
  for (const auto& img : *images)
    pub.files.push_back({img.name, img.sha256, img.size, img.path});
  if (pub.find(pub.term) == nullptr)
    return fail(Errc::NotFound, load + ": the release has no " + pub.term +
                                    " (the file this model asks after a reset)");
  // The files of the load the phone runs now, when the store has them (see Publication::keep).
  if (const auto* prev = fam->find(o->version); prev != nullptr && o->version != load)
    if (auto kept = ctx.firmware_images(*fam, *prev))
      for (const auto& img : *kept)
        if (!iequals(img.name, pub.term))
          pub.keep.push_back({img.name, img.sha256, img.size, img.path});
  const auto service = ctx.tftp_service(d);
  if (!service.running)
    return fail(Errc::PreconditionFailed,
                "no 'labctl serve' serves TFTP for segment " + d.segment +
                    (service.holder.empty() ? std::string()
                                            : " (the one running says: " + service.holder + ")") +
                    ": start it with this inventory and the same --state-dir first (the phone "
                    "fetches its load from it); nothing was published");
  pub.log_offset = file_size_or_zero(service.event_log);
  pub.published_ms = now_ms();
  if (auto w =
          write_publication(publication_path(published_dir(ctx.plugin_state_dir()), pub.mac), pub);
      !w)
    return w;
  ctx.log("published " + load + " (" + std::to_string(pub.files.size()) + " verified files) to " +
          d.ip + ": " + pub.term + " and SEP" + pub.mac +
          ".cnf.xml now name it for this phone only");
  return {};
}

Status CiscoPhonePlugin::trigger(sdk::DeviceContext& ctx, const sdk::Device& d,
                                 const sdk::Step& step) {
  const std::string load = step.args.value("load", "");
  auto pub = published(ctx, d, load);
  if (!pub) return fail(pub.error());
  Publication p = *pub;
  p.trigger = "operator";
  auto o = probe(ctx, d);
  const bool sip = o && o->components.count("protocol") && o->components.at("protocol") == "sip";
  if (sip) {
    const int port = static_cast<int>(d.params.value("sip-port", std::int64_t{5060}));
    auto r = send_check_sync(d.ip, port, d.params.value("extension", ""), std::chrono::seconds(32),
                             [&] { return ctx.cancelled(); });
    if (r && r->code >= 200 && r->code < 300) {
      p.trigger = "check-sync";
      ctx.log("check-sync accepted (" + std::to_string(r->code) + " " + r->reason +
              "): the phone reads its configuration and fetches " + load);
    } else {
      ctx.log("check-sync not accepted (" +
              (r ? std::to_string(r->code) + " " + r->reason : r.error().message()) +
              "); the phone needs a restart:");
    }
  }
  if (p.trigger == "operator") {
    // The whole procedure once per run; for the next phones, one line that points to it.
    if (!instructions_shown_.exchange(true))
      ctx.log(operator_instructions(d.name, d.model, d.ip, load));
    else
      ctx.log("restart " + d.name + " (" + d.model + ", " + d.ip + ") to make it fetch " + load +
              ": the steps are above");
  }
  p.triggered_ms = now_ms();
  return write_publication(publication_path(published_dir(ctx.plugin_state_dir()), p.mac), p);
}

Status CiscoPhonePlugin::watch(sdk::DeviceContext& ctx, const sdk::Device& d,
                               const sdk::Step& step) {
  const std::string load = step.args.value("load", "");
  auto pub = published(ctx, d, load);
  if (!pub) return fail(pub.error());
  const Publication& p = *pub;
  const std::string sep = "SEP" + p.mac + ".cnf.xml";
  EventLogTail tail(ctx.tftp_service(d).event_log, p.log_offset);
  std::vector<tftp::Event> mine;  // this phone's events since the publication
  HopProgress last;
  std::string last_note;
  for (;;) {
    for (auto& e : tail.poll())
      if (e.client == d.ip && e.time_ms >= p.published_ms) mine.push_back(std::move(e));
    last = follow_hop(mine, d.ip, p, sep);
    const std::string note = last.summary();
    if (note != last_note) {
      ctx.progress(last.bytes_done, last.bytes_total, note);
      last_note = note;
    }
    if (last.done) {
      ctx.log(load + ": every file transferred, and the phone asked for its configuration");
      return {};
    }
    if (!last.refused.empty())
      return fail(Errc::NotFound, "the TFTP service refused the phone " + last.refused.front() +
                                      "; 'labctl phone " + d.name + " doctor' explains");
    if (last.looping()) {
      std::string why = "the phone asked " + p.term + " " + std::to_string(last.term_since_sbn) +
                        " times and no file of " + load + ": it refuses the load";
      for (const auto& diag : diagnose(mine, ctx.catalog()))
        if (diag.code == "term-file-loop") why += " (" + diag.message + ")";
      return fail(Errc::PreconditionFailed, why);
    }
    if (!ctx.sleep_for(std::chrono::milliseconds(250)))
      return fail(Errc::Timeout,
                  "the phone has not finished " + load + ": " + note +
                      (last.last_ms ? ", last request " + secs(now_ms() - last.last_ms) + " ago"
                                    : ", no request since the publication") +
                      (last.missing.empty() ? "" : "; not yet: " + join_list(last.missing)));
  }
}

Status CiscoPhonePlugin::verify(sdk::DeviceContext& ctx, const sdk::Device& d,
                                const sdk::Step& step) {
  const std::string load = step.args.value("load", "");
  // The phone may still be restarting into the load: up to two minutes to say so.
  auto o = probe_until(ctx, d, std::chrono::minutes(2),
                       [&](const sdk::Observation& x) { return x.version == load; });
  if (!o) return fail(std::move(o.error()).context("verify " + load));
  if (o->version != load)
    return fail(Errc::VerifyMismatch, "the phone runs " + o->version + ", not " + load);
  ctx.log("runs " + load +
          (o->components.count("bootloader") ? ", bootloader " + o->components.at("bootloader")
                                             : std::string()));
  return {};
}

Status CiscoPhonePlugin::run_step(sdk::DeviceContext& ctx, const sdk::Device& d,
                                  const sdk::Step& step) {
  Status r;
  if (step.action == "publish")
    r = publish(ctx, d, step);
  else if (step.action == "trigger")
    r = trigger(ctx, d, step);
  else if (step.action == "watch")
    r = watch(ctx, d, step);
  else if (step.action == "verify")
    r = verify(ctx, d, step);
  else
    return fail(Errc::NotSupported, d.name + ": no executor for step '" + step.action + "'");
  if (!r) return fail(std::move(r.error()).context(d.name));
  return r;
}

std::vector<sdk::VerbSpec> CiscoPhonePlugin::verbs() const {
  return {{"info", "what the phone reports: load, bootloader, model, MAC, line", {}, false},
          {"config",
           "the SEP<MAC>.cnf.xml labctl would publish for this phone (password hidden)",
           {},
           false},
          {"doctor",
           "what the phone's TFTP requests, its configuration and its own report say is wrong",
           {},
           false},
          {"check-sync",
           "send SIP NOTIFY check-sync: a phone on a SIP load reads its configuration again",
           {},
           true}};
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
  if (verb == "doctor") return doctor(ctx, d);
  if (verb == "check-sync") {
    if (d.ip.empty()) return fail(Errc::PreconditionFailed, d.name + ": no ip in the inventory");
    const int port = static_cast<int>(d.params.value("sip-port", std::int64_t{5060}));
    auto res = send_check_sync(d.ip, port, d.params.value("extension", ""),
                               std::chrono::seconds(32), [&] { return ctx.cancelled(); });
    if (!res) return fail(std::move(res.error()).context(d.name));
    r.data = {{"code", res->code}, {"reason", res->reason}};
    r.text = d.name + ": " + std::to_string(res->code) + " " + res->reason + "\n";
    if (res->code < 200 || res->code >= 300)
      return fail(Errc::PreconditionFailed, d.name + ": check-sync answered " +
                                                std::to_string(res->code) + " " + res->reason);
    return r;
  }
  return fail(Errc::NotSupported, "phone verb '" + verb + "'");
}

const sdk::Device* CiscoPhonePlugin::Hooks::phone_at(std::uint32_t ip) const {
  if (env_.inventory == nullptr) return nullptr;
  for (const auto& d : env_.inventory->devices)
    if (d.type == "cisco-phone")
      if (auto a = inventory::parse_ipv4(d.ip); a && *a == ip) return &d;
  // No inventory address: the DHCP service knows which MAC it leased this address to.
  if (!env_.mac_for_ip) return nullptr;
  const auto mac = env_.mac_for_ip(ip);
  if (!mac) return nullptr;
  const std::string want = mac12(*mac);
  for (const auto& d : env_.inventory->devices)
    if (d.type == "cisco-phone" && d.ip.empty() && !want.empty() && mac12(d.mac) == want) return &d;
  return nullptr;
}

std::optional<Publication> CiscoPhonePlugin::Hooks::publication_of(const sdk::Device& d) const {
  const std::string mac = mac12(d.mac);
  if (mac.empty() || env_.state_dir.empty()) return std::nullopt;
  auto p = read_publication(
      publication_path(published_dir(env_.state_dir / "plugins" / "cisco-phone"), mac));
  if (!p || !*p) return std::nullopt;  // a damaged file publishes nothing
  return std::move(**p);
}

Result<sdk::VerbResult> CiscoPhonePlugin::doctor(sdk::DeviceContext& ctx, const sdk::Device& d) {
  sdk::VerbResult r;
  json findings = json::array();
  auto add = [&](const std::string& severity, const std::string& code, const std::string& msg) {
    findings.push_back({{"severity", severity}, {"code", code}, {"message", msg}});
    r.text += "  " + severity + ": " + msg + "\n";
  };
  // 1. The configuration labctl publishes: would the phone register with it?
  const Limits limits = limits_for(ctx.catalog(), d.model);
  if (auto pw = ctx.secret(d, "/sip/password"); !pw) {
    add("critical", "secret", "sip.password: " + pw.error().message());
  } else {
    for (const auto& p : validate(config_of(d, *pw), limits))
      add("critical", "config", describe(p) + " -- the phone gets no configuration until fixed");
  }
  // 2. What the phone says about itself.
  auto o = probe(ctx, d);
  if (o) {
    r.data["observation"] = o->to_json();
    r.text = d.name + ": runs " + o->version +
             (o->components.count("bootloader") ? ", bootloader " + o->components.at("bootloader")
                                                : std::string()) +
             "\n" + r.text;
    for (const auto& f : o->findings)
      add(f.severity, f.code, f.message);
    if (o->components["protocol"] == "sccp" && !d.firmware.target.empty() &&
        load_protocol(d.firmware.target) == "sip")
      add("info", "sccp-load",
          "on an SCCP load it cannot register with the SIP configuration; 'labctl plan' shows "
          "the hops to " +
              d.firmware.target);
  } else {
    r.text = d.name + ": no answer from its web server (" + o.error().message() + ")\n" + r.text;
  }
  // 3. Its TFTP requests, in the segment's event log.
  const auto log = ctx.tftp_service(d).event_log;
  std::vector<tftp::Event> mine;
  if (!log.empty() && !d.ip.empty()) {
    EventLogTail tail(log, 0);
    for (auto& e : tail.poll())
      if (e.client == d.ip) mine.push_back(std::move(e));
  }
  if (mine.empty()) {
    add("info", "no-requests",
        "no TFTP request from " + (d.ip.empty() ? std::string("its address") : d.ip) + " in " +
            (log.empty() ? std::string("any event log") : log.string()) +
            (o ? std::string() : ": it may not be powered, or gets another address by DHCP"));
  } else {
    for (const auto& diag : diagnose(mine, ctx.catalog()))
      add(diag.severity, diag.code, diag.message);
  }
  // 4. An upgrade in progress.
  if (auto pub = publication(ctx, d); pub && *pub) {
    const auto prog = follow_hop(mine, d.ip, **pub, "SEP" + (*pub)->mac + ".cnf.xml");
    r.data["published"] = {{"load", (*pub)->load},
                           {"hop", (*pub)->hop},
                           {"hops", (*pub)->hops},
                           {"progress", prog.summary()}};
    r.text += "  published: " + (*pub)->load + " (hop " + std::to_string((*pub)->hop) + "/" +
              std::to_string((*pub)->hops) + "): " + prog.summary() + "\n";
  }
  r.data["device"] = d.name;
  r.data["findings"] = findings;
  return r;
}

std::optional<std::string> CiscoPhonePlugin::Hooks::tftp_virtual_file(
    const sdk::TftpRequestInfo& request) {
  // Only the asking phone's own file: it carries the line's SIP secret.
  const sdk::Device* d = phone_at(request.client_ip);
  if (d == nullptr) return std::nullopt;
  auto name = sep_file_name(d->mac);
  if (!name || !iequals(*name, request.name)) return std::nullopt;
  const json sip = d->params.value("sip", json::object());
  auto ref = inventory::SecretRef::from_json(sip.value("password", json()));
  if (!ref) return std::nullopt;
  auto pw = inventory::resolve_secret(*ref);
  if (!pw) return std::nullopt;
  PhoneConfig c = config_of(*d, *pw);
  // The load published to the phone, if any. Never the inventory's target as such: a phone on an
  // old SCCP load told to run 9.x directly loops on its term file (the seed).
  if (auto pub = publication_of(*d)) c.load_information = pub->load;
  auto xml = render_sep_config(c, limits_for(env_.inventory->catalog.get(), d->model));
  if (!xml) return std::nullopt;  // invalid (e.g. the password too long): no file at all
  return *xml;
}

std::optional<std::filesystem::path> CiscoPhonePlugin::Hooks::tftp_published_file(
    const sdk::TftpRequestInfo& request) {
  const sdk::Device* d = phone_at(request.client_ip);
  if (d == nullptr) return std::nullopt;
  auto pub = publication_of(*d);
  if (!pub) return std::nullopt;
  const PublishedFile* f = pub->find(request.name);
  if (f == nullptr) return std::nullopt;
  // The blob must still be what was verified at publication (same size; content-addressed).
  if (file_size_or_zero(f->path) != f->size) return std::nullopt;
  return f->path;
}

}  // namespace labctl::cisco_phone
