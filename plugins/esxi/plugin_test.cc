// The esxi plugin in process against libvirt's test driver holding the seed's host
// (tests/data/esxi/seed-node.xml: every VM shut off, an old test VM running, one VM the inventory
// does not list). The test driver keeps its state per connection, and the plugin keeps one
// connection per device for the process, so probe -> plan -> steps -> probe again -> plan again
// all see the same host: that is how "a converged host gets zero write calls" is shown here,
// counted by the connection itself.
#include "plugins/esxi/plugin.h"

#include <gtest/gtest.h>

#include <fstream>

#include "inventory/loader.h"
#include "plugins/esxi/testing.h"
#include "plugins/registry.h"

namespace labctl::esxi {
namespace {

namespace fs = std::filesystem;
using sdk::json;

std::string inventory_text(const std::string& uri, const std::string& extra = "") {
  return "version: 1\nsite: esxi-test\ndevices:\n"
         "  - name: server1-bmc\n"
         "    type: sim-bmc\n"
         "    model: X8SIL-F\n"
         "    credentials: {user: labadmin, password: {env: LABCTL_ESXI_TEST_UNSET}}\n"
         "  - name: esx1\n"
         "    type: esxi\n"
         "    uri: " +
         uri +
         "\n"
         "    bmc: server1-bmc\n" +
         extra +
         "    vms:\n"
         "      - {name: vcenter, autostart: true, after: [dns]}\n"
         "      - {name: iis, after: [dns, sql1]}\n"
         "      - {name: sql1, after: [dns]}\n"
         "      - {name: dns, autostart: true}\n"
         "      - {name: pfsense, autostart: true}\n"
         "      - {name: trixbox, after: [dns]}\n"
         "      - {name: whs2011, state: stopped}\n"
         "      - {name: osx-server, template: osx-server.xml, after: [dns]}\n"
         "      - {name: old-test, state: absent, snapshot-before-destroy: true}\n";
}

class EsxiPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = fs::temp_directory_path() /
             ("labctl-esxi-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(state_);
    fs::create_directories(state_);
    ctx_ = std::make_unique<testing::Context>(state_ / "plugins" / "esxi");
    registry_ = std::make_unique<plugins::Registry>();
    plugins::register_builtin_plugins(*registry_);
    plugin_ = dynamic_cast<EsxiPlugin*>(registry_->find("esxi"));
    ASSERT_NE(plugin_, nullptr);
    load(inventory_text(testing::seed_uri()));
  }
  void TearDown() override { fs::remove_all(state_); }

  void load(const std::string& text) {
    inventory::LoadOptions o;
    o.catalog = testing::source("catalog/catalog.yaml");
    auto r = inventory::load_inventory_text(text, "esxi-test.yaml",
                                            testing::source("tests/data/esxi"), *registry_, o);
    std::string diags;
    for (const auto& d : r.diags.sorted())
      diags += d.format() + "\n";
    ASSERT_TRUE(r.inventory) << diags;
    inv_ = std::move(*r.inventory);
    esx1_ = inv_.device("esx1");
    ASSERT_NE(esx1_, nullptr);
  }

  sdk::Observation probe() {
    auto o = plugin_->probe(*ctx_, *esx1_);
    EXPECT_TRUE(o) << o.error().message();
    return o ? *o : sdk::Observation{};
  }

  std::vector<sdk::Step> plan(const sdk::Observation& o) {
    return plugin_->reconcile_steps(*esx1_, o, {});
  }

  CallStats calls() { return plugin_->calls("esx1"); }

