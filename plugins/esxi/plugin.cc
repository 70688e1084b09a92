#include "plugins/esxi/plugin.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <set>

#include "common/text.h"
#include "plugins/esxi/domain_xml.h"
#include "plugins/esxi/plan.h"
#include "plugins/esxi/vsphere.h"
#include "plugins/sdk/vm_list.h"

namespace labctl::esxi {

using sdk::json;
namespace key = inventory::key;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

const std::set<std::string> kSchemes = {"esx",      "vpx",      "gsx",       "qemu", "qemu+ssh",
                                        "qemu+tcp", "qemu+tls", "qemu+unix", "test"};

std::int64_t mib(std::uint64_t kib) {
  return static_cast<std::int64_t>(kib / 1024);
}

std::string seconds(std::int64_t ms) {
  return std::to_string((ms + 500) / 1000) + " s";
}

json vm_json(const VmInfo& v) {
  return {{"state", power_state_name(v.state)},
          {"libvirt_state", v.libvirt_state},
          {"autostart", v.autostart},
          {"vcpus", v.vcpus},
          {"memory_mib", mib(v.memory_kib)},
          {"max_memory_mib", mib(v.max_memory_kib)},
          {"uuid", v.uuid}};
}

json host_json(const HostInfo& h, const std::string& uri) {
  return {{"uri", uri},
          {"driver", h.driver},
          {"hostname", h.hostname},
          {"hv_version", h.hv_version},
          {"about", h.about ? h.about->to_json() : json(nullptr)},
          {"node",
           {{"cpu_model", h.node.cpu_model},
            {"cpus", h.node.cpus},
            {"mhz", h.node.mhz},
            {"numa_nodes", h.node.nodes},
            {"sockets", h.node.sockets},
            {"cores", h.node.cores},
            {"threads", h.node.threads},
            {"memory_mib", mib(h.node.memory_kib)}}}};
}

// A device name as a file name: the ad hoc device of `--uri` is named by its URI.
std::string file_name(const std::string& device) {
  std::string out;
  for (char c : device)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '_';
  return out.empty() ? "_" : out;
}

std::string utc_stamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// The VM, or PreconditionFailed when the host does not have it.
Result<Domain> require(Connection& c, const std::string& vm) {
  auto d = c.find(vm);
  if (!d) return fail(d.error());
  if (!*d) return fail(Errc::PreconditionFailed, c.uri() + ": VM '" + vm + "' is not defined");
  return std::move(**d);
}

// Polls the VM's state until `want`, up to `limit`; false when the time ran out. Waits grow from
// 200 ms to 2 s, so a quick guest costs few reads and a slow one no more than one read per 2 s.
Result<bool> wait_state(sdk::DeviceContext& ctx, Domain& d, PowerState want, milliseconds limit) {
  const auto end = Clock::now() + limit;
  milliseconds delay(200);
  while (true) {
    auto st = d.state();
    if (!st) return fail(st.error());
    if (*st == want) return true;
    const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now());
    if (left.count() <= 0) return false;
    if (!ctx.sleep_for(std::min(delay, left)))
      return fail(Errc::Cancelled, "waiting for VM " + d.name() + " cancelled");
    delay = std::min(delay * 2, milliseconds(2000));
  }
}

Status verify_state(Domain& d, PowerState want, const std::string& after) {
  auto st = d.state();
  if (!st) return fail(st.error());
  if (*st != want)
    return fail(Errc::VerifyMismatch, "VM " + d.name() + " is " +
                                          std::string(power_state_name(*st)) + " after " + after +
                                          ", expected " + std::string(power_state_name(want)));
  return {};
}

