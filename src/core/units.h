// Durations ("500ms", "30s", "5m", "1h", bare number = seconds) and sizes ("16k", "100m",
// "1g", bare number = bytes), as accepted in the configuration.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace speedmimi::core {

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);
std::optional<uint64_t> parseSize(std::string_view text);

// The shortest exact spelling: 30000ms -> "30s", 90000ms -> "90s", 1500ms -> "1500ms".
std::string formatDuration(std::chrono::milliseconds d);
// 16384 -> "16k", 1048576 -> "1m", 1000 -> "1000".
std::string formatSize(uint64_t bytes);

}  // namespace speedmimi::core
