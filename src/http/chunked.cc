// Chunked transfer coding decoder (RFC 9112 §7.1), strict per DESIGN §8: CRLF only, at most 16
// hex digits of size, extensions and trailers checked for stray control characters and bounded.
// One byte of framing at a time through a state machine, so input may be split anywhere; chunk
// data is never looked at, only counted.
#include "http/chunked.h"

#include <algorithm>

namespace speedmimi::http {
namespace {

// 16 hex digits fill a uint64_t; one more could overflow it.
constexpr int kMaxSizeDigits = 16;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// tchar (RFC 9110 §5.6.2), for trailer field names.
bool isTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// HTAB, SP, VCHAR and obs-text: what a field value or a chunk extension may contain.
bool isValueChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

bool isWhitespace(char c) {
  return c == ' ' || c == '\t';
}

bool fail(ParseError& error, const char* reason) {
  error.status = 400;
  error.reason = reason;
  return false;
}

}  // namespace

ChunkedDecoder::Step ChunkedDecoder::next(std::string_view input) {
  Step step;
  if (state_ == State::kDone) {
    step.kind = Kind::kDone;
    return step;
  }
  if (state_ == State::kError) {
    step.kind = Kind::kError;
    fail(step.error, "chunked body already rejected");
    return step;
  }
  size_t pos = 0;
  while (pos < input.size()) {
    if (state_ == State::kData) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size() - pos));
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::kDataCr;
      step.kind = Kind::kData;
      step.framing = pos;
      step.data = n;
      return step;
    }
    if (!consume(input[pos], step.error)) {
      state_ = State::kError;
      step.kind = Kind::kError;
      step.framing = pos;
      return step;
    }
    ++pos;
    if (state_ == State::kDone) {
      step.kind = Kind::kDone;
      step.framing = pos;
      return step;
    }
  }
  step.kind = Kind::kNeedMore;
  step.framing = pos;
  return step;
}

// One byte of framing; false with `error` filled when it makes the body malformed.
bool ChunkedDecoder::consume(char c, ParseError& error) {
  switch (state_) {
    case State::kSize:
    case State::kSizeWs:
    case State::kExtension:
    case State::kSizeLf:
      return consumeSize(c, error);
    case State::kDataCr:
      if (c != '\r') return fail(error, "missing CRLF after chunk data");
      state_ = State::kDataLf;
      return true;
    case State::kDataLf:
      if (c != '\n') return fail(error, "bare CR after chunk data");
      state_ = State::kSize;
      size_digits_ = 0;
      return true;
    case State::kTrailerLineStart:
    case State::kTrailer:
    case State::kTrailerValue:
    case State::kTrailerLf:
    case State::kFinalLf:
      return consumeTrailer(c, error);
    case State::kData:
    case State::kDone:
    case State::kError:
      break;
  }
  return fail(error, "chunked decoder state is not framing");
}

// chunk-size [ BWS ";" chunk-ext ] CRLF. Extensions are only checked for control characters:
// they are dropped when the body is re-framed, so their finer syntax cannot mislead anyone.
bool ChunkedDecoder::consumeSize(char c, ParseError& error) {
  switch (state_) {
    case State::kSize: {
      const int digit = hexValue(c);
      if (digit >= 0) {
        if (size_digits_ == kMaxSizeDigits) return fail(error, "chunk size too large");
        remaining_ = (remaining_ << 4) | static_cast<uint64_t>(digit);
        ++size_digits_;
        return true;
      }
      if (size_digits_ == 0) return fail(error, "invalid chunk size");
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c == ';') {
        state_ = State::kExtension;
      } else if (isWhitespace(c)) {
        state_ = State::kSizeWs;
      } else {
        return fail(error, "invalid chunk size");
      }
      return true;
    }
    case State::kSizeWs:
      // BWS is only allowed before an extension.
      if (c == ';') {
        state_ = State::kExtension;
      } else if (!isWhitespace(c)) {
        return fail(error, "invalid chunk size line");
      }
      return true;
    case State::kExtension:
      if (c == '\r') {
        state_ = State::kSizeLf;
        return true;
      }
      if (!isValueChar(c)) return fail(error, "invalid character in chunk extension");
      if (++extension_bytes_ > kMaxExtensionBytes) return fail(error, "chunk extensions too long");
      return true;
    default:  // kSizeLf
      if (c != '\n') return fail(error, "bare CR in chunk size line");
      last_chunk_ = remaining_ == 0;
      state_ = last_chunk_ ? State::kTrailerLineStart : State::kData;
      return true;
  }
}

// trailer-section CRLF after the last chunk: field lines as strict as in a head, bounded size.
bool ChunkedDecoder::consumeTrailer(char c, ParseError& error) {
  if (++trailer_bytes_ > kMaxTrailerBytes) return fail(error, "trailer section too large");
  switch (state_) {
    case State::kTrailerLineStart:
      if (c == '\r') {
        state_ = State::kFinalLf;
      } else if (isTokenChar(c)) {
        state_ = State::kTrailer;
      } else if (isWhitespace(c)) {
        return fail(error, "obsolete line folding in trailer");
      } else {
        return fail(error, "invalid trailer field name");
      }
      return true;
    case State::kTrailer:
      if (c == ':') {
        state_ = State::kTrailerValue;
      } else if (isWhitespace(c)) {
        return fail(error, "whitespace between trailer field name and colon");
      } else if (!isTokenChar(c)) {
        return fail(error, "invalid trailer field name");
      }
      return true;
    case State::kTrailerValue:
      if (c == '\r') {
        state_ = State::kTrailerLf;
      } else if (!isValueChar(c)) {
        return fail(error, "invalid character in trailer value");
      }
      return true;
    case State::kTrailerLf:
      if (c != '\n') return fail(error, "bare CR in trailer");
      state_ = State::kTrailerLineStart;
      return true;
    default:  // kFinalLf
      if (c != '\n') return fail(error, "bare CR after trailer section");
      state_ = State::kDone;
      return true;
  }
}

}  // namespace speedmimi::http