// Running, from stopped (start) or paused (resume), read back; then the VM's boot wait, so the
// VMs that start after it find it serving.
Status start_vm(sdk::DeviceContext& ctx, Connection& c, const std::string& vm,
                std::int64_t boot_wait_ms) {
  auto d = require(c, vm);
  if (!d) return fail(d.error());
  auto st = d->state();
  if (!st) return fail(st.error());
  if (*st == PowerState::Running) return {};
  if (auto r = *st == PowerState::Paused ? d->resume() : d->create(); !r) return r;
  if (auto r = verify_state(*d, PowerState::Running, "start"); !r) return r;
  ctx.log("VM " + vm + " started");
  if (boot_wait_ms > 0) {
    ctx.progress(0, static_cast<std::uint64_t>(boot_wait_ms), "boot wait for " + vm);
    if (!ctx.sleep_for(milliseconds(boot_wait_ms)))
      return fail(Errc::Cancelled, "boot wait for VM " + vm + " cancelled");
  }
  return {};
}

struct StopPolicy {
  std::int64_t timeout_ms = kDefaultShutdownTimeoutMs;
  bool allow_destroy = false;
  bool snapshot_before_destroy = false;
  bool force = false;  // straight to a hard power-off (the operator said so)
};

// Stopped: a graceful shutdown (ACPI, or VMware Tools on ESXi) and a bounded wait; a hard
// power-off only when the policy allows it, after a snapshot when asked; read back.
Status stop_vm(sdk::DeviceContext& ctx, Connection& c, const std::string& vm,
               const StopPolicy& policy) {
  auto found = c.find(vm);
  if (!found) return fail(found.error());
  if (!*found) return {};  // nothing to stop
  Domain& d = **found;
  auto st = d.state();
  if (!st) return fail(st.error());
  if (*st == PowerState::Stopped) return {};
  std::string why = "was not asked to shut down";
  if (!policy.force) {
    auto r = d.shutdown();
    if (!r && (r.error().code() == Errc::Unreachable || r.error().code() == Errc::Timeout ||
               r.error().code() == Errc::AuthFailed))
      return r;
    if (r) {
      ctx.progress(0, static_cast<std::uint64_t>(policy.timeout_ms), "shutting down " + vm);
      auto down = wait_state(ctx, d, PowerState::Stopped, milliseconds(policy.timeout_ms));
      if (!down) return fail(down.error());
      if (*down) {
        ctx.log("VM " + vm + " shut down");
        return {};
      }
      why = "did not shut down within " + seconds(policy.timeout_ms) +
            " (the guest must act on ACPI, or run VMware Tools on ESXi)";
    } else {
      why = "cannot be shut down gracefully: " + r.error().message();
    }
    if (!policy.allow_destroy)
      return fail(Errc::PreconditionFailed,
                  "VM " + vm + " " + why +
                      "; allow-destroy: true lets labctl power it off hard (labctl hypervisor "
                      "NAME stop VM force does it once)");
  }
  if (policy.snapshot_before_destroy) {
    const std::string snap = "labctl-before-destroy-" + utc_stamp();
    if (auto r = d.snapshot(snap, "taken by labctl before a hard power-off"); !r) return r;
    ctx.log("VM " + vm + ": snapshot " + snap + " taken");
  }
  if (auto r = d.destroy(); !r) return r;
  if (auto r = verify_state(d, PowerState::Stopped, "a hard power-off"); !r) return r;
  ctx.log("VM " + vm + " powered off hard (" + why + ")");
  return {};
}

Status define_vm(sdk::DeviceContext& ctx, Connection& c, const std::string& vm,
                 const std::string& template_path) {
  auto found = c.find(vm);
  if (!found) return fail(found.error());
  if (*found) return {};
  if (template_path.empty())
    return fail(Errc::PreconditionFailed,
                "VM " + vm +
                    " is not on the host and the inventory gives no template: add "
                    "`template: FILE` (domain XML) to the VM, or define it by hand");
  auto xml = read_template(template_path, vm);
  if (!xml) return fail(xml.error());
  auto d = c.define(vm, *xml);
  if (!d) return fail(d.error());
  auto again = c.find(vm);
  if (!again) return fail(again.error());
  if (!*again)
    return fail(Errc::VerifyMismatch,
                "VM " + vm + " is not on the host after defining it from " + template_path);
  ctx.log("VM " + vm + " defined from " + template_path);
  return {};
}

