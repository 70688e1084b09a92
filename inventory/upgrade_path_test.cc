#include "inventory/upgrade_path.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace labctl::inventory {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

const Catalog& shipped() {
  static const Catalog catalog = [] {
    Diagnostics diags;
    auto c =
        load_catalog(std::filesystem::path(LABCTL_SOURCE_DIR) / "catalog" / "catalog.yaml", diags);
    EXPECT_TRUE(c.has_value());
    return c ? *c : Catalog{};
  }();
  return catalog;
}

// A one-family catalog from YAML, for scenarios the shipped catalog does not have.
Family family_from(const std::string& yaml) {
  Diagnostics diags;
  auto c = load_catalog_text("version: 1\nfamilies:\n" + yaml, "test.yaml", diags);
  std::string problems;
  for (const auto& d : diags.items())
    problems += d.format() + "\n";
  EXPECT_TRUE(c.has_value()) << problems;
  EXPECT_EQ(c ? c->families.size() : 0u, 1u);
  return c && !c->families.empty() ? c->families[0] : Family{};
}

Version ver(const Family& f, std::string_view text) {
  auto v = parse_version(f.scheme, text);
  EXPECT_TRUE(v.has_value()) << text << ": " << (v ? "" : v.error().message());
  return v ? *v : Version{};
}

DeviceState state(const Family& f, std::string_view text,
                  std::map<std::string, std::string> components = {}) {
  DeviceState s{ver(f, text), {}};
  for (const auto& [name, value] : components)
    s.components[name] = ver(f, value);
  return s;
}

std::vector<std::string> hop_versions(const std::vector<Hop>& hops) {
  std::vector<std::string> out;
  for (const auto& h : hops)
    out.push_back(h.to.display());
  return out;
}

const char* const kSipRuleReason =
    "SCCP loads older than 8.3(3) must go through an 8.3(3)–8.5(2) load before 9.x: loads 9.x "
    "need the bootloader that 8.3(3)–8.5(2) installs (release notes; the seed's phones looped on "
    "term06.default.loads)";

// ---- the seed's scenarios on the shipped catalog ------------------------------------------------

TEST(UpgradePath, OldSccpPhoneGoesThroughSccp852BeforeSip) {
  const Family* f = shipped().family_for_model("CP-7906G");
  ASSERT_NE(f, nullptr);
  // The observed load need not be in the catalog.
  auto path = find_upgrade_path(*f, state(*f, "SCCP11.7-2-1S"), ver(*f, "SIP11.9-4-2SR1-1S"));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  ASSERT_EQ(path->size(), 2u);
  EXPECT_THAT(hop_versions(*path), ElementsAre("SCCP 8.5(2)", "SIP 9.4(2)SR1"));

  const Hop& first = (*path)[0];
  EXPECT_EQ(first.release, f->find("SCCP11.8-5-2S"));
  EXPECT_EQ(first.from.display(), "SCCP 7.2(1)");
  EXPECT_EQ(first.to.protocol, "sccp");
  EXPECT_EQ(first.reason, std::string("SCCP 8.5(2) first: SIP 9.4(2)SR1 requires installed >= "
                                      "8.3(3): ") +
                              kSipRuleReason);

  const Hop& last = (*path)[1];
  EXPECT_EQ(last.release, f->find("SIP11.9-4-2SR1-1S"));
  EXPECT_EQ(last.from.display(), "SCCP 8.5(2)");
  EXPECT_EQ(last.to.display(), "SIP 9.4(2)SR1");
  EXPECT_EQ(last.to.protocol, "sip");
  EXPECT_EQ(last.reason, "target of the inventory");
}

