// The inventory loader against a fake schema source (no plugins): how values land in a Device,
// positions, references, secrets, merge keys, the address helpers, limits and the plugin hook.
#include "inventory/loader.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace labctl::inventory {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Two device types that use every Kind. "widget" can serve as "power"; "gadget" cannot.
class FakeSchemas : public SchemaSource {
 public:
  FakeSchemas() {
    widget_.type = "widget";
    widget_.capabilities = {"power"};
    widget_.keys = {
        key::string("label").range(2, 8),
        key::integer("slots").range(1, 4).defaults(2),
        key::boolean("enabled").defaults(true),
        key::choice("mode", {"fast", "slow"}).defaults("slow"),
        key::secret("password"),
        key::device_ref("peer", {"power"}),
        key::mac("hwaddr"),
        key::ipv4("mgmt"),
        key::version("fw"),
        key::duration("timeout").defaults(30'000),
        key::list("ports", key::map("port", {key::integer("number").req().range(1, 48),
                                             key::string("vlan")})),
        key::open_map("extra"),
        key::map("nested", {key::string("a").req(), key::integer("b").defaults(7)}),
        key::path("file"),
    };
    gadget_.type = "gadget";
    gadget_.capabilities = {"storage"};
    gadget_.keys = {key::device_ref("host", {"power"}).req()};
  }

  const DeviceSchema* schema(std::string_view type) const override {
    if (type == widget_.type) return &widget_;
    if (type == gadget_.type) return &gadget_;
    return nullptr;
  }
  std::vector<std::string> types() const override { return {widget_.type, gadget_.type}; }

  // Records every call; complains about a label "bad" (at the label) and a port 13 (at the port
  // number), and warns about a label "meh".
  void check_device(const Device& device, const Inventory& inv,
                    DeviceReport& report) const override {
    checked.push_back(device.name);
    devices_seen = inv.devices.size();
    if (device.params.value("label", "") == "bad") report.error("/label", "label is bad");
    if (device.params.value("label", "") == "meh") report.warning("/label", "label is meh");
    const json ports = device.params.value("ports", json::array());
    for (std::size_t i = 0; i < ports.size(); ++i)
      if (ports[i].value("number", 0) == 13)
        report.error("/ports/" + std::to_string(i) + "/number", "port 13 is unlucky");
  }

  mutable std::vector<std::string> checked;
  mutable std::size_t devices_seen = 0;

 private:
  DeviceSchema widget_, gadget_;
};

LoadOptions test_options() {
  LoadOptions o;
  o.catalog = fs::path(LABCTL_SOURCE_DIR) / "catalog" / "catalog.yaml";
  return o;
}

LoadResult load(const std::string& text, const FakeSchemas& schemas,
                LoadOptions options = test_options()) {
  return load_inventory_text(text, "inv.yaml", "/srv/lab", schemas, options);
}

std::string all_diags(const LoadResult& r) {
  std::string out;
  for (const auto& d : r.diags.sorted())
    out += d.format() + "\n";
  return out;
}

const Diagnostic* find_diag(const LoadResult& r, const std::string& fragment) {
  for (const auto& d : r.diags.items())
    if (d.message.find(fragment) != std::string::npos) return &d;
  return nullptr;
}

const std::string kHeader = "version: 1\nsite: test\n";

// Line numbers below count from 1 at "version: 1".
const std::string kFull = kHeader +
                          "devices:\n"                                            // 3
                          "  - name: w1\n"                                        // 4
                          "    type: widget\n"                                    // 5
                          "    label: rack\n"                                     // 6
                          "    slots: 3\n"                                        // 7
                          "    enabled: false\n"                                  // 8
                          "    mode: fast\n"                                      // 9
                          "    password: {env: W1_PASSWORD}\n"                    // 10
                          "    peer: w2\n"                                        // 11
                          "    hwaddr: 00-1B-54-AA-BB-CC\n"                       // 12
                          "    mgmt: 10.0.0.5\n"                                  // 13
                          "    fw: \"1.2\"\n"                                     // 14
                          "    timeout: 90s\n"                                    // 15
                          "    ports:\n"                                          // 16
                          "      - {number: 1, vlan: a}\n"                        // 17
                          "      - number: 2\n"                                   // 18
                          "    extra: {x: 1, q: \"12\", y: [a, b], z: {k: v}}\n"  // 19
                          "    nested: {a: hello}\n"                              // 20
                          "    after: [w2]\n"                                     // 21
                          "  - name: w2\n"                                        // 22
                          "    type: widget\n";                                   // 23

TEST(Loader, ValuesLandInParamsAsDocumented) {
  FakeSchemas schemas;
  auto r = load(kFull, schemas);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  EXPECT_EQ(r.diags.items().size(), 0u) << all_diags(r);
  const Device* w1 = r.inventory->device("w1");
  ASSERT_NE(w1, nullptr);
  const json& p = w1->params;
  EXPECT_EQ(p["label"], "rack");
  EXPECT_EQ(p["slots"], 3);
  EXPECT_EQ(p["enabled"], false);
  EXPECT_EQ(p["mode"], "fast");
  EXPECT_EQ(p["password"], json({{"$secret", {{"env", "W1_PASSWORD"}}}}));
  EXPECT_EQ(p["peer"], "w2");
  EXPECT_EQ(p["hwaddr"], "00:1b:54:aa:bb:cc");
  EXPECT_EQ(p["mgmt"], "10.0.0.5");
  EXPECT_EQ(p["fw"], "1.2");
  EXPECT_EQ(p["timeout"], 90'000);
  EXPECT_EQ(p["ports"], json::parse(R"([{"number": 1, "vlan": "a"}, {"number": 2}])"));
  // Open maps keep plain scalars as numbers and quoted ones as text.
  EXPECT_EQ(p["extra"], json::parse(R"({"x": 1, "q": "12", "y": ["a", "b"], "z": {"k": "v"}})"));
  EXPECT_EQ(p["nested"], json::parse(R"({"a": "hello", "b": 7})"));  // nested default
  EXPECT_EQ(w1->after, std::vector<std::string>{"w2"});
  EXPECT_EQ(w1->references, std::vector<std::string>{"w2"});
}

TEST(Loader, DefaultsFillAbsentKeysOnly) {
  FakeSchemas schemas;
  auto r = load(kFull, schemas);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  const json& p = r.inventory->device("w2")->params;
  EXPECT_EQ(p["slots"], 2);
  EXPECT_EQ(p["enabled"], true);
  EXPECT_EQ(p["mode"], "slow");
  EXPECT_EQ(p["timeout"], 30'000);
  for (const char* absent : {"label", "password", "peer", "hwaddr", "ports", "nested", "extra"})
    EXPECT_FALSE(p.contains(absent)) << absent;
  EXPECT_TRUE(r.inventory->device("w2")->references.empty());
}

TEST(Loader, DurationsAreMilliseconds) {
  FakeSchemas schemas;
  const std::vector<std::pair<std::string, std::int64_t>> cases = {
      {"250ms", 250}, {"90s", 90'000}, {"5m", 300'000}, {"1h", 3'600'000}, {"2", 2'000}};
  for (const auto& [text, ms] : cases) {
    auto r =
        load(kHeader + "devices:\n  - {name: w, type: widget, timeout: " + text + "}\n", schemas);
    ASSERT_TRUE(r.inventory) << text << "\n" << all_diags(r);
    EXPECT_EQ(r.inventory->devices[0].params["timeout"], ms) << text;
  }
  auto bad = load(kHeader + "devices:\n  - {name: w, type: widget, timeout: 5 minutes}\n", schemas);
  EXPECT_FALSE(bad.inventory);
  EXPECT_NE(find_diag(bad, "'5 minutes' is not a duration"), nullptr) << all_diags(bad);
}

TEST(Loader, PathsResolveAgainstTheInventoryDirectory) {
  FakeSchemas schemas;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"vm.xml", "/srv/lab/vm.xml"},
      {"templates/../xml/vm.xml", "/srv/lab/xml/vm.xml"},
      {"/etc/labctl/vm.xml", "/etc/labctl/vm.xml"}};
  for (const auto& [text, want] : cases) {
    auto r = load(kHeader + "devices:\n  - {name: w, type: widget, file: " + text + "}\n", schemas);
    ASSERT_TRUE(r.inventory) << text << "\n" << all_diags(r);
    EXPECT_EQ(r.inventory->devices[0].params["file"], want) << text;
  }
  auto bad = load(kHeader + "devices:\n  - {name: w, type: widget, file: \"\"}\n", schemas);
  EXPECT_FALSE(bad.inventory);
  const Diagnostic* d = find_diag(bad, "'file': empty path");
  ASSERT_NE(d, nullptr) << all_diags(bad);
  EXPECT_EQ(d->mark.line, 4);
}

TEST(Loader, MarksPointAtValues) {
  FakeSchemas schemas;
  auto r = load(kFull, schemas);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  const Device* w1 = r.inventory->device("w1");
  EXPECT_EQ(w1->mark.line, 4);
  EXPECT_EQ(w1->mark.column, 5);
  auto at = [&](const std::string& ptr) {
    Mark m = w1->mark_of(ptr);
    return std::to_string(m.line) + ":" + std::to_string(m.column);
  };
  EXPECT_EQ(at("/label"), "6:12");
  EXPECT_EQ(at("/password"), "10:15");
  EXPECT_EQ(at("/ports"), "17:7");
  EXPECT_EQ(at("/ports/0"), "17:9");
  EXPECT_EQ(at("/ports/0/number"), "17:18");
  EXPECT_EQ(at("/ports/1/number"), "18:17");
  EXPECT_EQ(at("/nested/a"), "20:17");
  // Unknown pointers fall back to the nearest enclosing key, then to the device.
  EXPECT_EQ(at("/ports/1/nothing/deeper"), "18:9");
  EXPECT_EQ(at("/nothing"), "4:5");
  EXPECT_EQ(at(""), "4:5");
}

TEST(Loader, SecretsAreListedWithTheirSource) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n"
                    "  - {name: a, type: widget, password: {env: A_PW}}\n"
                    "  - {name: b, type: widget, password: {file: secrets/b}}\n"
                    "  - {name: c, type: widget, password: {command: [pass, show, c]}}\n"
                    "  - {name: d, type: widget, password: hunter2}\n",
                schemas);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  const auto& s = r.inventory->secrets;
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].device, "a");
  EXPECT_EQ(s[0].pointer, "/password");
  EXPECT_EQ(s[0].ref.source, SecretRef::Source::Env);
  EXPECT_EQ(s[0].ref.ref, "A_PW");
  EXPECT_EQ(s[1].ref.source, SecretRef::Source::File);
  EXPECT_EQ(s[1].ref.ref, "/srv/lab/secrets/b");  // relative to the inventory's directory
  EXPECT_EQ(s[2].ref.source, SecretRef::Source::Command);
  EXPECT_EQ(s[2].ref.argv, (std::vector<std::string>{"pass", "show", "c"}));
  EXPECT_EQ(s[3].ref.source, SecretRef::Source::Literal);
  EXPECT_EQ(s[3].ref.literal, "hunter2");
  EXPECT_EQ(r.inventory->device("d")->params["password"],
            json({{"$secret", {{"literal", "hunter2"}}}}));
  // The literal is a warning at its position, and never appears in a message.
  ASSERT_EQ(r.diags.items().size(), 1u) << all_diags(r);
  const auto& w = r.diags.items()[0];
  EXPECT_EQ(w.severity, Severity::Warning);
  EXPECT_EQ(w.mark.line, 7);
  EXPECT_EQ(w.message.find("hunter2"), std::string::npos);
}