Status undefine_vm(sdk::DeviceContext& ctx, Connection& c, const std::string& vm) {
  auto found = c.find(vm);
  if (!found) return fail(found.error());
  if (!*found) return {};
  auto st = (*found)->state();
  if (!st) return fail(st.error());
  if (*st != PowerState::Stopped)
    return fail(Errc::PreconditionFailed,
                "VM " + vm + " is " + std::string(power_state_name(*st)) + ": stop it first");
  if (auto r = (*found)->undefine(); !r) return r;
  auto again = c.find(vm);
  if (!again) return fail(again.error());
  if (*again) return fail(Errc::VerifyMismatch, "VM " + vm + " is still defined after removing it");
  ctx.log("VM " + vm + " removed");
  return {};
}

Status autostart_vm(Connection& c, const std::string& vm, bool on) {
  auto d = require(c, vm);
  if (!d) return fail(d.error());
  auto now = d->autostart();
  if (!now) return fail(now.error());
  if (*now == on) return {};
  if (auto r = d->set_autostart(on); !r) return r;
  auto again = d->autostart();
  if (!again) return fail(again.error());
  if (*again != on)
    return fail(Errc::VerifyMismatch,
                "VM " + vm + ": autostart reads " + (*again ? "on" : "off") + " after setting it");
  return {};
}

// Takes snapshot `snap` unless it exists (`exists_ok`) or fails saying so.
Status snapshot_vm(Connection& c, const std::string& vm, const std::string& snap,
                   const std::string& description, bool exists_ok) {
  auto d = require(c, vm);
  if (!d) return fail(d.error());
  auto exists = d->has_snapshot(snap);
  if (!exists) return fail(exists.error());
  if (*exists) {
    if (exists_ok) return {};
    return fail(Errc::PreconditionFailed, "VM " + vm + " already has a snapshot '" + snap + "'");
  }
  if (auto r = d->snapshot(snap, description); !r) return r;
  auto again = d->has_snapshot(snap);
  if (!again) return fail(again.error());
  if (!*again)
    return fail(Errc::VerifyMismatch, "VM " + vm + ": snapshot '" + snap + "' is not there");
  return {};
}

Result<sdk::Observation> observe(Connection& c, const sdk::Device& d) {
  auto host = c.host();
  if (!host) return fail(host.error());
  auto vms = c.vms();
  if (!vms) return fail(vms.error());
  const HostSpec spec = host_spec(d);
  sdk::Observation o;
  o.model = host->about ? host->about->name : host->driver;
  o.version = host->about ? host->about->version_text() : host->hv_version;
  o.facts = host_json(*host, c.uri());
  o.facts["vms"] = json::object();
  int running = 0;
  for (const auto& v : *vms) {
    o.facts["vms"][valid_utf8(v.name)] = vm_json(v);
    running += v.state == PowerState::Running;
  }
  o.health = {{"vms", vms->size()},
              {"vms_running", running},
              {"cpus", host->node.cpus},
              {"memory_mib", mib(host->node.memory_kib)}};
  if (!host->about_error.empty()) {
    o.facts["about_error"] = host->about_error;
    o.findings.push_back({"warning", "build-unknown",
                          "the vSphere API did not say which build this is (" + host->about_error +
                              "); the version is libvirt's " + host->hv_version});
  }
  if (spec.no_verify)
    o.findings.push_back({"warning", "tls-not-verified",
                          "the TLS certificate of " + c.uri() +
                              " is not verified (no-verify): whoever answers in its place gets "
                              "the login"});
  if (spec.report_unexpected) {
    std::set<std::string> listed;
    for (const auto& vm : spec.vms)
      listed.insert(vm.name);
    for (const auto& v : *vms)
      if (!listed.count(v.name))
        o.findings.push_back({"warning", "unexpected-vm",
                              "VM '" + valid_utf8(v.name) + "' (" +
                                  std::string(power_state_name(v.state)) +
                                  ") is on the host but not in the inventory"});
  }
  return o;
}

