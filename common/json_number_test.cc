#include "common/json_number.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace labctl::json_number {
namespace {

using nlohmann::json;

TEST(JsonNumber, WholeNumbersThatFitAreRead) {
  EXPECT_EQ(whole<int>(json(42)), 42);
  EXPECT_EQ(whole<int>(json(-7)), -7);
  EXPECT_EQ(whole<std::uint8_t>(json(255)), 255);
  EXPECT_EQ(whole<std::uint64_t>(json(std::numeric_limits<std::uint64_t>::max())),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(whole<std::int64_t>(json(std::numeric_limits<std::int64_t>::min())),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(whole<std::int64_t>(json::parse("9223372036854775807")),
            std::numeric_limits<std::int64_t>::max());
}

TEST(JsonNumber, WhatDoesNotFitIsRefusedNotWrapped) {
  EXPECT_FALSE(whole<std::uint8_t>(json(256)));
  EXPECT_FALSE(whole<std::uint8_t>(json(-1)));
  EXPECT_FALSE(whole<std::uint64_t>(json(-1)));
  EXPECT_FALSE(whole<int>(json(std::int64_t{1} << 31)));
  EXPECT_FALSE(whole<int>(json(-(std::int64_t{1} << 31) - 1)));
  EXPECT_EQ(whole<int>(json(-(std::int64_t{1} << 31))), std::numeric_limits<int>::min());
  // 2^63 parses as unsigned; as int64 it would change sign.
  EXPECT_FALSE(whole<std::int64_t>(json::parse("9223372036854775808")));
  EXPECT_EQ(whole<std::uint64_t>(json::parse("9223372036854775808")), 9223372036854775808ull);
}

TEST(JsonNumber, FloatsStringsAndOthersAreNotWholeNumbers) {
  EXPECT_FALSE(whole<int>(json(1.0)));
  EXPECT_FALSE(whole<int>(json(1.5)));
  // the fuzzer's "modes":[5111...1]: a number too large for any integer type parses as a float
  EXPECT_FALSE(whole<std::int64_t>(json::parse("5111111111111111111111111111111")));
  EXPECT_FALSE(whole<int>(json("12")));
  EXPECT_FALSE(whole<int>(json(true)));
  EXPECT_FALSE(whole<int>(json(nullptr)));
  EXPECT_FALSE(whole<int>(json::array({1})));
}

TEST(JsonNumber, WholeInChecksBothBounds) {
  EXPECT_EQ(whole_in(json(0), 0, 10), 0);
  EXPECT_EQ(whole_in(json(10), 0, 10), 10);
  EXPECT_FALSE(whole_in(json(11), 0, 10));
  EXPECT_FALSE(whole_in(json(-1), 0, 10));
  EXPECT_FALSE(whole_in(json(5.0), 0, 10));
  EXPECT_FALSE(
      whole_in(json::parse("18446744073709551615"), 0, std::numeric_limits<std::int64_t>::max()));
}

TEST(JsonNumber, AtAndValueThrowNamingTheKey) {
  const json j = json::parse(R"({"n": 7, "f": 1e30, "neg": -1})");
  EXPECT_EQ(at<int>(j, "n"), 7);
  EXPECT_EQ(value<int>(j, "missing", 3), 3);
  EXPECT_EQ(value<std::uint64_t>(j, "n", 3), 7u);
  EXPECT_THROW((void)at<int>(j, "missing"), json::out_of_range);
  try {
    (void)value<std::uint64_t>(j, "f", 0);
    ADD_FAILURE() << "a float was read as a whole number";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "'f' is not a whole number in range");
  }
  EXPECT_THROW((void)value<std::uint64_t>(j, "neg", 0), std::invalid_argument);
}

}  // namespace
}  // namespace labctl::json_number
