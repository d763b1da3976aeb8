// Response-side hazards (DESIGN §8, issue 4), each end to end against a fake backend that sends
// the hazardous bytes: ambiguous framing becomes a 502 and the upstream connection is closed,
// bytes beyond the framing never reach the client, bodiless responses stay bodiless, 1xx and
// 100-continue pass through, truncation is never disguised as a complete message, and each of
// the three timeouts ends what it guards.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sstream>

#include "harness.h"

namespace speedmimi::test {
namespace {

using ::testing::IsEmpty;

constexpr std::string_view kHost = "hazard.test";

std::string get(std::string_view target, std::string_view method = "GET") {
  return std::string(method) + " " + std::string(target) +
         " HTTP/1.1\r\nHost: " + std::string(kHost) + "\r\n\r\n";
}

// Sends `bytes` as the whole answer and keeps the connection, so only the proxy can close it.
Handler rawResponse(std::string bytes) {
  return [bytes](const Request&, Responder& out) { out.send(bytes); };
}

// Sends `bytes` and closes: a backend dying in the middle of its answer.
Handler rawThenClose(std::string bytes) {
  return [bytes](const Request&, Responder& out) {
    out.send(bytes);
    out.closeAfter();
  };
}

// The state (as in /proc/net/tcp: 1 = ESTABLISHED) of the loopback socket from local_port to
// remote_port, and whether a process still holds it (a closed socket lingers without an inode
// while the kernel sends what is left in it). nullopt when there is no such socket.
struct TcpSocket {
  int state = 0;
  bool owned = false;
};

std::optional<TcpSocket> findTcpSocket(int local_port, int remote_port) {
  std::istringstream table(readFile("/proc/net/tcp"));
  std::string line;
  std::getline(table, line);  // column titles
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
        timeout >> inode;
    auto port = [](const std::string& address) {
      return std::stoi(address.substr(address.find(':') + 1), nullptr, 16);
    };
    if (local.empty() || remote.empty()) continue;
    if (port(local) == local_port && port(remote) == remote_port) {
      return TcpSocket{std::stoi(state, nullptr, 16), inode != "0"};
    }
  }
  return std::nullopt;
}

int localPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  return ntohs(addr.sin_port);
}

class ResponseHazardTest : public ProxyTest {
 protected:
  // One backend and a proxy with 1 s timeouts in front of it. Passive health checks are off:
  // a 502 must not take the only backend out, since each test's next request checks how the
  // proxy handled the upstream connection.
  Proxy* startFor(FakeBackend& backend) {
    ProxyOptions options = ProxyOptions::forBackends({backend.port()});
    options.backends["app"][0].max_fails = 0;
    options.read_timeout = "1s";
    options.header_timeout = "1s";
    options.write_timeout = "1s";
    return startProxy(options);
  }