std::string describe(const sdk::Device& d, const sdk::Observation& o) {
  const json& node = o.facts.value("node", json::object());
  std::string t = d.name + ": " + o.model + " " + o.version + " (" +
                  o.facts.value("uri", std::string()) + "), host " +
                  o.facts.value("hostname", std::string()) + "\n";
  t += "  " + std::to_string(node.value("cpus", 0)) + " CPUs (" +
       node.value("cpu_model", std::string()) + ", " + std::to_string(node.value("mhz", 0)) +
       " MHz; " + std::to_string(node.value("sockets", 0)) + " sockets x " +
       std::to_string(node.value("cores", 0)) + " cores x " +
       std::to_string(node.value("threads", 0)) + " threads), " +
       std::to_string(node.value("memory_mib", 0)) + " MiB\n";
  t += "  VMs: " + std::to_string(o.health.value("vms", 0)) + " (" +
       std::to_string(o.health.value("vms_running", 0)) + " running)\n";
  for (const auto& f : o.findings)
    t += "  " + f.severity + ": " + f.message + "\n";
  return t;
}

std::string vm_table(const json& vms) {
  std::string t;
  char line[256];
  std::snprintf(line, sizeof line, "%-24s %-8s %-9s %5s %10s\n", "NAME", "STATE", "AUTOSTART",
                "VCPUS", "MEMORY");
  t += line;
  for (const auto& v : vms) {
    std::snprintf(line, sizeof line, "%-24s %-8s %-9s %5d %6lld MiB\n",
                  v.value("name", std::string()).c_str(), v.value("state", std::string()).c_str(),
                  v.value("autostart", false) ? "yes" : "no", v.value("vcpus", 0),
                  static_cast<long long>(v.value("memory_mib", std::int64_t{0})));
    t += line;
  }
  return t;
}

void write_calls(const std::filesystem::path& file, const std::string& device,
                 const std::string& uri, const CallStats& stats) {
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  json j = stats.to_json();
  j["device"] = device;
  j["uri"] = uri;
  j["pid"] = static_cast<std::int64_t>(::getpid());
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return;
    out << j.dump(1) << "\n";
    if (!out) return;
  }
  std::filesystem::rename(tmp, file, ec);
}

}  // namespace

EsxiPlugin::EsxiPlugin() {
  prepare_libvirt_environment();
  schema_.type = "esxi";
  schema_.summary =
      "VMware ESXi host through libvirt (also vCenter, KVM, libvirt's test driver): VMs, "
      "autostart, start order, host power through its BMC";
  schema_.capabilities = {"hypervisor"};
  schema_.keys.push_back(key::string("uri").range(1, 2048).describe(
      "libvirt URI: esx://HOST[:PORT]/, vpx://VCENTER/DC/CLUSTER/HOST, qemu:///system, "
      "test:///ABS/node.xml (default esx://IP/)"));
  schema_.keys.push_back(
      key::boolean("no-verify")
          .defaults(false)
          .describe(
              "do not verify the host's TLS certificate (no_verify=1; reported as a finding)"));
  schema_.keys.push_back(
      key::map("credentials", {key::string("user").req().range(1, 128).describe("e.g. root"),
                               key::secret("password").req()})
          .describe("the login libvirt's credentials callback answers with"));
  schema_.keys.push_back(
      key::device_ref("bmc", {"power"}).describe("the BMC that powers the host (power verb)"));
  schema_.keys.push_back(
      key::duration("power-wait")
          .defaults(kDefaultPowerWaitMs)
          .describe("how long power on/cycle waits for the hypervisor to answer again"));
  schema_.keys.push_back(key::duration("shutdown-timeout")
                             .defaults(kDefaultShutdownTimeoutMs)
                             .describe("how long a graceful VM shutdown may take (per VM too)"));
  schema_.keys.push_back(
      key::boolean("allow-destroy")
          .defaults(false)
          .describe("power a VM off hard when its graceful shutdown times out (per VM too)"));
  schema_.keys.push_back(key::boolean("snapshot-before-destroy")
                             .defaults(false)
                             .describe("snapshot a VM before a hard power-off or its removal "
                                       "(per VM too)"));
  schema_.keys.push_back(key::choice("unexpected-vms", {"report", "ignore"})
                             .defaults("report")
                             .describe("VMs on the host that the inventory does not list"));
  schema_.keys.push_back(key::list(
      "vms",
      key::map("vm",
               {
                   key::string("name").req().range(1, 80),
                   key::choice("state", {"running", "stopped", "absent"}).defaults("running"),
                   key::boolean("autostart").defaults(false),
                   key::list("after", key::string("vm"))
                       .describe("VMs of this host that must be running first"),
                   key::path("template").describe("domain XML to define the VM from when missing"),
                   key::boolean("allow-destroy"),
                   key::boolean("snapshot-before-destroy"),
                   key::duration("shutdown-timeout"),
                   key::duration("boot-wait")
                       .defaults(0)
                       .describe("after starting it, wait this long before the next VM starts"),
               })));
}

