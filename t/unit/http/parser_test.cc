// Table-driven tests of the HTTP/1.x head parser and of analyzeRequest()/analyzeResponse()
// (DESIGN §8). Every input is parsed whole and then prefix by prefix: each prefix must be "need
// more" or already the very error the whole input gets, and a complete head must be found at
// the same length as in the whole input.
#include "http/parser.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace speedmimi::http {
namespace {

using namespace std::string_view_literals;

// Expected outcomes besides an error status.
constexpr int kAccepted = 0;     // the head is complete and analyze*() accepts it
constexpr int kIncomplete = -1;  // a valid prefix: the parser asks for more

constexpr size_t kStorage = 128;  // Header slots; more than any case's max_headers

// A heap copy of exactly the bytes under test, so a read past the end trips the sanitizers.
struct Buffer {
  explicit Buffer(std::string_view bytes) : data(bytes.begin(), bytes.end()) {}
  std::string_view view() const { return std::string_view(data.data(), data.size()); }
  std::vector<char> data;
};

// ---------------------------------------------------------------------------------------------
// Requests

struct RequestCase {
  const char* name;
  std::string_view bytes;
  int expect = kAccepted;       // kAccepted, kIncomplete or the error status
  std::string_view error = {};  // the error's reason
  HeadLimits limits = {};
  uint64_t max_body_size = 0;
  // Checked for kAccepted only.
  std::string_view method = "GET";
  std::string_view target = "/";
  int minor = 1;
  size_t num_headers = 1;
  std::string_view rest = {};  // bytes after the head
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;
  std::string_view host = "a";
  std::string_view path = "/";
  bool absolute_form = false;
  bool websocket = false;
  bool expect_continue = false;
  bool event_stream = false;
  std::string_view field = {};  // when set, findHeader(field) must give field_value
  std::string_view field_value = {};
};

void PrintTo(const RequestCase& c, std::ostream* os) {
  *os << c.name;
}

std::string repeat(char c, size_t n) {
  return std::string(n, c);
}

const std::string kTwentyNines = repeat('9', 20);
const std::string kClOverflow =
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + kTwentyNines + "\r\n\r\n";

const RequestCase kRequestCases[] = {
    // Valid requests.
    {.name = "get_minimal", .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
    {.name = "get_fields_trimmed",
     .bytes = "GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: \t curl/8.0 \t\r\n"
              "Accept: */*\r\n\r\n",
     .target = "/p?q=1",
     .num_headers = 3,
     .host = "example.com",
     .path = "/p?q=1",
     .field = "user-agent",
     .field_value = "curl/8.0"},
    {.name = "field_names_any_case",
     .bytes = "GET / HTTP/1.1\r\nhOST: a\r\nx-custom-thing: v\r\n\r\n",
     .num_headers = 2,
     .field = "X-Custom-Thing",
     .field_value = "v"},
    {.name = "post_content_length",
     .bytes = "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
     .method = "POST",
     .target = "/upload",
     .num_headers = 2,
     .rest = "hello",
     .framing = BodyFraming::kContentLength,
     .content_length = 5,
     .path = "/upload"},
    {.name = "post_chunked",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
     .method = "POST",
     .num_headers = 2,
     .rest = "5\r\nhello\r\n",
     .framing = BodyFraming::kChunked},
    {.name = "te_case_insensitive",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kChunked},
    {.name = "te_leading_whitespace",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  \t chunked\r\n\r\n",
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kChunked},
    {.name = "te_empty_list_elements",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n",
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kChunked},
    {.name = "cl_duplicate_identical_fields",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
     .method = "POST",
     .num_headers = 3,
     .framing = BodyFraming::kContentLength,
     .content_length = 5},
    {.name = "cl_identical_list",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 , 5\r\n\r\n",
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kContentLength,
     .content_length = 5},
    {.name = "cl_zero",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kContentLength},
    {.name = "cl_leading_zeros",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kContentLength,
     .content_length = 7},
    {.name = "cl_int64_max",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kContentLength,
     .content_length = 9223372036854775807ull},
    {.name = "cl_at_max_body_size",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
     .max_body_size = 5,
     .method = "POST",
     .num_headers = 2,
     .framing = BodyFraming::kContentLength,
     .content_length = 5},
    {.name = "http10_without_host_closes",
     .bytes = "GET / HTTP/1.0\r\n\r\n",
     .minor = 0,
     .num_headers = 0,
     .keep_alive = false,
     .host = ""},
    {.name = "http10_keep_alive",
     .bytes = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     .minor = 0,
     .host = ""},
    {.name = "http10_with_host",
     .bytes = "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
     .minor = 0,
     .keep_alive = false},
    {.name = "http11_connection_close",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
     .num_headers = 2,
     .keep_alive = false},
    {.name = "connection_list_close_wins",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n",
     .num_headers = 2,
     .keep_alive = false},
    {.name = "websocket_upgrade",
     .bytes = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
              "Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
     .target = "/ws",
     .num_headers = 4,
     .path = "/ws",
     .websocket = true},
    {.name = "upgrade_without_connection_upgrade",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
     .num_headers = 2},
    {.name = "upgrade_ignored_on_http10",
     .bytes = "GET / HTTP/1.0\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
     .minor = 0,
     .num_headers = 3,
     .keep_alive = false},
    {.name = "accept_event_stream",
     .bytes =
         "GET /events HTTP/1.1\r\nHost: a\r\nAccept: text/html, TEXT/Event-Stream;q=0.9\r\n\r\n",
     .target = "/events",
     .num_headers = 2,
     .path = "/events",
     .event_stream = true},
    {.name = "accept_event_stream_lookalikes",
     .bytes =
         "GET / HTTP/1.1\r\nHost: a\r\nAccept: text/event-streams, x/text/event-stream\r\n\r\n",
     .num_headers = 2},
    {.name = "expect_continue",
     .bytes = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
     .method = "PUT",
     .target = "/f",
     .num_headers = 3,
     .framing = BodyFraming::kContentLength,
     .content_length = 3,
     .path = "/f",
     .expect_continue = true},
    {.name = "expect_continue_any_case",
     .bytes = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n",
     .method = "PUT",
     .num_headers = 3,
     .framing = BodyFraming::kContentLength,
     .content_length = 3,
     .expect_continue = true},
    {.name = "expect_continue_ignored_on_http10",
     .bytes = "PUT / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
     .method = "PUT",
     .minor = 0,
     .num_headers = 2,
     .framing = BodyFraming::kContentLength,
     .content_length = 1,
     .keep_alive = false,
     .host = ""},
    {.name = "absolute_form",
     .bytes = "GET http://Example.com:8080/x?y HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n",
     .target = "http://Example.com:8080/x?y",
     .host = "Example.com:8080",
     .path = "/x?y",
     .absolute_form = true},
    {.name = "absolute_form_https_without_path",
     .bytes = "GET HTTPS://a HTTP/1.1\r\nHost: a\r\n\r\n",
     .target = "HTTPS://a",
     .absolute_form = true},
    {.name = "options_asterisk",
     .bytes = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "OPTIONS",
     .target = "*",
     .path = "*"},
    {.name = "leading_empty_lines_skipped", .bytes = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"},
    {.name = "pipelined_stops_at_first_head",
     .bytes = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
     .target = "/1",
     .rest = "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
     .path = "/1"},
    {.name = "extension_method",
     .bytes = "PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "PURGE",
     .target = "/cache",
     .path = "/cache"},
    {.name = "value_with_obs_text_and_htab",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\tau lait\r\n\r\n",
     .num_headers = 2,
     .field = "X-Name",
     .field_value = "caf\xc3\xa9\tau lait"},
    {.name = "target_with_obs_text",
     .bytes = "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
     .target = "/caf\xc3\xa9",
     .path = "/caf\xc3\xa9"},
    {.name = "empty_values",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank: \t \r\n\r\n",
     .num_headers = 3,
     .field = "X-Blank",
     .field_value = ""},
    {.name = "request_line_at_limit",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     .limits = {.max_request_line = 14}},
    {.name = "fields_at_limit",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
     .limits = {.max_headers = 3},
     .num_headers = 3},
    {.name = "head_at_limit",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     .limits = {.max_head_size = 27}},
    {.name = "host_ipv6_with_port",
     .bytes = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
     .host = "[::1]:8080"},
    {.name = "host_percent_encoded",
     .bytes = "GET / HTTP/1.1\r\nHost: my%2Dhost.example:80\r\n\r\n",
     .host = "my%2Dhost.example:80"},

    // Incomplete heads.
    {.name = "empty_input", .bytes = "", .expect = kIncomplete},
    {.name = "head_without_final_crlf",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n",
     .expect = kIncomplete},
    {.name = "head_ending_in_cr",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r",
     .expect = kIncomplete},
    {.name = "only_empty_lines", .bytes = "\r\n\r\n", .expect = kIncomplete},

    // Request line abuse.
    {.name = "method_invalid_char",
     .bytes = "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid character in method"},
    {.name = "method_empty",
     .bytes = " / HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "empty method"},
    {.name = "tab_separator",
     .bytes = "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid character in method"},
    {.name = "double_space_after_method",
     .bytes = "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "empty request target"},
    {.name = "double_space_before_version",
     .bytes = "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid character in HTTP version"},
    {.name = "missing_version",
     .bytes = "GET /\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "missing HTTP version"},
    {.name = "missing_target",
     .bytes = "GET HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "missing HTTP version"},
    {.name = "version_lowercase",
     .bytes = "GET / http/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid HTTP version"},
    {.name = "version_http20",
     .bytes = "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
     .expect = 505,
     .error = "HTTP version not supported"},
    {.name = "version_http12",
     .bytes = "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
     .expect = 505,
     .error = "HTTP version not supported"},
    {.name = "version_http09",
     .bytes = "GET / HTTP/0.9\r\nHost: a\r\n\r\n",
     .expect = 505,
     .error = "HTTP version not supported"},
    {.name = "version_suffix",
     .bytes = "GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid HTTP version"},
    {.name = "version_two_digit_minor",
     .bytes = "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid HTTP version"},
    {.name = "version_without_minor",
     .bytes = "GET / HTTP/2\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid HTTP version"},
    {.name = "space_after_version",
     .bytes = "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid character in HTTP version"},
    {.name = "target_with_ctl",
     .bytes = "GET /a\x01"
              "b HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid character in request target"},
    {.name = "target_with_del",
     .bytes = "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid character in request target"},
    {.name = "request_line_too_long",
     .bytes = "GET /0123456789abcdef HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 414,
     .error = "request line too long",
     .limits = {.max_request_line = 16}},
    {.name = "request_line_too_long_incomplete",
     .bytes = "GET /0123456789abcdef",
     .expect = 414,
     .error = "request line too long",
     .limits = {.max_request_line = 16}},
    {.name = "request_line_one_over_limit",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 414,
     .error = "request line too long",
     .limits = {.max_request_line = 13}},

    // Line endings.
    {.name = "bare_lf_request_line",
     .bytes = "GET / HTTP/1.1\nHost: a\n\n",
     .expect = 400,
     .error = "bare LF"},
    {.name = "bare_lf_before_request_line",
     .bytes = "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "bare LF"},
    {.name = "bare_cr_before_request_line",
     .bytes = "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "bare CR"},
    {.name = "bare_cr_request_line",
     .bytes = "GET / HTTP/1.1\rHost: a\r\n\r\n",
     .expect = 400,
     .error = "bare CR"},
    {.name = "bare_lf_field_line",
     .bytes = "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
     .expect = 400,
     .error = "bare LF"},
    {.name = "bare_cr_in_value",
     .bytes = "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
     .expect = 400,
     .error = "bare CR"},
    {.name = "bare_cr_ending_head",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\rX",
     .expect = 400,
     .error = "bare CR"},
    {.name = "bare_lf_ending_head",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\n",
     .expect = 400,
     .error = "bare LF"},

    // Field lines.
    {.name = "obs_fold_space",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
     .expect = 400,
     .error = "obsolete line folding"},
    {.name = "obs_fold_tab",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
     .expect = 400,
     .error = "obsolete line folding"},
    {.name = "whitespace_before_first_field",
     .bytes = "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
     .expect = 400,
     .error = "whitespace before the first field"},
    {.name = "nul_in_value",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"sv,
     .expect = 400,
     .error = "invalid character in field value"},
    {.name = "vtab_in_value",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b"
              "b\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field value"},
    {.name = "escape_in_value",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b"
              "b\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field value"},
    {.name = "del_in_value",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field value"},
    {.name = "space_before_colon",
     .bytes = "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
     .expect = 400,
     .error = "whitespace between field name and colon"},
    {.name = "tab_before_colon",
     .bytes = "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
     .expect = 400,
     .error = "whitespace between field name and colon"},
    {.name = "field_name_parenthesis",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX(Y): 1\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field name"},
    {.name = "field_name_slash",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX/Y: 1\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field name"},
    {.name = "field_name_obs_text",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: 1\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field name"},
    {.name = "field_name_empty",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n",
     .expect = 400,
     .error = "empty field name"},
    {.name = "field_without_colon",
     .bytes = "GET / HTTP/1.1\r\nHost\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field name"},
    {.name = "head_too_large",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 431,
     .error = "message head too large",
     .limits = {.max_head_size = 26}},
    {.name = "head_too_large_incomplete",
     .bytes = "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaa",
     .expect = 431,
     .error = "message head too large",
     .limits = {.max_head_size = 20}},
    {.name = "too_many_fields",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
     .expect = 431,
     .error = "too many header fields",
     .limits = {.max_headers = 2}},

    // Host and target rules.
    {.name = "host_missing",
     .bytes = "GET / HTTP/1.1\r\nX: a\r\n\r\n",
     .expect = 400,
     .error = "missing Host"},
    {.name = "host_repeated_identical",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "repeated Host"},
    {.name = "host_repeated_on_http10",
     .bytes = "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
     .expect = 400,
     .error = "repeated Host"},
    {.name = "host_empty",
     .bytes = "GET / HTTP/1.1\r\nHost:\r\n\r\n",
     .expect = 400,
     .error = "invalid Host"},
    {.name = "host_with_slash",
     .bytes = "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
     .expect = 400,
     .error = "invalid Host"},
    {.name = "host_with_space",
     .bytes = "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
     .expect = 400,
     .error = "invalid Host"},
    {.name = "host_with_userinfo",
     .bytes = "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
     .expect = 400,
     .error = "invalid Host"},
    {.name = "host_bad_port",
     .bytes = "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n",
     .expect = 400,
     .error = "invalid Host"},
    {.name = "host_bad_percent",
     .bytes = "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n",
     .expect = 400,
     .error = "invalid Host"},
    {.name = "host_unclosed_ipv6",
     .bytes = "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
     .expect = 400,
     .error = "invalid Host"},
    {.name = "absolute_form_disagrees_with_host",
     .bytes = "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "absolute-form target disagrees with Host"},
    {.name = "absolute_form_port_disagrees",
     .bytes = "GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "absolute-form target disagrees with Host"},
    {.name = "absolute_form_without_host",
     .bytes = "GET http://a/ HTTP/1.1\r\n\r\n",
     .expect = 400,
     .error = "missing Host"},
    {.name = "absolute_form_userinfo",
     .bytes = "GET http://u@a/ HTTP/1.1\r\nHost: u@a\r\n\r\n",
     .expect = 400,
     .error = "invalid authority in request target"},
    {.name = "absolute_form_empty_authority",
     .bytes = "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid authority in request target"},
    {.name = "absolute_form_query_without_path",
     .bytes = "GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "absolute-form target with a query but no path"},
    {.name = "absolute_form_other_scheme",
     .bytes = "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid request target"},
    {.name = "relative_target",
     .bytes = "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "invalid request target"},
    {.name = "asterisk_without_options",
     .bytes = "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
     .expect = 400,
     .error = "asterisk-form target without OPTIONS"},
    {.name = "connect_not_implemented",
     .bytes = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
     .expect = 501,
     .error = "CONNECT is not supported"},

    // Transfer-Encoding.
    {.name = "cl_and_te",
     .bytes =
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     .expect = 400,
     .error = "both Content-Length and Transfer-Encoding"},
    {.name = "te_and_invalid_cl",
     .bytes =
         "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
     .expect = 400,
     .error = "both Content-Length and Transfer-Encoding"},
    {.name = "te_chunked_twice_in_list",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
     .expect = 400,
     .error = "chunked applied more than once"},
    {.name = "te_chunked_twice_in_fields",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              "Transfer-Encoding: chunked\r\n\r\n",
     .expect = 400,
     .error = "chunked applied more than once"},
    {.name = "te_gzip_then_chunked",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     .expect = 501,
     .error = "unsupported transfer coding"},
    {.name = "te_gzip_and_chunked_fields",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
              "Transfer-Encoding: chunked\r\n\r\n",
     .expect = 501,
     .error = "unsupported transfer coding"},
    {.name = "te_identity_then_chunked",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
     .expect = 501,
     .error = "unsupported transfer coding"},
    {.name = "te_chunked_then_gzip",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     .expect = 400,
     .error = "chunked is not the final transfer coding"},
    {.name = "te_gzip_only",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
     .expect = 400,
     .error = "chunked is not the final transfer coding"},
    {.name = "te_identity_only",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
     .expect = 400,
     .error = "chunked is not the final transfer coding"},
    {.name = "te_xchunked",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
     .expect = 400,
     .error = "chunked is not the final transfer coding"},
    {.name = "te_chunked_with_parameter",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
     .expect = 400,
     .error = "chunked is not the final transfer coding"},
    {.name = "te_chunked_vtab",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n",
     .expect = 400,
     .error = "invalid character in field value"},
    {.name = "te_invalid_coding_name",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: g(zip), chunked\r\n\r\n",
     .expect = 400,
     .error = "invalid transfer coding"},
    {.name = "te_on_http10",
     .bytes = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
     .expect = 400,
     .error = "Transfer-Encoding in an HTTP/1.0 request"},
    {.name = "te_unknown_on_http10",
     .bytes = "POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     .expect = 400,
     .error = "Transfer-Encoding in an HTTP/1.0 request"},
    {.name = "te_empty",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
     .expect = 400,
     .error = "empty Transfer-Encoding"},
    {.name = "te_only_commas",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , ,\r\n\r\n",
     .expect = 400,
     .error = "empty Transfer-Encoding"},

    // Content-Length.
    {.name = "cl_plus_sign",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
     .expect = 400,
     .error = "invalid Content-Length"},
    {.name = "cl_negative",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
     .expect = 400,
     .error = "invalid Content-Length"},
    {.name = "cl_hex",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
     .expect = 400,
     .error = "invalid Content-Length"},
    {.name = "cl_list_differing",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
     .expect = 400,
     .error = "conflicting Content-Length values"},
    {.name = "cl_fields_differing",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     .expect = 400,
     .error = "conflicting Content-Length values"},
    {.name = "cl_overflow", .bytes = kClOverflow, .expect = 400, .error = "invalid Content-Length"},
    {.name = "cl_two_pow_63",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
     .expect = 400,
     .error = "invalid Content-Length"},
    {.name = "cl_empty",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
     .expect = 400,
     .error = "invalid Content-Length"},
    {.name = "cl_inner_space",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
     .expect = 400,
     .error = "invalid Content-Length"},
    {.name = "cl_empty_list_element",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,,5\r\n\r\n",
     .expect = 400,
     .error = "invalid Content-Length"},
    {.name = "cl_over_max_body_size",
     .bytes = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n",
     .expect = 413,
     .error = "request body too large",
     .max_body_size = 5},

    // Expect.
    {.name = "expect_unknown",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
     .expect = 417,
     .error = "unsupported expectation"},
    {.name = "expect_empty",
     .bytes = "GET / HTTP/1.1\r\nHost: a\r\nExpect:\r\n\r\n",
     .expect = 417,
     .error = "unsupported expectation"},
};

// Parses a request and, when its head is complete, analyzes it.
struct RequestRun {
  explicit RequestRun(const RequestCase& c, std::string_view bytes) : buffer(bytes) {
    status = parseRequestHead(buffer.view(), c.limits, storage, head, error);
    if (status == ParseStatus::kComplete) {
      analyzed = analyzeRequest(head, c.max_body_size, info, error);
    }
  }
  int outcome() const {
    if (status == ParseStatus::kNeedMore) return kIncomplete;
    if (status == ParseStatus::kError || !analyzed) return error.status;
    return kAccepted;
  }

  Buffer buffer;
  std::array<Header, kStorage> storage;
  RequestHead head;
  RequestInfo info;
  ParseError error;
  ParseStatus status = ParseStatus::kError;
  bool analyzed = false;
};

class RequestCases : public ::testing::TestWithParam<RequestCase> {};

TEST_P(RequestCases, Whole) {
  const RequestCase& c = GetParam();
  const RequestRun run(c, c.bytes);
  ASSERT_EQ(run.outcome(), c.expect) << "reason: " << run.error.reason;
  if (c.expect > 0) {
    EXPECT_EQ(run.error.reason, c.error);
    return;
  }
  if (c.expect != kAccepted) return;

  const RequestHead& h = run.head;
  EXPECT_EQ(h.method, c.method);
  EXPECT_EQ(h.target, c.target);
  EXPECT_EQ(h.minor_version, c.minor);
  EXPECT_EQ(h.num_headers, c.num_headers);
  EXPECT_EQ(h.headers, run.storage.data());
  EXPECT_EQ(run.buffer.view().substr(h.head_length), c.rest);
  // Zero copy: the views point into the input.
  EXPECT_GE(h.method.data(), run.buffer.data.data());
  EXPECT_LT(h.method.data(), run.buffer.data.data() + run.buffer.data.size());

  const RequestInfo& i = run.info;
  EXPECT_EQ(i.framing, c.framing);
  EXPECT_EQ(i.content_length, c.content_length);
  EXPECT_EQ(i.keep_alive, c.keep_alive);
  EXPECT_EQ(i.host, c.host);
  EXPECT_EQ(i.path, c.path);
  EXPECT_EQ(i.absolute_form, c.absolute_form);
  EXPECT_EQ(i.upgrade_websocket, c.websocket);
  EXPECT_EQ(i.expect_continue, c.expect_continue);
  EXPECT_EQ(i.accepts_event_stream, c.event_stream);
  if (!c.field.empty()) {
    const Header* f = findHeader(h.headers, h.num_headers, c.field);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->value, c.field_value);
  }
}

// Each prefix is "need more", the whole input's parse error, or (past the end of a complete
// head) the same complete head. Once a prefix is an error, every longer prefix is too.
TEST_P(RequestCases, EveryPrefix) {
  const RequestCase& c = GetParam();
  const RequestRun whole(c, c.bytes);
  bool errored = false;
  for (size_t k = 0; k < c.bytes.size(); ++k) {
    const RequestRun run(c, c.bytes.substr(0, k));
    SCOPED_TRACE("prefix of " + std::to_string(k) + " bytes");
    if (whole.status == ParseStatus::kComplete && k >= whole.head.head_length) {
      ASSERT_EQ(run.status, ParseStatus::kComplete);
      EXPECT_EQ(run.head.head_length, whole.head.head_length);
      EXPECT_EQ(run.head.num_headers, whole.head.num_headers);
    } else if (run.status == ParseStatus::kError) {
      ASSERT_EQ(whole.status, ParseStatus::kError);
      EXPECT_EQ(run.error.status, whole.error.status);
      EXPECT_STREQ(run.error.reason, whole.error.reason);
      errored = true;
    } else {
      ASSERT_EQ(run.status, ParseStatus::kNeedMore);
      ASSERT_FALSE(errored) << "need more after an error";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Parser, RequestCases, ::testing::ValuesIn(kRequestCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(RequestHeadTest, StorageSmallerThanMaxHeadersIs431) {
  const Buffer input("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n");
  std::array<Header, 2> storage;
  RequestHead head;
  ParseError error;
  EXPECT_EQ(parseRequestHead(input.view(), HeadLimits{}, storage, head, error),
            ParseStatus::kError);
  EXPECT_EQ(error.status, 431);

  std::array<Header, 3> enough;
  ASSERT_EQ(parseRequestHead(input.view(), HeadLimits{}, enough, head, error),
            ParseStatus::kComplete);
  ASSERT_EQ(head.num_headers, 3u);
  EXPECT_EQ(head.headers[2].name, "B");
  EXPECT_EQ(head.headers[2].value, "2");
}

TEST(RequestHeadTest, AnalyzeResetsInfoBetweenRequests) {
  const Buffer first(
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade, close\r\n"
      "Upgrade: websocket\r\nContent-Length: 3\r\n\r\n");
  const Buffer second("GET / HTTP/1.1\r\nHost: b\r\n\r\n");
  std::array<Header, 8> storage;
  RequestHead head;
  RequestInfo info;
  ParseError error;
  ASSERT_EQ(parseRequestHead(first.view(), HeadLimits{}, storage, head, error),
            ParseStatus::kComplete);
  ASSERT_TRUE(analyzeRequest(head, 0, info, error));
  EXPECT_TRUE(info.upgrade_websocket);
  EXPECT_FALSE(info.keep_alive);
  ASSERT_EQ(parseRequestHead(second.view(), HeadLimits{}, storage, head, error),
            ParseStatus::kComplete);
  ASSERT_TRUE(analyzeRequest(head, 0, info, error));
  EXPECT_FALSE(info.upgrade_websocket);
  EXPECT_TRUE(info.keep_alive);
  EXPECT_EQ(info.framing, BodyFraming::kNone);
  EXPECT_EQ(info.content_length, 0u);
  EXPECT_EQ(info.host, "b");
}

// ---------------------------------------------------------------------------------------------
// Responses

struct ResponseCase {
  const char* name;
  std::string_view bytes;
  int expect = kAccepted;       // kAccepted, kIncomplete or 502
  std::string_view error = {};  // the error's reason
  std::string_view request_method = "GET";
  bool upgrade_requested = false;
  HeadLimits limits = {};
  // Checked for kAccepted only.
  int status = 200;
  int minor = 1;
  std::string_view reason = "OK";
  size_t num_headers = 1;
  std::string_view rest = {};
  BodyFraming framing = BodyFraming::kContentLength;
  uint64_t content_length = 0;
  bool keep_alive = true;
  bool informational = false;
  bool switching = false;
  bool event_stream = false;
};

void PrintTo(const ResponseCase& c, std::ostream* os) {
  *os << c.name;
}

const ResponseCase kResponseCases[] = {
    // Valid responses.
    {.name = "content_length",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
     .rest = "hello",
     .content_length = 5},
    {.name = "chunked",
     .bytes = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     .framing = BodyFraming::kChunked},
    {.name = "until_close",
     .bytes = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
     .framing = BodyFraming::kUntilClose,
     .keep_alive = false},
    {.name = "http10_closes",
     .bytes = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
     .minor = 0,
     .keep_alive = false},
    {.name = "http10_keep_alive",
     .bytes = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
     .minor = 0,
     .num_headers = 2},
    {.name = "connection_close",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Close\r\n\r\n",
     .num_headers = 2,
     .content_length = 2,
     .keep_alive = false},
    {.name = "status_204",
     .bytes = "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n",
     .status = 204,
     .reason = "No Content",
     .framing = BodyFraming::kNone},
    {.name = "status_204_with_cl_zero",
     .bytes = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
     .status = 204,
     .reason = "No Content",
     .framing = BodyFraming::kNone},
    {.name = "status_304_with_cl",
     .bytes = "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n",
     .status = 304,
     .reason = "Not Modified",
     .framing = BodyFraming::kNone},
    {.name = "head_with_cl",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
     .request_method = "HEAD",
     .framing = BodyFraming::kNone},
    {.name = "head_with_chunked",
     .bytes = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     .request_method = "HEAD",
     .framing = BodyFraming::kNone},
    {.name = "continue_then_final",
     .bytes = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
     .status = 100,
     .reason = "Continue",
     .num_headers = 0,
     .rest = "HTTP/1.1 200 OK\r\n\r\n",
     .framing = BodyFraming::kNone,
     .informational = true},
    {.name = "early_hints_with_cl_zero",
     .bytes = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nContent-Length: 0\r\n\r\n",
     .status = 103,
     .reason = "Early Hints",
     .num_headers = 2,
     .framing = BodyFraming::kNone,
     .informational = true},
    {.name = "switching_protocols",
     .bytes = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\n\r\n\x81\x05",
     .upgrade_requested = true,
     .status = 101,
     .reason = "Switching Protocols",
     .num_headers = 2,
     .rest = "\x81\x05",
     .framing = BodyFraming::kNone,
     .keep_alive = false,
     .switching = true},
    {.name = "event_stream",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream ; charset=utf-8\r\n\r\n",
     .framing = BodyFraming::kUntilClose,
     .keep_alive = false,
     .event_stream = true},
    {.name = "event_stream_lookalike",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Type: text/event-streams\r\nContent-Length: 0\r\n\r\n",
     .num_headers = 2},
    {.name = "cl_identical_list",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
     .content_length = 5},
    {.name = "empty_reason",
     .bytes = "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
     .status = 404,
     .reason = ""},
    {.name = "reason_omitted",
     .bytes = "HTTP/1.1 500\r\nContent-Length: 0\r\n\r\n",
     .status = 500,
     .reason = ""},
    {.name = "reason_with_obs_text_and_htab",
     .bytes = "HTTP/1.1 200 Tr\xc3\xa8s\tbien\r\nContent-Length: 0\r\n\r\n",
     .reason = "Tr\xc3\xa8s\tbien"},
    {.name = "status_599",
     .bytes = "HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n",
     .status = 599,
     .reason = "Whatever"},

    // Incomplete.
    {.name = "incomplete_status_line", .bytes = "HTTP/1.1 200", .expect = kIncomplete},
    {.name = "incomplete_fields",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
     .expect = kIncomplete},

    // Malformed or ambiguous: 502.
    {.name = "unsolicited_101",
     .bytes = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
     .expect = 502,
     .error = "101 without a requested upgrade"},
    {.name = "connect_2xx",
     .bytes = "HTTP/1.1 200 OK\r\n\r\n",
     .expect = 502,
     .error = "2xx to CONNECT (tunnels are not supported)",
     .request_method = "CONNECT"},
    {.name = "cl_and_te",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     .expect = 502,
     .error = "both Content-Length and Transfer-Encoding"},
    {.name = "cl_differing",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     .expect = 502,
     .error = "conflicting Content-Length values"},
    {.name = "cl_invalid",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
     .expect = 502,
     .error = "invalid Content-Length"},
    {.name = "cl_invalid_on_304",
     .bytes = "HTTP/1.1 304 Not Modified\r\nContent-Length: -1\r\n\r\n",
     .expect = 502,
     .error = "invalid Content-Length"},
    {.name = "cl_invalid_on_head",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
     .expect = 502,
     .error = "invalid Content-Length",
     .request_method = "HEAD"},
    {.name = "te_gzip",
     .bytes = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
     .expect = 502,
     .error = "chunked is not the final transfer coding"},
    {.name = "te_gzip_chunked",
     .bytes = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     .expect = 502,
     .error = "unsupported transfer coding"},
    {.name = "te_chunked_gzip",
     .bytes = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     .expect = 502,
     .error = "chunked is not the final transfer coding"},
    {.name = "te_on_http10",
     .bytes = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     .expect = 502,
     .error = "Transfer-Encoding in HTTP/1.0"},
    {.name = "status_below_100",
     .bytes = "HTTP/1.1 099 X\r\n\r\n",
     .expect = 502,
     .error = "status code out of range"},
    {.name = "status_above_599",
     .bytes = "HTTP/1.1 600 X\r\n\r\n",
     .expect = 502,
     .error = "status code out of range"},
    {.name = "status_two_digits",
     .bytes = "HTTP/1.1 20 OK\r\n\r\n",
     .expect = 502,
     .error = "invalid status code"},
    {.name = "status_four_digits",
     .bytes = "HTTP/1.1 2000 OK\r\n\r\n",
     .expect = 502,
     .error = "invalid status code"},
    {.name = "status_with_suffix",
     .bytes = "HTTP/1.1 200x OK\r\n\r\n",
     .expect = 502,
     .error = "invalid status code"},
    {.name = "version_http20",
     .bytes = "HTTP/2.0 200 OK\r\n\r\n",
     .expect = 502,
     .error = "invalid HTTP version"},
    {.name = "version_http12",
     .bytes = "HTTP/1.2 200 OK\r\n\r\n",
     .expect = 502,
     .error = "HTTP version not supported"},
    {.name = "version_lowercase",
     .bytes = "http/1.1 200 OK\r\n\r\n",
     .expect = 502,
     .error = "invalid HTTP version"},
    {.name = "double_space_before_status",
     .bytes = "HTTP/1.1  200 OK\r\n\r\n",
     .expect = 502,
     .error = "invalid status code"},
    {.name = "leading_empty_line",
     .bytes = "\r\nHTTP/1.1 200 OK\r\n\r\n",
     .expect = 502,
     .error = "invalid HTTP version"},
    {.name = "reason_with_ctl",
     .bytes = "HTTP/1.1 200 O\x01K\r\n\r\n",
     .expect = 502,
     .error = "invalid character in reason phrase"},
    {.name = "bare_lf",
     .bytes = "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
     .expect = 502,
     .error = "bare LF"},
    {.name = "bare_cr",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length: 0\rX\r\n\r\n",
     .expect = 502,
     .error = "bare CR"},
    {.name = "obs_fold",
     .bytes = "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
     .expect = 502,
     .error = "obsolete line folding"},
    {.name = "nul_in_value",
     .bytes = "HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n"sv,
     .expect = 502,
     .error = "invalid character in field value"},
    {.name = "space_before_colon",
     .bytes = "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
     .expect = 502,
     .error = "whitespace between field name and colon"},
    {.name = "head_too_large",
     .bytes = "HTTP/1.1 200 OK\r\nServer: xxxxxxxxxxxxxxxx\r\n\r\n",
     .expect = 502,
     .error = "message head too large",
     .limits = {.max_head_size = 32}},
    {.name = "too_many_fields",
     .bytes = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
     .expect = 502,
     .error = "too many header fields",
     .limits = {.max_headers = 1}},
};

struct ResponseRun {
  ResponseRun(const ResponseCase& c, std::string_view bytes) : buffer(bytes) {
    status = parseResponseHead(buffer.view(), c.limits, storage, head, error);
    if (status == ParseStatus::kComplete) {
      analyzed = analyzeResponse(head, c.request_method, c.upgrade_requested, info, error);
    }
  }
  int outcome() const {
    if (status == ParseStatus::kNeedMore) return kIncomplete;
    if (status == ParseStatus::kError || !analyzed) return error.status;
    return kAccepted;
  }

  Buffer buffer;
  std::array<Header, kStorage> storage;
  ResponseHead head;
  ResponseInfo info;
  ParseError error;
  ParseStatus status = ParseStatus::kError;
  bool analyzed = false;
};

class ResponseCases : public ::testing::TestWithParam<ResponseCase> {};

TEST_P(ResponseCases, Whole) {
  const ResponseCase& c = GetParam();
  const ResponseRun run(c, c.bytes);
  ASSERT_EQ(run.outcome(), c.expect) << "reason: " << run.error.reason;
  if (c.expect > 0) {
    EXPECT_EQ(run.error.reason, c.error);
    return;
  }
  if (c.expect != kAccepted) return;

  const ResponseHead& h = run.head;
  EXPECT_EQ(h.status, c.status);
  EXPECT_EQ(h.minor_version, c.minor);
  EXPECT_EQ(h.reason, c.reason);
  EXPECT_EQ(h.num_headers, c.num_headers);
  EXPECT_EQ(run.buffer.view().substr(h.head_length), c.rest);

  const ResponseInfo& i = run.info;
  EXPECT_EQ(i.framing, c.framing);
  EXPECT_EQ(i.content_length, c.content_length);
  EXPECT_EQ(i.keep_alive, c.keep_alive);
  EXPECT_EQ(i.informational, c.informational);
  EXPECT_EQ(i.switching, c.switching);
  EXPECT_EQ(i.event_stream, c.event_stream);
}

TEST_P(ResponseCases, EveryPrefix) {
  const ResponseCase& c = GetParam();
  const ResponseRun whole(c, c.bytes);
  bool errored = false;
  for (size_t k = 0; k < c.bytes.size(); ++k) {
    const ResponseRun run(c, c.bytes.substr(0, k));
    SCOPED_TRACE("prefix of " + std::to_string(k) + " bytes");
    if (whole.status == ParseStatus::kComplete && k >= whole.head.head_length) {
      ASSERT_EQ(run.status, ParseStatus::kComplete);
      EXPECT_EQ(run.head.head_length, whole.head.head_length);
    } else if (run.status == ParseStatus::kError) {
      ASSERT_EQ(whole.status, ParseStatus::kError);
      EXPECT_EQ(run.error.status, whole.error.status);
      EXPECT_STREQ(run.error.reason, whole.error.reason);
      errored = true;
    } else {
      ASSERT_EQ(run.status, ParseStatus::kNeedMore);
      ASSERT_FALSE(errored) << "need more after an error";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Parser, ResponseCases, ::testing::ValuesIn(kResponseCases),
                         [](const auto& info) { return std::string(info.param.name); });

// The value and target scanners screen 8 bytes at a time: a forbidden byte must be caught at
// every offset of a word, and an allowed HTAB in a screened word must not stop the value.
TEST(RequestHeadTest, ForbiddenBytesCaughtAtEveryOffset) {
  const std::string_view forbidden = "\x00\x01\x0b\x1f\x7f\n"sv;
  for (size_t pos = 0; pos < 24; ++pos) {
    for (char bad : forbidden) {
      std::string value(24, 'v');
      value[pos] = bad;
      const Buffer in_value("GET / HTTP/1.1\r\nHost: a\r\nX: " + value + "\r\n\r\n");
      const Buffer in_target("GET /" + value + " HTTP/1.1\r\nHost: a\r\n\r\n");
      std::array<Header, 4> storage;
      RequestHead head;
      ParseError error;
      SCOPED_TRACE("byte " + std::to_string(static_cast<unsigned char>(bad)) + " at " +
                   std::to_string(pos));
      EXPECT_EQ(parseRequestHead(in_value.view(), HeadLimits{}, storage, head, error),
                ParseStatus::kError);
      EXPECT_EQ(error.status, 400);
      EXPECT_EQ(parseRequestHead(in_target.view(), HeadLimits{}, storage, head, error),
                ParseStatus::kError);
      EXPECT_EQ(error.status, 400);
    }
    std::string value(24, 'v');
    value[pos] = '\t';
    value[23 - pos] = '\xff';
    const Buffer input("GET / HTTP/1.1\r\nHost: a\r\nX: " + value + "\r\n\r\n");
    std::array<Header, 4> storage;
    RequestHead head;
    ParseError error;
    ASSERT_EQ(parseRequestHead(input.view(), HeadLimits{}, storage, head, error),
              ParseStatus::kComplete);
    ASSERT_EQ(head.num_headers, 2u);
    // Trailing HTAB is trimmed as OWS; anywhere else it stays.
    std::string expected = value;
    if (pos == 23) expected.pop_back();
    EXPECT_EQ(head.headers[1].value, pos == 0 ? expected.substr(1) : expected);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

TEST(HelpersTest, EqualsIgnoreCase) {
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-LENGTH"));
  EXPECT_TRUE(equalsIgnoreCase("", ""));
  EXPECT_FALSE(equalsIgnoreCase("Host", "Hosts"));
  EXPECT_FALSE(equalsIgnoreCase("Host", "Hist"));
  // Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by the case bit but are not letters.
  EXPECT_FALSE(equalsIgnoreCase("@", "`"));
  EXPECT_FALSE(equalsIgnoreCase("[", "{"));
}

TEST(HelpersTest, FindHeaderReturnsFirstMatch) {
  const Header headers[] = {{"Accept", "a"}, {"X-Dup", "1"}, {"x-dup", "2"}};
  const Header* found = findHeader(headers, 3, "X-DUP");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found, &headers[1]);
  EXPECT_EQ(findHeader(headers, 3, "X-Du"), nullptr);
  EXPECT_EQ(findHeader(headers, 1, "X-Dup"), nullptr);
  EXPECT_EQ(findHeader(nullptr, 0, "Host"), nullptr);
}

}  // namespace
}  // namespace speedmimi::http