TEST(UpgradePath, PhoneAlreadyOnSccp852GoesStraightToSip) {
  const Family* f = shipped().family_for_model("CP-7911G");
  ASSERT_NE(f, nullptr);
  auto path = find_upgrade_path(*f, state(*f, "SCCP11.8-5-2S"), ver(*f, "SIP11.9-4-2SR1-1S"));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  ASSERT_EQ(path->size(), 1u);
  EXPECT_EQ((*path)[0].to.display(), "SIP 9.4(2)SR1");
  EXPECT_EQ((*path)[0].from.display(), "SCCP 8.5(2)");
  EXPECT_EQ((*path)[0].reason, "target of the inventory");

  // So does a phone on 8.3(3), the oldest load the rule accepts.
  auto from833 = find_upgrade_path(*f, state(*f, "SCCP11.8-3-3S"), ver(*f, "SIP11.9-4-2SR1-1S"));
  ASSERT_TRUE(from833.has_value()) << from833.error().message();
  EXPECT_THAT(hop_versions(*from833), ElementsAre("SIP 9.4(2)SR1"));
}

TEST(UpgradePath, DriveGoesThrough104) {
  const Family* f = shipped().family_for_model("UJ240AS");
  ASSERT_NE(f, nullptr);
  auto path = find_upgrade_path(*f, state(*f, "1.01"), ver(*f, "1.12"));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  EXPECT_THAT(hop_versions(*path), ElementsAre("1.04", "1.12"));
  EXPECT_EQ((*path)[0].from.display(), "1.01");
  EXPECT_EQ((*path)[0].reason,
            "1.04 first: 1.12 requires installed >= 1.04: the seed's owner went 1.01 -> 1.04 but "
            "could not go directly to 1.12; 1.04 is treated as a required hop");
  EXPECT_EQ((*path)[1].reason, "target of the inventory");

  auto direct = find_upgrade_path(*f, state(*f, "1.04"), ver(*f, "1.12"));
  ASSERT_TRUE(direct.has_value());
  EXPECT_THAT(hop_versions(*direct), ElementsAre("1.12"));
}

TEST(UpgradePath, AlreadyAtTargetPlansNothing) {
  const Family* f = shipped().family_for_model("CP-7911G");
  ASSERT_NE(f, nullptr);
  // The file-name spelling carries no protocol: the same number counts as there.
  for (const char* observed : {"SIP11.9-4-2SR1-1S", "SIP 9.4(2)SR1-1", "9-4-2SR1-1"}) {
    auto path = find_upgrade_path(*f, state(*f, observed), ver(*f, "SIP11.9-4-2SR1-1S"));
    ASSERT_TRUE(path.has_value()) << observed << ": " << path.error().message();
    EXPECT_TRUE(path->empty()) << observed;
  }
  const Family* bmc = shipped().family_for_model("X8SIL-F");
  ASSERT_NE(bmc, nullptr);
  auto same = find_upgrade_path(*bmc, state(*bmc, "2.50"), ver(*bmc, "2.50"));
  ASSERT_TRUE(same.has_value());
  EXPECT_TRUE(same->empty());
}

