#include "controller/planner.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace labctl::controller {
namespace {

namespace fs = std::filesystem;
using inventory::Inventory;

const std::string kCatalog = std::string(LABCTL_SOURCE_DIR) + "/catalog/catalog.yaml";

class PlannerTest : public ::testing::Test {
 protected:
  PlannerTest() { plugins::register_builtin_plugins(registry_); }

  Inventory load(const std::string& devices_yaml, std::optional<fs::path> catalog = {}) {
    std::string text = "version: 1\nsite: t\ndevices:\n" + devices_yaml;
    inventory::LoadOptions lo;
    lo.catalog = catalog ? *catalog : fs::path(kCatalog);
    auto r = inventory::load_inventory_text(text, "t.yaml", "/tmp", registry_, lo);
    std::string diags;
    for (const auto& d : r.diags.items())
      diags += d.format() + "\n";
    EXPECT_TRUE(r.inventory.has_value()) << diags;
    return r.inventory ? std::move(*r.inventory) : Inventory{};
  }

  static Result<sdk::Observation> at(const std::string& version) {
    sdk::Observation o;
    o.version = version;
    return o;
  }

  const DevicePlan& only(const Plan& p) {
    EXPECT_EQ(p.devices.size(), 1u);
    return p.devices.front();
  }

  plugins::Registry registry_;
};

const char* kPhone = R"Y(  - name: p1
    type: sim-phone
    model: CP-7906G
    sip: {server: 10.0.0.1, password: {env: X}}
    firmware: {target: SIP11.9-4-2SR1-1S}
)Y";

TEST_F(PlannerTest, OldSccpPhoneGoesThroughSccp852) {
  auto inv = load(kPhone);
  Observations obs;
  obs.emplace("p1", at("SCCP11.7-2-1S"));
  auto plan = make_plan(inv, registry_, obs);
  const auto& d = only(plan);
  EXPECT_EQ(d.status, DevicePlan::Status::Changes);
  ASSERT_EQ(d.hops.size(), 2u);
  EXPECT_EQ(d.hops[0].to, "SCCP11.8-5-2S");
  EXPECT_EQ(d.hops[1].to, "SIP11.9-4-2SR1-1S");
  EXPECT_NE(d.hops[0].reason.find("8.3(3)"), std::string::npos) << d.hops[0].reason;
  EXPECT_EQ(d.hops[0].bundle, "cmterm-7911_7906-sccp.8-5-2.cop.sgn");
  // Every hop's steps, in hop order, each tagged with its hop.
  ASSERT_EQ(d.steps.size(), 8u);
  EXPECT_EQ(d.steps[0].key, "publish@SCCP11.8-5-2S");
  EXPECT_EQ(d.steps[0].hop, 1);
  EXPECT_EQ(d.steps[7].key, "verify@SIP11.9-4-2SR1-1S");
  EXPECT_EQ(d.steps[7].hop, 2);
  EXPECT_EQ(d.steps[7].hops, 2);
}

TEST_F(PlannerTest, Phone7911On852GoesStraightToSip) {
  auto inv = load(R"Y(  - name: p1
    type: sim-phone
    model: CP-7911G
    sip: {server: 10.0.0.1, password: {env: X}}
    firmware: SIP11.9-4-2SR1-1S
)Y");
  Observations obs;
  obs.emplace("p1", at("SCCP11.8-5-2S"));
  const auto plan_ = make_plan(inv, registry_, obs);
  const auto& d = only(plan_);
  ASSERT_EQ(d.hops.size(), 1u);
  EXPECT_EQ(d.hops[0].from_display, "SCCP 8.5(2)");
  EXPECT_EQ(d.hops[0].to_display, "SIP 9.4(2)SR1");
  EXPECT_EQ(d.steps.size(), 4u);
}

