#include "common/text.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

namespace labctl::text {
namespace {

using Strings = std::vector<std::string>;

TEST(Text, Trim) {
  EXPECT_EQ(trim("  a b \t\n"), "a b");
  EXPECT_EQ(trim("x"), "x");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t\r\n "), "");
  EXPECT_EQ(trim("\ta\t"), "a");
}

TEST(Text, Split) {
  EXPECT_EQ(split("a,b,,c", ','), (Strings{"a", "b", "", "c"}));
  EXPECT_EQ(split("abc", ','), (Strings{"abc"}));
  EXPECT_EQ(split("", ','), (Strings{""}));
  EXPECT_EQ(split("a,", ','), (Strings{"a", ""}));
  EXPECT_EQ(split(",a", ','), (Strings{"", "a"}));
  EXPECT_EQ(split("1.2.3", '.'), (Strings{"1", "2", "3"}));
}

TEST(Text, LowerAndIequals) {
  EXPECT_EQ(lower("AbC-1_Z"), "abc-1_z");
  EXPECT_EQ(lower(""), "");
  EXPECT_TRUE(iequals("X8SIL-F", "x8sil-f"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("abc", "abd"));
  EXPECT_FALSE(iequals("abc", "abcd"));
  EXPECT_FALSE(iequals("abcd", "abc"));
}

TEST(Text, EditDistanceTable) {
  const std::vector<std::tuple<std::string, std::string, std::size_t>> table = {
      {"", "", 0},
      {"abc", "", 3},
      {"", "abc", 3},
      {"same", "same", 0},
      {"a", "b", 1},
      {"kitten", "sitting", 3},
      {"flaw", "lawn", 2},
      {"model", "modle", 1},  // transposition
      {"ab", "ba", 1},        // transposition
      {"abcd", "acbd", 1},    // transposition in the middle
      {"ca", "abc", 3},       // optimal string alignment: no edit of a transposed pair
      {"segment", "segments", 1},
      {"sim-bcm", "sim-bmc", 1},
      {"MODEL", "model", 5},  // case matters here; closest() lowers first
  };
  for (const auto& [a, b, d] : table) {
    EXPECT_EQ(edit_distance(a, b), d) << a << " / " << b;
    EXPECT_EQ(edit_distance(b, a), d) << b << " / " << a;
  }
}

TEST(Text, ClosestFindsTheNearestCandidate) {
  EXPECT_EQ(closest("modle", {"mac", "model", "name"}), "model");
  EXPECT_EQ(closest("sim-bcm", {"sim-phone", "sim-bmc", "sim-drive"}), "sim-bmc");
  EXPECT_EQ(closest("MODEL", {"model"}), "model");       // case-insensitive, candidate's spelling
  EXPECT_EQ(closest("esx3", {"esx1", "esx2"}), "esx1");  // ties: the first candidate
}

TEST(Text, ClosestThresholdScalesWithTheWord) {
  // Two letters allow one edit; "xy" is two away from "ab".
  EXPECT_EQ(closest("ab", {"ac"}), "ac");
  EXPECT_EQ(closest("ab", {"xy"}), "");
  // Six letters allow three edits.
  EXPECT_EQ(closest("abcdef", {"abcxyz"}), "abcxyz");
  EXPECT_EQ(closest("abcdef", {"abwxyz"}), "");
}

TEST(Text, ClosestWithoutMatch) {
  EXPECT_EQ(closest("production", {"lab", "mgmt"}), "");
  EXPECT_EQ(closest("anything", {}), "");
}

TEST(Text, JoinList) {
  EXPECT_EQ(join_list({}), "");
  EXPECT_EQ(join_list({"a"}), "a");
  EXPECT_EQ(join_list({"a", "b"}), "a and b");
  EXPECT_EQ(join_list({"a", "b", "c"}), "a, b and c");
  EXPECT_EQ(join_list({"a", "b", "c"}, " or "), "a, b or c");
  EXPECT_EQ(join_list({"a", "b"}, ", "), "a, b");
}

}  // namespace
}  // namespace labctl::text

namespace labctl::text {
namespace {

TEST(Text, ParseDurationMs) {
  EXPECT_EQ(parse_duration_ms("250ms"), 250);
  EXPECT_EQ(parse_duration_ms("90s"), 90'000);
  EXPECT_EQ(parse_duration_ms("90"), 90'000);
  EXPECT_EQ(parse_duration_ms(" 5m "), 300'000);
  EXPECT_EQ(parse_duration_ms("1h"), 3'600'000);
  EXPECT_EQ(parse_duration_ms("2d"), 172'800'000);
  EXPECT_EQ(parse_duration_ms("0s"), 0);
  for (const char* bad :
       {"", "s", "5x", "-5s", "1.5s", "5 s", "99999999999999999999s", "10000000000000d"})
    EXPECT_FALSE(parse_duration_ms(bad).has_value()) << bad;
}

TEST(Text, ParseSize) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("64KiB"), 65'536u);
  EXPECT_EQ(parse_size(" 1MiB "), 1'048'576u);
  EXPECT_EQ(parse_size("1 mb"), 1'048'576u);
  EXPECT_EQ(parse_size("2G"), 2'147'483'648u);
  EXPECT_EQ(parse_size("0"), 0u);
  for (const char* bad : {"", "KiB", "5x", "-5", "1.5MiB", "99999999999999999999", "17179869184G"})
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
}

}  // namespace
}  // namespace labctl::text
