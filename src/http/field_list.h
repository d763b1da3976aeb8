// Comma-separated field values (RFC 9110 §5.6.1): optional whitespace around elements, and the
// walk over a list's elements. Shared by the parser and the header rewrite; no allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace speedmimi::http {

inline std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Yields the OWS-trimmed elements of a list value, empty ones included.
class ListElements {
 public:
  explicit ListElements(std::string_view value) : rest_(value) {}

  bool next(std::string_view& element) {
    if (done_) return false;
    const size_t comma = rest_.find(',');
    element = trimOws(rest_.substr(0, comma));
    done_ = comma == std::string_view::npos;
    if (!done_) rest_.remove_prefix(comma + 1);
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

}  // namespace speedmimi::http