EsxiPlugin::~EsxiPlugin() {
  std::lock_guard lock(mu_);
  for (auto& [name, s] : sessions_) {
    if (s.conn) s.closed.merge(s.conn->stats());
    s.conn.reset();
    if (!s.calls_file.empty()) write_calls(s.calls_file, name, s.uri, s.closed);
  }
}

void EsxiPlugin::check_device(const sdk::Device& d, const sdk::Inventory&,
                              inventory::DeviceReport& report) const {
  const json vms = d.params.value("vms", json::array());
  sdk::check_vm_list(vms, "/vms", report);
  const std::string given = d.params.value("uri", std::string());
  const std::string uri = effective_uri(d);
  const std::string at = given.empty() ? "" : "/uri";
  if (uri.empty()) {
    report.error("", "give uri: (a libvirt URI) or ip: (then esx://IP/ is used)");
    return;
  }
  const std::string scheme = uri_scheme(uri);
  if (!kSchemes.count(scheme)) {
    report.error(at, "'" + uri +
                         "' is not a libvirt URI this plugin uses (esx://, vpx://, gsx://, "
                         "qemu://, qemu+ssh://, test:///)");
    return;
  }
  if (given.find("no_verify") != std::string::npos)
    report.error(at,
                 "write `no-verify: true` instead of no_verify in the URI, so the audit reports "
                 "the unverified certificate");
  if (d.params.value("no-verify", false) && !is_vsphere_scheme(scheme))
    report.warning("/no-verify", "no-verify only concerns esx://, vpx:// and gsx:// URIs");
  if (is_vsphere_scheme(scheme)) {
    if (!vsphere_endpoint(uri)) report.error(at, "'" + uri + "' names no host");
    if (!d.params.contains("credentials"))
      report.error("", scheme +
                           ":// needs credentials: {user: ..., password: ...} (ad hoc: --user "
                           "and --password-env)");
  }
  if (scheme == "test") {
    const std::string path = uri.substr(std::string("test://").size());
    if (path != "/default" && !std::filesystem::is_regular_file(path))
      report.error(at, "test driver node file '" + path + "' does not exist");
  }
  for (std::size_t i = 0; i < vms.size(); ++i) {
    const json& vm = vms[i];
    const std::string p = "/vms/" + std::to_string(i);
    const std::string file = vm.value("template", std::string());
    if (file.empty()) continue;
    if (vm.value("state", std::string("running")) == "absent") {
      report.warning(p + "/template", "VM '" + vm.value("name", std::string()) +
                                          "' is absent: its template is not used");
      continue;
    }
    if (auto t = read_template(file, vm.value("name", std::string())); !t)
      report.error(p + "/template", t.error().message());
  }
}

