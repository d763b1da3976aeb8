// Where a byte of a text is, as parsers report it: the configuration (libyaml) and the state
// file (Jansson) both count lines from 1 and columns in characters.
#pragma once

#include <algorithm>
#include <string_view>

#include "core/config_types.h"

namespace speedmimi::core {

// 1-based line, and column in characters (UTF-8 continuation bytes do not count), of byte
// `offset` of `text`.
inline Mark markAtOffset(std::string_view text, size_t offset) {
  const std::string_view before = text.substr(0, offset);
  const size_t line_start = before.rfind('\n') + 1;  // npos + 1 == 0 on the first line
  const auto characters = std::count_if(before.begin() + line_start, before.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  });
  return {static_cast<int>(std::count(before.begin(), before.end(), '\n')) + 1,
          static_cast<int>(characters) + 1};
}

}  // namespace speedmimi::core