TEST(UpgradePath, DowngradeRefusedUnlessAllowed) {
  const Family* f = shipped().family_for_model("CP-7911G");
  ASSERT_NE(f, nullptr);
  auto refused = find_upgrade_path(*f, state(*f, "SIP11.9-4-2SR1-1S"), ver(*f, "SCCP11.8-5-2S"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Errc::PreconditionFailed);
  EXPECT_EQ(refused.error().message(),
            "SCCP 8.5(2) is older than the installed SIP 9.4(2)SR1; downgrading was not allowed");

  auto allowed = find_upgrade_path(*f, state(*f, "SIP11.9-4-2SR1-1S"), ver(*f, "SCCP11.8-5-2S"),
                                   PathOptions{.allow_downgrade = true});
  ASSERT_TRUE(allowed.has_value()) << allowed.error().message();
  EXPECT_THAT(hop_versions(*allowed), ElementsAre("SCCP 8.5(2)"));
}

TEST(UpgradePath, TargetNotInCatalogIsNotFound) {
  const Family* f = shipped().family_for_model("CP-7911G");
  ASSERT_NE(f, nullptr);
  auto path = find_upgrade_path(*f, state(*f, "SCCP11.8-5-2S"), ver(*f, "SIP11.9-4-2SR3-1S"));
  ASSERT_FALSE(path.has_value());
  EXPECT_EQ(path.error().code(), Errc::NotFound);
  EXPECT_EQ(path.error().message(),
            "family 'cisco-7906-7911' has no release SIP11.9-4-2SR3-1S (known: SCCP11.8-5-2S, "
            "SIP11.9-4-2SR1-1S)");
  // The display form has no build number, so it names build 0 of SR1, which is not the load
  // SIP11.9-4-2SR1-1S: the message lists the load ids to write instead.
  auto display = find_upgrade_path(*f, state(*f, "SCCP11.8-5-2S"), ver(*f, "9.4(2)SR1"));
  ASSERT_FALSE(display.has_value());
  EXPECT_EQ(display.error().code(), Errc::NotFound);
  EXPECT_THAT(display.error().message(), HasSubstr("has no release 9.4(2)SR1 (known: "));
  // Right number, wrong protocol: also not in the catalog.
  auto sccp9 = find_upgrade_path(*f, state(*f, "SCCP11.8-5-2S"), ver(*f, "SCCP11.9-4-2SR1-1S"));
  ASSERT_FALSE(sccp9.has_value());
  EXPECT_EQ(sccp9.error().code(), Errc::NotFound);
}

TEST(UpgradePath, UnreachableTargetNamesTheBlockingRule) {
  // The shipped family without its 8.5(2) load: nothing lifts an old phone to 8.3(3).
  const Family* shipped_family = shipped().family_for_model("CP-7906G");
  ASSERT_NE(shipped_family, nullptr);
  Family f = *shipped_family;
  f.releases.erase(std::remove_if(f.releases.begin(), f.releases.end(),
                                  [](const Release& r) { return r.protocol == "sccp"; }),
                   f.releases.end());
  ASSERT_EQ(f.releases.size(), 1u);
  auto path = find_upgrade_path(f, state(f, "SCCP11.7-2-1S"), ver(f, "SIP11.9-4-2SR1-1S"));
  ASSERT_FALSE(path.has_value());
  EXPECT_EQ(path.error().code(), Errc::PreconditionFailed);
  EXPECT_EQ(path.error().message(),
            std::string("cannot reach SIP 9.4(2)SR1 from SCCP 7.2(1): SIP 9.4(2)SR1 requires "
                        "installed >= 8.3(3) (") +
                kSipRuleReason + "); no release reachable from SCCP 7.2(1) satisfies it");
}

TEST(UpgradePath, UnreachableNamesOnlyRulesNoReachableStateMeets) {
  Family f = family_from(R"Y(  - name: f
    models: [M]
    scheme: dotted
    releases:
      - {version: "2", files: [{name: a, sha256: pin}]}
      - version: "3"
        files: [{name: b, sha256: pin}]
        requires:
          - {installed: {min: "2"}, reason: needs 2 first}
          - {component: fpga, min: "5", reason: needs a new fpga}
)Y");
  auto path = find_upgrade_path(f, state(f, "1"), ver(f, "3"));
  ASSERT_FALSE(path.has_value());
  EXPECT_EQ(path.error().code(), Errc::PreconditionFailed);
  // "installed >= 2" is met after a hop to 2, so only the fpga rule blocks.
  EXPECT_EQ(path.error().message(),
            "cannot reach 3 from 1: 3 requires fpga >= 5 (needs a new fpga); no release reachable "
            "from 1 satisfies it");
}

// ---- generic behaviour --------------------------------------------------------------------------

const char* const kTieBreak = R"Y(  - name: tie
    models: [M]
    scheme: dotted
    releases:
      - {version: "2", files: [{name: two, sha256: pin}]}
      - {version: "3", files: [{name: three, sha256: pin}]}
      - version: "4"
        files: [{name: four, sha256: pin}]
        requires: [{installed: {min: "2", max: "3"}, reason: needs 2 or 3}]
)Y";