Result<std::vector<sdk::Step>> EsxiPlugin::hop_steps(const sdk::Device& d,
                                                     const sdk::HopInfo& hop) const {
  return fail(Errc::NotSupported, "labctl audits ESXi versions but does not install them: bring " +
                                      d.name + " to " + hop.to.display() +
                                      " by hand (or change firmware.target); its VMs are left "
                                      "alone until then");
}

std::vector<sdk::Step> EsxiPlugin::reconcile_steps(const sdk::Device& d,
                                                   const sdk::Observation& obs,
                                                   const std::vector<sdk::Step>&) const {
  return plan_vms(host_spec(d), obs.facts.value("vms", json::object()));
}

EsxiPlugin::Session& EsxiPlugin::session(const std::string& device) {
  std::lock_guard lock(mu_);
  return sessions_[device];
}

Result<Connection*> EsxiPlugin::connect(sdk::DeviceContext& ctx, const sdk::Device& d) {
  const HostSpec spec = host_spec(d);
  if (spec.uri.empty())
    return fail(Errc::PreconditionFailed, d.name + ": no uri: and no ip: in the inventory");
  Session& s = session(d.name);
  if (s.conn && !s.conn->broken() && s.uri == spec.uri && s.user == spec.user) return s.conn.get();
  disconnect(d.name);
  ConnectOptions o;
  o.uri = spec.uri;
  o.user = spec.user;
  if (spec.has_password) {
    auto pw = ctx.secret(d, "/credentials/password");
    if (!pw) return fail(std::move(pw.error()).context(d.name + ": credentials.password"));
    o.password = std::move(*pw);
  }
  s.calls_file = ctx.plugin_state_dir() / "calls" / (file_name(d.name) + ".json");
  s.uri = spec.uri;
  s.user = spec.user;
  auto c = Connection::open(o);
  if (!c) return fail(std::move(c.error()).context(d.name));
  s.conn = std::move(*c);
  return s.conn.get();
}

void EsxiPlugin::disconnect(const std::string& device) {
  Session& s = session(device);
  if (!s.conn) return;
  s.closed.merge(s.conn->stats());
  s.conn.reset();
}

CallStats EsxiPlugin::calls(const std::string& device) const {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(device);
  if (it == sessions_.end()) return {};
  CallStats out = it->second.closed;
  if (it->second.conn) out.merge(it->second.conn->stats());
  return out;
}

template <class F>
auto EsxiPlugin::with_connection(sdk::DeviceContext& ctx, const sdk::Device& d, F&& f)
    -> decltype(f(std::declval<Connection&>())) {
  auto c = connect(ctx, d);
  if (!c) return std::unexpected(c.error());
  auto r = f(**c);
  if ((*c)->broken()) disconnect(d.name);
  if (!r) return std::unexpected(std::move(r.error()).context(d.name));
  return r;
}

Result<sdk::Observation> EsxiPlugin::probe(sdk::DeviceContext& ctx, const sdk::Device& d) {
  return with_connection(ctx, d, [&](Connection& c) { return observe(c, d); });
}

Result<bool> EsxiPlugin::step_done(sdk::DeviceContext& ctx, const sdk::Device& d,
                                   const sdk::Step& step) {
  const std::string vm = step.args.value("vm", std::string());
  const std::string& a = step.action;
  return with_connection(ctx, d, [&](Connection& c) -> Result<bool> {
    auto found = c.find(vm);
    if (!found) return fail(found.error());
    if (a == kUndefine) return !*found;
    if (a == kDefine) return found->has_value();
    if (!*found) return a == kStop || a == kSnapshot;  // nothing left to stop or keep
    Domain& dom = **found;
    if (a == kSnapshot) return dom.has_snapshot(kSnapshotBeforeUndefine);
    if (a == kAutostart) {
      auto on = dom.autostart();
      if (!on) return fail(on.error());
      return *on == step.args.value("autostart", false);
    }
    if (a == kStart || a == kStop) {
      auto st = dom.state();
      if (!st) return fail(st.error());
      return *st == (a == kStart ? PowerState::Running : PowerState::Stopped);
    }
    return fail(Errc::NotSupported, "no executor for step '" + a + "'");
  });
}

