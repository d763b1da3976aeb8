// libFuzzer target: ChunkedDecoder.
//
// Control bytes (see fuzz_common.h): the two bytes seed the generator of the read sizes, and
// options bits 0-1 choose their scale (1-4 bytes, 1-64 bytes, up to all of the rest, all at once)
// so that a body arrives split the way a socket might deliver it.
//
// The decoder is driven like the proxy drives it: a window of received but unconsumed bytes, in
// an exact-size heap copy so ASan sees reads past it. Properties of every step: framing and data
// never exceed the window; kData delivers at least one byte; kNeedMore consumes the whole window;
// kDone and kError stay, with nothing consumed, whatever is fed afterwards. Properties of a run:
// everything consumed lies inside the body; the split run and a run fed all at once deliver the
// same data bytes and end the same way at the same byte; a decoded body re-encoded canonically
// decodes to the same data.
#include <string>

#include "fuzz_common.h"
#include "http/chunked.h"

namespace speedmimi::fuzz {
namespace {

using http::ChunkedDecoder;
using Kind = ChunkedDecoder::Kind;

// Read sizes for one run: xorshift from the control bytes, so a run is reproducible.
class ReadSizes {
 public:
  ReadSizes(uint8_t options, uint8_t seed)
      : scale_(options & 3), state_(0x9e3779b97f4a7c15ull ^ ((uint64_t{options} << 8) | seed)) {}

  size_t next(size_t left) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    size_t n = left;
    if (scale_ == 0) n = 1 + state_ % 4;
    if (scale_ == 1) n = 1 + state_ % 64;
    if (scale_ == 2) n = 1 + state_ % (left + 1);
    return std::min(n, left);
  }

  // Whether to poke the decoder with an empty input before the next read.
  bool pokeEmpty() const { return (state_ >> 40) % 8 == 0; }

 private:
  int scale_;  // 3: everything at once
  uint64_t state_;
};

struct Outcome {
  Kind end = Kind::kNeedMore;
  size_t consumed = 0;  // framing and data bytes, from the start of the body
  std::string data;
  const char* reason = nullptr;
};

// One call, with the per-step properties checked; returns the bytes consumed.
size_t step(ChunkedDecoder& decoder, std::string_view window, Outcome& out) {
  const ExactCopy copy(window);
  const ChunkedDecoder::Step s = decoder.next(copy.view());
  FUZZ_CHECK(s.framing <= window.size());
  FUZZ_CHECK(s.data <= window.size() - s.framing);
  out.end = s.kind;
  switch (s.kind) {
    case Kind::kData:
      FUZZ_CHECK(s.data > 0 && !decoder.done());
      out.data.append(copy.view().substr(s.framing, s.data));
      return s.framing + s.data;
    case Kind::kNeedMore:
      FUZZ_CHECK(s.framing == window.size() && s.data == 0 && !decoder.done());
      return s.framing;
    case Kind::kDone:
      FUZZ_CHECK(s.data == 0 && decoder.done());
      return s.framing;
    case Kind::kError:
      FUZZ_CHECK(s.data == 0 && !decoder.done());
      FUZZ_CHECK(s.error.status == 400 && s.error.reason != nullptr && s.error.reason[0] != '\0');
      out.reason = s.error.reason;
      return s.framing;
  }
  return 0;
}

// After kDone or kError the decoder answers the same, consuming nothing, whatever it is fed.
void checkStays(ChunkedDecoder& decoder, std::string_view rest, Kind end) {
  for (std::string_view input : {rest, std::string_view(), std::string_view("0\r\n\r\n")}) {
    const ExactCopy copy(input);
    const ChunkedDecoder::Step s = decoder.next(copy.view());
    FUZZ_CHECK(s.kind == end && s.framing == 0 && s.data == 0);
    FUZZ_CHECK(decoder.done() == (end == Kind::kDone));
  }
}

Outcome decode(std::string_view body, ReadSizes sizes) {
  ChunkedDecoder decoder;
  Outcome out;
  size_t received = 0;
  for (;;) {
    if (out.consumed == received) {
      if (received == body.size()) break;  // the body ended while the decoder wants more
      if (sizes.pokeEmpty()) FUZZ_CHECK(step(decoder, {}, out) == 0 && out.end == Kind::kNeedMore);
      received += sizes.next(body.size() - received);
    }
    out.consumed += step(decoder, body.substr(out.consumed, received - out.consumed), out);
    FUZZ_CHECK(out.consumed <= received);
    if (out.end == Kind::kDone || out.end == Kind::kError) {
      checkStays(decoder, body.substr(out.consumed), out.end);
      break;
    }
  }
  FUZZ_CHECK(out.data.size() <= out.consumed && out.consumed <= body.size());
  if (out.end == Kind::kDone) FUZZ_CHECK(body.substr(out.consumed - 2, 2) == "\r\n");
  if (out.end == Kind::kNeedMore) FUZZ_CHECK(out.consumed == body.size());
  return out;
}

// The data as one chunk, a last chunk and no trailers: what the proxy forwards.
std::string canonical(std::string_view data) {
  std::string out;
  if (!data.empty()) {
    char size_line[32];
    const int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    out.append(size_line, static_cast<size_t>(n));
    out.append(data);
    out.append("\r\n");
  }
  out.append("0\r\n\r\n");
  return out;
}

}  // namespace
}  // namespace speedmimi::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace speedmimi::fuzz;
  const Input in = splitInput(data, size);
  const Outcome split = decode(in.message, ReadSizes(in.options, in.split));
  const Outcome whole = decode(in.message, ReadSizes(3, 0));
  FUZZ_CHECK(split.end == whole.end && split.consumed == whole.consumed);
  FUZZ_CHECK(split.data == whole.data);
  FUZZ_CHECK(split.end != Kind::kError || sameText(split.reason, whole.reason));
  if (whole.end == Kind::kDone) {
    const std::string again = canonical(whole.data);
    const Outcome re = decode(again, ReadSizes(in.options, in.split));
    FUZZ_CHECK(re.end == Kind::kDone && re.consumed == again.size() && re.data == whole.data);
  }
  return 0;
}