TEST(UpgradePath, TieBreakPicksTheHighestVersionFirst) {
  Family f = family_from(kTieBreak);
  // 1 -> 2 -> 4 and 1 -> 3 -> 4 are equally short; the higher first hop wins, every time.
  for (int i = 0; i < 3; ++i) {
    auto path = find_upgrade_path(f, state(f, "1"), ver(f, "4"));
    ASSERT_TRUE(path.has_value()) << path.error().message();
    EXPECT_THAT(hop_versions(*path), ElementsAre("3", "4"));
    EXPECT_EQ((*path)[0].reason, "3 first: 4 requires installed in [2, 3]: needs 2 or 3");
  }
  // The order of releases in the family does not matter.
  std::reverse(f.releases.begin(), f.releases.end());
  auto reversed = find_upgrade_path(f, state(f, "1"), ver(f, "4"));
  ASSERT_TRUE(reversed.has_value());
  EXPECT_THAT(hop_versions(*reversed), ElementsAre("3", "4"));
  // From 2 the rule already holds: straight to 4.
  auto from2 = find_upgrade_path(f, state(f, "2"), ver(f, "4"));
  ASSERT_TRUE(from2.has_value());
  EXPECT_THAT(hop_versions(*from2), ElementsAre("4"));
}

TEST(UpgradePath, ComponentRulesChain) {
  // 1 -> 5 needs fpga >= 2 (only 3 provides it), and 3 needs bootloader >= 2 (only 2 provides it).
  Family f = family_from(R"Y(  - name: chain
    models: [M]
    scheme: dotted
    releases:
      - version: "2"
        provides: {bootloader: "2"}
        files: [{name: a, sha256: pin}]
      - version: "3"
        provides: {fpga: "2"}
        files: [{name: b, sha256: pin}]
        requires: [{component: bootloader, min: "2", reason: new bootloader}]
      - version: "4"
        files: [{name: c, sha256: pin}]
      - version: "5"
        files: [{name: d, sha256: pin}]
        requires: [{component: fpga, min: "2", reason: new fpga}]
)Y");
  auto path = find_upgrade_path(f, state(f, "1"), ver(f, "5"));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  EXPECT_THAT(hop_versions(*path), ElementsAre("2", "3", "5"));
  EXPECT_EQ((*path)[0].reason, "2 first: 3 requires bootloader >= 2: new bootloader");
  EXPECT_EQ((*path)[1].reason, "3 first: 5 requires fpga >= 2: new fpga");
  EXPECT_EQ((*path)[2].reason, "target of the inventory");

  // A device that already reports the new bootloader skips the first hop.
  auto known = find_upgrade_path(f, state(f, "1", {{"bootloader", "2"}}), ver(f, "5"));
  ASSERT_TRUE(known.has_value());
  EXPECT_THAT(hop_versions(*known), ElementsAre("3", "5"));
  // One that already has the new fpga goes straight there.
  auto done = find_upgrade_path(f, state(f, "1", {{"fpga", "7"}}), ver(f, "5"));
  ASSERT_TRUE(done.has_value());
  EXPECT_THAT(hop_versions(*done), ElementsAre("5"));
}

