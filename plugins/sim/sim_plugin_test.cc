#include "plugins/sim/sim_plugin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "plugins/registry.h"
#include "plugins/sim/sim_state.h"

namespace labctl::sim {
namespace {

namespace fs = std::filesystem;
using sdk::json;

class TestContext : public sdk::DeviceContext {
 public:
  explicit TestContext(fs::path dir) : dir_(std::move(dir)) {}
  Result<std::string> secret(const sdk::Device&, const std::string& pointer) override {
    if (pointer == "/credentials/password") return std::string("s3cret");
    return fail(Errc::PreconditionFailed, "no secret at " + pointer);
  }
  fs::path plugin_state_dir() const override { return dir_; }
  const inventory::Catalog* catalog() const override { return nullptr; }
  void progress(std::uint64_t done, std::uint64_t total, std::string_view) override {
    last_done = done;
    last_total = total;
  }
  bool cancelled() const override { return cancel; }
  void log(std::string_view) override {}

  bool cancel = false;
  std::uint64_t last_done = 0, last_total = 0;

 private:
  fs::path dir_;
};

class SimPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sim-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    plugins::register_builtin_plugins(registry_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  sdk::Device device(const std::string& yaml) {
    inventory::LoadOptions lo;
    lo.catalog = fs::path(LABCTL_SOURCE_DIR) / "catalog/catalog.yaml";
    auto r = inventory::load_inventory_text("version: 1\nsite: t\ndevices:\n" + yaml, "t.yaml",
                                            "/tmp", registry_, lo);
    std::string diags;
    for (const auto& d : r.diags.items())
      diags += d.format() + "\n";
    EXPECT_TRUE(r.inventory) << diags;
    return r.inventory ? r.inventory->devices.front() : sdk::Device{};
  }

  sdk::Step step(const std::string& action, const std::string& to, const std::string& from = "") {
    sdk::Step s;
    s.key = action + "@" + to;
    s.action = action;
    s.args = {{"to", to}, {"from", from}};
    s.writes = action != "verify" && action != "identify" && action != "wait-online";
    return s;
  }

  json state(const std::string& name) { return *load_state(dir_ / (name + ".json")); }

  fs::path dir_;
  plugins::Registry registry_;
};

const char* kBmc = R"Y(  - name: b1
    type: sim-bmc
    model: X8SIL-F
    credentials: {user: admin2, password: {env: X}}
    sim: {firmware: "1.62"}
)Y";

TEST_F(SimPluginTest, ProbeReportsInitialFirmwareAndFindings) {
  SimPlugin bmc(Kind::Bmc);
  TestContext ctx(dir_);
  auto d = device(std::string(kBmc));
  auto o = bmc.probe(ctx, d);
  ASSERT_TRUE(o) << o.error().message();
  EXPECT_EQ(o->version, "1.62");
  EXPECT_EQ(o->model, "X8SIL-F");
  EXPECT_EQ(o->serial, "SIM-b1");
  ASSERT_EQ(o->findings.size(), 1u);
  EXPECT_EQ(o->findings[0].code, "default-credentials");
  // A probe is read-only: it leaves no state behind.
  EXPECT_FALSE(fs::exists(dir_ / "b1.json"));
}

TEST_F(SimPluginTest, FlashSequenceChangesVersionAndCountsEachWriteOnce) {
  SimPlugin bmc(Kind::Bmc);
  TestContext ctx(dir_);
  auto d = device(std::string(kBmc));
  auto upload = step("upload", "2.50"), flash = step("flash", "2.50"),
       verify = step("verify", "2.50");
  flash.args["preserve_config"] = false;

  EXPECT_FALSE(*bmc.step_done(ctx, d, upload));
  ASSERT_TRUE(bmc.run_step(ctx, d, upload));
  EXPECT_TRUE(*bmc.step_done(ctx, d, upload));
  EXPECT_FALSE(*bmc.step_done(ctx, d, flash));
  ASSERT_TRUE(bmc.run_step(ctx, d, flash));
  EXPECT_TRUE(*bmc.step_done(ctx, d, flash));
  EXPECT_TRUE(bmc.run_step(ctx, d, verify));

  auto s = state("b1");
  EXPECT_EQ(s["version"], "2.50");
  EXPECT_EQ(s["writes"]["upload"], 1);
  EXPECT_EQ(s["writes"]["flash"], 1);
  EXPECT_FALSE(s["writes"].contains("verify"));  // read-only steps write nothing
  EXPECT_EQ(s["credentials"], "default");        // factory reset
  EXPECT_EQ(ctx.last_done, 4u);
  EXPECT_EQ(ctx.last_total, 4u);
}

TEST_F(SimPluginTest, FlashWithoutUploadIsRefused) {
  SimPlugin bmc(Kind::Bmc);
  TestContext ctx(dir_);
  auto d = device(std::string(kBmc));
  auto r = bmc.run_step(ctx, d, step("flash", "2.50"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::PreconditionFailed);
  EXPECT_EQ(state("b1").value("version", ""), "");  // nothing saved
}

TEST_F(SimPluginTest, VerifyMismatchWhenTheDeviceDisagrees) {
  SimPlugin drive(Kind::Drive);
  TestContext ctx(dir_);
  auto d = device("  - {name: bd, type: sim-drive, model: UJ240AS, sim: {firmware: \"1.01\"}}\n");
  auto r = drive.run_step(ctx, d, step("verify", "1.04"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::VerifyMismatch);
  EXPECT_NE(r.error().message().find("1.01"), std::string::npos);
}

TEST_F(SimPluginTest, InjectedFailuresAreConsumedAcrossInstances) {
  auto d = device(R"Y(  - name: bd
    type: sim-drive
    model: UJ240AS
    sim: {firmware: "1.01", fail: [{action: flash, error: timeout, times: 2}]}
)Y");
  TestContext ctx(dir_);
  {
    SimPlugin drive(Kind::Drive);
    auto r = drive.run_step(ctx, d, step("flash", "1.04"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::Timeout);
  }
  {
    SimPlugin drive(Kind::Drive);  // a new process, as after a restart
    auto r = drive.run_step(ctx, d, step("flash", "1.04"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::Timeout);
    ASSERT_TRUE(drive.run_step(ctx, d, step("flash", "1.04")));
  }
  auto s = state("bd");
  EXPECT_EQ(s["version"], "1.04");
  EXPECT_EQ(s["writes"]["flash"], 1);  // failed attempts did not write
}

TEST_F(SimPluginTest, UnreachableDeviceAnswersNothing) {
  SimPlugin drive(Kind::Drive);
  TestContext ctx(dir_);
  auto d = device("  - {name: bd, type: sim-drive, model: UJ240AS, sim: {unreachable: true}}\n");
  auto o = drive.probe(ctx, d);
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error().code(), Errc::Unreachable);
  EXPECT_EQ(drive.run_step(ctx, d, step("flash", "1.04")).error().code(), Errc::Unreachable);
}

TEST_F(SimPluginTest, CancellationStopsAStepWithoutEffect) {
  SimPlugin drive(Kind::Drive);
  TestContext ctx(dir_);
  ctx.cancel = true;
  auto d = device(
      "  - {name: bd, type: sim-drive, model: UJ240AS, sim: {firmware: \"1.01\", flash-delay: "
      "2s}}\n");
  auto r = drive.run_step(ctx, d, step("flash", "1.04"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Cancelled);
  EXPECT_FALSE(fs::exists(dir_ / "bd.json"));
}

TEST_F(SimPluginTest, VmReconcileHonoursStartOrderAndConverges) {
  SimPlugin hv(Kind::Hypervisor);
  TestContext ctx(dir_);
  auto d = device(R"Y(  - name: esx
    type: sim-hypervisor
    sim: {vms: [web, dns, old]}
    vms:
      - {name: web, after: [db, dns]}
      - {name: db, after: [dns], autostart: true}
      - {name: dns}
      - {name: old, state: absent}
)Y");
  auto o = hv.probe(ctx, d);
  ASSERT_TRUE(o);
  auto steps = hv.reconcile_steps(d, *o, {});
  std::vector<std::string> keys;
  for (const auto& s : steps)
    keys.push_back(s.key);
  // Dependency order (a VM after those it names), inventory order among VMs that are ready.
  EXPECT_EQ(keys, (std::vector<std::string>{"start@dns", "undefine@old", "define@db",
                                            "autostart@db", "start@db", "start@web"}));
  for (const auto& s : steps) {
    ASSERT_FALSE(*hv.step_done(ctx, d, s)) << s.key;
    ASSERT_TRUE(hv.run_step(ctx, d, s)) << s.key;
    ASSERT_TRUE(*hv.step_done(ctx, d, s)) << s.key;
  }
  auto again = hv.probe(ctx, d);
  ASSERT_TRUE(again);
  EXPECT_TRUE(hv.reconcile_steps(d, *again, {}).empty());
}

TEST_F(SimPluginTest, SetCredentialsReadsTheSecretAndClearsTheFinding) {
  SimPlugin bmc(Kind::Bmc);
  TestContext ctx(dir_);
  auto d = device(std::string(kBmc));
  auto o = bmc.probe(ctx, d);
  auto steps = bmc.reconcile_steps(d, *o, {});
  ASSERT_EQ(steps.size(), 1u);
  ASSERT_TRUE(bmc.run_step(ctx, d, steps[0]));
  auto after = bmc.probe(ctx, d);
  EXPECT_TRUE(after->findings.empty());
  EXPECT_TRUE(bmc.reconcile_steps(d, *after, {}).empty());
}

TEST_F(SimPluginTest, PowerVerbCountsWrites) {
  SimPlugin bmc(Kind::Bmc);
  TestContext ctx(dir_);
  auto d = device(std::string(kBmc));
  auto r = bmc.run_verb(ctx, d, "power", {{"action", "off"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data["power"], "off");
  EXPECT_EQ(bmc.run_verb(ctx, d, "power", {{"action", "status"}})->data["power"], "off");
  EXPECT_EQ(state("b1")["writes"]["power-off"], 1);
  EXPECT_EQ(bmc.run_verb(ctx, d, "nope", json::object()).error().code(), Errc::NotSupported);
}

TEST_F(SimPluginTest, StateFileIsReplacedAtomically) {
  auto file = dir_ / "x.json";
  ASSERT_TRUE(save_state(file, {{"a", 1}}));
  ASSERT_TRUE(save_state(file, {{"a", 2}}));
  EXPECT_EQ((*load_state(file))["a"], 2);
  EXPECT_FALSE(fs::exists(dir_ / "x.json.tmp"));
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::others_read, fs::perms::none);
  std::ofstream(dir_ / "bad.json") << "{not json";
  EXPECT_EQ(load_state(dir_ / "bad.json").error().code(), Errc::Internal);
}

}  // namespace
}  // namespace labctl::sim