TEST(Loader, ReferencesAreCheckedForExistenceAndCapability) {
  FakeSchemas schemas;
  auto ok = load(kHeader +
                     "devices:\n  - {name: w, type: widget}\n  - {name: g, type: gadget, "
                     "host: w}\n",
                 schemas);
  ASSERT_TRUE(ok.inventory) << all_diags(ok);
  EXPECT_EQ(ok.inventory->device("g")->references, std::vector<std::string>{"w"});

  auto wrong = load(kHeader +
                        "devices:\n  - {name: g1, type: gadget, host: g2}\n"
                        "  - {name: g2, type: gadget, host: g1}\n",
                    schemas);
  EXPECT_FALSE(wrong.inventory);
  const Diagnostic* d = find_diag(wrong, "lacks the 'power' capability");
  ASSERT_NE(d, nullptr) << all_diags(wrong);
  EXPECT_EQ(d->mark.line, 4);
  EXPECT_NE(d->message.find("types with it: widget"), std::string::npos) << d->message;

  auto missing = load(kHeader + "devices:\n  - {name: g, type: gadget, host: nobody}\n", schemas);
  EXPECT_FALSE(missing.inventory);
  EXPECT_NE(find_diag(missing, "names device 'nobody', which is not defined"), nullptr)
      << all_diags(missing);
}