TEST_F(PlannerTest, DriveGoesThrough104AndNeedsConsent) {
  const std::string drive = R"Y(  - name: bd
    type: sim-drive
    model: UJ240AS
    firmware: {target: "1.12"}
)Y";
  auto with_consent = load(drive + "    accept-brick-risk: true\n");
  Observations obs;
  obs.emplace("bd", at("1.01"));
  auto plan = make_plan(with_consent, registry_, obs);
  ASSERT_EQ(plan.devices[0].hops.size(), 2u);
  EXPECT_EQ(plan.devices[0].hops[0].to, "1.04");
  EXPECT_EQ(plan.devices[0].hops[1].to, "1.12");

  auto without = load(drive);
  const auto plan_ = make_plan(without, registry_, obs);
  const auto& d = only(plan_);
  EXPECT_EQ(d.status, DevicePlan::Status::Blocked);
  EXPECT_EQ(d.problem.code(), Errc::PreconditionFailed);
  EXPECT_NE(d.problem.message().find("accept-brick-risk"), std::string::npos)
      << d.problem.message();
  EXPECT_TRUE(d.steps.empty());
}

TEST_F(PlannerTest, DeviceAtTargetPlansNothing) {
  auto inv = load(kPhone);
  Observations obs;
  obs.emplace("p1", at("SIP11.9-4-2SR1-1S"));
  const auto plan_ = make_plan(inv, registry_, obs);
  const auto& d = only(plan_);
  EXPECT_EQ(d.status, DevicePlan::Status::UpToDate);
  EXPECT_TRUE(d.hops.empty());
  EXPECT_TRUE(d.steps.empty());
}

TEST_F(PlannerTest, UnreachableTargetNamesTheBlockingRule) {
  // A catalog where 9.x needs a bootloader no release provides.
  fs::path dir = fs::temp_directory_path() / ("planner-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "c.yaml") << R"Y(version: 1
families:
  - name: phones
    models: [CP-7906G]
    scheme: cisco-load
    releases:
      - version: SCCP11.8-5-2S
        protocol: sccp
        files: [{name: a.sbn, sha256: pin}]
      - version: SIP11.9-4-2SR1-1S
        protocol: sip
        files: [{name: b.sbn, sha256: pin}]
        requires:
          - {component: bootloader, min: "9.0(1)", reason: "needs the 9.x bootloader"}
)Y";
  auto inv = load(kPhone, dir / "c.yaml");
  Observations obs;
  obs.emplace("p1", at("SCCP11.7-2-1S"));
  const auto plan_ = make_plan(inv, registry_, obs);
  const auto& d = only(plan_);
  fs::remove_all(dir);
  EXPECT_EQ(d.status, DevicePlan::Status::Blocked);
  EXPECT_EQ(d.problem.code(), Errc::PreconditionFailed);
  EXPECT_NE(d.problem.message().find("bootloader"), std::string::npos) << d.problem.message();
  EXPECT_NE(d.problem.message().find("needs the 9.x bootloader"), std::string::npos)
      << d.problem.message();
}

TEST_F(PlannerTest, ProbeFailuresAreUnreachableOrBlockedByClass) {
  auto inv = load(std::string(kPhone) + R"Y(  - name: p2
    type: sim-phone
    model: CP-7906G
    sip: {server: 10.0.0.1, password: {env: X}}
  - name: p3
    type: sim-phone
    model: CP-7906G
    sip: {server: 10.0.0.1, password: {env: X}}
    firmware: {target: SIP11.9-4-2SR1-1S}
)Y");
  Observations obs;
  obs.emplace("p1", std::unexpected(Error(Errc::Timeout, "no answer")));
  obs.emplace("p2", std::unexpected(Error(Errc::AuthFailed, "login refused")));
  obs.emplace("p3", at("not-a-load-id"));
  auto plan = make_plan(inv, registry_, obs);
  EXPECT_EQ(plan.devices[0].status, DevicePlan::Status::Unreachable);
  EXPECT_EQ(plan.devices[0].problem.message(), "probe: no answer");
  EXPECT_EQ(plan.devices[1].status, DevicePlan::Status::Blocked);
  EXPECT_EQ(plan.devices[1].problem.code(), Errc::AuthFailed);
  EXPECT_EQ(plan.devices[2].status, DevicePlan::Status::Blocked);
  EXPECT_NE(plan.devices[2].problem.message().find("not-a-load-id"), std::string::npos);
  EXPECT_EQ(plan.count(DevicePlan::Status::Unreachable), 1u);
  EXPECT_EQ(plan.count(DevicePlan::Status::Blocked), 2u);
}

TEST_F(PlannerTest, MissingObservationIsUnreachable) {
  auto inv = load(kPhone);
  const auto plan_ = make_plan(inv, registry_, {});
  const auto& d = only(plan_);
  EXPECT_EQ(d.status, DevicePlan::Status::Unreachable);
}

TEST_F(PlannerTest, FactoryResetHopReprovisionsOnce) {
  auto inv = load(R"Y(  - name: b1
    type: sim-bmc
    model: X8SIL-F
    credentials: {user: admin2, password: {env: X}}
    firmware: "2.50"
)Y");
  sdk::Observation o;
  o.version = "1.62";
  o.facts["credentials"] = "default";
  Observations obs;
  obs.emplace("b1", o);
  const auto plan_ = make_plan(inv, registry_, obs);
  const auto& d = only(plan_);
  ASSERT_EQ(d.status, DevicePlan::Status::Changes) << d.problem.message();
  ASSERT_EQ(d.steps.size(), 5u);
  int credential_steps = 0;
  for (const auto& s : d.steps)
    credential_steps += s.action == "set-credentials";
  EXPECT_EQ(credential_steps, 1);
  EXPECT_EQ(d.steps.back().action, "set-credentials");
  EXPECT_FALSE(d.steps[1].args.value("preserve_config", true));
  EXPECT_EQ(d.findings.size(), 0u);  // findings come from the probe, not invented by the plan
}

TEST_F(PlannerTest, DependenciesCombineAfterAndReferences) {
  auto inv = load(R"Y(  - name: b1
    type: sim-bmc
    model: X8SIL-F
    credentials: {user: admin2, password: {env: X}}
  - name: dns-host
    type: sim-hypervisor
  - name: esx
    type: sim-hypervisor
    bmc: b1
    after: [dns-host]
)Y");
  const auto deps = device_dependencies(*inv.device("esx"));
  EXPECT_EQ(deps, (std::vector<std::string>{"dns-host", "b1"}));
  auto plan = make_plan(inv, registry_, {});
  EXPECT_EQ(plan.devices[2].after, deps);
}

TEST_F(PlannerTest, JsonDocumentCarriesEverything) {
  auto inv = load(kPhone);
  Observations obs;
  obs.emplace("p1", at("SCCP11.7-2-1S"));
  auto j = make_plan(inv, registry_, obs).to_json();
  EXPECT_EQ(j["format"], "labctl-plan");
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["summary"]["devices"], 1);
  EXPECT_EQ(j["summary"]["changes"], 1);
  EXPECT_EQ(j["summary"]["steps"], 8);
  const auto& d = j["devices"][0];
  EXPECT_EQ(d["status"], "changes");
  EXPECT_EQ(d["firmware"]["installed"], "SCCP11.7-2-1S");
  EXPECT_EQ(d["firmware"]["hops"].size(), 2u);
  EXPECT_EQ(d["steps"][2]["action"], "flash");
  EXPECT_TRUE(d["problem"].is_null());
}

