// Table-driven tests of the chunked decoder. Every input is decoded whole, split in two at every
// byte, and one byte at a time; all feedings must deliver the same data bytes and end the same
// way at the same byte.
#include "http/chunked.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace speedmimi::http {
namespace {

using namespace std::string_view_literals;
using Kind = ChunkedDecoder::Kind;

struct ChunkedCase {
  const char* name;
  std::string_view bytes;
  Kind end = Kind::kDone;       // kDone, kNeedMore (valid but unfinished) or kError
  std::string_view body = {};   // data bytes delivered (before the error, for kError)
  std::string_view rest = {};   // kDone: the bytes after the body, left unconsumed
  std::string_view error = {};  // kError: the reason
};

void PrintTo(const ChunkedCase& c, std::ostream* os) {
  *os << c.name;
}

// The trailer section counts "X: ", the value, its CRLF and the final CRLF: 7 bytes + value.
const std::string kTrailerAtLimit =
    "0\r\nX: " + std::string(ChunkedDecoder::kMaxTrailerBytes - 7, 'a') + "\r\n\r\n";
const std::string kTrailerOverLimit =
    "0\r\nX: " + std::string(ChunkedDecoder::kMaxTrailerBytes - 6, 'a') + "\r\n\r\n";
const std::string kExtensionsAtLimit =
    "1;" + std::string(ChunkedDecoder::kMaxExtensionBytes, 'e') + "\r\nx\r\n0\r\n\r\n";
const std::string kExtensionsOverLimit =
    "1;" + std::string(ChunkedDecoder::kMaxExtensionBytes / 2, 'e') + "\r\nx\r\n1;" +
    std::string(ChunkedDecoder::kMaxExtensionBytes / 2 + 1, 'e') + "\r\ny\r\n0\r\n\r\n";

const ChunkedCase kChunkedCases[] = {
    // Valid bodies.
    {.name = "single_chunk", .bytes = "5\r\nhello\r\n0\r\n\r\n", .body = "hello"},
    {.name = "several_chunks_mixed_case_hex",
     .bytes = "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n1\r\n\n\r\n0\r\n\r\n",
     .body = "0123456789abcdefghijk\n"},
    {.name = "empty_body", .bytes = "0\r\n\r\n"},
    {.name = "data_with_crlf_inside", .bytes = "4\r\n\r\n\r\n\r\n0\r\n\r\n", .body = "\r\n\r\n"},
    {.name = "data_with_nul", .bytes = "3\r\na\0b\r\n0\r\n\r\n"sv, .body = "a\0b"sv},
    {.name = "extensions",
     .bytes = "5;name=value;q=\"a b;c\"\r\nhello\r\n0;last\r\n\r\n",
     .body = "hello"},
    {.name = "whitespace_before_extension",
     .bytes = "5 \t; x=1\r\nhello\r\n0\r\n\r\n",
     .body = "hello"},
    {.name = "extension_with_obs_text", .bytes = "1;n=\xc3\xa9\r\nx\r\n0\r\n\r\n", .body = "x"},
    {.name = "trailers",
     .bytes = "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\t1 \r\nX-Empty:\r\n\r\n",
     .body = "hello"},
    {.name = "leading_zeros", .bytes = "0005\r\nhello\r\n000\r\n\r\n", .body = "hello"},
    {.name = "sixteen_hex_digits",
     .bytes = "0000000000000003\r\nabc\r\n0000000000000000\r\n\r\n",
     .body = "abc"},
    {.name = "next_message_not_consumed",
     .bytes = "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
     .body = "hi",
     .rest = "GET / HTTP/1.1\r\n"},
    {.name = "trailers_at_limit", .bytes = kTrailerAtLimit},
    {.name = "extensions_at_limit", .bytes = kExtensionsAtLimit, .body = "x"},

    // Valid but unfinished.
    {.name = "unfinished_data", .bytes = "5\r\nhel", .end = Kind::kNeedMore, .body = "hel"},
    {.name = "unfinished_size_line", .bytes = "5;ext", .end = Kind::kNeedMore},
    {.name = "unfinished_trailers",
     .bytes = "1\r\nx\r\n0\r\nX: y\r\n",
     .end = Kind::kNeedMore,
     .body = "x"},
    {.name = "huge_chunk_unfinished",
     .bytes = "FFFFFFFFFFFFFFFF\r\nabc",
     .end = Kind::kNeedMore,
     .body = "abc"},

    // Chunk-size abuse.
    {.name = "empty_size",
     .bytes = "\r\nhello\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size"},
    {.name = "non_hex_size", .bytes = "g\r\n", .end = Kind::kError, .error = "invalid chunk size"},
    {.name = "negative_size",
     .bytes = "-1\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size"},
    {.name = "plus_size",
     .bytes = "+1\r\nx\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size"},
    {.name = "hex_prefix",
     .bytes = "0x5\r\nhello\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size"},
    {.name = "seventeen_hex_digits",
     .bytes = "00000000000000005\r\nhello\r\n",
     .end = Kind::kError,
     .error = "chunk size too large"},
    {.name = "size_overflow",
     .bytes = "10000000000000000\r\n",
     .end = Kind::kError,
     .error = "chunk size too large"},
    {.name = "extension_without_size",
     .bytes = ";x\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size"},
    {.name = "whitespace_after_size",
     .bytes = "5 \r\nhello\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size line"},
    {.name = "space_inside_size",
     .bytes = "1 0\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size line"},
    {.name = "leading_whitespace",
     .bytes = " 5\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size"},

    // Line endings in framing.
    {.name = "bare_lf_after_size",
     .bytes = "5\nhello\r\n",
     .end = Kind::kError,
     .error = "invalid chunk size"},
    {.name = "bare_cr_after_size",
     .bytes = "5\rhello\r\n",
     .end = Kind::kError,
     .error = "bare CR in chunk size line"},
    {.name = "bare_lf_in_extension",
     .bytes = "5;a\nhello\r\n",
     .end = Kind::kError,
     .error = "invalid character in chunk extension"},
    {.name = "ctl_in_extension",
     .bytes = "5;a\x01\r\nhello\r\n",
     .end = Kind::kError,
     .error = "invalid character in chunk extension"},
    {.name = "missing_crlf_after_data",
     .bytes = "5\r\nhelloX\r\n",
     .end = Kind::kError,
     .body = "hello",
     .error = "missing CRLF after chunk data"},
    {.name = "data_longer_than_size",
     .bytes = "3\r\nhello\r\n0\r\n\r\n",
     .end = Kind::kError,
     .body = "hel",
     .error = "missing CRLF after chunk data"},
    {.name = "bare_lf_after_data",
     .bytes = "5\r\nhello\n0\r\n\r\n",
     .end = Kind::kError,
     .body = "hello",
     .error = "missing CRLF after chunk data"},
    {.name = "bare_cr_after_data",
     .bytes = "5\r\nhello\r0\r\n\r\n",
     .end = Kind::kError,
     .body = "hello",
     .error = "bare CR after chunk data"},
    {.name = "bare_lf_final_line",
     .bytes = "0\r\n\n",
     .end = Kind::kError,
     .error = "invalid trailer field name"},
    {.name = "bare_cr_final_line",
     .bytes = "0\r\n\rX",
     .end = Kind::kError,
     .error = "bare CR after trailer section"},

    // Trailer abuse.
    {.name = "trailer_obs_fold",
     .bytes = "0\r\nX: a\r\n b\r\n\r\n",
     .end = Kind::kError,
     .error = "obsolete line folding in trailer"},
    {.name = "trailer_without_colon",
     .bytes = "0\r\nX\r\n\r\n",
     .end = Kind::kError,
     .error = "invalid trailer field name"},
    {.name = "trailer_space_before_colon",
     .bytes = "0\r\nX : a\r\n\r\n",
     .end = Kind::kError,
     .error = "whitespace between trailer field name and colon"},
    {.name = "trailer_empty_name",
     .bytes = "0\r\n: a\r\n\r\n",
     .end = Kind::kError,
     .error = "invalid trailer field name"},
    {.name = "trailer_nul_in_value",
     .bytes = "0\r\nX: a\0\r\n\r\n"sv,
     .end = Kind::kError,
     .error = "invalid character in trailer value"},
    {.name = "trailer_bare_lf",
     .bytes = "0\r\nX: a\n\r\n",
     .end = Kind::kError,
     .error = "invalid character in trailer value"},
    {.name = "trailer_bare_cr",
     .bytes = "0\r\nX: a\rb\r\n\r\n",
     .end = Kind::kError,
     .error = "bare CR in trailer"},
    {.name = "trailers_over_limit",
     .bytes = kTrailerOverLimit,
     .end = Kind::kError,
     .error = "trailer section too large"},
    {.name = "extensions_over_limit",
     .bytes = kExtensionsOverLimit,
     .end = Kind::kError,
     .body = "x",
     .error = "chunk extensions too long"},
};

struct Decoded {
  Kind end = Kind::kNeedMore;
  std::string body;
  size_t consumed = 0;  // bytes of input the decoder took (framing and data)
  ParseError error;
};

// Feeds `bytes` cut at `cuts` (increasing offsets), honouring the Step contract: discard
// `framing`, take `data`, call again with what follows.
Decoded decode(std::string_view bytes, const std::vector<size_t>& cuts) {
  ChunkedDecoder decoder;
  Decoded out;
  std::string pending;
  size_t fed = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t next = i < cuts.size() ? cuts[i] : bytes.size();
    pending.append(bytes.substr(fed, next - fed));
    fed = next;
    for (;;) {
      const ChunkedDecoder::Step step = decoder.next(pending);
      EXPECT_LE(step.framing + step.data, pending.size());
      out.consumed += step.framing + step.data;
      if (step.kind == Kind::kData) {
        EXPECT_GT(step.data, 0u);
        out.body.append(pending, step.framing, step.data);
        pending.erase(0, step.framing + step.data);
        continue;
      }
      EXPECT_EQ(step.data, 0u);
      if (step.kind == Kind::kNeedMore) {
        EXPECT_EQ(step.framing, pending.size()) << "need more must consume everything";
        pending.clear();
        break;
      }
      out.end = step.kind;
      out.error = step.error;
      if (step.kind == Kind::kDone) {
        EXPECT_TRUE(decoder.done());
        // Nothing after the body is consumed, however often the caller asks.
        const ChunkedDecoder::Step again = decoder.next("GET");
        EXPECT_EQ(again.kind, Kind::kDone);
        EXPECT_EQ(again.framing, 0u);
      } else {
        EXPECT_FALSE(decoder.done());
        EXPECT_EQ(decoder.next("0\r\n\r\n").kind, Kind::kError);
      }
      return out;
    }
  }
  out.end = Kind::kNeedMore;
  return out;
}

