// Helpers shared by the libFuzzer targets of t/fuzz.
//
// Input layout of every target: the first two bytes are controls chosen by the fuzzer (option
// bits, and where to split the message), the rest is the message itself. The seed corpus files
// therefore start with two arbitrary bytes before the HTTP text.
//
// A broken property aborts through FUZZ_CHECK, which libFuzzer reports as a crash and saves the
// input; sanitizers (ASan + UBSan, built in by --enable-fuzzing) catch the memory errors.
#pragma once

#include <strings.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

namespace speedmimi::fuzz {

[[noreturn]] inline void checkFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz property broken: %s\n", file, line, condition);
  std::abort();
}

#define FUZZ_CHECK(condition)         \
  ((condition) ? static_cast<void>(0) \
               : ::speedmimi::fuzz::checkFailed(#condition, __FILE__, __LINE__))

// The fuzzer's input split into its control bytes and the message.
struct Input {
  uint8_t options = 0;
  uint8_t split = 0;
  std::string_view message;
};

inline Input splitInput(const uint8_t* data, size_t size) {
  Input in;
  if (size >= 1) in.options = data[0];
  if (size >= 2) in.split = data[1];
  if (size > 2) in.message = std::string_view(reinterpret_cast<const char*>(data) + 2, size - 2);
  return in;
}

// A point in [0, size] chosen by the control byte: 0 and 255 are the ends.
inline size_t splitPoint(uint8_t control, size_t size) {
  return static_cast<size_t>(static_cast<uint64_t>(size) * control / 255);
}

// A heap copy of exactly `bytes`, so that ASan flags any read past the end of what a parser was
// given (a view into the fuzzer's larger buffer would hide such reads).
class ExactCopy {
 public:
  explicit ExactCopy(std::string_view bytes)
      : size_(bytes.size()), data_(std::make_unique<char[]>(bytes.size())) {
    if (size_ != 0) std::memcpy(data_.get(), bytes.data(), size_);
  }
  std::string_view view() const { return std::string_view(data_.get(), size_); }

 private:
  size_t size_;
  std::unique_ptr<char[]> data_;
};

// True when `part` lies wholly inside `whole` (an empty view may sit at its end).
inline bool inside(std::string_view part, std::string_view whole) {
  const char* begin = whole.data();
  const char* end = begin + whole.size();
  return part.data() >= begin && part.data() <= end &&
         part.size() <= static_cast<size_t>(end - part.data());
}

// Offset of a view inside the buffer it points into; views from two parses of copies of the same
// bytes are compared by offset and size.
inline size_t offsetIn(std::string_view part, std::string_view whole) {
  return static_cast<size_t>(part.data() - whole.data());
}

inline bool sameSpan(std::string_view a, std::string_view a_base, std::string_view b,
                     std::string_view b_base) {
  return a.size() == b.size() && offsetIn(a, a_base) == offsetIn(b, b_base);
}

inline bool isTokenChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

inline bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTokenChar(c)) return false;
  }
  return true;
}

// Field-value octets only: no CR, LF, NUL or other CTL but HTAB, no DEL.
inline bool isValueText(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return false;
  }
  return true;
}

// A trimmed field value: value octets without surrounding OWS.
inline bool isCleanValue(std::string_view s) {
  auto ows = [](char c) { return c == ' ' || c == '\t'; };
  return isValueText(s) && (s.empty() || (!ows(s.front()) && !ows(s.back())));
}

// Every CR is followed by LF and every LF preceded by CR; no NUL.
inline bool onlyCrlfLineEnds(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\0') return false;
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return false;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  }
  return true;
}

// Fields of a parsed head named `name` (case-insensitive), counted independently of the parser's
// own lookup helpers.
template <typename Head>
size_t countFields(const Head& head, std::string_view name) {
  size_t n = 0;
  for (size_t i = 0; i < head.num_headers; ++i) {
    const std::string_view field = head.headers[i].name;
    if (field.size() == name.size() && strncasecmp(field.data(), name.data(), name.size()) == 0) {
      ++n;
    }
  }
  return n;
}

inline bool sameText(const char* a, const char* b) {
  return a != nullptr && b != nullptr && std::strcmp(a, b) == 0;
}

}  // namespace speedmimi::fuzz
