#include "inventory/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

namespace labctl::inventory {
namespace {

using testing::ElementsAre;

std::filesystem::path shipped_catalog() {
  return std::filesystem::path(LABCTL_SOURCE_DIR) / "catalog" / "catalog.yaml";
}

std::vector<std::string> formatted(const Diagnostics& d) {
  std::vector<std::string> out;
  for (const auto& item : d.items())
    out.push_back(item.format());
  return out;
}

Version v(VersionScheme s, std::string_view text) {
  auto parsed = parse_version(s, text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed ? *parsed : Version{};
}

// ---- the shipped catalog ------------------------------------------------------------------------

class ShippedCatalog : public testing::Test {
 protected:
  void SetUp() override {
    catalog_ = load_catalog(shipped_catalog(), diags_);
    ASSERT_TRUE(catalog_.has_value()) << testing::PrintToString(formatted(diags_));
  }
  Diagnostics diags_;
  std::optional<Catalog> catalog_;
};

TEST_F(ShippedCatalog, LoadsWithoutAnyDiagnostic) {
  EXPECT_TRUE(diags_.items().empty()) << testing::PrintToString(formatted(diags_));
  EXPECT_EQ(catalog_->file, shipped_catalog().string());
  std::vector<std::string> names;
  for (const auto& f : catalog_->families)
    names.push_back(f.name);
  EXPECT_THAT(names, ElementsAre("cisco-7906-7911", "panasonic-uj240as", "supermicro-x8-bmc",
                                 "vmware-esxi"));
}

TEST_F(ShippedCatalog, EveryFamilyIsSortedOldestFirstAndEveryFileIsPinned) {
  for (const auto& f : catalog_->families) {
    for (std::size_t i = 1; i < f.releases.size(); ++i) {
      EXPECT_TRUE(f.releases[i - 1].version < f.releases[i].version)
          << f.name << ": " << f.releases[i - 1].version.text << " before "
          << f.releases[i].version.text;
    }
    for (const auto& r : f.releases) {
      for (const auto& file : r.files) {
        // No checksum is invented in the shipped catalog.
        EXPECT_FALSE(file.sha256.has_value()) << file.name;
      }
    }
  }
}

TEST_F(ShippedCatalog, CiscoFamily) {
  const Family* f = catalog_->family_for_model("cp-7911g");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f, catalog_->family_for_model("CP-7906G"));
  EXPECT_EQ(f, catalog_->family("cisco-7906-7911"));
  EXPECT_EQ(f->scheme, VersionScheme::CiscoLoad);
  EXPECT_EQ(f->quirks.at("sip-password-max"), 15);
  EXPECT_EQ(f->quirks.at("phone-label-max"), 12);
  EXPECT_EQ(f->quirks.at("term-files").at("CP-7906G"), "term06.default.loads");
  EXPECT_EQ(f->quirks.at("term-files").at("CP-7911G"), "term11.default.loads");
  ASSERT_EQ(f->releases.size(), 2u);

  const Release* sccp = f->find("8.5(2)");
  ASSERT_NE(sccp, nullptr);
  EXPECT_EQ(sccp, f->find("SCCP11.8-5-2S"));
  EXPECT_EQ(sccp, f->find("8-5-2TH1-9"));
  EXPECT_EQ(sccp->protocol, "sccp");
  EXPECT_EQ(sccp->version.protocol, "sccp");
  EXPECT_EQ(sccp->bundle, "cmterm-7911_7906-sccp.8-5-2.cop.sgn");
  ASSERT_EQ(sccp->provides.count("bootloader"), 1u);
  EXPECT_EQ(sccp->provides.at("bootloader").display(), "8.5(2)");
  EXPECT_EQ(sccp->files.size(), 8u);
  EXPECT_TRUE(sccp->requires_.empty());

  const Release* sip = f->find("SIP11.9-4-2SR1-1S");
  ASSERT_NE(sip, nullptr);
  EXPECT_EQ(sip->protocol, "sip");
  EXPECT_EQ(sip->version.display(), "SIP 9.4(2)SR1");
  ASSERT_EQ(sip->requires_.size(), 1u);
  EXPECT_EQ(sip->requires_[0].describe(), "installed >= 8.3(3)");
  EXPECT_THAT(sip->requires_[0].reason, testing::HasSubstr("bootloader"));
  // A SCCP spelling of the SIP load's number does not find the SIP release.
  EXPECT_EQ(f->find("SCCP11.9-4-2SR1-1S"), nullptr);
  EXPECT_EQ(f->find("not a version"), nullptr);
}

TEST_F(ShippedCatalog, OtherFamilies) {
  const Family* drive = catalog_->family_for_model("UJ240AS");
  ASSERT_NE(drive, nullptr);
  ASSERT_EQ(drive->releases.size(), 3u);
  EXPECT_TRUE(drive->releases[0].files.empty());  // 1.01: as shipped, no image
  const Release* r112 = drive->find("1.12");
  ASSERT_NE(r112, nullptr);
  ASSERT_EQ(r112->files.size(), 1u);
  EXPECT_THAT(r112->files[0].mirrors,
              ElementsAre("http://tickett.net/downloads/uj240as/uj240as_v112.exe"));
  EXPECT_FALSE(r112->files[0].offset.has_value());
  ASSERT_EQ(r112->requires_.size(), 1u);
  EXPECT_EQ(r112->requires_[0].describe(), "installed >= 1.04");

  const Family* bmc = catalog_->family_for_model("x8sil-f");
  ASSERT_NE(bmc, nullptr);
  const Release* r250 = bmc->find("2.50");
  ASSERT_NE(r250, nullptr);
  EXPECT_EQ(r250->options.at("reset-to-factory"), "recommended");
  EXPECT_EQ(r250->files.at(0).name, "SMT_SX_250.bin");

  const Family* esxi = catalog_->family_for_model("ESXi");
  ASSERT_NE(esxi, nullptr);
  EXPECT_NE(esxi->find("ESXi 4.1.0 build-260247"), nullptr);
  EXPECT_EQ(esxi->releases.back().version.display(), "6.5.0");

  EXPECT_EQ(catalog_->family_for_model("CP-7945G"), nullptr);
  EXPECT_EQ(catalog_->family("nope"), nullptr);
}

// ---- bad catalogs: exact diagnostics ------------------------------------------------------------

struct BadCatalog {
  const char* name;
  const char* yaml;
  std::vector<std::string> diagnostics;
};

void PrintTo(const BadCatalog& c, std::ostream* os) {
  *os << c.name;
}

class BadCatalogs : public testing::TestWithParam<BadCatalog> {};

TEST_P(BadCatalogs, ReportExactDiagnostics) {
  const auto& c = GetParam();
  Diagnostics diags;
  auto catalog = load_catalog_text(c.yaml, "x.yaml", diags);
  EXPECT_FALSE(catalog.has_value());
  EXPECT_EQ(formatted(diags), c.diagnostics);
}

const BadCatalog kBad[] = {
    {"UnknownKeyDidYouMean",
     R"Y(version: 1
families:
  - name: d
    modles: [A]
    scheme: dotted
    releases: []
)Y",
     {"x.yaml:4:5: error: unknown key 'modles' in family (did you mean 'models'?)",
      "x.yaml:3:5: error: family is missing required key 'models'"}},
    {"UnknownKeyListsKnownKeys",
     R"Y(version: 1
families:
  - name: d
    models: [A]
    scheme: dotted
    releases:
      - {version: "1.0", files: [], colour: red}
)Y",
     {"x.yaml:7:37: error: unknown key 'colour' in release (expected 'version', 'protocol', "
      "'bundle', 'notes', 'provides', 'options', 'files' or 'requires')"}},
    {"WrongType",
     R"Y(version: 1
families:
  - name: d
    models: A
    scheme: dotted
    releases: {}
)Y",
     {"x.yaml:4:13: error: 'models' must be a list of strings, got a string",
      "x.yaml:6:15: error: 'releases' must be a list, got a map"}},
    {"MissingRequired",
     R"Y(version: 1
families:
  - name: d
    models: [A]
    releases:
      - version: "1.0"
)Y",
     {"x.yaml:3:5: error: family is missing required key 'scheme'",
      "x.yaml:6:9: error: release is missing required key 'files'"}},
    {"BadScheme",
     R"Y(version: 1
families:
  - {name: d, models: [A], scheme: dotd, releases: []}
  - {name: e, models: [B], scheme: semver, releases: []}
)Y",
     {"x.yaml:3:36: error: unknown version scheme 'dotd' (did you mean 'dotted'?)",
      "x.yaml:4:36: error: unknown version scheme 'semver' (expected cisco-load, major-minor, "
      "dotted or esxi)"}},
    {"BadVersion",
     R"Y(version: 1
families:
  - name: bmc
    models: [X8SIL-F]
    scheme: major-minor
    releases:
      - version: "2.5"
        files: []
)Y",
     {"x.yaml:7:18: error: invalid major-minor version '2.5': the minor must be exactly two "
      "digits: the BMC reports it as BCD and ipmitool prints it with %02x, so 2.5 is ambiguous; "
      "write 2.05 or 2.50 (expected MAJOR.MM like 2.50: major 1-127, then a minor of exactly two "
      "digits)"}},
    {"DuplicateVersion",
     R"Y(version: 1
families:
  - name: drive
    models: [UJ240AS]
    scheme: dotted
    releases:
      - {version: "1.04", files: []}
      - {version: "1.12", files: []}
      - {version: "1.4", files: []}
)Y",
     {"x.yaml:9:19: error: duplicate release '1.4' in family 'drive' (same as '1.04' at line 7)"}},
    {"DuplicateYamlKey",
     R"Y(version: 1
families:
  - name: d
    models: [A]
    scheme: dotted
    name: e
    releases: []
)Y",
     {"x.yaml:6:5: error: duplicate key 'name' (first at line 3)"}},
    {"DuplicateKeyInFlowMapAndQuirks",
     R"Y(version: 1
families:
  - name: d
    models: [A]
    scheme: dotted
    quirks: {a: 1, a: 2}
    releases:
      - {version: "1.0", version: "1.1", files: []}
)Y",
     {"x.yaml:6:20: error: duplicate key 'a'",
      "x.yaml:8:26: error: duplicate key 'version' (first at line 8)"}},
    {"BadSha256",
     R"Y(version: 1
families:
  - name: d
    models: [A]
    scheme: dotted
    releases:
      - version: "1.0"
        files:
          - {name: a.bin, sha256: abc}
          - {name: b.bin, sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg}
          - {name: c.bin}
)Y",
     {"x.yaml:9:35: error: 'sha256' must be 64 hex digits or 'pin', got 'abc' (3 characters)",
      "x.yaml:10:35: error: 'sha256' must be 64 hex digits or 'pin', got "
      "'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg' (64 characters)",
      "x.yaml:11:13: error: file is missing required key 'sha256'"}},
    {"ProtocolMismatch",
     R"Y(version: 1
families:
  - name: phone
    models: [CP-7911G]
    scheme: cisco-load
    releases:
      - version: SCCP11.8-5-2S
        protocol: sip
        files: []
      - version: 9.4(2)
        protocol: skinny
        files: []
)Y",
     {"x.yaml:8:19: error: protocol 'sip' does not match version 'SCCP11.8-5-2S', which is a "
      "sccp load",
      "x.yaml:11:19: error: unknown protocol 'skinny' (expected 'sccp' or 'sip')"}},
    {"ProtocolOutsideCisco",
     R"Y(version: 1
families:
  - name: d
    models: [A]
    scheme: dotted
    releases:
      - version: "1.0"
        protocol: sip
        files: []
        requires:
          - {protocol: [sip]}
)Y",
     {"x.yaml:8:19: error: 'protocol' applies only to cisco-load families",
      "x.yaml:11:14: error: protocol rules apply only to cisco-load families"}},
    {"RuleKinds",
     R"Y(version: 1
families:
  - name: phone
    models: [CP-7911G]
    scheme: cisco-load
    releases:
      - version: SIP11.9-4-2SR1-1S
        files: []
        requires:
          - {reason: nothing to check}
          - {installed: {min: "8.3(3)"}, protocol: sccp}
          - {protocol: [sccp, sipp]}
          - {component: bootloader, reason: no bounds}
)Y",
     {"x.yaml:10:13: error: rule needs one of 'installed', 'component' or 'protocol'",
      "x.yaml:11:42: error: rule has both 'installed' and 'protocol'; write one rule per kind",
      "x.yaml:12:31: error: unknown protocol 'sipp' (did you mean 'sip'?)",
      "x.yaml:13:13: error: component rule needs 'min', 'max' or both"}},
    {"BadBounds",
     R"Y(version: 1
families:
  - name: phone
    models: [CP-7911G]
    scheme: cisco-load
    releases:
      - version: SIP11.9-4-2SR1-1S
        files: []
        requires:
          - installed: {min: "8.3"}
          - installed: {min: "9.4(2)", max: "8.5(2)"}
          - {installed: {}}
          - {installed: {min: "8.3(3)"}, max: "8.5(2)"}
)Y",
     {"x.yaml:10:30: error: invalid cisco-load version '8.3': expected '(' and the maintenance "
      "number after the minor (expected a Cisco load id like SCCP11.8-5-2S or SIP11.9-4-2SR1-1S, "
      "a file-name version like 8-5-2TH1-9, or a display version like 8.5(2) or 9.4(2)SR1)",
      "x.yaml:11:45: error: 'max' 8.5(2) is below 'min' 9.4(2)",
      "x.yaml:12:25: error: 'installed' needs 'min', 'max' or both",
      "x.yaml:13:42: error: 'max' of an installed rule goes inside it: installed: {max: ...}"}},
    {"DuplicateModelAcrossFamilies",
     R"Y(version: 1
families:
  - {name: a, models: [CP-7906G, CP-7911G], scheme: cisco-load, releases: []}
  - {name: b, models: [cp-7911g], scheme: cisco-load, releases: []}
  - {name: a, models: [C, C], scheme: dotted, releases: []}
)Y",
     {"x.yaml:4:24: error: model 'cp-7911g' is already listed by family 'a' (line 3)",
      "x.yaml:5:12: error: duplicate family 'a' (first at line 3)",
      "x.yaml:5:27: error: model 'C' is already listed in this family (line 5)"}},
    {"YamlSyntaxError",
     R"Y(version: 1
families:
  - name: [unclosed
)Y",
     {"x.yaml:3:11: error: YAML syntax: this '[' is never closed by a matching ']'"}},
    {"CatalogVersionAndTopLevel",
     R"Y(version: 2
famlies: []
)Y",
     {"x.yaml:2:1: error: unknown key 'famlies' in catalog (did you mean 'families'?)",
      "x.yaml:1:10: error: unsupported catalog version 2 (this labctl reads 1)",
      "x.yaml:1:1: error: catalog is missing required key 'families'"}},
    {"FileFields",
     R"Y(version: 1
families:
  - name: d
    models: [A]
    scheme: dotted
    releases:
      - version: "1.0"
        provides: {bootloader: "x"}
        files:
          - {name: a.exe, sha256: pin, offset: 16}
          - {name: A.EXE, sha256: pin, size: -1, mirrors: http://x}
)Y",
     {"x.yaml:8:32: error: invalid dotted version 'x': expected a number at 'x' (position 1) "
      "(expected numbers separated by dots, like 1.04 or 1.2.3)",
      "x.yaml:10:40: error: 'offset' and 'length' go together: 'offset' needs 'length'",
      "x.yaml:11:20: error: file 'A.EXE' is listed twice in this release",
      "x.yaml:11:46: error: 'size' must be a non-negative integer, got '-1'",
      "x.yaml:11:59: error: 'mirrors' must be a list of strings, got a string"}},
    {"NotAMap",
     R"Y(- just
- a list
)Y",
     {"x.yaml:1:1: error: catalog must be a map, got a list"}},
    {"TwoDocuments",
     "version: 1\nfamilies: []\n---\nversion: 1\n",
     {"x.yaml:3:1: error: unexpected content after the first YAML document (the file must hold "
      "one document)"}},
    // yaml-cpp 0.7's LoadAll never returns on these; the loader must.
    {"StrayComma",
     ", a\n",
     {"x.yaml:1:1: error: unexpected content after the first YAML document (the file must hold "
      "one document)"}},
    {"TrailingComma",
     "version: 1\nfamilies: [], x\n",
     {"x.yaml:2:13: error: YAML syntax: end of map not found (is this line indented like the ones "
      "above it?)"}},
    {"Empty",
     "# nothing here\n",
     {"x.yaml: error: empty catalog (expected a map with 'version' and 'families')"}},
};

