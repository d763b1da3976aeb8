#include "core/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace speedmimi::core {
namespace {

using std::chrono::milliseconds;

struct DurationCase {
  std::string text;
  int64_t ms;
};

TEST(ParseDuration, AcceptsEveryUnit) {
  const DurationCase cases[] = {
      {"0", 0},
      {"30", 30'000},  // bare number = seconds
      {"500ms", 500},
      {"0ms", 0},
      {"1s", 1'000},
      {"30s", 30'000},
      {"5m", 300'000},
      {"1h", 3'600'000},
      {"24h", 86'400'000},
      {"007s", 7'000},
      {"2147483647s", 2'147'483'647'000},  // the largest accepted
      {"2147483647000ms", 2'147'483'647'000},
  };
  for (const auto& c : cases) {
    const auto d = parseDuration(c.text);
    ASSERT_TRUE(d.has_value()) << c.text;
    EXPECT_EQ(d->count(), c.ms) << c.text;
  }
}

TEST(ParseDuration, RejectsJunkNegativesAndOverflow) {
  const char* cases[] = {
      "",
      "s",
      "ms",
      "-1s",
      "-5",
      "+5s",
      "1.5s",
      "30 s",
      " 30s",
      "30s ",
      "30S",
      "5M",
      "1H",
      "30sec",
      "1m30s",
      "1d",
      "10x",
      "abc",
      "0x10",
      "1e3",
      "2147483648s",  // one second past the limit
      "2147483647001ms",
      "99999999999999999999",
      "18446744073709551616ms",
  };
  for (const char* text : cases) {
    EXPECT_FALSE(parseDuration(text).has_value()) << "'" << text << "'";
  }
}

struct SizeCase {
  std::string text;
  uint64_t bytes;
};

TEST(ParseSize, AcceptsUnitsInEitherCase) {
  const SizeCase cases[] = {
      {"0", 0},
      {"1000", 1000},  // bare number = bytes
      {"16k", 16 * 1024},
      {"16K", 16 * 1024},
      {"100m", 100ull << 20},
      {"100M", 100ull << 20},
      {"1g", 1ull << 30},
      {"1G", 1ull << 30},
      {"18446744073709551615", UINT64_MAX},
      {"17179869183g", 17179869183ull << 30},  // the largest whole number of g
  };
  for (const auto& c : cases) {
    const auto size = parseSize(c.text);
    ASSERT_TRUE(size.has_value()) << c.text;
    EXPECT_EQ(*size, c.bytes) << c.text;
  }
}

TEST(ParseSize, RejectsJunkNegativesAndOverflow) {
  const char* cases[] = {
      "",
      "k",
      "-1",
      "-1k",
      "+1k",
      "1.5m",
      "16 k",
      "16kb",
      "16KiB",
      "1t",
      "abc",
      "0x10",
      "1e3",
      " 16k",
      "16k ",
      "18446744073709551616",
      "17179869184g",
      "99999999999999999999k",
  };
  for (const char* text : cases) {
    EXPECT_FALSE(parseSize(text).has_value()) << "'" << text << "'";
  }
}

TEST(FormatDuration, UsesTheLargestExactUnit) {
  const DurationCase cases[] = {
      {"0s", 0},          {"1ms", 1},        {"1500ms", 1500},    {"1s", 1000},
      {"30s", 30'000},    {"90s", 90'000},   {"1m", 60'000},      {"5m", 300'000},
      {"90m", 5'400'000}, {"1h", 3'600'000}, {"25h", 90'000'000}, {"-5s", -5000},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(formatDuration(milliseconds(c.ms)), c.text) << c.ms;
  }
}

TEST(FormatSize, UsesTheLargestExactUnit) {
  const SizeCase cases[] = {
      {"0", 0},
      {"1", 1},
      {"1000", 1000},
      {"1k", 1024},
      {"16k", 16384},
      {"1025", 1025},
      {"1m", 1048576},
      {"1536k", 1536 * 1024},
      {"100m", 100ull << 20},
      {"1g", 1ull << 30},
      {"3g", 3ull << 30},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(formatSize(c.bytes), c.text) << c.bytes;
  }
}

// What the formatters write, the parsers read back to the same value (the admin API relies on
// this when it returns the effective configuration).
TEST(Units, FormattedValuesParseBack) {
  for (int64_t ms : {1, 999, 1000, 61'000, 60'000, 3'600'000, 7'260'000}) {
    const auto back = parseDuration(formatDuration(milliseconds(ms)));
    ASSERT_TRUE(back.has_value()) << ms;
    EXPECT_EQ(back->count(), ms);
  }
  for (uint64_t bytes : {0ull, 1ull, 1023ull, 1024ull, 1025ull, 5ull << 20, 7ull << 30}) {
    EXPECT_EQ(parseSize(formatSize(bytes)), bytes) << bytes;
  }
}

}  // namespace
}  // namespace speedmimi::core