  // After a hazard on backend connection `bad`: the proxy closed it, and the next request on the
  // same client connection is served on a new backend connection, its answer framed cleanly.
  void expectNextRequestOnNewConnection(FakeBackend& backend, Client& client, int bad) {
    EXPECT_TRUE(backend.waitForPeerClose(bad, Millis(3000)))
        << "the proxy kept the upstream connection of the bad response";
    size_t before = backend.requestCount();
    backend.setHandler(FakeBackend::fixed(200, "next answer"));
    ASSERT_TRUE(client.sendRaw(get("/next"))) << client.error();
    auto response = client.readResponse(Millis(5000));
    ASSERT_TRUE(response) << client.error();
    EXPECT_EQ(response->status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(response->body, "next answer");
    EXPECT_EQ(client.stream()->buffer(), "") << "bytes after the answer";
    ASSERT_EQ(backend.requestCount(), before + 1);
    EXPECT_NE(backend.requests().back().connection, bad) << "the bad connection was reused";
  }
};

// --- malformed or ambiguous response heads -------------------------------------------------------

struct BadHeadCase {
  const char* name;
  std::string response;
};

void PrintTo(const BadHeadCase& c, std::ostream* out) {
  *out << c.name;
}

std::vector<BadHeadCase> badHeadCases() {
  return {
      {"InvalidContentLength", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello"},
      {"NegativeContentLength", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello"},
      {"DuplicateDifferingContentLength",
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"ContentLengthListDiffering", "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!"},
      {"ContentLengthWithChunked",
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n"},
      {"UnknownCoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello"},
      {"UnknownCodingThenChunked",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"ChunkedTwice",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"ChunkedOnHttp10",
       "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"ObsFold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello"},
      {"BareLf", "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello"},
      {"SpaceBeforeColon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"},
      {"NulInFieldValue",
       literalBytes("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\nhello")},
      {"StatusCodeTooLong", "HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello"},
      {"NotHttp1", "ICY 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
      {"HeadOver64k", "HTTP/1.1 200 OK\r\nX-Big: " + std::string(70 * 1024, 'b') +
                          "\r\nContent-Length: 5\r\n\r\nhello"},
      {"UnrequestedSwitchingProtocols",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
  };
}

class BadResponseHeadTest : public ResponseHazardTest,
                            public ::testing::WithParamInterface<BadHeadCase> {};

TEST_P(BadResponseHeadTest, Is502AndTheUpstreamConnectionIsClosed) {
  FakeBackend backend(rawResponse(GetParam().response));
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/hazard"))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 502) << response->raw_head;
  EXPECT_EQ(response->body.find("hello"), std::string::npos) << "backend bytes reached the client";
  EXPECT_EQ(client.stream()->buffer(), "");
  expectNextRequestOnNewConnection(backend, client, 0);
}

INSTANTIATE_TEST_SUITE_P(Hazards, BadResponseHeadTest, ::testing::ValuesIn(badHeadCases()),
                         [](const auto& info) { return std::string(info.param.name); });

// --- bytes beyond the framing -------------------------------------------------------------------

class BytesBeyondFramingTest : public ResponseHazardTest,
                               public ::testing::WithParamInterface<std::string> {};

TEST_P(BytesBeyondFramingTest, AreDiscardedWithTheConnection) {
  FakeBackend backend(rawResponse(GetParam() + "EXTRA-BYTES"));
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/extra"))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello");
  expectNextRequestOnNewConnection(backend, client, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Hazards, BytesBeyondFramingTest,
    ::testing::Values(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    [](const auto& info) { return info.index == 0 ? "ContentLength" : "Chunked"; });

TEST_F(ResponseHazardTest, BytesArrivingAfterAResponseRetireThePooledConnection) {
  FakeBackend backend([](const Request&, Responder& out) {
    out.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    if (out.pause(Millis(200))) out.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforge");
  });
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/late"))) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->body, "hello");
  // The unsolicited second answer arrives while the connection sits in the pool: the proxy must
  // drop the connection rather than hand those bytes to the next request.
  expectNextRequestOnNewConnection(backend, client, 0);
}

// --- bodiless responses -------------------------------------------------------------------------

struct BodilessCase {
  const char* name;
  const char* method;
  std::string response;
  std::string content_length;  // what the client must see ("" = no Content-Length)
};

void PrintTo(const BodilessCase& c, std::ostream* out) {
  *out << c.name;
}

class BodilessResponseTest : public ResponseHazardTest,
                             public ::testing::WithParamInterface<BodilessCase> {};

TEST_P(BodilessResponseTest, BodyIsNeverForwardedAndTheConnectionNotReused) {
  const BodilessCase& c = GetParam();
  FakeBackend backend(rawResponse(c.response));
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/bodiless", c.method))) << client.error();
  auto response = client.readResponse(Millis(5000), std::string_view(c.method) == "HEAD");
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->body, "");
  EXPECT_EQ(response->header("Content-Length").value_or(""), c.content_length)
      << response->raw_head;
  EXPECT_FALSE(response->header("Transfer-Encoding")) << response->raw_head;
  // The next answer must start right after this head: no stray body bytes in between.
  expectNextRequestOnNewConnection(backend, client, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Hazards, BodilessResponseTest,
    ::testing::Values(
        BodilessCase{"HeadWithBody", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                     "5"},
        BodilessCase{"NoContentWithBody", "GET", "HTTP/1.1 204 No Content\r\n\r\nhello", ""},
        BodilessCase{"NotModifiedWithBody", "GET",
                     "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", ""}),
    [](const auto& info) { return std::string(info.param.name); });

// --- 1xx and Expect -----------------------------------------------------------------------------

TEST_F(ResponseHazardTest, EarlyHintsReachTheClientBeforeTheFinalResponse) {
  auto hints_seen = std::make_shared<std::atomic<bool>>(false);
  FakeBackend backend([hints_seen](const Request&, Responder& out) {
    out.send("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
    // The final answer waits until the client has the hints: buffered hints fail the test.
    waitFor([&] { return hints_seen->load() || out.stopping(); }, Millis(5000));
    out.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
  });
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/hints"))) << client.error();
  std::string head;
  ASSERT_EQ(readHead(*client.stream(), Deadline(Millis(3000)), &head), "");
  std::string status_line;
  Headers headers;
  std::string problem;
  ASSERT_TRUE(parseHead(head, &status_line, &headers, &problem)) << problem;
  EXPECT_EQ(status_line, "HTTP/1.1 103 Early Hints");
  EXPECT_EQ(findHeader(headers, "Link").value_or(""), "</style.css>; rel=preload");
  EXPECT_FALSE(findHeader(headers, "Content-Length"));
  hints_seen->store(true);

  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "final");
}

// HTTP/1.0 has no 1xx: the hints are dropped and the client sees only the final answer.
TEST_F(ResponseHazardTest, EarlyHintsAreNotSentToAnHttp10Client) {
  FakeBackend backend(
      rawResponse("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"));
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw("GET /hints HTTP/1.0\r\nHost: hazard.test\r\n\r\n")) << client.error();
  bool closed = false;
  std::string raw = client.readUntilClose(Millis(3000), &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 200 OK\r\n")) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\nfinal")) << raw;
  EXPECT_EQ(raw.find("103"), std::string::npos) << raw;
}

TEST_F(ResponseHazardTest, ExpectContinueWorksEndToEnd) {
  FakeBackend backend(FakeBackend::echo(FakeBackend::EchoFraming::kContentLength));
  backend.setContinueBeforeBody(true);
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(
      client.sendRaw("POST /upload HTTP/1.1\r\nHost: hazard.test\r\nContent-Length: 11\r\n"
                     "Expect: 100-continue\r\n\r\n"))
      << client.error();
  // The body is held back until "100 Continue" has come through the proxy.
  std::string head;
  ASSERT_EQ(readHead(*client.stream(), Deadline(Millis(3000)), &head), "");
  EXPECT_EQ(head, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.sendRaw("hello world")) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello world");
  ASSERT_EQ(backend.requestCount(), 1u);
  EXPECT_EQ(backend.requests()[0].header("Expect").value_or(""), "100-continue");
}

TEST_F(ResponseHazardTest, UnknownExpectationIs417AndNothingIsForwarded) {
  FakeBackend backend(FakeBackend::echo());
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(
      client.sendRaw("POST /upload HTTP/1.1\r\nHost: hazard.test\r\nContent-Length: 5\r\n"
                     "Expect: 200-ok\r\n\r\nhello"))
      << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 417);
  EXPECT_EQ(response->header("Connection").value_or(""), "close");
  EXPECT_TRUE(client.waitForClose(Millis(3000)));
  EXPECT_EQ(backend.connectionCount(), 0);
}

// --- truncated bodies ---------------------------------------------------------------------------

struct TruncationCase {
  const char* name;
  std::string response;  // sent, then the backend closes
  std::string body;      // decoded bytes the client may get, at most
};

void PrintTo(const TruncationCase& c, std::ostream* out) {
  *out << c.name;
}

class TruncatedChunkedTest : public ResponseHazardTest,
                             public ::testing::WithParamInterface<TruncationCase> {};

TEST_P(TruncatedChunkedTest, ClientConnectionClosesWithoutALastChunk) {
  const TruncationCase& c = GetParam();
  FakeBackend backend(rawThenClose(c.response));
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/truncated"))) << client.error();
  auto head = client.readResponseHead(Millis(5000));
  ASSERT_TRUE(head) << client.error();
  EXPECT_EQ(head->status, 200);
  ASSERT_TRUE(head->chunked) << head->raw_head;
  bool closed = false;
  std::string raw = client.readUntilClose(Millis(3000), &closed);
  EXPECT_TRUE(closed) << "the client connection stayed open";
  // Whatever arrived must be a valid prefix of a chunked body that never ends.
  ChunkedDecoder decoder;
  size_t consumed = 0;
  std::string decoded;
  EXPECT_EQ(decoder.feed(raw, &consumed, &decoded), ChunkedDecoder::Result::kNeedMore)
      << decoder.error() << " in:\n"
      << raw;
  EXPECT_EQ(c.body.compare(0, decoded.size(), decoded), 0) << decoded;
  EXPECT_EQ(raw.find("0\r\n\r\n"), std::string::npos) << raw;
}

INSTANTIATE_TEST_SUITE_P(
    Hazards, TruncatedChunkedTest,
    ::testing::Values(
        TruncationCase{"CutInsideAChunk",
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                       "10\r\nonly-part",
                       "helloonly-part"},
        TruncationCase{"CutAtAChunkBoundary",
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                       "hello"},
        TruncationCase{"CutInsideASizeLine",
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1",
                       "hello"}),
    [](const auto& info) { return std::string(info.param.name); });

// A chunk that turns malformed mid-body: the client never sees a complete message (nothing, or a
// head and a chunked prefix without its last chunk), and the backend connection is closed.
TEST_F(ResponseHazardTest, MalformedChunkMidBodyClosesBothConnections) {
  FakeBackend backend(
      rawResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"));
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/bad-chunk"))) << client.error();
  bool closed = false;
  std::string raw = client.readUntilClose(Millis(3000), &closed);
  EXPECT_TRUE(closed) << "the client connection stayed open";
  EXPECT_EQ(raw.find("0\r\n\r\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("zz"), std::string::npos) << raw;
  EXPECT_TRUE(backend.waitForPeerClose(0, Millis(3000)));
}

TEST_F(ResponseHazardTest, TruncatedContentLengthBodyEndsWithAClose) {
  std::string part = patternBytes(0, 40);
  FakeBackend backend(rawThenClose("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + part));
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/short"))) << client.error();
  auto head = client.readResponseHead(Millis(5000));
  ASSERT_TRUE(head) << client.error();
  EXPECT_EQ(head->header("Content-Length").value_or(""), "100");
  bool closed = false;
  std::string raw = client.readUntilClose(Millis(3000), &closed);
  EXPECT_TRUE(closed) << "the client connection stayed open";
  EXPECT_TRUE(sameBytes(part, raw));
}

// --- timeouts -----------------------------------------------------------------------------------

TEST_F(ResponseHazardTest, BackendThatNeverAnswersIs504AtReadTimeout) {
  FakeBackend backend(FakeBackend::hang());
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  auto sent = Clock::now();
  ASSERT_TRUE(client.sendRaw(get("/hang"))) << client.error();
  auto response = client.readResponse(Millis(5000));
  auto waited = std::chrono::duration_cast<Millis>(Clock::now() - sent);
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 504);
  EXPECT_GE(waited, Millis(900));
  EXPECT_LT(waited, Millis(3000));
  expectNextRequestOnNewConnection(backend, client, 0);
}

TEST_F(ResponseHazardTest, SlowlorisGets408AtHeaderTimeout) {
  FakeBackend backend(FakeBackend::echo());
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  // 100 bytes at one per 50 ms would take 5 s; the head must be refused after about 1 s.
  std::string head = get("/slow");
  head.insert(head.size() - 2, "X-Pad: " + std::string(100 - head.size() - 9, 'p') + "\r\n");
  Client client(proxy->port());
  auto first_byte = Clock::now();
  for (char byte : head) {
    if (!client.sendRaw(std::string(1, byte))) break;
    if (client.stream()->fill(Deadline(Millis(50))) != Stream::Io::kTimeout) break;
  }
  auto response = client.readResponse(Millis(3000));
  auto waited = std::chrono::duration_cast<Millis>(Clock::now() - first_byte);
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 408);
  EXPECT_EQ(response->header("Connection").value_or(""), "close");
  EXPECT_GE(waited, Millis(900));
  EXPECT_LT(waited, Millis(2500));
  EXPECT_TRUE(client.waitForClose(Millis(3000)));
  EXPECT_EQ(backend.connectionCount(), 0);
}

TEST_F(ResponseHazardTest, ClientThatStopsReadingIsClosedAtWriteTimeout) {
  constexpr uint64_t kSize = 64ull << 20;
  auto gave_up = std::make_shared<std::atomic<int64_t>>(-1);  // ms after the request, or -1
  auto pushed = std::make_shared<std::atomic<uint64_t>>(0);   // body bytes the proxy took
  FakeBackend backend([gave_up, pushed](const Request&, Responder& out) {
    auto begin = Clock::now();
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n";
    bool ok = out.send(head);
    std::string piece = patternBytes(0, 256 * 1024);
    for (uint64_t sent = 0; ok && sent < kSize; sent += piece.size()) {
      ok = out.send(piece);
      if (ok) pushed->fetch_add(piece.size());
    }
    if (!ok) {
      gave_up->store(std::chrono::duration_cast<Millis>(Clock::now() - begin).count());
      out.closeAfter();
    }
  });
  Proxy* proxy = startFor(backend);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  client.setReceiveBuffer(4096);
  ASSERT_TRUE(client.sendRaw(get("/big"))) << client.error();
  // The client reads nothing. The proxy must give up on it at write_timeout and close the
  // backend connection too, which makes the backend's send fail.
  ASSERT_TRUE(waitFor([&] { return gave_up->load() >= 0; }, Millis(8000)))
      << "the backend connection was not freed";
  EXPECT_GE(gave_up->load(), 900);
  EXPECT_LT(gave_up->load(), 6000);
  // The proxy has closed its side: the worker no longer holds the socket. (The kernel may still
  // be delivering what was queued in it; through a zero window that pace is set by TCP's persist
  // timer, so reading to EOF here would time TCP, not the proxy.)
  int client_port = localPort(client.stream()->fd());
  EXPECT_TRUE(waitFor(
      [&] {
        std::optional<TcpSocket> s = findTcpSocket(proxy->port(), client_port);
        return !s || !s->owned || s->state != 1;
      },
      Millis(3000)))
      << "the proxy still holds the connection to the client";
  EXPECT_LT(pushed->load(), kSize / 2) << "the proxy kept reading for a client that did not";

  // The worker is still healthy: a new client is served on a new backend connection.
  backend.setHandler(FakeBackend::fixed(200, "still here"));
  std::string error;
  auto response = fetch(proxy->port(), get("/after"), &error, Millis(5000));
  ASSERT_TRUE(response) << error;
  EXPECT_EQ(response->body, "still here");
  EXPECT_NE(backend.requests().back().connection, 0);
  EXPECT_THAT(backend.errors(), IsEmpty());
}

// Each phase has its own deadline: while a request waits for its answer, neither the
// header_timeout armed at accept nor the idle_timeout of a keep-alive connection may end it; only
// read_timeout does.
TEST_F(ResponseHazardTest, SlowAnswerIsBoundByReadTimeoutNotByHeaderOrIdleTimeout) {
  FakeBackend backend(FakeBackend::delayed(Millis(1300), FakeBackend::targetEcho()));
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.header_timeout = "1s";
  options.idle_timeout = "1s";
  options.read_timeout = "5s";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  for (const char* target : {"/first", "/second-on-keep-alive"}) {
    ASSERT_TRUE(client.sendRaw(get(target))) << client.error();
    auto response = client.readResponse(Millis(5000));
    ASSERT_TRUE(response) << target << ": " << client.error();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, target);
  }
  EXPECT_EQ(backend.connectionCount(), 1);
}

// A request body that takes longer than idle_timeout to upload, on a pooled backend connection:
// the pool's idle deadline must not survive into the exchange.
TEST_F(ResponseHazardTest, SlowUploadOnAPooledConnectionIsNotCutByTheIdleTimeout) {
  FakeBackend backend(FakeBackend::echo(FakeBackend::EchoFraming::kContentLength));
  ProxyOptions options = ProxyOptions::forBackends({backend.port()});
  options.idle_timeout = "1s";
  options.read_timeout = "5s";
  Proxy* proxy = startProxy(options);
  ASSERT_NE(proxy, nullptr);

  Client client(proxy->port());
  ASSERT_TRUE(client.sendRaw(get("/warm-the-pool"))) << client.error();
  ASSERT_TRUE(client.readResponse(Millis(5000))) << client.error();
  ASSERT_TRUE(
      client.sendRaw("POST /upload HTTP/1.1\r\nHost: hazard.test\r\n"
                     "Content-Length: 10\r\n\r\nfirst"))
      << client.error();
  std::this_thread::sleep_for(Millis(1500));
  ASSERT_TRUE(client.sendRaw("-half")) << client.error();
  auto response = client.readResponse(Millis(5000));
  ASSERT_TRUE(response) << client.error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "first-half");
  EXPECT_EQ(backend.connectionCount(), 1) << "the pooled connection was not the one used";
}

}  // namespace
}  // namespace speedmimi::test