  fs::path state_;
  std::unique_ptr<testing::Context> ctx_;
  std::unique_ptr<plugins::Registry> registry_;
  EsxiPlugin* plugin_ = nullptr;
  inventory::Inventory inv_;
  const inventory::Device* esx1_ = nullptr;
};

std::vector<std::string> keys(const std::vector<sdk::Step>& steps) {
  std::vector<std::string> out;
  for (const auto& s : steps)
    out.push_back(s.key);
  return out;
}

// Positions of each VM's first write of `call` in the write log.
std::map<std::string, std::size_t> first(const CallStats& s, const std::string& call) {
  std::map<std::string, std::size_t> out;
  for (std::size_t i = 0; i < s.write_log.size(); ++i)
    if (s.write_log[i].call == call) out.emplace(s.write_log[i].vm, i);
  return out;
}

TEST_F(EsxiPluginTest, ProbeReportsHostVmsAndUnexpectedOnes) {
  auto o = probe();
  EXPECT_EQ(o.model, "TEST");
  EXPECT_EQ(o.version, "0.0.2");
  EXPECT_EQ(o.facts["driver"], "TEST");
  EXPECT_EQ(o.facts["node"]["cpus"], 8);
  EXPECT_EQ(o.facts["node"]["memory_mib"], 32768);
  EXPECT_EQ(o.health["vms"], 9);
  EXPECT_EQ(o.health["vms_running"], 1);
  const json& vms = o.facts["vms"];
  ASSERT_EQ(vms.size(), 9u);
  EXPECT_EQ(vms["old-test"]["state"], "running");
  EXPECT_EQ(vms["vcenter"]["state"], "stopped");
  EXPECT_EQ(vms["vcenter"]["vcpus"], 4);
  EXPECT_EQ(vms["vcenter"]["memory_mib"], 12288);
  EXPECT_EQ(vms["dns"]["autostart"], false);
  ASSERT_EQ(o.findings.size(), 1u);
  EXPECT_EQ(o.findings[0].code, "unexpected-vm");
  EXPECT_NE(o.findings[0].message.find("'scratch'"), std::string::npos);
  EXPECT_EQ(calls().writes, 0u);
}

TEST_F(EsxiPluginTest, DriftBecomesStepsInStartOrder) {
  auto steps = plan(probe());
  EXPECT_EQ(
      keys(steps),
      (std::vector<std::string>{
          "stop@old-test", "snapshot@old-test", "undefine@old-test",  // away first
          "autostart@dns", "start@dns",                               // the DNS VM first
          "autostart@pfsense", "start@pfsense", "start@trixbox", "define@osx-server",
          "start@osx-server", "autostart@vcenter", "start@vcenter", "start@sql1", "start@iis"}));
  for (const auto& s : steps)
    EXPECT_TRUE(s.writes) << s.key;
}

TEST_F(EsxiPluginTest, ReconcilesThenAConvergedHostGetsNoWriteCalls) {
  const auto steps = plan(probe());
  ASSERT_FALSE(steps.empty());
  for (const auto& s : steps) {
    auto r = plugin_->run_step(*ctx_, *esx1_, s);
    ASSERT_TRUE(r) << s.key << ": " << r.error().message();
  }
  const CallStats after_apply = calls();
  // Start order: the DNS VM first, every VM after the VMs it lists in `after:`.
  const auto starts = first(after_apply, "virDomainCreate");
  ASSERT_EQ(starts.size(), 7u);
  EXPECT_EQ(starts.at("dns"), std::min_element(starts.begin(), starts.end(), [](auto& a, auto& b) {
                                return a.second < b.second;
                              })->second);
  for (const char* vm : {"vcenter", "sql1", "iis", "trixbox", "osx-server"})
    EXPECT_LT(starts.at("dns"), starts.at(vm)) << vm;
  EXPECT_LT(starts.at("sql1"), starts.at("iis"));
  // The snapshot was taken before the VM was removed, and the removal came before any start.
  const auto snaps = first(after_apply, "virDomainSnapshotCreateXML");
  const auto removed = first(after_apply, "virDomainUndefineFlags");
  EXPECT_LT(snaps.at("old-test"), removed.at("old-test"));
  EXPECT_LT(removed.at("old-test"), starts.at("dns"));
  EXPECT_EQ(first(after_apply, "virDomainDefineXML").count("osx-server"), 1u);

  // What the host says now.
  auto o = probe();
  const json& vms = o.facts["vms"];
  EXPECT_FALSE(vms.contains("old-test"));
  for (const char* vm : {"dns", "pfsense", "vcenter"}) {
    EXPECT_EQ(vms[vm]["state"], "running") << vm;
    EXPECT_EQ(vms[vm]["autostart"], true) << vm;
  }
  for (const char* vm : {"sql1", "iis", "trixbox", "osx-server"}) {
    EXPECT_EQ(vms[vm]["state"], "running") << vm;
    EXPECT_EQ(vms[vm]["autostart"], false) << vm;
  }
  EXPECT_EQ(vms["whs2011"]["state"], "stopped");
  EXPECT_EQ(vms["osx-server"]["vcpus"], 2);

  // Converged: nothing planned, and the probe and plan wrote nothing.
  EXPECT_TRUE(plan(o).empty()) << keys(plan(o)).size();
  EXPECT_EQ(calls().writes, after_apply.writes);
  EXPECT_GT(calls().reads, after_apply.reads);
  // Every step of the first plan knows its effect is there, and running them again writes nothing.
  for (const auto& s : steps) {
    auto done = plugin_->step_done(*ctx_, *esx1_, s);
    ASSERT_TRUE(done) << s.key << ": " << done.error().message();
    EXPECT_TRUE(*done) << s.key;
    auto again = plugin_->run_step(*ctx_, *esx1_, s);
    EXPECT_TRUE(again) << s.key << ": " << again.error().message();
  }
  EXPECT_EQ(calls().writes, after_apply.writes);
  // One connection for all of it.
  EXPECT_EQ(calls().by_call.at("virConnectOpenAuth"), 1u);
}

TEST_F(EsxiPluginTest, StepsAreNotDoneBeforeTheyRun) {
  for (const auto& s : plan(probe())) {
    auto done = plugin_->step_done(*ctx_, *esx1_, s);
    ASSERT_TRUE(done) << s.key << ": " << done.error().message();
    EXPECT_FALSE(*done) << s.key;
  }
  EXPECT_EQ(calls().writes, 0u);
}

TEST_F(EsxiPluginTest, DefineWithoutTemplateFailsAtTheStepSayingWhy) {
  load(inventory_text(testing::seed_uri()) + "      - {name: whs2012}\n");
  auto steps = plan(probe());
  auto it = std::find_if(steps.begin(), steps.end(),
                         [](const sdk::Step& s) { return s.key == "define@whs2012"; });
  ASSERT_NE(it, steps.end());
  auto r = plugin_->run_step(*ctx_, *esx1_, *it);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::PreconditionFailed);
  EXPECT_NE(r.error().message().find("no template"), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().rfind("esx1: ", 0), 0u);
}