TEST(Loader, MergeKeysExplicitKeysWin) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n"
                    "  - &base {name: w1, type: widget, label: base, slots: 3}\n"
                    "  - <<: *base\n"
                    "    name: w2\n"
                    "    label: own\n",
                schemas);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  const Device* w2 = r.inventory->device("w2");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->type, "widget");
  EXPECT_EQ(w2->params["label"], "own");
  EXPECT_EQ(w2->params["slots"], 3);
}

TEST(Loader, MergeKeyListEarlierSourcesWin) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n"
                    "  - &one {name: w1, type: widget, label: one, slots: 1}\n"
                    "  - &two {name: w2, type: widget, label: two, slots: 4, mode: fast}\n"
                    "  - <<: [*one, *two]\n"
                    "    name: w3\n",
                schemas);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  const json& p = r.inventory->device("w3")->params;
  EXPECT_EQ(p["label"], "one");
  EXPECT_EQ(p["slots"], 1);
  EXPECT_EQ(p["mode"], "fast");  // only the second source has it
}

TEST(Loader, MergeOfAScalarIsAnError) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n"
                    "  - {name: w1, type: widget, label: &l text}\n"
                    "  - <<: *l\n"
                    "    name: w2\n"
                    "    type: widget\n",
                schemas);
  EXPECT_FALSE(r.inventory);
  const Diagnostic* d = find_diag(r, "'<<' merges a mapping or a list of mappings");
  ASSERT_NE(d, nullptr) << all_diags(r);
  EXPECT_EQ(d->mark.line, 5);
  EXPECT_EQ(d->mark.column, 5);
}

