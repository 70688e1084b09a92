#include "inventory/version.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

namespace labctl::inventory {
namespace {

using S = VersionScheme;

Version must_parse(S scheme, std::string_view text) {
  auto v = parse_version(scheme, text);
  EXPECT_TRUE(v.has_value()) << text << ": " << (v ? "" : v.error().message());
  return v ? *v : Version{};
}

TEST(VersionScheme, NamesRoundTrip) {
  for (auto s : {S::CiscoLoad, S::MajorMinor, S::Dotted, S::Esxi}) {
    auto back = scheme_from_name(scheme_name(s));
    ASSERT_TRUE(back.has_value()) << scheme_name(s);
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(scheme_name(S::CiscoLoad), "cisco-load");
  EXPECT_EQ(scheme_name(S::MajorMinor), "major-minor");
  auto bad = scheme_from_name("semver");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), Errc::InvalidInput);
  EXPECT_NE(bad.error().message().find("cisco-load"), std::string::npos);
}

// ---- parse and display --------------------------------------------------------------------------

struct ParseCase {
  S scheme;
  const char* text;
  const char* display;
  std::string protocol;
  std::vector<std::int64_t> key;
};

void PrintTo(const ParseCase& c, std::ostream* os) {
  *os << scheme_name(c.scheme) << " '" << c.text << "'";
}

class ParseOk : public testing::TestWithParam<ParseCase> {};

TEST_P(ParseOk, ParsesWithKeyAndDisplay) {
  const auto& c = GetParam();
  auto v = parse_version(c.scheme, c.text);
  ASSERT_TRUE(v.has_value()) << c.text << ": " << v.error().message();
  EXPECT_EQ(v->scheme, c.scheme);
  EXPECT_EQ(v->key, c.key) << c.text;
  EXPECT_EQ(v->protocol, c.protocol) << c.text;
  EXPECT_EQ(v->display(), c.display) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    Cisco, ParseOk,
    testing::Values(
        // The seed's load ids.
        ParseCase{S::CiscoLoad, "SCCP11.8-5-2S", "SCCP 8.5(2)", "sccp", {8, 5, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "SIP11.9-4-2SR1-1S", "SIP 9.4(2)SR1", "sip", {9, 4, 2, 1, 1}},
        ParseCase{S::CiscoLoad, "SCCP11.8-3-3S", "SCCP 8.3(3)", "sccp", {8, 3, 3, 0, 0}},
        ParseCase{S::CiscoLoad, "SCCP11.7-2-1S", "SCCP 7.2(1)", "sccp", {7, 2, 1, 0, 0}},
        ParseCase{S::CiscoLoad, "SIP11.9-4-2ES9", "SIP 9.4(2)", "sip", {9, 4, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "SIP41.9-2-1S", "SIP 9.2(1)", "sip", {9, 2, 1, 0, 0}},
        ParseCase{S::CiscoLoad, "sccp11.8-5-2s", "SCCP 8.5(2)", "sccp", {8, 5, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "SIP.9-4-2SR3", "SIP 9.4(2)SR3", "sip", {9, 4, 2, 3, 0}},
        // File-name versions (jar11sccp.8-5-2TH1-9.sbn, jar11sip.9-4-2ES9.sbn).
        ParseCase{S::CiscoLoad, "8-5-2TH1-9", "8.5(2)", "", {8, 5, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "8-5-2th1-9", "8.5(2)", "", {8, 5, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "9-4-2ES9", "9.4(2)", "", {9, 4, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "9-4-2SR1-1", "9.4(2)SR1", "", {9, 4, 2, 1, 1}},
        ParseCase{S::CiscoLoad, "9-4-2-3", "9.4(2)", "", {9, 4, 2, 0, 3}},
        // Display forms, with and without protocol.
        ParseCase{S::CiscoLoad, "8.5(2)", "8.5(2)", "", {8, 5, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "9.4(2)SR1", "9.4(2)SR1", "", {9, 4, 2, 1, 0}},
        ParseCase{S::CiscoLoad, "8.3(3)", "8.3(3)", "", {8, 3, 3, 0, 0}},
        ParseCase{S::CiscoLoad, "SCCP 8.5(2)", "SCCP 8.5(2)", "sccp", {8, 5, 2, 0, 0}},
        ParseCase{S::CiscoLoad, "  SIP   9.4(2)SR1 ", "SIP 9.4(2)SR1", "sip", {9, 4, 2, 1, 0}}));

INSTANTIATE_TEST_SUITE_P(
    Others, ParseOk,
    testing::Values(
        ParseCase{S::MajorMinor, "2.50", "2.50", "", {2, 50}},
        ParseCase{S::MajorMinor, "2.05", "2.05", "", {2, 5}},
        ParseCase{S::MajorMinor, "1.76", "1.76", "", {1, 76}},
        ParseCase{S::MajorMinor, "127.99", "127.99", "", {127, 99}},
        ParseCase{S::MajorMinor, "02.50", "2.50", "", {2, 50}},
        ParseCase{S::Dotted, "1.04", "1.04", "", {1, 4}},
        ParseCase{S::Dotted, "1.12", "1.12", "", {1, 12}}, ParseCase{S::Dotted, "3", "3", "", {3}},
        ParseCase{S::Dotted, "1.2.3", "1.2.3", "", {1, 2, 3}},
        ParseCase{S::Dotted, "1.0.0", "1.0.0", "", {1}}, ParseCase{S::Dotted, "0", "0", "", {}},
        ParseCase{S::Esxi, "6.5.0", "6.5.0", "", {6, 5, 0, 0}},
        ParseCase{S::Esxi, "6.5.0 build 4564106", "6.5.0 build 4564106", "", {6, 5, 0, 4564106}},
        ParseCase{S::Esxi, "4.1.0-260247", "4.1.0 build 260247", "", {4, 1, 0, 260247}},
        ParseCase{S::Esxi, "ESXi 4.1.0 build-260247", "4.1.0 build 260247", "", {4, 1, 0, 260247}},
        ParseCase{S::Esxi,
                  "VMware ESXi 6.5.0 build-4564106",
                  "6.5.0 build 4564106",
                  "",
                  {6, 5, 0, 4564106}},
        ParseCase{S::Esxi, "6.5", "6.5.0", "", {6, 5, 0, 0}}));

TEST(Version, TextKeepsWhatWasWrittenWithNormalisedWhitespace) {
  EXPECT_EQ(must_parse(S::Esxi, " 6.5.0\t build   4564106\n").text, "6.5.0 build 4564106");
  EXPECT_EQ(must_parse(S::CiscoLoad, "SIP11.9-4-2SR1-1S").text, "SIP11.9-4-2SR1-1S");
  EXPECT_EQ(must_parse(S::Dotted, "1.04").text, "1.04");
}

// ---- rejections ---------------------------------------------------------------------------------

struct BadCase {
  S scheme;
  std::string text;
  const char* needle;  // part of the message that says what was wrong or expected
};

void PrintTo(const BadCase& c, std::ostream* os) {
  *os << scheme_name(c.scheme) << " '" << c.text.substr(0, 40) << "'";
}

class ParseBad : public testing::TestWithParam<BadCase> {};

TEST_P(ParseBad, RejectedWithMessage) {
  const auto& c = GetParam();
  auto v = parse_version(c.scheme, c.text);
  ASSERT_FALSE(v.has_value()) << "'" << c.text << "' parsed with key size " << v->key.size();
  EXPECT_EQ(v.error().code(), Errc::InvalidInput);
  EXPECT_NE(v.error().message().find(c.needle), std::string::npos)
      << "message: " << v.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    All, ParseBad,
    testing::Values(BadCase{S::CiscoLoad, "", "empty cisco-load version"},
                    BadCase{S::CiscoLoad, "   ", "empty"},
                    BadCase{S::CiscoLoad, "8.5", "expected a Cisco load id like SCCP11.8-5-2S"},
                    BadCase{S::CiscoLoad, "8-5", "maintenance"},
                    BadCase{S::CiscoLoad, "8.5(2", "expected ')'"},
                    BadCase{S::CiscoLoad, "SCCP", "followed by '.'"},
                    BadCase{S::CiscoLoad, "SCCP11", "followed by '.'"},
                    BadCase{S::CiscoLoad, "SCCP11.", "expected a number at the end"},
                    BadCase{S::CiscoLoad, "XYZ11.8-5-2S", "expected a number at 'X'"},
                    BadCase{S::CiscoLoad, "8-5-2SR", "unexpected 'S'"},
                    BadCase{S::CiscoLoad, "8-5-2SR1SR2", "more than one service release"},
                    BadCase{S::CiscoLoad, "8-5-2ES1TH2", "more than one ES/TH"},
                    BadCase{S::CiscoLoad, "8-5-2X", "unexpected 'X' (position 6)"},
                    BadCase{S::CiscoLoad, "99999999999999999999-5-2", "is too large"},
                    BadCase{S::CiscoLoad, "8-5-2SR99999999999999999999", "is too large"},
                    BadCase{S::CiscoLoad, "-8-5-2", "expected a number"},
                    BadCase{S::MajorMinor, "2.5", "exactly two digits"},
                    BadCase{S::MajorMinor, "2.500", "exactly two digits"},
                    BadCase{S::MajorMinor, "2", "missing '.' and two-digit minor"},
                    BadCase{S::MajorMinor, "0.50", "major 0 is not 1-127"},
                    BadCase{S::MajorMinor, "128.00", "major 128 is not 1-127"},
                    BadCase{S::MajorMinor, "2.5a", "unexpected characters"},
                    BadCase{S::MajorMinor, "2.", "missing minor"},
                    BadCase{S::MajorMinor, "2.ab", "missing minor"},
                    BadCase{S::MajorMinor, "99999999999999999999.50", "is too large"},
                    BadCase{S::Dotted, "1..2", "expected a number at '.'"},
                    BadCase{S::Dotted, "1.", "expected a number at the end"},
                    BadCase{S::Dotted, ".1", "expected a number"},
                    BadCase{S::Dotted, "v1.2", "expected a number at 'v'"},
                    BadCase{S::Dotted, "1.2b", "unexpected 'b'"},
                    BadCase{S::Dotted, "1 2", "unexpected ' '"},
                    BadCase{S::Dotted, "1.99999999999999999999", "is too large"},
                    BadCase{S::Dotted, "-1", "expected a number"},
                    BadCase{S::Esxi, "6.5.0.1", "more than 3 components"},
                    BadCase{S::Esxi, "6.5.0 build", "expected a number at the end"},
                    BadCase{S::Esxi, "6.5.0 patch 3", "expected 'build'"},
                    BadCase{S::Esxi, "6.5.0-", "expected a number at the end"},
                    BadCase{S::Esxi, "6.5.0-12x", "unexpected 'x'"},
                    BadCase{S::Esxi, "ESXi", "expected a number"},
                    BadCase{S::Esxi, "6.5.0 build 99999999999999999999", "is too large"}));

TEST(Version, TrailingWhitespaceIsTrimmedNotAnError) {
  auto v = parse_version(S::CiscoLoad, "8-5-2S \n");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->text, "8-5-2S");
}

TEST(Version, HugeAndGarbageInputsAreRejectedWithoutCrashing) {
  const std::vector<std::string> inputs = {
      std::string(100000, '9'),
      std::string(100000, '.'),
      "1." + std::string(5000, '1'),
      std::string("\0\0\0", 3),
      "\xff\xfe\x80",
      std::string("SCCP11.8-5-2S\0junk", 18),
      "(((((",
      "SR1-1S",
      "9223372036854775808.1",  // INT64_MAX + 1
  };
  for (auto s : {S::CiscoLoad, S::MajorMinor, S::Dotted, S::Esxi}) {
    for (const auto& in : inputs) {
      auto v = parse_version(s, in);
      EXPECT_FALSE(v.has_value()) << scheme_name(s) << " accepted " << in.substr(0, 20);
      if (!v) {
        EXPECT_LT(v.error().message().size(), 600u);
      }
    }
  }
}

TEST(Version, LargestNumbersStillParse) {
  auto v = parse_version(S::Dotted, "9223372036854775807.1");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->key[0], INT64_MAX);
  EXPECT_FALSE(parse_version(S::Dotted, "9223372036854775808").has_value());
}

TEST(Version, EveryPrefixOfValidIdsParsesOrFailsCleanly) {
  // A cheap stand-in for fuzzing: every prefix and every single-byte corruption of real ids.
  const std::vector<std::pair<S, std::string>> seeds = {{S::CiscoLoad, "SIP11.9-4-2SR1-1S"},
                                                        {S::CiscoLoad, "SCCP 8.5(2)"},
                                                        {S::CiscoLoad, "8-5-2TH1-9"},
                                                        {S::MajorMinor, "2.50"},
                                                        {S::Dotted, "1.2.3"},
                                                        {S::Esxi, "ESXi 4.1.0 build-260247"}};
  const std::string junk = "-.()SsRrEeTtHh 09x\xff";
  for (const auto& [scheme, seed] : seeds) {
    for (std::size_t n = 0; n <= seed.size(); ++n) {
      auto v = parse_version(scheme, seed.substr(0, n));
      if (v) {
        EXPECT_FALSE(v->key.empty() && scheme != S::Dotted) << seed.substr(0, n);
      }
    }
    for (std::size_t i = 0; i < seed.size(); ++i) {
      for (char c : junk) {
        std::string s = seed;
        s[i] = c;
        auto v = parse_version(scheme, s);
        if (v) {
          EXPECT_EQ(compare(*v, *v), std::strong_ordering::equal);
          (void)v->display();
        }
      }
    }
  }
}

// ---- ordering -----------------------------------------------------------------------------------

struct OrderCase {
  S scheme;
  const char* a;
  const char* b;
  int expected;  // sign of compare(a, b)
};

void PrintTo(const OrderCase& c, std::ostream* os) {
  *os << scheme_name(c.scheme) << " '" << c.a << "' vs '" << c.b << "'";
}

class Ordering : public testing::TestWithParam<OrderCase> {};

TEST_P(Ordering, ComparesAsExpected) {
  const auto& c = GetParam();
  Version a = must_parse(c.scheme, c.a);
  Version b = must_parse(c.scheme, c.b);
  auto ord = compare(a, b);
  int sign = ord < 0 ? -1 : ord > 0 ? 1 : 0;
  EXPECT_EQ(sign, c.expected) << c.a << " vs " << c.b;
  auto rev = compare(b, a);
  int rsign = rev < 0 ? -1 : rev > 0 ? 1 : 0;
  EXPECT_EQ(rsign, -c.expected) << "antisymmetry: " << c.b << " vs " << c.a;
  EXPECT_EQ(same_version(a, b), c.expected == 0);
  EXPECT_EQ(a < b, c.expected < 0);
}

INSTANTIATE_TEST_SUITE_P(
    Cisco, Ordering,
    testing::Values(OrderCase{S::CiscoLoad, "8.5(2)", "9.4(2)SR1", -1},
                    OrderCase{S::CiscoLoad, "8.3(3)", "8.5(2)", -1},
                    OrderCase{S::CiscoLoad, "9.4(2)", "9.4(2)SR1", -1},
                    OrderCase{S::CiscoLoad, "SCCP11.8-5-2S", "SIP11.9-4-2SR1-1S", -1},
                    OrderCase{S::CiscoLoad, "SCCP11.7-2-1S", "SCCP11.8-3-3S", -1},
                    OrderCase{S::CiscoLoad, "9.4(2)SR1", "9.4(2)SR2", -1},
                    OrderCase{S::CiscoLoad, "9-4-2SR1-1", "9-4-2SR1-2", -1},
                    OrderCase{S::CiscoLoad, "9.4(2)SR1", "SIP11.9-4-2SR1-1S",
                              -1},                                    // build 0 < build 1
                    OrderCase{S::CiscoLoad, "9.10(1)", "9.9(1)", 1},  // numeric, not text
                    OrderCase{S::CiscoLoad, "9-4-2ES9", "9.4(2)SR1", -1},
                    // TH/ES tags and the signed marker do not change the release.
                    OrderCase{S::CiscoLoad, "8-5-2TH1-9", "8.5(2)", 0},
                    OrderCase{S::CiscoLoad, "8-5-2TH1-9", "SCCP11.8-5-2S", 0},
                    OrderCase{S::CiscoLoad, "9-4-2ES9", "9.4(2)", 0},
                    OrderCase{S::CiscoLoad, "9-4-2ES9", "9-4-2ES10", 0},
                    // Protocol is not part of the order.
                    OrderCase{S::CiscoLoad, "SCCP 8.5(2)", "SIP 8.5(2)", 0},
                    OrderCase{S::CiscoLoad, "SCCP11.8-5-2S", "8.5(2)", 0}));

INSTANTIATE_TEST_SUITE_P(
    Others, Ordering,
    testing::Values(
        OrderCase{S::MajorMinor, "2.50", "2.05", 1}, OrderCase{S::MajorMinor, "1.76", "2.50", -1},
        OrderCase{S::MajorMinor, "2.50", "02.50", 0}, OrderCase{S::MajorMinor, "3.00", "2.99", 1},
        OrderCase{S::Dotted, "1.01", "1.04", -1}, OrderCase{S::Dotted, "1.04", "1.12", -1},
        OrderCase{S::Dotted, "1.04", "1.4", 0}, OrderCase{S::Dotted, "1", "1.0.0", 0},
        OrderCase{S::Dotted, "1", "1.0.1", -1}, OrderCase{S::Dotted, "1.2.3", "1.10", -1},
        OrderCase{S::Dotted, "2", "1.99.99", 1},
        OrderCase{S::Esxi, "6.5.0", "6.5.0 build 4564106", -1},
        OrderCase{S::Esxi, "4.1.0-260247", "ESXi 4.1.0 build-260247", 0},
        OrderCase{S::Esxi, "5.5.0", "4.1.0 build 260247", 1}, OrderCase{S::Esxi, "6.5", "6.5.0", 0},
        OrderCase{S::Esxi, "6.0.0 build 9999999", "6.5.0", -1}));

TEST(Version, SortsSeedLoadsIntoReleaseOrder) {
  std::vector<std::string> texts = {"SIP11.9-4-2SR1-1S", "8.3(3)", "SCCP11.8-5-2S",
                                    "SCCP11.7-2-1S",     "9.4(2)", "9-4-2SR1-2"};
  std::vector<Version> vs;
  for (const auto& t : texts)
    vs.push_back(must_parse(S::CiscoLoad, t));
  std::sort(vs.begin(), vs.end());
  std::vector<std::string> got;
  for (const auto& v : vs)
    got.push_back(v.text);
  EXPECT_EQ(got, (std::vector<std::string>{"SCCP11.7-2-1S", "8.3(3)", "SCCP11.8-5-2S", "9.4(2)",
                                           "SIP11.9-4-2SR1-1S", "9-4-2SR1-2"}));
}

}  // namespace
}  // namespace labctl::inventory