TEST_F(EsxiPluginTest, VerbsStartStopAutostartSnapshot) {
  auto run = [&](const std::string& verb, json args) {
    auto r = plugin_->run_verb(*ctx_, *esx1_, verb, args);
    EXPECT_TRUE(r) << verb << ": " << r.error().message();
    return r ? *r : sdk::VerbResult{};
  };
  auto info = run("info", json::object());
  EXPECT_NE(info.text.find("esx1: TEST 0.0.2"), std::string::npos) << info.text;
  EXPECT_NE(info.text.find("VMs: 9 (1 running)"), std::string::npos) << info.text;
  auto list = run("vms", json::object());
  ASSERT_EQ(list.data.size(), 9u);
  EXPECT_EQ(list.data[0]["name"], "dns");
  EXPECT_NE(list.text.find("old-test"), std::string::npos);

  EXPECT_EQ(run("start", {{"vm", "trixbox"}}).data["state"], "running");
  EXPECT_EQ(run("autostart", {{"vm", "trixbox"}, {"setting", "on"}}).data["autostart"], true);
  run("snapshot", {{"vm", "trixbox"}, {"name", "pre-upgrade"}});
  auto twice =
      plugin_->run_verb(*ctx_, *esx1_, "snapshot", {{"vm", "trixbox"}, {"name", "pre-upgrade"}});
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message().find("already has a snapshot 'pre-upgrade'"),
            std::string::npos);
  EXPECT_EQ(run("stop", {{"vm", "trixbox"}}).data["state"], "stopped");
  EXPECT_EQ(run("stop", {{"vm", "old-test"}, {"how", "force"}}).data["state"], "stopped");
  EXPECT_EQ(calls().by_call.at("virDomainDestroy"), 1u);
  EXPECT_EQ(calls().by_call.at("virDomainShutdown"), 1u);
  auto missing = plugin_->run_verb(*ctx_, *esx1_, "start", {{"vm", "nope"}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::PreconditionFailed);
  EXPECT_NE(missing.error().message().find("VM 'nope' is not defined"), std::string::npos);
}