TEST(Loader, EmptyValueIsReportedAtItsKey) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n"
                    "  - name: w1\n"
                    "    type: widget\n"
                    "    label:\n"
                    "    slots: 2\n",
                schemas);
  EXPECT_FALSE(r.inventory);
  const Diagnostic* d = find_diag(r, "'label': expected text, found nothing");
  ASSERT_NE(d, nullptr) << all_diags(r);
  EXPECT_EQ(d->mark.line, 6);  // the key's line, not the next key's
  EXPECT_EQ(d->mark.column, 5);
}

TEST(Loader, SchemaViolationsAreReportedAtTheValue) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n"
                    "  - name: w1\n"
                    "    type: widget\n"
                    "    label: x\n"                  // 6: too short
                    "    slots: 9\n"                  // 7: out of range
                    "    enabled: perhaps\n"          // 8: not a bool
                    "    mode: fats\n"                // 9: enum, did you mean
                    "    hwaddr: 00:1b:54\n"          // 10: bad mac
                    "    mgmt: 10.0.0.256\n"          // 11: bad ipv4
                    "    ports: [{vlan: a}]\n"        // 12: missing required number
                    "    nested: {a: x, bogus: 1}\n"  // 13: unknown nested key
                    "    colour: red\n",              // 14: unknown key
                schemas);
  EXPECT_FALSE(r.inventory);
  std::vector<std::string> got;
  for (const auto& d : r.diags.sorted())
    got.push_back(std::to_string(d.mark.line) + ":" + std::to_string(d.mark.column) + " " +
                  d.message);
  const std::vector<std::string> want = {
      "6:12 'label' is 1 characters; at least 2 required",
      "7:12 'slots' is 9, outside 1..4",
      "8:14 'enabled': expected true or false, found a scalar 'perhaps'",
      "9:11 'mode' is 'fats'; expected one of fast or slow (did you mean 'fast'?)",
      "10:13 'hwaddr': '00:1b:54' is not a MAC address (expected six hex pairs, e.g. "
      "00:1b:54:aa:bb:cc)",
      "11:11 'mgmt': '10.0.0.256' is not an IPv4 address",
      "12:13 missing required key 'number' in 'ports[0]'",
      "13:20 unknown key 'bogus' in 'nested'",
      "14:5 unknown key 'colour' in device",
  };
  EXPECT_EQ(got, want);
}

TEST(Loader, UnterminatedQuoteIsASyntaxError) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n  - name: w1\n    type: widget\n    label: \"ab\n"
                    "  - name: w2\n    type: widget\n",
                schemas);
  EXPECT_FALSE(r.inventory);
  const Diagnostic* d = find_diag(r, "never closed");
  ASSERT_NE(d, nullptr) << all_diags(r);
  EXPECT_EQ(d->mark.line, 6);
  EXPECT_EQ(d->mark.column, 12);
  // Escaped and doubled quotes at the very end are closed quotes.
  for (const std::string last :
       {"    label: \"a\\\"b\"\n", "    label: 'a''b'\n", "    label: a'b\n"}) {
    auto ok = load(kHeader + "devices:\n  - name: w1\n    type: widget\n" + last, schemas);
    EXPECT_TRUE(ok.inventory) << last << all_diags(ok);
  }
}

