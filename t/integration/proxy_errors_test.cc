// Every error answer of DESIGN §4: the situation is set up for real (a closed port, a hanging
// backend, an oversized head...), and the client must get the right status with a well-framed
// small body, while the backend sees nothing it should not.
#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::IsEmpty;

enum class BackendKind { kEcho, kGarbage, kHang, kClosedPort, kInactive };

struct ErrorCase {
  const char* name;
  int status;
  BackendKind backend;
  std::function<void(ProxyOptions&)> configure;
  std::string request;
  bool backend_untouched;  // the proxy must answer without contacting the backend
  bool closes;             // the proxy must close the client connection after answering
  Millis min_delay{0};     // the answer must not come earlier (timeouts)
};

std::string requestLine(std::string_view target) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: errors.test\r\n\r\n";
}

std::vector<ErrorCase> errorCases() {
  auto same = [](ProxyOptions&) {};
  std::string many_headers = "GET / HTTP/1.1\r\nHost: errors.test\r\n";
  for (int i = 0; i < 20; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  many_headers += "\r\n";
  return {
      {"NoRoute404", 404, BackendKind::kEcho, [](ProxyOptions& o) { o.routes[0].path = "/api"; },
       requestLine("/other"), true, false},
      {"ConnectRefused502", 502, BackendKind::kClosedPort, same, requestLine("/"), false, false},
      {"GarbageResponse502", 502, BackendKind::kGarbage, same, requestLine("/"), false, false},
      {"NoActiveBackend503", 503, BackendKind::kInactive, same, requestLine("/"), true, false},
      {"BackendHangs504", 504, BackendKind::kHang, [](ProxyOptions& o) { o.read_timeout = "1s"; },
       requestLine("/"), false, false, Millis(900)},
      {"IncompleteHead408", 408, BackendKind::kEcho,
       [](ProxyOptions& o) { o.header_timeout = "1s"; }, "GET / HTTP/1.1\r\nHost: errors.test\r\n",
       true, true, Millis(900)},
      {"ContentLengthOverMax413", 413, BackendKind::kEcho,
       [](ProxyOptions& o) { o.max_body_size = "1k"; },
       "POST / HTTP/1.1\r\nHost: errors.test\r\nContent-Length: 2048\r\n\r\n", true, false},
      {"ChunkedBodyOverMax413", 413, BackendKind::kEcho,
       [](ProxyOptions& o) { o.max_body_size = "1k"; },
       buildRequest("POST", "/", {}, std::string(4096, 'x'), Framing::kChunked, 512), false, false},
      {"RequestLineOver8k414", 414, BackendKind::kEcho, same,
       requestLine("/" + std::string(9000, 'a')), true, false},
      {"HeaderBlockOverMax431", 431, BackendKind::kEcho,
       [](ProxyOptions& o) { o.max_header_size = "4k"; },
       "GET / HTTP/1.1\r\nHost: errors.test\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n", true,
       false},
      {"TooManyHeaders431", 431, BackendKind::kEcho, [](ProxyOptions& o) { o.max_headers = 10; },
       many_headers, true, false},
      {"UnknownTransferCoding501", 501, BackendKind::kEcho, same,
       "POST / HTTP/1.1\r\nHost: errors.test\r\nTransfer-Encoding: x-unknown, chunked\r\n\r\n"
       "0\r\n\r\n",
       true, false},
      {"Http20RequestLine505", 505, BackendKind::kEcho, same,
       "GET / HTTP/2.0\r\nHost: errors.test\r\n\r\n", true, false},
      {"LengthAndChunked400", 400, BackendKind::kEcho, same,
       "POST / HTTP/1.1\r\nHost: errors.test\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       true, true},
      {"MissingHost400", 400, BackendKind::kEcho, same, "GET / HTTP/1.1\r\n\r\n", true, true},
  };
}

// Parameters print as their names, not as bytes.
void PrintTo(const ErrorCase& c, std::ostream* out) {
  *out << c.name;
}

// Reason phrases an operator would accept for each status (RFC 9110 and the older RFC 7231
// names).
bool reasonFits(int status, const std::string& reason) {
  static const std::map<int, std::vector<std::string>> kReasons = {
      {400, {"Bad Request"}},
      {404, {"Not Found"}},
      {408, {"Request Timeout", "Request Time-out"}},
      {413, {"Content Too Large", "Payload Too Large", "Request Entity Too Large"}},
      {414, {"URI Too Long", "Request-URI Too Large", "Request-URI Too Long"}},
      {431, {"Request Header Fields Too Large"}},
      {501, {"Not Implemented"}},
      {502, {"Bad Gateway"}},
      {503, {"Service Unavailable", "Service Temporarily Unavailable"}},
      {504, {"Gateway Timeout", "Gateway Time-out"}},
      {505, {"HTTP Version Not Supported"}}};
  auto it = kReasons.find(status);
  if (it == kReasons.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [&](const std::string& r) { return equalsIgnoreCase(r, reason); });
}

// "2026/11/27 15:00:00 [error] 1234: message" with one of the eight levels.
bool errorLogLineOk(const std::string& line) {
  static const std::vector<std::string> kLevels = {"debug", "info", "notice", "warn",
                                                   "error", "crit", "alert",  "emerg"};
  bool level_ok = std::any_of(kLevels.begin(), kLevels.end(), [&](const std::string& level) {
    return globMatch(line, "####/##/## ##:##:## [" + level + "] #*: ?*");
  });
  if (!level_ok) return false;
  size_t pid_start = line.find("] ") + 2;
  std::string pid = line.substr(pid_start, line.find(": ", pid_start) - pid_start);
  return std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; });
}