TEST_F(EsxiPluginTest, PowerGoesThroughTheBmcThenWaitsForTheHypervisor) {
  ctx_->on_device_verb = [](const testing::Context::VerbCall& c) -> Result<sdk::VerbResult> {
    sdk::VerbResult r;
    r.data = {{"power", "on"}};
    r.text = "power is on\n";
    (void)c;
    return r;
  };
  probe();
  auto r = plugin_->run_verb(*ctx_, *esx1_, "power", {{"action", "cycle"}});
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(ctx_->verb_calls.size(), 1u);
  EXPECT_EQ(ctx_->verb_calls[0].device, "server1-bmc");
  EXPECT_EQ(ctx_->verb_calls[0].verb, "power");
  EXPECT_EQ(ctx_->verb_calls[0].args, json({{"action", "cycle"}}));
  EXPECT_EQ(r->data["bmc"], "server1-bmc");
  EXPECT_EQ(r->data["bmc_result"]["power"], "on");
  EXPECT_EQ(r->data["attempts"], 1);
  // The connection from before the cycle was dropped and a new one answered.
  EXPECT_EQ(calls().by_call.at("virConnectOpenAuth"), 2u);

  auto status = plugin_->run_verb(*ctx_, *esx1_, "power", {{"action", "status"}});
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->data["answers"], true);

  ctx_->on_device_verb = [](const testing::Context::VerbCall&) -> Result<sdk::VerbResult> {
    return fail(Errc::AuthFailed, "server1-bmc: login refused");
  };
  auto refused = plugin_->run_verb(*ctx_, *esx1_, "power", {{"action", "on"}});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Errc::AuthFailed);
  EXPECT_EQ(refused.error().message(),
            "esx1: power on through server1-bmc: server1-bmc: login refused");
}

TEST_F(EsxiPluginTest, PowerOnGivesUpWhenTheHypervisorNeverAnswers) {
  testing::ClosedPort port;
  ASSERT_NE(port.port(), 0);
  load(inventory_text("esx://127.0.0.1:" + std::to_string(port.port()) + "/",
                      "    no-verify: true\n    power-wait: 1500ms\n"
                      "    credentials: {user: root, password: {env: ESX_PW}}\n"));
  ctx_->secrets["/credentials/password"] = "secret";
  ctx_->on_device_verb = [](const testing::Context::VerbCall&) -> Result<sdk::VerbResult> {
    return sdk::VerbResult{};
  };
  auto r = plugin_->run_verb(*ctx_, *esx1_, "power", {{"action", "on"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Timeout);
  EXPECT_NE(r.error().message().find("esx1 did not answer within 2 s after power on"),
            std::string::npos)
      << r.error().message();
  EXPECT_EQ(ctx_->verb_calls.size(), 1u);
}

TEST_F(EsxiPluginTest, PowerWithoutABmcSaysSo) {
  std::string text = inventory_text(testing::seed_uri());
  text.erase(text.find("    bmc: server1-bmc\n"), std::string("    bmc: server1-bmc\n").size());
  load(text);
  auto r = plugin_->run_verb(*ctx_, *esx1_, "power", {{"action", "on"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::PreconditionFailed);
  EXPECT_EQ(r.error().message(), "esx1 has no bmc: in the inventory: labctl cannot power its host");
  EXPECT_TRUE(ctx_->verb_calls.empty());
}

TEST_F(EsxiPluginTest, CallCountsAreWrittenWhenThePluginGoes) {
  auto steps = plan(probe());
  ASSERT_TRUE(plugin_->run_step(*ctx_, *esx1_, steps.front()));
  const CallStats seen = calls();
  registry_.reset();
  std::ifstream in(state_ / "plugins" / "esxi" / "calls" / "esx1.json");
  ASSERT_TRUE(in);
  const json j = json::parse(in);
  EXPECT_EQ(j["device"], "esx1");
  EXPECT_EQ(j["uri"], testing::seed_uri());
  EXPECT_EQ(j["writes"], seen.writes);
  EXPECT_EQ(j["reads"], seen.reads);
  ASSERT_EQ(j["write_log"].size(), seen.write_log.size());
  EXPECT_EQ(j["write_log"][0]["call"], "virDomainShutdown");
  EXPECT_EQ(j["write_log"][0]["vm"], "old-test");
}

TEST_F(EsxiPluginTest, VersionDriftIsNotInstalled) {
  sdk::HopInfo hop;
  hop.to = *inventory::parse_version(inventory::VersionScheme::Esxi, "6.5.0");
  auto r = plugin_->hop_steps(*esx1_, hop);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::NotSupported);
  EXPECT_NE(r.error().message().find("bring esx1 to 6.5.0 by hand"), std::string::npos);
}

}  // namespace
}  // namespace labctl::esxi
