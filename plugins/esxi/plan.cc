#include "plugins/esxi/plan.h"

#include <algorithm>
#include <map>

#include "common/json_number.h"
#include "common/text.h"
#include "plugins/esxi/vsphere.h"
#include "plugins/sdk/vm_list.h"

namespace labctl::esxi {

using nlohmann::json;

namespace {

std::int64_t ms(const json& j, const char* key, std::int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  return json_number::whole<std::int64_t>(*it).value_or(fallback);
}

bool flag(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::string str(const json& j, const char* key, const std::string& fallback = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

sdk::Step make_step(const std::string& action, const std::string& key_prefix, const VmSpec& vm,
                    std::string title, std::string reason, int weight) {
  sdk::Step s;
  s.key = key_prefix + "@" + vm.name;
  s.action = action;
  s.title = std::move(title);
  s.reason = std::move(reason);
  s.weight = weight;
  s.args["vm"] = vm.name;
  return s;
}

// What a vm-stop needs to decide between waiting and pulling the plug.
void stop_args(sdk::Step& s, const VmSpec& vm) {
  s.args["shutdown_timeout_ms"] = vm.shutdown_timeout_ms;
  s.args["allow_destroy"] = vm.allow_destroy;
  s.args["snapshot_before_destroy"] = vm.snapshot_before_destroy;
  s.timeout = std::chrono::milliseconds(vm.shutdown_timeout_ms + 600'000);
}

}  // namespace

std::string effective_uri(const sdk::Device& d) {
  std::string uri = str(d.params, "uri");
  if (uri.empty() && !d.ip.empty()) uri = "esx://" + d.ip + "/";
  if (flag(d.params, "no-verify", false) && is_vsphere_scheme(uri_scheme(uri)) &&
      uri.find("no_verify=") == std::string::npos)
    uri += (uri.find('?') == std::string::npos ? "?" : "&") + std::string("no_verify=1");
  return uri;
}

HostSpec host_spec(const sdk::Device& d) {
  const json& p = d.params;
  HostSpec h;
  h.uri = effective_uri(d);
  h.no_verify = h.uri.find("no_verify=1") != std::string::npos;
  const json creds = p.value("credentials", json::object());
  h.user = str(creds, "user");
  h.has_password = creds.contains("password");
  h.bmc = str(p, "bmc");
  h.power_wait_ms = ms(p, "power-wait", kDefaultPowerWaitMs);
  h.report_unexpected = str(p, "unexpected-vms", "report") != "ignore";
  VmSpec& dflt = h.defaults;
  dflt.allow_destroy = flag(p, "allow-destroy", false);
  dflt.snapshot_before_destroy = flag(p, "snapshot-before-destroy", false);
  dflt.shutdown_timeout_ms = ms(p, "shutdown-timeout", kDefaultShutdownTimeoutMs);
  for (const auto& v : p.value("vms", json::array())) {
    if (!v.is_object()) continue;
    VmSpec vm;
    vm.name = str(v, "name");
    vm.state = str(v, "state", "running");
    vm.autostart = flag(v, "autostart", false);
    for (const auto& a : v.value("after", json::array()))
      if (a.is_string()) vm.after.push_back(a.get<std::string>());
    vm.template_path = str(v, "template");
    vm.allow_destroy = flag(v, "allow-destroy", dflt.allow_destroy);
    vm.snapshot_before_destroy = flag(v, "snapshot-before-destroy", dflt.snapshot_before_destroy);
    vm.shutdown_timeout_ms = ms(v, "shutdown-timeout", dflt.shutdown_timeout_ms);
    vm.boot_wait_ms = ms(v, "boot-wait", 0);
    h.vms.push_back(std::move(vm));
  }
  return h;
}

VmSpec HostSpec::vm(const std::string& name) const {
  for (const auto& v : vms)
    if (v.name == name) return v;
  VmSpec out = defaults;
  out.name = name;
  return out;
}

std::vector<sdk::Step> plan_vms(const HostSpec& spec, const json& have) {
  // Start order over the specs, through the same ordering the sim hypervisor uses.
  json list = json::array();
  for (const auto& vm : spec.vms)
    list.push_back({{"name", vm.name}, {"after", vm.after}});
  std::map<std::string, const VmSpec*> by_name;
  for (const auto& vm : spec.vms)
    by_name.emplace(vm.name, &vm);
  std::vector<const VmSpec*> order;
  for (const json* j : sdk::vm_start_order(list))
    order.push_back(by_name.at(j->value("name", "")));

  auto observed = [&](const std::string& name) -> const json* {
    auto it = have.is_object() ? have.find(name) : have.end();
    return it == have.end() ? nullptr : &*it;
  };
  std::vector<sdk::Step> out;
  // Down and away, dependents first.
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const VmSpec& vm = **it;
    const json* h = observed(vm.name);
    if (h == nullptr || vm.state == "running") continue;
    const std::string state = h->value("state", "unknown");
    if (state != "stopped") {
      auto s = make_step(kStop, "stop", vm, "stop VM " + vm.name,
                         "VM is " + state + ", the inventory wants it " + vm.state +
                             (vm.state == "absent" ? " (stopped first)" : ""),
                         2);
      stop_args(s, vm);
      out.push_back(std::move(s));
    }
    if (vm.state != "absent") continue;
    if (vm.snapshot_before_destroy)
      out.push_back(make_step(kSnapshot, "snapshot", vm,
                              "snapshot VM " + vm.name + " (" + kSnapshotBeforeUndefine + ")",
                              "snapshot-before-destroy: kept before the VM is removed", 1));
    out.push_back(
        make_step(kUndefine, "undefine", vm, "remove VM " + vm.name, "absent in the inventory", 1));
  }
  // Up, in start order.
  for (const VmSpec* p : order) {
    const VmSpec& vm = *p;
    if (vm.state == "absent") continue;
    const json* h = observed(vm.name);
    if (h == nullptr) {
      auto s = make_step(kDefine, "define", vm, "define VM " + vm.name,
                         vm.template_path.empty()
                             ? "missing on the host, and the inventory gives no template to "
                               "define it from"
                             : "missing on the host; defined from " + vm.template_path,
                         1);
      s.args["template"] = vm.template_path;
      out.push_back(std::move(s));
    }
    const bool autostart = h != nullptr && h->value("autostart", false);
    if (autostart != vm.autostart) {
      auto s =
          make_step(kAutostart, "autostart", vm,
                    std::string(vm.autostart ? "enable" : "disable") + " autostart of " + vm.name,
                    std::string("autostart is ") + (autostart ? "on" : "off") +
                        ", the inventory wants it " + (vm.autostart ? "on" : "off"),
                    1);
      s.args["autostart"] = vm.autostart;
      out.push_back(std::move(s));
    }
    const std::string state = h == nullptr ? "stopped" : h->value("state", "unknown");
    if (vm.state == "running" && state != "running") {
      auto s = make_step(kStart, "start", vm, "start VM " + vm.name,
                         "VM is " + state + ", the inventory wants it running" +
                             (vm.after.empty() ? "" : " (after " + text::join_list(vm.after) + ")"),
                         2);
      s.args["boot_wait_ms"] = vm.boot_wait_ms;
      s.timeout = std::chrono::milliseconds(vm.boot_wait_ms + 600'000);
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace labctl::esxi