Status EsxiPlugin::run_step(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step) {
  const std::string vm = step.args.value("vm", std::string());
  const std::string& a = step.action;
  return with_connection(ctx, d, [&](Connection& c) -> Status {
    if (a == kDefine) return define_vm(ctx, c, vm, step.args.value("template", std::string()));
    if (a == kUndefine) return undefine_vm(ctx, c, vm);
    if (a == kAutostart) return autostart_vm(c, vm, step.args.value("autostart", false));
    if (a == kStart) return start_vm(ctx, c, vm, step.args.value("boot_wait_ms", std::int64_t{0}));
    if (a == kStop) {
      StopPolicy p;
      p.timeout_ms = step.args.value("shutdown_timeout_ms", kDefaultShutdownTimeoutMs);
      p.allow_destroy = step.args.value("allow_destroy", false);
      p.snapshot_before_destroy = step.args.value("snapshot_before_destroy", false);
      return stop_vm(ctx, c, vm, p);
    }
    if (a == kSnapshot) {
      auto found = c.find(vm);
      if (!found) return fail(found.error());
      if (!*found) return {};
      return snapshot_vm(c, vm, kSnapshotBeforeUndefine, "taken by labctl before removing the VM",
                         true);
    }
    return fail(Errc::NotSupported, "no executor for step '" + a + "'");
  });
}

std::vector<sdk::VerbSpec> EsxiPlugin::verbs() const {
  return {
      {"info", "product, version and build, CPUs, memory, VM count and findings", {}, false},
      {"vms", "every VM with state, autostart, vCPUs and memory", {}, false},
      {"start", "start (or resume) a VM", {{"vm", "the VM's name", true, {}}}, true},
      {"stop",
       "shut a VM down gracefully (the inventory's shutdown-timeout), or power it off hard",
       {{"vm", "the VM's name", true, {}},
        {"how", "graceful (default) or force (hard power-off now)", false, {"graceful", "force"}}},
       true},
      {"snapshot",
       "take a snapshot of a VM",
       {{"vm", "the VM's name", true, {}}, {"name", "the snapshot's name", true, {}}},
       true},
      {"autostart",
       "turn a VM's autostart on or off",
       {{"vm", "the VM's name", true, {}}, {"setting", "on or off", true, {"on", "off"}}},
       true},
      {"power",
       "the host's power through its BMC (bmc:); on and cycle wait until the hypervisor answers",
       {{"action", "status, on, off or cycle", true, {"status", "on", "off", "cycle"}}},
       true},
  };
}

