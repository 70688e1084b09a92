#include "plugins/sim/sim_plugin.h"

#include <algorithm>

#include "plugins/sdk/vm_list.h"
#include "plugins/sim/sim_state.h"

namespace labctl::sim {

using inventory::KeySpec;
using sdk::json;
namespace key = inventory::key;

namespace {

KeySpec sim_keys(Kind kind) {
  std::vector<KeySpec> f{
      key::version("firmware").describe("firmware installed when the simulated device is new"),
      key::string("serial").describe("serial number the device reports"),
      key::duration("probe-delay").describe("how long a probe takes").defaults(0),
      key::duration("flash-delay").describe("how long writing firmware takes").defaults(0),
      key::duration("step-delay").describe("how long every other step takes").defaults(0),
      key::boolean("unreachable").describe("the device never answers").defaults(false),
      key::list("fail", key::map("failure",
                                 {key::string("action").req().describe("step action (or 'probe')"),
                                  key::choice("error", {"unreachable", "timeout", "auth-failed",
                                                        "verify-mismatch", "precondition-failed"})
                                      .req(),
                                  key::integer("times").range(1, 1000).defaults(1)}))
          .describe("failures to inject, each for its first `times` attempts"),
  };
  if (kind == Kind::Bmc) {
    f.push_back(key::boolean("default-credentials")
                    .describe("the BMC still accepts ADMIN/ADMIN when new")
                    .defaults(true));
    f.push_back(
        key::boolean("fan-full-speed").describe("a 3-pin fan runs flat out").defaults(false));
  }
  if (kind == Kind::Hypervisor) {
    f.push_back(
        key::list("vms", key::string("vm")).describe("VMs the host has when new (stopped)"));
  }
  auto m = key::map("sim", std::move(f)).describe("how the simulated device behaves");
  return m;
}

inventory::DeviceSchema make_schema(Kind kind) {
  inventory::DeviceSchema s;
  s.keys.push_back(sim_keys(kind));
  switch (kind) {
    case Kind::Bmc:
      s.type = "sim-bmc";
      s.summary = "simulated Supermicro IPMI BMC";
      s.capabilities = {"power", "firmware"};
      s.model_required = true;
      s.keys.push_back(key::map("credentials", {key::string("user").req().range(1, 16),
                                                key::secret("password").req()})
                           .describe("the login the inventory wants on the BMC"));
      break;
    case Kind::Phone:
      s.type = "sim-phone";
      s.summary = "simulated Cisco IP phone";
      // tftp-boot: fetches its configuration and loads by TFTP, so DHCP gives it options 150/66.
      s.capabilities = {"firmware", "tftp-boot"};
      s.model_required = true;
      s.keys.push_back(key::string("extension").range(1, 32));
      s.keys.push_back(key::map(
          "sip", {key::string("server").req(), key::integer("port").range(1, 65535).defaults(5060),
                  key::secret("password").req()}));
      break;
    case Kind::Hypervisor:
      s.type = "sim-hypervisor";
      s.summary = "simulated ESXi host";
      s.capabilities = {"hypervisor"};
      s.keys.push_back(key::device_ref("bmc", {"power"}).describe("the BMC that powers the host"));
      s.keys.push_back(key::list(
          "vms",
          key::map(
              "vm",
              {
                  key::string("name").req().range(1, 80),
                  key::choice("state", {"running", "stopped", "absent"}).defaults("running"),
                  key::boolean("autostart").defaults(false),
                  key::list("after", key::string("vm")).describe("VMs that must be running first"),
              })));
      break;
    case Kind::Drive:
      s.type = "sim-drive";
      s.summary = "simulated optical drive";
      s.capabilities = {"firmware"};
      s.model_required = true;
      s.keys.push_back(key::boolean("accept-brick-risk")
                           .describe("consent to flash this drive (a failed flash can brick it)")
                           .defaults(false));
      break;
  }
  return s;
}

const json& sim_params(const sdk::Device& d) {
  static const json empty = json::object();
  auto it = d.params.find("sim");
  return it != d.params.end() && it->is_object() ? *it : empty;
}

std::filesystem::path state_file(sdk::DeviceContext& ctx, const sdk::Device& d) {
  return ctx.plugin_state_dir() / (d.name + ".json");
}

// The device's state, initialised from the inventory's `sim:` block the first time.
Result<json> load(sdk::DeviceContext& ctx, const sdk::Device& d, Kind kind) {
  auto st = load_state(state_file(ctx, d));
  if (!st) return st;
  json& s = *st;
  const json& p = sim_params(d);
  if (!s.contains("version")) s["version"] = p.value("firmware", "");
  if (!s.contains("writes")) s["writes"] = json::object();
  if (!s.contains("fail_used")) s["fail_used"] = json::object();
  if (kind == Kind::Bmc && !s.contains("credentials"))
    s["credentials"] = p.value("default-credentials", true) ? "default" : "custom";
  if (kind == Kind::Bmc && !s.contains("power")) s["power"] = "on";
  if (kind == Kind::Hypervisor && !s.contains("vms")) {
    s["vms"] = json::object();
    for (const auto& v : p.value("vms", json::array()))
      if (v.is_string())
        s["vms"][v.get<std::string>()] = {{"state", "stopped"}, {"autostart", false}};
  }
  return st;
}

// Consumes one injected failure for `action`, if any is left. The count lives in the device's
// state, so a failure injected "twice" fails twice in all, across runs.
std::optional<Error> injected_failure(json& state, const sdk::Device& d, std::string_view action) {
  const json fails = sim_params(d).value("fail", json::array());
  for (std::size_t i = 0; i < fails.size(); ++i) {
    const json& f = fails[i];
    if (f.value("action", "") != action) continue;
    const std::string k = std::to_string(i);
    int used = state["fail_used"].value(k, 0);
    if (used >= f.value("times", 1)) continue;
    state["fail_used"][k] = used + 1;
    auto code = errc_from_name(f.value("error", "internal"));
    return Error(code, "simulated " + f.value("error", std::string("failure")) + " during " +
                           std::string(action));
  }
  return std::nullopt;
}

void count_write(json& state, const std::string& action) {
  state["writes"][action] = state["writes"].value(action, 0) + 1;
}

sdk::Step step(std::string key, std::string action, std::string title, std::string reason,
               bool writes, int weight, const sdk::HopInfo* hop = nullptr) {
  sdk::Step s;
  s.key = std::move(key);
  s.action = std::move(action);
  s.title = std::move(title);
  s.reason = std::move(reason);
  s.writes = writes;
  s.weight = weight;
  if (hop) {
    s.hop = hop->index;
    s.hops = hop->count;
    s.args["to"] = hop->to.text;
    s.args["from"] = hop->from.text;
  }
  return s;
}

}  // namespace

SimPlugin::SimPlugin(Kind kind) : kind_(kind), schema_(make_schema(kind)) {}

std::string_view SimPlugin::cli_noun() const {
  switch (kind_) {
    case Kind::Bmc:
      return "bmc";
    case Kind::Phone:
      return "phone";
    case Kind::Hypervisor:
      return "hypervisor";
    case Kind::Drive:
      return "drive";
  }
  return "sim";
}

void SimPlugin::check_device(const sdk::Device& d, const sdk::Inventory&,
                             inventory::DeviceReport& report) const {
  if (kind_ == Kind::Hypervisor)
    sdk::check_vm_list(d.params.value("vms", json::array()), "/vms", report);
}

Result<std::vector<sdk::Step>> SimPlugin::hop_steps(const sdk::Device& d,
                                                    const sdk::HopInfo& hop) const {
  const std::string v = hop.to.text;
  const std::string of =
      " (hop " + std::to_string(hop.index) + "/" + std::to_string(hop.count) + ")";
  std::vector<sdk::Step> out;
  switch (kind_) {
    case Kind::Bmc: {
      bool factory = hop.release && hop.release->options.is_object() &&
                     hop.release->options.value("reset-to-factory", std::string()) == "recommended";
      out.push_back(step("upload@" + v, "upload", "upload " + v + of, hop.reason, true, 3, &hop));
      out.push_back(step("flash@" + v, "flash",
                         "flash " + v + (factory ? ", reset to factory" : "") + of, hop.reason,
                         true, 10, &hop));
      out.back().args["preserve_config"] = !factory;
      out.push_back(step("wait-online@" + v, "wait-online", "wait for the BMC to come back" + of,
                         "", false, 2, &hop));
      out.push_back(step("verify@" + v, "verify", "verify firmware " + v + of, "", false, 1, &hop));
      if (factory && d.params.contains("credentials"))
        out.push_back(step(
            "reprovision@" + v, "set-credentials", "re-apply the inventory's credentials" + of,
            "factory settings after the flash: ADMIN/ADMIN until re-provisioned", true, 1, &hop));
      break;
    }
    case Kind::Phone:
      out.push_back(step("publish@" + v, "publish", "publish load " + v + " to the phone" + of,
                         hop.reason, true, 1, &hop));
      out.push_back(
          step("trigger@" + v, "trigger", "make the phone fetch its load" + of, "", true, 1, &hop));
      out.push_back(
          step("watch@" + v, "flash", "watch the phone install " + v + of, "", true, 10, &hop));
      out.push_back(step("verify@" + v, "verify", "verify load " + v + of, "", false, 1, &hop));
      break;
    case Kind::Drive:
      if (!d.params.value("accept-brick-risk", false))
        return fail(Errc::PreconditionFailed,
                    "flashing a drive can brick it: set 'accept-brick-risk: true' on the device to "
                    "consent");
      out.push_back(step("identify@" + v, "identify",
                         "identify the drive (expect " + hop.from.text + ")" + of, "", false, 1,
                         &hop));
      out.push_back(
          step("flash@" + v, "flash", "write firmware " + v + of, hop.reason, true, 10, &hop));
      out.push_back(step("wait-online@" + v, "wait-online", "wait for the drive to come back" + of,
                         "", false, 2, &hop));
      out.push_back(step("verify@" + v, "verify", "verify firmware " + v + of, "", false, 1, &hop));
      break;
    case Kind::Hypervisor:
      return fail(Errc::NotSupported,
                  "labctl audits ESXi versions but does not install hypervisor firmware");
  }
  return out;
}

std::vector<sdk::Step> SimPlugin::reconcile_steps(
    const sdk::Device& d, const sdk::Observation& obs,
    const std::vector<sdk::Step>& firmware_steps) const {
  std::vector<sdk::Step> out;
  const bool reprovisioned =
      std::any_of(firmware_steps.begin(), firmware_steps.end(),
                  [](const sdk::Step& s) { return s.action == "set-credentials"; });
  if (kind_ == Kind::Bmc && d.params.contains("credentials") && !reprovisioned &&
      obs.facts.value("credentials", "") == "default") {
    out.push_back(step("set-credentials", "set-credentials",
                       "set the inventory's user and password",
                       "the BMC still has its factory login", true, 1));
  }
  if (kind_ == Kind::Hypervisor) {
    const json have = obs.facts.value("vms", json::object());
    const json wanted = d.params.value("vms", json::array());
    for (const json* vm : sdk::vm_start_order(wanted)) {
      const std::string name = vm->value("name", "");
      const std::string want = vm->value("state", "running");
      const bool exists = have.contains(name);
      const std::string state = exists ? have[name].value("state", "stopped") : "absent";
      if (want == "absent") {
        if (exists) {
          auto s = step("undefine@" + name, "vm-undefine", "remove VM " + name,
                        "absent in the inventory", true, 1);
          s.args["vm"] = name;
          out.push_back(s);
        }
        continue;
      }
      if (!exists) {
        auto s = step("define@" + name, "vm-define", "define VM " + name, "missing on the host",
                      true, 1);
        s.args["vm"] = name;
        out.push_back(s);
      }
      bool want_auto = vm->value("autostart", false);
      if (!exists || have[name].value("autostart", false) != want_auto) {
        auto s = step("autostart@" + name, "vm-autostart",
                      std::string(want_auto ? "enable" : "disable") + " autostart of " + name,
                      "autostart differs from the inventory", true, 1);
        s.args["vm"] = name;
        s.args["autostart"] = want_auto;
        out.push_back(s);
      }
      if (state != want) {
        auto s = step((want == "running" ? "start@" : "stop@") + name,
                      want == "running" ? "vm-start" : "vm-stop",
                      (want == "running" ? "start VM " : "stop VM ") + name,
                      "VM is " + state + ", inventory wants " + want, true, 2);
        s.args["vm"] = name;
        out.push_back(s);
      }
    }
  }
  return out;
}

Result<sdk::Observation> SimPlugin::probe(sdk::DeviceContext& ctx, const sdk::Device& d) {
  const json& p = sim_params(d);
  if (!ctx.sleep_for(std::chrono::milliseconds(p.value("probe-delay", std::int64_t{0}))))
    return fail(Errc::Cancelled, "probe cancelled");
  if (p.value("unreachable", false))
    return fail(Errc::Unreachable, "no answer from " + d.name + " (simulated)");
  auto st = load(ctx, d, kind_);
  if (!st) return std::unexpected(st.error());
  json& s = *st;
  if (auto e = injected_failure(s, d, "probe")) {
    if (auto saved = save_state(state_file(ctx, d), s); !saved)
      return std::unexpected(saved.error());
    return std::unexpected(*e);
  }
  sdk::Observation o;
  o.model = d.model.empty() ? std::string(schema_.type) : d.model;
  o.serial = p.value("serial", "SIM-" + d.name);
  o.version = s.value("version", "");
  if (kind_ == Kind::Bmc) {
    o.facts["credentials"] = s["credentials"];
    o.health["power"] = s["power"];
    const bool loud = p.value("fan-full-speed", false);
    o.health["fans"] =
        json::array({{{"name", "FAN1"}, {"rpm", loud ? 4200 : 1500}, {"max_rpm", 4300}}});
    if (s["credentials"] == "default")
      o.findings.push_back(
          {"critical", "default-credentials", "the BMC accepts the factory login ADMIN/ADMIN"});
    if (loud)
      o.findings.push_back({"warning", "fan-full-speed",
                            "FAN1 runs at 98% of its top speed (a 3-pin fan on a PWM header?)"});
  }
  if (kind_ == Kind::Hypervisor) o.facts["vms"] = s["vms"];
  if (kind_ == Kind::Phone) {
    // The seed's phones would not register with FreePBX's 32-character passwords: compare the
    // configured password with the model's limit from the catalog (its value is never shown).
    const auto* fam = ctx.catalog() ? ctx.catalog()->family_for_model(d.model) : nullptr;
    const auto limit =
        fam && fam->quirks.is_object() ? fam->quirks.value("sip-password-max", 0) : 0;
    if (limit > 0 && d.params.contains("sip")) {
      auto pw = ctx.secret(d, "/sip/password");
      if (!pw)
        o.findings.push_back(
            {"warning", "secret-unavailable", "SIP password: " + pw.error().message()});
      else if (static_cast<int>(pw->size()) > limit)
        o.findings.push_back({"critical", "sip-password-too-long",
                              "SIP password is " + std::to_string(pw->size()) +
                                  " characters; the " + d.model + " accepts at most " +
                                  std::to_string(limit) + " (it will not register)"});
    }
  }
  return o;
}

Result<bool> SimPlugin::step_done(sdk::DeviceContext& ctx, const sdk::Device& d,
                                  const sdk::Step& st) {
  if (sim_params(d).value("unreachable", false))
    return fail(Errc::Unreachable, "no answer from " + d.name + " (simulated)");
  auto loaded = load(ctx, d, kind_);
  if (!loaded) return std::unexpected(loaded.error());
  const json& s = *loaded;
  const std::string to = st.args.value("to", "");
  const std::string version = s.value("version", "");
  const std::string& a = st.action;
  if (a == "upload" || a == "publish") return version == to || s.value("staged", "") == to;
  if (a == "trigger") return version == to || s.value("triggered", "") == to;
  if (a == "flash" || a == "verify" || a == "identify" || a == "wait-online") return version == to;
  if (a == "set-credentials") return s.value("credentials", "") == "custom";
  if (a.starts_with("vm-")) {
    const std::string vm = st.args.value("vm", "");
    const json vms = s.value("vms", json::object());
    if (a == "vm-undefine") return !vms.contains(vm);
    if (!vms.contains(vm)) return false;
    if (a == "vm-define") return true;
    if (a == "vm-start") return vms[vm].value("state", "") == "running";
    if (a == "vm-stop") return vms[vm].value("state", "") == "stopped";
    if (a == "vm-autostart")
      return vms[vm].value("autostart", false) == st.args.value("autostart", false);
  }
  return fail(Errc::NotSupported, "sim: unknown action '" + a + "'");
}

Status SimPlugin::run_step(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& st) {
  const json& p = sim_params(d);
  if (p.value("unreachable", false))
    return fail(Errc::Unreachable, "no answer from " + d.name + " (simulated)");
  const bool is_flash = st.action == "flash";
  auto delay =
      std::chrono::milliseconds(p.value(is_flash ? "flash-delay" : "step-delay", std::int64_t{0}));
  auto loaded = load(ctx, d, kind_);
  if (!loaded) return std::unexpected(loaded.error());
  json s = std::move(*loaded);
  const auto file = state_file(ctx, d);
  if (auto e = injected_failure(s, d, st.action)) {
    if (auto saved = save_state(file, s); !saved) return saved;
    return std::unexpected(*e);
  }
  // The effect lands at the end of the delay, atomically: a kill during the delay leaves the
  // device as it was, as an interrupted transfer would.
  for (int i = 1; i <= 4; ++i) {
    if (!ctx.sleep_for(delay / 4)) return fail(Errc::Cancelled, st.action + " cancelled");
    ctx.progress(static_cast<std::uint64_t>(i), 4, st.action);
  }
  const std::string to = st.args.value("to", "");
  const std::string& a = st.action;
  if (a == "upload" || a == "publish") {
    s["staged"] = to;
  } else if (a == "trigger") {
    s["triggered"] = to;
  } else if (a == "flash") {
    if (kind_ == Kind::Bmc && s.value("staged", "") != to)
      return fail(Errc::PreconditionFailed, "flash " + to + ": no image uploaded");
    s["version"] = to;
    s.erase("staged");
    if (kind_ == Kind::Bmc && !st.args.value("preserve_config", true)) s["credentials"] = "default";
  } else if (a == "verify" || a == "identify" || a == "wait-online") {
    const std::string want = a == "identify" ? st.args.value("from", "") : to;
    if (s.value("version", "") != want && !(a == "identify" && s.value("version", "") == to))
      return fail(
          a == "verify" ? Errc::VerifyMismatch : Errc::PreconditionFailed,
          a + ": device reports " + s.value("version", std::string("?")) + ", expected " + want);
    return {};  // read-only
  } else if (a == "set-credentials") {
    auto pw = ctx.secret(d, "/credentials/password");
    if (!pw) return std::unexpected(pw.error());
    s["credentials"] = "custom";
  } else if (a.starts_with("vm-")) {
    const std::string vm = st.args.value("vm", "");
    json& vms = s["vms"];
    if (a == "vm-define")
      vms[vm] = {{"state", "stopped"}, {"autostart", false}};
    else if (a == "vm-undefine")
      vms.erase(vm);
    else if (!vms.contains(vm))
      return fail(Errc::PreconditionFailed, a + ": VM " + vm + " is not defined");
    else if (a == "vm-start")
      vms[vm]["state"] = "running";
    else if (a == "vm-stop")
      vms[vm]["state"] = "stopped";
    else if (a == "vm-autostart")
      vms[vm]["autostart"] = st.args.value("autostart", false);
  } else {
    return fail(Errc::NotSupported, "sim: unknown action '" + a + "'");
  }
  if (st.writes) count_write(s, a);
  return save_state(file, s);
}

std::vector<sdk::VerbSpec> SimPlugin::verbs() const {
  std::vector<sdk::VerbSpec> v{{"info", "what the device reports", {}, false}};
  if (kind_ == Kind::Bmc)
    v.push_back({"power",
                 "chassis power",
                 {{"action", "status, on, off or cycle", true, {"status", "on", "off", "cycle"}}},
                 true});
  if (kind_ == Kind::Hypervisor) v.push_back({"vms", "the host's VMs and their state", {}, false});
  v.push_back({"writes", "how many writes of each kind the simulated device has seen", {}, false});
  return v;
}

Result<sdk::VerbResult> SimPlugin::run_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                            const std::string& verb, const json& args) {
  auto loaded = load(ctx, d, kind_);
  if (!loaded) return std::unexpected(loaded.error());
  json s = std::move(*loaded);
  sdk::VerbResult r;
  if (verb == "info") {
    auto o = probe(ctx, d);
    if (!o) return std::unexpected(o.error());
    r.data = o->to_json();
    r.text = d.name + ": " + o->model + ", firmware " + o->version + ", serial " + o->serial + "\n";
    return r;
  }
  if (verb == "writes") {
    r.data = s["writes"];
    for (auto& [k, v] : s["writes"].items())
      r.text += k + " " + v.dump() + "\n";
    return r;
  }
  if (verb == "power" && kind_ == Kind::Bmc) {
    const std::string action = args.value("action", "status");
    if (action != "status") {
      s["power"] = action == "off" ? "off" : "on";
      count_write(s, "power-" + action);
      if (auto saved = save_state(state_file(ctx, d), s); !saved)
        return std::unexpected(saved.error());
    }
    r.data = {{"power", s["power"]}};
    r.text = "Chassis Power is " + s["power"].get<std::string>() + "\n";
    return r;
  }
  if (verb == "vms" && kind_ == Kind::Hypervisor) {
    r.data = s["vms"];
    for (auto& [k, v] : s["vms"].items())
      r.text += k + "  " + v.value("state", "") +
                (v.value("autostart", false) ? "  autostart" : "") + "\n";
    return r;
  }
  return Plugin::run_verb(ctx, d, verb, args);
}

}  // namespace labctl::sim