class ChunkedCases : public ::testing::TestWithParam<ChunkedCase> {};

void expectOutcome(const ChunkedCase& c, const Decoded& d) {
  ASSERT_EQ(d.end, c.end) << "reason: " << d.error.reason;
  EXPECT_EQ(d.body, c.body);
  if (c.end == Kind::kDone) {
    EXPECT_EQ(c.bytes.substr(d.consumed), c.rest);
  }
  if (c.end == Kind::kNeedMore) {
    EXPECT_EQ(d.consumed, c.bytes.size());
  }
  if (c.end == Kind::kError) {
    EXPECT_EQ(d.error.status, 400);
    EXPECT_EQ(d.error.reason, c.error);
  }
}

TEST_P(ChunkedCases, Whole) {
  expectOutcome(GetParam(), decode(GetParam().bytes, {}));
}

// Long inputs (the size-limit cases) are cut near both ends and at a stride in between, which
// keeps the test linear without losing the interesting boundaries.
bool worthCutting(size_t cut, size_t size) {
  constexpr size_t kEdge = 64;
  return size <= 4 * kEdge || cut <= kEdge || cut + kEdge >= size || cut % 61 == 0;
}

TEST_P(ChunkedCases, SplitInTwoAtEveryByte) {
  const ChunkedCase& c = GetParam();
  const Decoded whole = decode(c.bytes, {});
  for (size_t cut = 1; cut < c.bytes.size(); ++cut) {
    if (!worthCutting(cut, c.bytes.size())) continue;
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const Decoded d = decode(c.bytes, {cut});
    expectOutcome(c, d);
    EXPECT_EQ(d.consumed, whole.consumed);
  }
}