TEST_F(PlannerTest, ProbeAllThroughTheLocalAgent) {
  fs::path dir = fs::temp_directory_path() / ("planner-probe-" + std::to_string(::getpid()));
  std::string devs;
  for (int i = 0; i < 20; ++i)
    devs += "  - {name: d" + std::to_string(i) +
            ", type: sim-drive, model: UJ240AS, sim: {firmware: \"1.0" + std::to_string(i % 5) +
            "\"" + (i == 7 ? ", unreachable: true" : "") + "}}\n";
  auto inv = load(devs);
  agents::LocalAgentOptions lo;
  lo.state_dir = dir;
  agents::AgentSet set(std::make_unique<agents::LocalAgent>(registry_, lo));
  auto obs = probe_all(inv, set, 4);
  fs::remove_all(dir);
  ASSERT_EQ(obs.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    const auto& r = obs.at("d" + std::to_string(i));
    if (i == 7) {
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().code(), Errc::Unreachable);
    } else {
      ASSERT_TRUE(r.has_value()) << r.error().message();
      EXPECT_EQ(r->version, "1.0" + std::to_string(i % 5));
    }
  }
  auto some = probe_all(inv, set, 3, [](const inventory::Device& d) { return d.name == "d3"; });
  EXPECT_EQ(some.size(), 1u);
}

}  // namespace
}  // namespace labctl::controller