class ProxyErrorTest : public ProxyTest, public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(ProxyErrorTest, AnswersWithAFramedErrorPage) {
  const ErrorCase& c = GetParam();
  Handler handler = FakeBackend::echo();
  if (c.backend == BackendKind::kGarbage) handler = FakeBackend::garbage();
  if (c.backend == BackendKind::kHang) handler = FakeBackend::hang();
  FakeBackend backend(handler);
  ASSERT_TRUE(backend.ok());
  ProxyOptions options = ProxyOptions::forBackends(
      {c.backend == BackendKind::kClosedPort ? pickFreePort() : backend.port()});
  options.backends["app"][0].active = c.backend != BackendKind::kInactive;
  c.configure(options);
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  auto sent_at = Clock::now();
  ASSERT_TRUE(client.sendRaw(c.request)) << client.error();
  auto response = client.readResponse(Millis(8000));
  auto waited = std::chrono::duration_cast<Millis>(Clock::now() - sent_at);

  ASSERT_TRUE(response) << client.error();
  SCOPED_TRACE("response head:\n" + response->raw_head);
  EXPECT_EQ(response->status, c.status);
  EXPECT_EQ(response->version, "HTTP/1.1");
  EXPECT_TRUE(reasonFits(response->status, response->reason)) << response->status_line;
  EXPECT_FALSE(response->chunked);
  EXPECT_EQ(response->header("Content-Length").value_or("(none)"),
            std::to_string(response->body.size()));
  EXPECT_FALSE(response->body.empty()) << "an error answer carries a small page";
  EXPECT_LT(response->body.size(), 64u * 1024);
  EXPECT_GE(waited, c.min_delay) << "answered before the timeout could have passed";
  if (c.backend_untouched) {
    EXPECT_EQ(backend.connectionCount(), 0) << "received:\n" << backend.receivedBytes();
  }
  if (c.closes) {
    EXPECT_TRUE(containsIgnoreCase(response->header("Connection").value_or(""), "close"));
    EXPECT_TRUE(client.waitForClose(Millis(3000))) << "the connection stayed open";
  }
}

INSTANTIATE_TEST_SUITE_P(Design4, ProxyErrorTest, ::testing::ValuesIn(errorCases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(ProxyTest, ErrorLogLinesHaveTheDocumentedShape) {
  ProxyOptions options = ProxyOptions::forBackends({pickFreePort()});
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  std::string error;
  auto response = fetch(proxy->port(), requestLine("/refused"), &error);
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->status, 502);

  // The refused connect is an [error] naming the backend; every line keeps the nginx shape.
  std::string port = std::to_string(options.backends["app"][0].port);
  ASSERT_TRUE(
      waitFor([&] { return !linesContaining(proxy->errorLog(), {"127.0.0.1:" + port}).empty(); },
              Millis(5000)))
      << proxy->errorLog();
  std::string log = proxy->errorLog();
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) EXPECT_TRUE(errorLogLineOk(line)) << line;
  EXPECT_THAT(linesContaining(log, {"[error]"}), ::testing::Not(IsEmpty())) << log;
}

// A backend that is down fails every request: the worker writes its error line once per second,
// and the next one says how many it held back, instead of a line per request.
TEST_F(ProxyTest, RepeatedErrorsAreRateLimited) {
  ProxyOptions options = ProxyOptions::forBackends({pickFreePort()});
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);
  auto failures = [&] { return linesContaining(proxy->errorLog(), {"while proxying"}); };

  Client client(proxy->port());
  // The interval starts when the first failure is written: once it is in the log.
  ASSERT_TRUE(client.sendRaw(requestLine("/down")));
  auto response = client.readResponse();
  ASSERT_TRUE(response) << client.error();
  ASSERT_EQ(response->status, 502);
  ASSERT_TRUE(waitFor([&] { return !failures().empty(); }, Millis(5000))) << proxy->errorLog();
  auto first = Clock::now();
  for (int i = 1; i < 20; ++i) {
    ASSERT_TRUE(client.sendRaw(requestLine("/down")));
    response = client.readResponse();
    ASSERT_TRUE(response) << client.error();
    ASSERT_EQ(response->status, 502);
  }
  ASSERT_LT(Clock::now() - first, Millis(900)) << "too slow to stay within one interval";
  EXPECT_EQ(failures().size(), 1u) << proxy->errorLog();

  // Once the interval has passed, the next failure is written with the count.
  std::this_thread::sleep_until(first + Millis(1100));
  ASSERT_TRUE(client.sendRaw(requestLine("/down")));
  ASSERT_TRUE(client.readResponse());
  ASSERT_TRUE(
      waitFor([&] { return linesContaining(proxy->errorLog(), {"while proxying"}).size() == 2; },
              Millis(5000)))
      << proxy->errorLog();
  EXPECT_THAT(linesContaining(proxy->errorLog(), {"while proxying"})[1],
              ::testing::HasSubstr("(19 similar messages suppressed)"));
}

}  // namespace
}  // namespace speedmimi::test
