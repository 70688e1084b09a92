// The pure half of the esxi plugin: what a device's params ask for, and the steps from a probe's
// VMs to that (order, reasons, arguments). No libvirt here.
#include "plugins/esxi/plan.h"

#include <gtest/gtest.h>

namespace labctl::esxi {
namespace {

using nlohmann::json;

sdk::Device device(json params, std::string ip = "") {
  sdk::Device d;
  d.name = "esx1";
  d.type = "esxi";
  d.ip = std::move(ip);
  d.params = std::move(params);
  return d;
}

std::vector<std::string> keys(const std::vector<sdk::Step>& steps) {
  std::vector<std::string> out;
  for (const auto& s : steps)
    out.push_back(s.key);
  return out;
}

json have(std::initializer_list<std::tuple<const char*, const char*, bool>> vms) {
  json out = json::object();
  for (const auto& [name, state, autostart] : vms)
    out[name] = {{"state", state}, {"autostart", autostart}};
  return out;
}

TEST(EffectiveUri, FromIpOrUriWithNoVerifyForVsphereOnly) {
  EXPECT_EQ(effective_uri(device(json::object(), "192.168.0.31")), "esx://192.168.0.31/");
  EXPECT_EQ(effective_uri(device({{"no-verify", true}}, "192.168.0.31")),
            "esx://192.168.0.31/?no_verify=1");
  EXPECT_EQ(
      effective_uri(device({{"uri", "vpx://vc/DC/c/h?transport=https"}, {"no-verify", true}})),
      "vpx://vc/DC/c/h?transport=https&no_verify=1");
  EXPECT_EQ(effective_uri(device({{"uri", "test:///default"}, {"no-verify", true}})),
            "test:///default");
  EXPECT_EQ(effective_uri(device(json::object())), "");
}

TEST(HostSpec, DefaultsForAdHocDevicesAndPerVmOverrides) {
  auto bare = host_spec(device({{"uri", "test:///default"}}));
  EXPECT_EQ(bare.power_wait_ms, kDefaultPowerWaitMs);
  EXPECT_TRUE(bare.report_unexpected);
  EXPECT_FALSE(bare.has_password);
  EXPECT_TRUE(bare.vms.empty());

  auto spec = host_spec(device(json::parse(R"({
    "uri": "esx://esx1/", "no-verify": true, "credentials": {"user": "root", "password": {"$secret": {"env": "X"}}},
    "bmc": "server1-bmc", "power-wait": 120000, "unexpected-vms": "ignore",
    "allow-destroy": true, "snapshot-before-destroy": true, "shutdown-timeout": 60000,
    "vms": [{"name": "dns", "autostart": true, "boot-wait": 30000},
            {"name": "sql1", "state": "stopped", "after": ["dns"], "allow-destroy": false,
             "shutdown-timeout": 5000, "template": "/srv/lab/sql1.xml"}]})")));
  EXPECT_EQ(spec.uri, "esx://esx1/?no_verify=1");
  EXPECT_TRUE(spec.no_verify);
  EXPECT_EQ(spec.user, "root");
  EXPECT_TRUE(spec.has_password);
  EXPECT_EQ(spec.bmc, "server1-bmc");
  EXPECT_EQ(spec.power_wait_ms, 120000);
  EXPECT_FALSE(spec.report_unexpected);
  ASSERT_EQ(spec.vms.size(), 2u);
  EXPECT_EQ(spec.vms[0].state, "running");
  EXPECT_TRUE(spec.vms[0].autostart);
  EXPECT_TRUE(spec.vms[0].allow_destroy);  // the host's
  EXPECT_TRUE(spec.vms[0].snapshot_before_destroy);
  EXPECT_EQ(spec.vms[0].shutdown_timeout_ms, 60000);
  EXPECT_EQ(spec.vms[0].boot_wait_ms, 30000);
  EXPECT_FALSE(spec.vms[1].allow_destroy);  // its own
  EXPECT_EQ(spec.vms[1].shutdown_timeout_ms, 5000);
  EXPECT_EQ(spec.vms[1].after, std::vector<std::string>{"dns"});
  EXPECT_EQ(spec.vms[1].template_path, "/srv/lab/sql1.xml");
  // A VM the inventory does not list gets the host's settings.
  const VmSpec other = spec.vm("scratch");
  EXPECT_EQ(other.name, "scratch");
  EXPECT_TRUE(other.allow_destroy);
  EXPECT_TRUE(other.snapshot_before_destroy);
  EXPECT_EQ(other.shutdown_timeout_ms, 60000);
  EXPECT_EQ(spec.vm("sql1").shutdown_timeout_ms, 5000);
}

HostSpec seed() {
  // Listed before the VMs they start after, on purpose: the order comes from `after:`.
  return host_spec(device(json::parse(R"({"uri": "test:///default", "vms": [
    {"name": "vcenter", "autostart": true, "after": ["dns"]},
    {"name": "iis", "after": ["dns", "sql1"]},
    {"name": "sql1", "after": ["dns"]},
    {"name": "dns", "autostart": true},
    {"name": "whs2011", "state": "stopped"},
    {"name": "osx", "template": "/t/osx.xml", "after": ["dns"]},
    {"name": "old", "state": "absent", "snapshot-before-destroy": true},
    {"name": "web", "state": "stopped", "after": ["sql1"]},
    {"name": "db2", "state": "stopped", "after": ["web"]}]})")));
}

TEST(PlanVms, ConvergedHostHasNothingToDo) {
  auto steps = plan_vms(seed(), have({{"vcenter", "running", true},
                                      {"iis", "running", false},
                                      {"sql1", "running", false},
                                      {"dns", "running", true},
                                      {"whs2011", "stopped", false},
                                      {"osx", "running", false},
                                      {"web", "stopped", false},
                                      {"db2", "stopped", false},
                                      {"unlisted", "running", true}}));
  EXPECT_TRUE(steps.empty()) << keys(steps).size();
}

TEST(PlanVms, StopsDependentsFirstThenStartsInAfterOrder) {
  auto steps = plan_vms(seed(), have({{"vcenter", "stopped", false},
                                      {"iis", "stopped", false},
                                      {"sql1", "paused", false},
                                      {"dns", "stopped", false},
                                      {"whs2011", "running", false},
                                      {"old", "running", true},
                                      {"web", "running", false},
                                      {"db2", "running", false}}));
  EXPECT_EQ(keys(steps),
            (std::vector<std::string>{
                // down, in reverse start order: db2 waits for web, so it stops first; old is
                // stopped, kept in a snapshot, removed
                "stop@db2", "stop@web", "stop@old", "snapshot@old", "undefine@old", "stop@whs2011",
                // up: dns first, then what waits for it, iis last (it waits for sql1 too)
                "autostart@dns", "start@dns", "define@osx", "start@osx", "autostart@vcenter",
                "start@vcenter", "start@sql1", "start@iis"}))
      << "order as planned";
}

TEST(PlanVms, StepsCarryWhatTheirExecutorsNeed) {
  auto steps = plan_vms(seed(), have({{"old", "running", false}, {"dns", "paused", false}}));
  auto find = [&](const std::string& key) -> const sdk::Step& {
    for (const auto& s : steps)
      if (s.key == key) return s;
    ADD_FAILURE() << "no step " << key;
    return steps.front();
  };
  const auto& stop = find("stop@old");
  EXPECT_EQ(stop.action, kStop);
  EXPECT_EQ(stop.args["vm"], "old");
  EXPECT_EQ(stop.args["shutdown_timeout_ms"], kDefaultShutdownTimeoutMs);
  EXPECT_EQ(stop.args["allow_destroy"], false);
  EXPECT_EQ(stop.args["snapshot_before_destroy"], true);
  EXPECT_GT(stop.timeout.count(), kDefaultShutdownTimeoutMs);
  EXPECT_EQ(stop.reason, "VM is running, the inventory wants it absent (stopped first)");
  EXPECT_EQ(find("start@dns").reason, "VM is paused, the inventory wants it running");
  const auto& define = find("define@osx");
  EXPECT_EQ(define.args["template"], "/t/osx.xml");
  EXPECT_EQ(define.reason, "missing on the host; defined from /t/osx.xml");
  EXPECT_EQ(find("start@iis").reason,
            "VM is stopped, the inventory wants it running (after dns and sql1)");
  const auto& autostart = find("autostart@vcenter");
  EXPECT_EQ(autostart.args["autostart"], true);
  EXPECT_EQ(autostart.reason, "autostart is off, the inventory wants it on");
  // A VM that is missing and wanted stopped is defined, and not started.
  auto stopped_new =
      plan_vms(host_spec(device(json::parse(R"({"vms": [{"name": "n", "state": "stopped"}]})"))),
               json::object());
  EXPECT_EQ(keys(stopped_new), std::vector<std::string>{"define@n"});
  EXPECT_EQ(stopped_new[0].reason,
            "missing on the host, and the inventory gives no template to define it from");
}

TEST(PlanVms, AbsentVmThatIsGoneNeedsNothing) {
  auto steps = plan_vms(seed(), have({}));
  for (const auto& s : steps)
    EXPECT_EQ(s.key.find("@old"), std::string::npos) << s.key;
}

}  // namespace
}  // namespace labctl::esxi