INSTANTIATE_TEST_SUITE_P(All, BadCatalogs, testing::ValuesIn(kBad),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- loading details ----------------------------------------------------------------------------

TEST(Catalog, ReleasesAreSortedAndFieldsRead) {
  Diagnostics diags;
  auto catalog = load_catalog_text(R"Y(version: 1
families:
  - name: phone
    models: [CP-7911G]
    scheme: cisco-load
    quirks: {n: 3, f: 1.5, b: true, q: "12", nested: {list: [1, two, ~]}}
    releases:
      - version: SIP11.9-4-2SR1-1S
        files: []
        requires:
          - {component: bootloader, min: "8.3(3)", max: "8.5(2)", reason: why}
          - {protocol: SCCP}
      - version: 8.5(2)
        protocol: sccp
        options: {reset: false}
        files:
          - name: jar11sccp.8-5-2TH1-9.sbn
            sha256: 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef
            size: 1234
            offset: 0
            length: 1234
            mirrors: [http://a/x, http://b/x]
      - version: SCCP11.7-2-1S
        files: []
)Y",
                                   "t.yaml", diags);
  ASSERT_TRUE(catalog.has_value()) << testing::PrintToString(formatted(diags));
  const Family& f = catalog->families.at(0);
  std::vector<std::string> order;
  for (const auto& r : f.releases)
    order.push_back(r.version.text);
  EXPECT_THAT(order, ElementsAre("SCCP11.7-2-1S", "8.5(2)", "SIP11.9-4-2SR1-1S"));

  EXPECT_EQ(f.quirks, nlohmann::json::parse(
                          R"Y({"n": 3, "f": 1.5, "b": true, "q": "12",
                              "nested": {"list": [1, "two", null]}})Y"));
  const Release& sccp = f.releases[1];
  EXPECT_EQ(sccp.protocol, "sccp");
  EXPECT_EQ(sccp.version.protocol, "sccp");  // taken from `protocol:` when the text has none
  EXPECT_EQ(sccp.version.display(), "SCCP 8.5(2)");
  EXPECT_EQ(sccp.options, nlohmann::json::parse(R"Y({"reset": false})Y"));
  ASSERT_EQ(sccp.files.size(), 1u);
  const FirmwareFile& file = sccp.files[0];
  EXPECT_EQ(file.sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_EQ(file.size, 1234u);
  EXPECT_EQ(file.offset, 0u);
  EXPECT_EQ(file.length, 1234u);
  EXPECT_THAT(file.mirrors, ElementsAre("http://a/x", "http://b/x"));
  EXPECT_EQ(sccp.mark.line, 13);
  EXPECT_EQ(sccp.mark.column, 9);

  const Release& sip = f.releases[2];
  ASSERT_EQ(sip.requires_.size(), 2u);
  EXPECT_EQ(sip.requires_[0].kind, Rule::Kind::Component);
  EXPECT_EQ(sip.requires_[0].describe(), "bootloader in [8.3(3), 8.5(2)]");
  EXPECT_EQ(sip.requires_[0].reason, "why");
  EXPECT_EQ(sip.requires_[0].mark.line, 11);
  EXPECT_EQ(sip.requires_[1].kind, Rule::Kind::Protocol);
  EXPECT_THAT(sip.requires_[1].protocols, ElementsAre("sccp"));
  EXPECT_EQ(sip.requires_[1].describe(), "protocol sccp");
}

TEST(Catalog, SameNumberForTwoProtocolsIsNotADuplicate) {
  Diagnostics diags;
  auto catalog = load_catalog_text(R"Y(version: 1
families:
  - name: phone
    models: [CP-7911G]
    scheme: cisco-load
    releases:
      - {version: SIP11.9-4-2S, files: []}
      - {version: SCCP11.9-4-2S, files: []}
)Y",
                                   "t.yaml", diags);
  ASSERT_TRUE(catalog.has_value()) << testing::PrintToString(formatted(diags));
  const Family& f = catalog->families[0];
  EXPECT_EQ(f.find(v(VersionScheme::CiscoLoad, "SIP 9.4(2)"))->protocol, "sip");
  EXPECT_EQ(f.find(v(VersionScheme::CiscoLoad, "SCCP 9.4(2)"))->protocol, "sccp");
  EXPECT_NE(f.find("9.4(2)"), nullptr);
}

TEST(Catalog, HostileInputsDoNotCrash) {
  std::string deep = "version: 1\nfamilies:\n  - {name: d, models: [A], scheme: dotted, quirks: ";
  for (int i = 0; i < 100; ++i)
    deep += "{a: ";
  deep += "1";
  for (int i = 0; i < 100; ++i)
    deep += "}";
  deep += ", releases: []}\n";
  // Alias bomb: each level doubles the previous one (2^30 leaves once expanded).
  std::string bomb =
      "version: 1\nfamilies:\n  - name: d\n    models: [A]\n    scheme: dotted\n"
      "    releases: []\n    quirks:\n      x0: &a0 [1, 1]\n";
  for (int i = 1; i < 30; ++i) {
    bomb += "      x" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" +
            std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + "]\n";
  }
  // Flow nesting is refused before yaml-cpp sees it; an alias bomb when its value is walked.
  for (const auto& [in, message] : {std::pair{deep, "nesting deeper than 64 levels"},
                                    std::pair{bomb, "value is too deeply nested or too large"}}) {
    Diagnostics diags;
    EXPECT_FALSE(load_catalog_text(in, "h.yaml", diags).has_value());
    ASSERT_EQ(diags.items().size(), 1u) << testing::PrintToString(formatted(diags));
    EXPECT_EQ(diags.items()[0].message, message);
  }
  const std::vector<std::string> inputs = {
      deep,
      bomb,
      "\xff\xfe",
      "{",
      "[",
      "version: 1\nfamilies: [[[]]]\n",
      "? [a]\n: b\n",
      "version: 1\nfamilies:\n  - {? [x] : y}\n",
      std::string("version: \0 1", 12),
      "---\n---\n",
      "version: 1\nfamilies:\n  - name: d\n    models: [A]\n    scheme: cisco-load\n"
      "    releases:\n      - {version: SCCP11.8-5-2S, files: [], requires: [{component: [x]}]}\n"};
  for (const auto& in : inputs) {
    Diagnostics diags;
    auto catalog = load_catalog_text(in, "h.yaml", diags);
    EXPECT_FALSE(catalog.has_value()) << in.substr(0, 40);
    EXPECT_TRUE(diags.has_errors()) << in.substr(0, 40);
  }
}

TEST(Catalog, UnreadableFileIsReportedWithItsName) {
  Diagnostics diags;
  auto catalog = load_catalog("/nonexistent/labctl/catalog.yaml", diags);
  EXPECT_FALSE(catalog.has_value());
  ASSERT_EQ(diags.items().size(), 1u);
  EXPECT_EQ(diags.items()[0].format(),
            "/nonexistent/labctl/catalog.yaml: error: cannot read catalog: No such file or "
            "directory");

  Diagnostics dir_diags;
  EXPECT_FALSE(load_catalog(std::filesystem::temp_directory_path(), dir_diags).has_value());
  ASSERT_EQ(dir_diags.items().size(), 1u);
  EXPECT_THAT(dir_diags.items()[0].message, testing::HasSubstr("is a directory"));
}

TEST(Catalog, LoadsFromFileAndReportsThePath) {
  auto path = std::filesystem::temp_directory_path() /
              ("labctl-catalog-test-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(path);
    out << "version: 1\nfamilies:\n  - {name: d, models: [A], scheme: dotd, releases: []}\n";
  }
  Diagnostics diags;
  EXPECT_FALSE(load_catalog(path, diags).has_value());
  std::filesystem::remove(path);
  ASSERT_EQ(diags.items().size(), 1u);
  EXPECT_EQ(diags.items()[0].file, path.string());
  EXPECT_EQ(diags.items()[0].mark.line, 3);
}

TEST(Catalog, DefaultPathHonoursEnvironment) {
  const char* old = std::getenv("LABCTL_CATALOG");
  std::string saved = old ? old : "";
  ::setenv("LABCTL_CATALOG", "/tmp/elsewhere.yaml", 1);
  EXPECT_EQ(default_catalog_path(), std::filesystem::path("/tmp/elsewhere.yaml"));
  ::unsetenv("LABCTL_CATALOG");
  // Without the variable, a development build finds the source tree's catalog.
  auto fallback = default_catalog_path();
  EXPECT_EQ(fallback.filename(), "catalog.yaml");
  EXPECT_TRUE(std::filesystem::equivalent(fallback, shipped_catalog()) ||
              !std::filesystem::exists(shipped_catalog()))
      << fallback;
  if (old) ::setenv("LABCTL_CATALOG", saved.c_str(), 1);
}

// ---- rules --------------------------------------------------------------------------------------

TEST(Rule, HoldsAndDescribes) {
  const auto C = VersionScheme::CiscoLoad;
  DeviceState old_sccp{v(C, "SCCP11.7-2-1S"), {}};
  DeviceState mid_sccp{v(C, "SCCP11.8-5-2S"), {{"bootloader", v(C, "8.5(2)")}}};
  DeviceState sip{v(C, "SIP11.9-4-2SR1-1S"), {{"bootloader", v(C, "9.4(2)")}}};

  Rule installed;
  installed.kind = Rule::Kind::Installed;
  installed.min = v(C, "8.3(3)");
  installed.max = v(C, "8.5(2)");
  EXPECT_FALSE(installed.holds(old_sccp));
  EXPECT_TRUE(installed.holds(mid_sccp));  // bounds are inclusive
  EXPECT_FALSE(installed.holds(sip));
  EXPECT_EQ(installed.describe(), "installed in [8.3(3), 8.5(2)]");
  installed.max.reset();
  EXPECT_TRUE(installed.holds(sip));
  EXPECT_EQ(installed.describe(), "installed >= 8.3(3)");
  installed.min.reset();
  installed.max = v(C, "SCCP 8.3(3)");
  EXPECT_EQ(installed.describe(), "installed <= SCCP 8.3(3)");
  EXPECT_TRUE(installed.holds(old_sccp));

  Rule component;
  component.kind = Rule::Kind::Component;
  component.component = "bootloader";
  component.min = v(C, "8.3(3)");
  EXPECT_FALSE(component.holds(old_sccp));  // unknown component does not hold
  EXPECT_TRUE(component.holds(mid_sccp));
  EXPECT_TRUE(component.holds(sip));
  EXPECT_EQ(component.describe(), "bootloader >= 8.3(3)");

  Rule protocol;
  protocol.kind = Rule::Kind::Protocol;
  protocol.protocols = {"sccp"};
  EXPECT_TRUE(protocol.holds(old_sccp));
  EXPECT_FALSE(protocol.holds(sip));
  EXPECT_FALSE(protocol.holds(DeviceState{v(C, "8.5(2)"), {}}));  // protocol unknown
  protocol.protocols = {"sccp", "sip"};
  EXPECT_TRUE(protocol.holds(sip));
  EXPECT_EQ(protocol.describe(), "protocol sccp or sip");
}

}  // namespace
}  // namespace labctl::inventory