TEST(Loader, InventoryOverMaxBytesIsRefused) {
  FakeSchemas schemas;
  LoadOptions o = test_options();
  o.max_bytes = 32;
  auto r = load(kFull, schemas, o);
  EXPECT_FALSE(r.inventory);
  ASSERT_EQ(r.diags.error_count(), 1u);
  EXPECT_NE(r.diags.items()[0].message.find("the limit is 32"), std::string::npos) << all_diags(r);

  const fs::path file =
      fs::temp_directory_path() / ("labctl-loader-big-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << kFull;
  auto from_file = load_inventory(file, schemas, o);
  fs::remove(file);
  EXPECT_FALSE(from_file.inventory);
  ASSERT_EQ(from_file.diags.error_count(), 1u);
  EXPECT_NE(from_file.diags.items()[0].message.find("the limit is 32"), std::string::npos)
      << all_diags(from_file);
}

TEST(Loader, MissingFileGivesAClearDiagnostic) {
  FakeSchemas schemas;
  const fs::path missing = "/nonexistent-labctl-dir/lab.yaml";
  auto r = load_inventory(missing, schemas, test_options());
  EXPECT_FALSE(r.inventory);
  ASSERT_EQ(r.diags.error_count(), 1u);
  const auto& d = r.diags.items()[0];
  EXPECT_EQ(d.file, missing.string());
  EXPECT_EQ(d.format(), missing.string() + ": error: cannot read: No such file or directory");
}

TEST(Loader, LoadsAFileFromDiskWithItsDirectoryAsBase) {
  FakeSchemas schemas;
  const fs::path dir = fs::temp_directory_path() / ("labctl-loader-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "lab.yaml") << kHeader
                                  << "devices:\n  - {name: w, type: widget, password: {file: "
                                     "pw}}\n";
  auto r = load_inventory(dir / "lab.yaml", schemas, test_options());
  fs::remove_all(dir);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  ASSERT_EQ(r.inventory->secrets.size(), 1u);
  EXPECT_EQ(r.inventory->secrets[0].ref.ref, (dir / "pw").string());
  EXPECT_EQ(r.inventory->device("w")->mark.line, 4);
}

TEST(Loader, CheckDeviceRunsOnlyOnStructurallyValidInventories) {
  FakeSchemas valid;
  auto ok = load(kFull, valid);
  ASSERT_TRUE(ok.inventory) << all_diags(ok);
  EXPECT_EQ(valid.checked, (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ(valid.devices_seen, 2u);

  FakeSchemas broken;
  auto bad = load(kHeader +
                      "devices:\n  - {name: w1, type: widget}\n"
                      "  - {name: w2, type: widget, hwaddr: nope}\n",
                  broken);
  EXPECT_FALSE(bad.inventory);
  EXPECT_TRUE(broken.checked.empty());
}

TEST(Loader, CheckDeviceErrorsFailTheLoadAtTheKey) {
  FakeSchemas schemas;
  auto r = load(kHeader +
                    "devices:\n"
                    "  - name: w1\n"
                    "    type: widget\n"
                    "    label: bad\n"
                    "    ports:\n"
                    "      - {number: 12}\n"
                    "      - {number: 13}\n",
                schemas);
  EXPECT_FALSE(r.inventory);
  std::vector<std::string> got;
  for (const auto& d : r.diags.sorted())
    got.push_back(d.format());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "inv.yaml:6:12: error: device 'w1': label is bad",
                     "inv.yaml:9:18: error: device 'w1': port 13 is unlucky",
                 }));
}

TEST(Loader, CheckDeviceWarningsKeepTheInventory) {
  FakeSchemas schemas;
  auto r = load(kHeader + "devices:\n  - {name: w1, type: widget, label: meh}\n", schemas);
  ASSERT_TRUE(r.inventory) << all_diags(r);
  ASSERT_EQ(r.diags.items().size(), 1u);
  EXPECT_EQ(r.diags.items()[0].format(), "inv.yaml:4:37: warning: device 'w1': label is meh");
}

// Addresses --------------------------------------------------------------------------------------

TEST(NormalizeMac, AcceptsTheUsualSpellings) {
  for (const char* s : {"00:1b:54:aa:bb:cc", "00:1B:54:AA:BB:CC", "00-1b-54-AA-bb-CC",
                        "001b.54aa.bbcc", "001B.54AA.BBCC", "001b54aabbcc"})
    EXPECT_EQ(normalize_mac(s), "00:1b:54:aa:bb:cc") << s;
}

TEST(NormalizeMac, RejectsMixedSeparatorsAndBadGroups) {
  for (const char* s : {
           "00:1b:54-aa:bb:cc",   // mixed separators
           "00-1b-54:aa-bb-cc",   // mixed separators
           "001b:54aa:bbcc",      // Cisco groups need dots
           "001b.54aa:bbcc",      // mixed in dotted form
           "0:1b:54:aa:bb:cc0",   // group of one
           "001:b5:4a:ab:bc:c0",  // group of three
           "00:1b:54:aa:bb",      // five groups
           "00:1b:54:aa:bb:cc:dd",
           "001b54aabbc",         // eleven digits
           "00:1b:54:aa:bb:zz",   // not hex
           "00:1b:54:aa:bb:cc ",  // trailing space
           "",
       })
    EXPECT_FALSE(normalize_mac(s).has_value()) << "'" << s << "'";
}

TEST(ParseIpv4, ParsesDottedQuads) {
  EXPECT_EQ(parse_ipv4("192.168.0.1"), 0xC0A80001u);
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0u);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xFFFFFFFFu);
  EXPECT_EQ(parse_ipv4("10.0.0.10"), 0x0A00000Au);
  EXPECT_EQ(format_ipv4(0xC0A80001u), "192.168.0.1");
}

