// Durations and sizes as written in the configuration (DESIGN §7).
//
// A value is an unsigned decimal number followed by at most one unit; nothing else (no sign, no
// fraction, no spaces, no compound "1m30s"). Duration units are lower case only ("m" is minutes;
// an upper-case "M" would read like months); size units are case-insensitive, as in nginx.
#include "core/units.h"

#include <array>
#include <cctype>
#include <limits>

namespace speedmimi::core {
namespace {

struct Unit {
  std::string_view suffix;
  uint64_t factor;
};

// Longest suffix first, so "ms" is tried before "s" and "m"; the formatters walk the same tables
// from the largest factor down.
constexpr std::array<Unit, 4> kDurationUnits{
    {{"ms", 1}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}}};
constexpr std::array<Unit, 3> kSizeUnits{
    {{"g", 1024ull * 1024 * 1024}, {"m", 1024ull * 1024}, {"k", 1024}}};

// The largest duration accepted: its seconds fit in 32 bits, so callers may add it to a
// millisecond clock or put it in a timeval without overflow.
constexpr uint64_t kMaxDurationMs = uint64_t{std::numeric_limits<int32_t>::max()} * 1000;

// Decimal digits only; nullopt when empty, not all digits, or over UINT64_MAX.
std::optional<uint64_t> parseDigits(std::string_view digits) {
  if (digits.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

bool endsWith(std::string_view text, std::string_view suffix, bool ignore_case) {
  if (text.size() < suffix.size()) return false;
  const std::string_view tail = text.substr(text.size() - suffix.size());
  for (size_t i = 0; i < suffix.size(); ++i) {
    const char c = ignore_case
                       ? static_cast<char>(std::tolower(static_cast<unsigned char>(tail[i])))
                       : tail[i];
    if (c != suffix[i]) return false;
  }
  return true;
}

// number x factor of the matching unit (default_factor without a unit); nullopt on junk or
// when the product exceeds `max`.
template <size_t N>
std::optional<uint64_t> parseWithUnit(std::string_view text, const std::array<Unit, N>& units,
                                      uint64_t default_factor, bool ignore_case, uint64_t max) {
  uint64_t factor = default_factor;
  for (const Unit& unit : units) {
    if (endsWith(text, unit.suffix, ignore_case)) {
      factor = unit.factor;
      text.remove_suffix(unit.suffix.size());
      break;
    }
  }
  const std::optional<uint64_t> number = parseDigits(text);
  if (!number || *number > max / factor) return std::nullopt;
  return *number * factor;
}

// The number in the largest unit that divides `value` exactly, or the bare number.
template <size_t N>
std::string formatWithUnit(uint64_t value, const std::array<Unit, N>& units_by_size,
                           std::string_view bare_suffix) {
  for (const Unit& unit : units_by_size) {
    if (value != 0 && value % unit.factor == 0) {
      return std::to_string(value / unit.factor) + std::string(unit.suffix);
    }
  }
  return std::to_string(value) + std::string(bare_suffix);
}

}  // namespace

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  const std::optional<uint64_t> ms =
      parseWithUnit(text, kDurationUnits, 1'000, /*ignore_case=*/false, kMaxDurationMs);
  if (!ms) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(*ms));
}

std::optional<uint64_t> parseSize(std::string_view text) {
  return parseWithUnit(text, kSizeUnits, 1, /*ignore_case=*/true,
                       std::numeric_limits<uint64_t>::max());
}

std::string formatDuration(std::chrono::milliseconds d) {
  // Largest unit first; "ms" last so that 1500 stays "1500ms". Zero is "0s".
  static constexpr std::array<Unit, 3> kBySize{{{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}}};
  const int64_t count = d.count();
  if (count == 0) return "0s";
  // Negative durations never come from the parser; print them exactly anyway.
  const uint64_t magnitude =
      count < 0 ? uint64_t{0} - static_cast<uint64_t>(count) : static_cast<uint64_t>(count);
  return (count < 0 ? "-" : "") + formatWithUnit(magnitude, kBySize, "ms");
}

std::string formatSize(uint64_t bytes) {
  return formatWithUnit(bytes, kSizeUnits, "");
}

}  // namespace speedmimi::core