Result<sdk::VerbResult> EsxiPlugin::power_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                               const std::string& action) {
  const HostSpec spec = host_spec(d);
  if (spec.bmc.empty())
    return fail(Errc::PreconditionFailed,
                d.name + " has no bmc: in the inventory: labctl cannot power its host");
  auto bmc = ctx.run_device_verb(spec.bmc, "power", {{"action", action}});
  if (!bmc)
    return fail(
        std::move(bmc.error()).context(d.name + ": power " + action + " through " + spec.bmc));
  sdk::VerbResult r;
  r.data = {{"bmc", spec.bmc}, {"action", action}, {"bmc_result", bmc->data}};
  r.text = d.name + ": power " + action + " through " + spec.bmc + ": " + bmc->text;
  if (action == "off") {
    disconnect(d.name);
    return r;
  }
  if (action == "status") {
    auto probe = with_connection(ctx, d, [](Connection& c) { return c.host(); });
    r.data["answers"] = static_cast<bool>(probe);
    r.text += d.name + (probe ? " answers" : " does not answer: " + probe.error().message()) + "\n";
    return r;
  }
  // on / cycle: the old connection went down with the host; wait for a new one to answer.
  disconnect(d.name);
  const auto t0 = Clock::now();
  const auto limit = milliseconds(spec.power_wait_ms);
  milliseconds delay(500);
  for (int attempt = 1;; ++attempt) {
    auto answer = with_connection(ctx, d, [](Connection& c) { return c.host(); });
    const auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
    if (answer) {
      r.data["answered_after_ms"] = waited.count();
      r.data["attempts"] = attempt;
      r.text += d.name + " answers again after " + seconds(waited.count()) + "\n";
      return r;
    }
    if (answer.error().code() == Errc::AuthFailed) return fail(answer.error());
    if (waited >= limit)
      return fail(Errc::Timeout, d.name + " did not answer within " + seconds(spec.power_wait_ms) +
                                     " after power " + action +
                                     " (last: " + answer.error().message() + ")");
    ctx.progress(static_cast<std::uint64_t>(waited.count()),
                 static_cast<std::uint64_t>(limit.count()), "waiting for " + d.name);
    if (!ctx.sleep_for(std::min(delay, limit - waited)))
      return fail(Errc::Cancelled, "waiting for " + d.name + " cancelled");
    delay = std::min(delay * 2, milliseconds(5000));
  }
}

Result<sdk::VerbResult> EsxiPlugin::run_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                             const std::string& verb, const json& args) {
  sdk::VerbResult r;
  const std::string vm = args.value("vm", std::string());
  if (verb == "info") {
    auto o = probe(ctx, d);
    if (!o) return fail(o.error());
    r.data = o->to_json();
    r.text = describe(d, *o);
    return r;
  }
  if (verb == "power") return power_verb(ctx, d, args.value("action", std::string("status")));
  if (verb == "vms") {
    auto list = with_connection(ctx, d, [](Connection& c) { return c.vms(); });
    if (!list) return fail(list.error());
    r.data = json::array();
    for (const auto& v : *list) {
      json j = vm_json(v);
      j["name"] = valid_utf8(v.name);
      r.data.push_back(std::move(j));
    }
    r.text = vm_table(r.data);
    return r;
  }
  const VmSpec settings = host_spec(d).vm(vm);
  Status done = [&]() -> Status {
    if (verb == "start")
      return with_connection(ctx, d, [&](Connection& c) { return start_vm(ctx, c, vm, 0); });
    if (verb == "stop") {
      StopPolicy p;
      p.timeout_ms = settings.shutdown_timeout_ms;
      p.allow_destroy = settings.allow_destroy;
      p.snapshot_before_destroy = settings.snapshot_before_destroy;
      p.force = args.value("how", std::string("graceful")) == "force";
      return with_connection(ctx, d, [&](Connection& c) { return stop_vm(ctx, c, vm, p); });
    }
    if (verb == "snapshot")
      return with_connection(ctx, d, [&](Connection& c) {
        return snapshot_vm(c, vm, args.value("name", std::string()), "taken by labctl", false);
      });
    if (verb == "autostart")
      return with_connection(ctx, d, [&](Connection& c) {
        return autostart_vm(c, vm, args.value("setting", std::string()) == "on");
      });
    return fail(Errc::NotSupported, "hypervisor verb '" + verb + "'");
  }();
  if (!done) return fail(done.error());
  auto now = with_connection(ctx, d, [&](Connection& c) -> Result<VmInfo> {
    auto dom = require(c, vm);
    if (!dom) return fail(dom.error());
    return dom->info();
  });
  if (!now) return fail(now.error());
  r.data = vm_json(*now);
  r.data["name"] = vm;
  r.data["verb"] = verb;
  r.text = d.name + ": " + verb + " " + vm + ": done; VM is " +
           std::string(power_state_name(now->state)) +
           (now->autostart ? ", autostart on" : ", autostart off") + "\n";
  return r;
}

}  // namespace labctl::esxi