TEST_P(ChunkedCases, OneByteAtATime) {
  const ChunkedCase& c = GetParam();
  std::vector<size_t> cuts;
  for (size_t i = 1; i < c.bytes.size(); ++i) cuts.push_back(i);
  const Decoded d = decode(c.bytes, cuts);
  expectOutcome(c, d);
  EXPECT_EQ(d.consumed, decode(c.bytes, {}).consumed);
}

INSTANTIATE_TEST_SUITE_P(Chunked, ChunkedCases, ::testing::ValuesIn(kChunkedCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ChunkedDecoderTest, DataStepsPointAtTheDataInPlace) {
  ChunkedDecoder decoder;
  const std::string_view input = "3;x\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  ChunkedDecoder::Step step = decoder.next(input);
  ASSERT_EQ(step.kind, Kind::kData);
  EXPECT_EQ(step.framing, 5u);  // "3;x\r\n"
  EXPECT_EQ(input.substr(step.framing, step.data), "abc");
  std::string_view rest = input.substr(step.framing + step.data);
  step = decoder.next(rest);
  ASSERT_EQ(step.kind, Kind::kData);
  EXPECT_EQ(step.framing, 5u);  // "\r\n2\r\n"
  EXPECT_EQ(rest.substr(step.framing, step.data), "de");
  rest = rest.substr(step.framing + step.data);
  step = decoder.next(rest);
  EXPECT_EQ(step.kind, Kind::kDone);
  EXPECT_EQ(step.framing, rest.size());
}

TEST(ChunkedDecoderTest, EmptyInputNeedsMore) {
  ChunkedDecoder decoder;
  const ChunkedDecoder::Step step = decoder.next("");
  EXPECT_EQ(step.kind, Kind::kNeedMore);
  EXPECT_EQ(step.framing, 0u);
  EXPECT_FALSE(decoder.done());
}

}  // namespace
}  // namespace speedmimi::http