TEST(UpgradePath, DowngradeHopsOnlyWhenAllowed) {
  // 4 needs bootloader >= 2, which only the older release 2 provides.
  Family f = family_from(R"Y(  - name: down
    models: [M]
    scheme: dotted
    releases:
      - version: "2"
        provides: {bootloader: "2"}
        files: [{name: a, sha256: pin}]
      - version: "4"
        files: [{name: b, sha256: pin}]
        requires: [{component: bootloader, min: "2", reason: bootloader}]
)Y");
  auto refused = find_upgrade_path(f, state(f, "3"), ver(f, "4"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(refused.error().message(), HasSubstr("4 requires bootloader >= 2 (bootloader)"));

  auto allowed = find_upgrade_path(f, state(f, "3"), ver(f, "4"), {.allow_downgrade = true});
  ASSERT_TRUE(allowed.has_value()) << allowed.error().message();
  EXPECT_THAT(hop_versions(*allowed), ElementsAre("2", "4"));
}

TEST(UpgradePath, ProtocolRulesAndSameNumberProtocolSwitch) {
  Family f = family_from(R"Y(  - name: phone
    models: [P]
    scheme: cisco-load
    releases:
      - {version: SCCP11.9-4-2S, files: [{name: a, sha256: pin}]}
      - {version: SIP11.9-4-2S, files: [{name: b, sha256: pin}]}
      - version: SIP11.9-4-2SR1-1S
        files: [{name: c, sha256: pin}]
        requires: [{protocol: sip, reason: protocol switch first}]
)Y");
  // SCCP 9.4(2) -> SIP 9.4(2) is not a downgrade, and it makes the protocol rule hold.
  auto path = find_upgrade_path(f, state(f, "SCCP11.9-4-2S"), ver(f, "SIP11.9-4-2SR1-1S"));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  EXPECT_THAT(hop_versions(*path), ElementsAre("SIP 9.4(2)", "SIP 9.4(2)SR1"));
  EXPECT_EQ((*path)[0].reason,
            "SIP 9.4(2) first: SIP 9.4(2)SR1 requires protocol sip: protocol "
            "switch first");
  // The same number with the other protocol is a different target.
  auto to_sccp = find_upgrade_path(f, state(f, "SIP11.9-4-2S"), ver(f, "SCCP11.9-4-2S"));
  ASSERT_TRUE(to_sccp.has_value()) << to_sccp.error().message();
  EXPECT_THAT(hop_versions(*to_sccp), ElementsAre("SCCP 9.4(2)"));
}

TEST(UpgradePath, ReleasesWithoutFilesAreNeverSteppingStones) {
  Family f = family_from(R"Y(  - name: nofiles
    models: [M]
    scheme: dotted
    releases:
      - {version: "2", files: []}
      - version: "3"
        files: [{name: b, sha256: pin}]
        requires: [{installed: {min: "2"}}]
)Y");
  auto path = find_upgrade_path(f, state(f, "1"), ver(f, "3"));
  ASSERT_FALSE(path.has_value());
  EXPECT_EQ(path.error().message(),
            "cannot reach 3 from 1: 3 requires installed >= 2; no release reachable from 1 "
            "satisfies it");
  // As a target it is still planned; the plugin decides what installing it means.
  auto target = find_upgrade_path(f, state(f, "1"), ver(f, "2"));
  ASSERT_TRUE(target.has_value());
  EXPECT_THAT(hop_versions(*target), ElementsAre("2"));
}

TEST(UpgradePath, WrongSchemeIsInvalidInput) {
  const Family* f = shipped().family_for_model("UJ240AS");
  ASSERT_NE(f, nullptr);
  auto cisco = parse_version(VersionScheme::CiscoLoad, "8.5(2)");
  ASSERT_TRUE(cisco.has_value());
  auto path = find_upgrade_path(*f, DeviceState{*cisco, {}}, ver(*f, "1.12"));
  ASSERT_FALSE(path.has_value());
  EXPECT_EQ(path.error().code(), Errc::InvalidInput);
}

TEST(UpgradePath, ManyReleasesStayFastAndShortest) {
  // A long ladder where each release needs the previous one: the path is every rung.
  std::string yaml = "  - name: ladder\n    models: [M]\n    scheme: dotted\n    releases:\n";
  for (int i = 2; i <= 40; ++i) {
    yaml += "      - version: \"" + std::to_string(i) + "\"\n        files: [{name: f" +
            std::to_string(i) + ", sha256: pin}]\n        provides: {step: \"" + std::to_string(i) +
            "\"}\n        requires: [{installed: {min: \"" + std::to_string(i - 1) + "\"}}]\n";
  }
  Family f = family_from(yaml);
  auto path = find_upgrade_path(f, state(f, "1"), ver(f, "40"));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  ASSERT_EQ(path->size(), 39u);
  for (std::size_t i = 0; i < path->size(); ++i) {
    EXPECT_EQ((*path)[i].to.display(), std::to_string(i + 2));
  }
  EXPECT_EQ((*path)[0].reason, "2 first: 3 requires installed >= 2");
}

}  // namespace
}  // namespace labctl::inventory
