// Golden tests for inventory diagnostics: every file in tests/inventory/bad/ is a small inventory
// whose leading comments state the exact diagnostics `labctl validate` must print for it:
//
//   # expect: 12:7: error: unknown key 'modle' in device (did you mean 'model'?)
//   # expect-valid            (the inventory must load; only warnings are expected)
//
// Diagnostics are compared in the order they are printed (sorted by line and column), with the
// file name left off. "<src>" in an expectation stands for the source tree (catalog paths).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "inventory/loader.h"
#include "plugins/registry.h"

namespace {

namespace fs = std::filesystem;
using labctl::inventory::load_inventory;

fs::path bad_dir() {
  return fs::path(LABCTL_SOURCE_DIR) / "tests" / "inventory" / "bad";
}

std::vector<fs::path> bad_files() {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(bad_dir(), ec))
    if (e.is_regular_file() && e.path().extension() == ".yaml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

struct Expectation {
  bool valid = false;
  std::vector<std::string> lines;
};

// The `# expect...` lines of the leading comment block.
Expectation read_expectation(const fs::path& path) {
  Expectation ex;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("#")) break;
    if (line.starts_with("# expect-valid")) {
      ex.valid = true;
    } else if (line.starts_with("# expect:")) {
      std::string s = line.substr(9);
      if (s.starts_with(" ")) s.erase(0, 1);
      ex.lines.push_back(s);
    }
  }
  return ex;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
}

// "tests/inventory/bad/x.yaml:3:1: error: ..." -> "3:1: error: ..."
std::string strip_file(std::string formatted, const std::string& file) {
  if (formatted.starts_with(file)) {
    formatted.erase(0, file.size());
    if (formatted.starts_with(":")) formatted.erase(0, 1);
    if (formatted.starts_with(" ")) formatted.erase(0, 1);
  }
  replace_all(formatted, LABCTL_SOURCE_DIR, "<src>");
  return formatted;
}

std::string test_name(const fs::path& p) {
  std::string s = p.stem().string();
  for (auto& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

std::string join_lines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += "  " + s + "\n";
  return out;
}

class BadInventory : public ::testing::TestWithParam<fs::path> {
 protected:
  static void SetUpTestSuite() {
    registry_ = new labctl::plugins::Registry;
    labctl::plugins::register_builtin_plugins(*registry_);
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }
  static labctl::plugins::Registry* registry_;
};
labctl::plugins::Registry* BadInventory::registry_ = nullptr;

TEST_P(BadInventory, ReportsExactlyTheExpectedDiagnostics) {
  const fs::path path = GetParam();
  const Expectation ex = read_expectation(path);
  ASSERT_TRUE(ex.valid || !ex.lines.empty())
      << path << " states no '# expect:' line and is not '# expect-valid'";

  auto result = load_inventory(path, *registry_);
  std::vector<std::string> actual;
  for (const auto& d : result.diags.sorted())
    actual.push_back(strip_file(d.format(), path.string()));

  EXPECT_EQ(actual, ex.lines) << path.filename().string() << "\nexpected:\n"
                              << join_lines(ex.lines) << "actual:\n"
                              << join_lines(actual);
  if (ex.valid) {
    EXPECT_TRUE(result.inventory.has_value()) << path << " must load (expect-valid)";
    EXPECT_FALSE(result.diags.has_errors());
  } else {
    EXPECT_FALSE(result.inventory.has_value()) << path << " must be refused";
    EXPECT_TRUE(result.diags.has_errors());
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, BadInventory, ::testing::ValuesIn(bad_files()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           return test_name(info.param);
                         });

TEST(BadInventoryCorpus, HasAtLeast25Cases) {
  EXPECT_GE(bad_files().size(), 25u) << "in " << bad_dir();
}

TEST(BadInventoryCorpus, EveryCaseStatesItsExpectation) {
  for (const auto& f : bad_files()) {
    const auto ex = read_expectation(f);
    EXPECT_TRUE(ex.valid || !ex.lines.empty()) << f;
    EXPECT_FALSE(ex.valid && std::any_of(ex.lines.begin(), ex.lines.end(),
                                         [](const auto& l) {
                                           return l.find(": error: ") != std::string::npos;
                                         }))
        << f << " is expect-valid but expects an error";
  }
}

}  // namespace