TEST(ParseIpv4, RejectsEverythingElse) {
  for (const char* s : {"01.2.3.4", "1.2.3.04", "1.02.3.4", "256.1.1.1", "1.2.3.256", "1.2.3.1000",
                        "1.2.3.4.", ".1.2.3.4", "1.2.3", "1.2.3.4.5", "1..2.3", " 1.2.3.4",
                        "1.2.3.4 ", "1. 2.3.4", "a.b.c.d", "1.2.3.-4", "+1.2.3.4", ""})
    EXPECT_FALSE(parse_ipv4(s).has_value()) << "'" << s << "'";
}

TEST(ParseCidr, ParsesNetworks) {
  auto n = parse_cidr("192.168.0.0/24");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->network, 0xC0A80000u);
  EXPECT_EQ(n->prefix, 24);
  EXPECT_EQ(n->to_string(), "192.168.0.0/24");
  auto host = parse_cidr("10.1.2.3/32");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix, 32);
  EXPECT_EQ(parse_cidr("10.0.0.0/8")->network, 0x0A000000u);
  EXPECT_EQ(parse_cidr("128.0.0.0/1")->prefix, 1);
}

TEST(ParseCidr, RejectsHostBitsAndBadPrefixes) {
  for (const char* s :
       {"192.168.0.1/24", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/0", "10.0.0.0/-1", "10.0.0.0/",
        "10.0.0.0", "10.0.0.0/8x", "10.0.0.0/ 8", "300.0.0.0/8", "/24", ""})
    EXPECT_FALSE(parse_cidr(s).has_value()) << "'" << s << "'";
}

TEST(Ipv4Net, Contains) {
  const auto net = *parse_cidr("192.168.0.0/24");
  EXPECT_TRUE(net.contains(*parse_ipv4("192.168.0.0")));
  EXPECT_TRUE(net.contains(*parse_ipv4("192.168.0.255")));
  EXPECT_FALSE(net.contains(*parse_ipv4("192.168.1.0")));
  EXPECT_FALSE(net.contains(*parse_ipv4("192.167.255.255")));
  const auto one = *parse_cidr("10.0.0.7/32");
  EXPECT_TRUE(one.contains(*parse_ipv4("10.0.0.7")));
  EXPECT_FALSE(one.contains(*parse_ipv4("10.0.0.6")));
  const auto half = *parse_cidr("0.0.0.0/1");
  EXPECT_TRUE(half.contains(*parse_ipv4("127.255.255.255")));
  EXPECT_FALSE(half.contains(*parse_ipv4("128.0.0.0")));
  EXPECT_TRUE(Ipv4Net{}.contains(*parse_ipv4("8.8.8.8")));  // no subnet: no constraint
}

}  // namespace
}  // namespace labctl::inventory
