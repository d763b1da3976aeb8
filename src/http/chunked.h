// Incremental decoder for the chunked transfer coding (RFC 9112 §7.1), strict per DESIGN §8.
//
// The decoder consumes framing (size lines, extensions, CRLFs, trailers) itself and tells the
// caller where data runs are, so the caller can move data bytes between buffers without copying
// and re-frame them canonically (extensions and trailers are dropped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/message_types.h"

namespace speedmimi::http {

class ChunkedDecoder {
 public:
  enum class Kind {
    kData,      // `framing` bytes of framing, then `data` bytes of chunk data follow
    kNeedMore,  // all `framing` bytes consumed; feed more input
    kDone,      // `framing` bytes ended the body (last chunk, trailers, final CRLF)
    kError,     // malformed: `error` says why (status 400 for requests; callers map to 502)
  };
  struct Step {
    Kind kind = Kind::kNeedMore;
    size_t framing = 0;  // bytes at the start of the input to discard
    size_t data = 0;     // kData: bytes of chunk data right after the framing
    ParseError error;
  };

  // Processes `input` (the next unconsumed bytes of the body). The caller must discard
  // `framing` bytes, then take exactly `data` bytes as chunk data, before calling again with
  // the bytes that follow. `data` is never more than input.size() - framing.
  Step next(std::string_view input);

  bool done() const { return state_ == State::kDone; }

  // Bytes of trailer section allowed before the body is rejected.
  static constexpr size_t kMaxTrailerBytes = 8 * 1024;
  // Bytes of chunk extensions allowed in a whole body: they are dropped, so without a bound a
  // client could stream them forever without its body growing (cf. CVE-2024-22019).
  static constexpr size_t kMaxExtensionBytes = 16 * 1024;

 private:
  enum class State {
    kSize, kSizeWs, kExtension, kSizeLf, kData, kDataCr, kDataLf, kTrailerLineStart, kTrailer,
    kTrailerValue, kTrailerLf, kFinalLf, kDone, kError
  };
  bool consume(char c, ParseError& error);
  bool consumeSize(char c, ParseError& error);
  bool consumeTrailer(char c, ParseError& error);

  State state_ = State::kSize;
  uint64_t remaining_ = 0;   // data bytes left in the current chunk
  int size_digits_ = 0;      // hex digits seen in the current size line
  size_t trailer_bytes_ = 0;
  size_t extension_bytes_ = 0;
  bool last_chunk_ = false;
};

}  // namespace speedmimi::http
