// Integration-test harness: the real speedmimi binary in a temporary prefix, fake backends that
// record the exact bytes they receive, and a blocking HTTP client. Everything runs on loopback
// with ports picked at run time; every wait is bounded by a deadline, and waits for a condition
// poll it instead of sleeping a guessed time.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace speedmimi::test {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr Millis kIoTimeout{10'000};  // default bound for one exchange with the proxy

class Deadline {
 public:
  explicit Deadline(Millis timeout) : end_(Clock::now() + timeout) {}
  bool expired() const { return Clock::now() >= end_; }
  Millis remaining() const;
  // Milliseconds for poll(): the time left, capped at `cap` so callers can re-check a stop flag.
  int pollTimeout(Millis cap) const;

 private:
  Clock::time_point end_;
};

// Milliseconds from `from` to `to` (negative when `to` came first).
double msSince(Clock::time_point from, Clock::time_point to);

// Evaluates `condition` every `step` until it holds (true) or `timeout` passes (false).
bool waitFor(const std::function<bool()>& condition, Millis timeout, Millis step = Millis(5));

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 messages as the harness sees them (its own small parser, independent of src/).

struct Header {
  std::string name;
  std::string value;  // optional whitespace around it trimmed
};
using Headers = std::vector<Header>;

// Case-insensitive header lookups over a header list.
std::vector<std::string> headerValues(const Headers& headers, std::string_view name);
std::optional<std::string> findHeader(const Headers& headers, std::string_view name);
bool equalsIgnoreCase(std::string_view a, std::string_view b);
bool containsIgnoreCase(std::string_view haystack, std::string_view needle);

// A request as the fake backend parsed it.
struct Request {
  std::string method;
  std::string target;
  std::string version;  // "HTTP/1.1"
  Headers headers;
  std::string body;      // decoded
  bool chunked = false;  // arrived with Transfer-Encoding: chunked (and was valid)
  std::string raw_head;  // exact bytes of the head, up to and including the empty line
  std::string raw_body;  // exact bytes of the body as framed on the wire
  int connection = 0;    // index of the backend connection it came on, in accept order

  std::optional<std::string> header(std::string_view name) const {
    return findHeader(headers, name);
  }
};

// A response as the client parsed it.
struct Response {
  std::string status_line;  // without CRLF
  std::string version;
  int status = 0;
  std::string reason;
  Headers headers;
  std::string body;  // decoded
  bool chunked = false;
  std::string raw_head;
  std::string raw_body;

  std::optional<std::string> header(std::string_view name) const {
    return findHeader(headers, name);
  }
};

enum class Framing { kNone, kLength, kChunked, kUntilClose };

// Strict incremental decoder of the chunked transfer coding (RFC 9112 §7.1), trailers included.
class ChunkedDecoder {
 public:
  enum class Result { kNeedMore, kDone, kError };
  // Decodes from the front of `in`; *consumed is how many bytes it used (an incomplete line is
  // left for the next call). Decoded bytes are appended to *out.
  Result feed(std::string_view in, size_t* consumed, std::string* out);
  const std::string& error() const { return error_; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kDone };
  Result fail(std::string why);
  Result sizeLine(std::string_view line);

  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  std::string error_;
};

// Parses "start-line CRLF *(field CRLF) CRLF" (the head without body). False when malformed;
// *error then says why.
bool parseHead(std::string_view head, std::string* start_line, Headers* headers,
               std::string* error);

// Builders.
std::string chunkEncode(std::string_view body, size_t chunk_size);
std::string buildRequest(std::string_view method, std::string_view target, const Headers& headers,
                         std::string_view body, Framing framing = Framing::kLength,
                         size_t chunk_size = 16 * 1024);
std::string reasonPhrase(int status);
std::string buildResponse(int status, const Headers& headers, std::string_view body,
                          Framing framing = Framing::kLength);

// A string literal with the NUL bytes inside it (std::string(const char*) stops at the first).
template <size_t N>
std::string literalBytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

// Deterministic bodies: byte i of a generated body, and a run of them.
char patternByte(uint64_t index);
std::string patternBytes(uint64_t offset, size_t count);

// ---------------------------------------------------------------------------------------------
// WebSocket (RFC 6455) pieces for the tunnel tests.

std::string webSocketAccept(std::string_view key);  // base64(SHA-1(key + GUID))

struct WsFrame {
  bool fin = true;
  uint8_t opcode = 0;
  bool masked = false;
  std::string payload;  // unmasked
};
constexpr uint8_t kWsText = 0x1;
constexpr uint8_t kWsClose = 0x8;
constexpr uint8_t kWsPing = 0x9;
constexpr uint8_t kWsPong = 0xA;

std::string encodeWsFrame(uint8_t opcode, std::string_view payload, bool masked);
// Decodes one frame from the front of `in`: bytes consumed, 0 if incomplete, -1 if malformed.
long decodeWsFrame(std::string_view in, WsFrame* frame);

// ---------------------------------------------------------------------------------------------
// A non-blocking socket with deadline-bounded blocking operations and a receive buffer.

class Stream {
 public:
  enum class Io { kData, kEof, kTimeout, kError, kStopped };

  // A layer between the socket and the buffer (TLS, see tls_client.h). When one is set, every
  // read and write goes through it, so the HTTP reading above works the same over it.
  class Transport {
   public:
    virtual ~Transport() = default;
    // As recv()/send() on the non-blocking socket: bytes moved (> 0), 0 at the end of the
    // stream (read only), or -1 with errno set; with EAGAIN, *wait is the poll() event to wait
    // for (a TLS read may need the socket writable, a write may need it readable).
    virtual ssize_t read(char* data, size_t size, short* wait) = 0;
    virtual ssize_t write(const char* data, size_t size, short* wait) = 0;
    // Says the end of the stream at this layer (a TLS close_notify) before the socket's FIN.
    virtual void shutdownWrite() = 0;
  };

  explicit Stream(int fd);  // takes ownership of fd
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int fd() const { return fd_; }
  std::string& buffer() { return buffer_; }
  int lastErrno() const { return errno_; }
  // The peer closed its sending side (a recv() returned 0). Safe to read from another thread.
  bool sawEof() const { return saw_eof_.load(); }
  // Checked between poll slices, so a blocked operation ends soon after *stop becomes true.
  void setStopFlag(const std::atomic<bool>* stop) { stop_ = stop; }
  // Called with every chunk of bytes as it is received (the backend records raw bytes with it).
  void setRecorder(std::function<void(std::string_view)> recorder) {
    recorder_ = std::move(recorder);
  }
  void setTransport(std::unique_ptr<Transport> transport) { transport_ = std::move(transport); }
  Transport* transport() { return transport_.get(); }

  Io sendAll(std::string_view bytes, const Deadline& deadline);
  // Receives what is available (at most `max`) into buffer(), waiting until the deadline.
  Io fill(const Deadline& deadline, size_t max = 64 * 1024);
  void shutdownWrite();
  void shutdownBoth();  // wakes a thread blocked on this stream from another thread
  void close();

 private:
  bool stopped() const { return stop_ != nullptr && stop_->load(); }

  int fd_;
  int errno_ = 0;
  std::atomic<bool> saw_eof_{false};
  std::string buffer_;
  const std::atomic<bool>* stop_ = nullptr;
  std::function<void(std::string_view)> recorder_;
  std::unique_ptr<Transport> transport_;
};

// Reads a message body from a Stream with the given framing (Framing::kNone reads nothing).
class BodyReader {
 public:
  void start(Framing framing, uint64_t length);
  bool done() const { return done_; }
  // Moves body bytes from the front of stream.buffer(), waiting for more until the deadline.
  // Appends at most about `max` decoded bytes to *out (and the raw bytes to *raw if given).
  // Returns an error text, or "" on progress or completion.
  std::string readSome(Stream& stream, const Deadline& deadline, size_t max, std::string* out,
                       std::string* raw);

 private:
  Framing framing_ = Framing::kNone;
  uint64_t remaining_ = 0;
  ChunkedDecoder chunked_;
  bool done_ = true;
};

// Reads one head (up to the empty line) from the stream. Returns "" on success, else an error
// ("eof" when the peer closed before sending any byte of a new head).
std::string readHead(Stream& stream, const Deadline& deadline, std::string* head,
                     size_t max_size = 1024 * 1024);

// ---------------------------------------------------------------------------------------------
// Client: one connection to 127.0.0.1:port.

class Client {
 public:
  explicit Client(int port, Millis connect_timeout = Millis(5000));
  virtual ~Client() = default;  // a TlsClient is owned through a Client pointer

  bool connected() const { return stream_ != nullptr; }
  const std::string& error() const { return error_; }  // what the last failed call saw
  // Shrinks the kernel receive buffer (before reading) so the proxy, not the kernel, holds data.
  void setReceiveBuffer(int bytes);

  bool sendRaw(std::string_view bytes, Millis timeout = kIoTimeout);
  // Reads one complete response. `head_request`: the request was HEAD (no body follows).
  std::optional<Response> readResponse(Millis timeout = kIoTimeout, bool head_request = false);
  // Streaming: the head now, then the body piece by piece with readBodySome().
  std::optional<Response> readResponseHead(Millis timeout = kIoTimeout, bool head_request = false);
  // Appends decoded body bytes (about `max` at most) to *out; *done when the body is complete.
  bool readBodySome(std::string* out, bool* done, Millis timeout, size_t max = 256 * 1024);
  // Reads decoded body bytes until `until` holds for what was read so far (or the body ends).
  bool readBodyUntil(std::string* out, const std::function<bool(const std::string&)>& until,
                     Millis timeout);
  // Raw bytes until the peer closes (buffered bytes first). *closed tells if it did in time.
  std::string readUntilClose(Millis timeout, bool* closed = nullptr);
  // True when the peer closes the connection within the timeout (bytes received are dropped).
  bool waitForClose(Millis timeout);
  std::optional<WsFrame> readWsFrame(Millis timeout = kIoTimeout);
  Stream* stream() { return stream_.get(); }

 protected:
  // For a twin over another transport (TlsClient): a setup that failed drops the connection.
  void disconnect(std::string why) {
    stream_.reset();
    error_ = std::move(why);
  }

 private:
  bool fail(std::string what);

  std::unique_ptr<Stream> stream_;
  std::string error_;
  BodyReader body_;
};

// One request on a new connection; the full response or nullopt (with *error set).
std::optional<Response> fetch(int port, const std::string& request_bytes,
                              std::string* error = nullptr, Millis timeout = kIoTimeout);

// ---------------------------------------------------------------------------------------------
// FakeBackend: an HTTP/1.1 server on 127.0.0.1:<run-time port>, one thread per connection.

class FakeBackend;

// Per-request handle given to handlers: answer, stream, or take the raw connection over.
class Responder {
 public:
  Responder(Stream& stream, const std::atomic<bool>& stop) : stream_(stream), stop_(stop) {}
  bool send(std::string_view bytes);  // false if the peer is gone or the backend stops
  void closeAfter() { close_ = true; }
  bool closing() const { return close_; }
  bool stopping() const { return stop_.load(); }
  const std::atomic<bool>& stopFlag() const { return stop_; }
  // Waits `delay` unless the backend stops first (then false).
  bool pause(Millis delay);
  Stream& stream() { return stream_; }  // bytes already received after the request sit in it

 private:
  Stream& stream_;
  const std::atomic<bool>& stop_;
  bool close_ = false;
};

using Handler = std::function<void(const Request&, Responder&)>;

// Events that the test hands to an SSE handler one at a time (thread-safe).
class EventFeed {
 public:
  void push(std::string event);
  void finish();  // the stream ends after the events pushed so far
  // Next event; nullopt when finished or when `stop` becomes true.
  std::optional<std::string> next(const std::atomic<bool>& stop);
  size_t taken() const;  // events handed to the backend so far

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> events_;
  bool finished_ = false;
  size_t taken_ = 0;
};

class FakeBackend {
 public:
  enum class Mode {
    kHttp,           // parse requests, answer each with the handler
    kRecordRaw,      // record the bytes, never answer
    kCloseOnAccept,  // close every connection right after accept
  };
  enum class EchoFraming { kSameAsRequest, kContentLength };

  explicit FakeBackend(Handler handler, Mode mode = Mode::kHttp);
  explicit FakeBackend(Mode mode) : FakeBackend(nullptr, mode) {}
  ~FakeBackend();
  FakeBackend(const FakeBackend&) = delete;
  FakeBackend& operator=(const FakeBackend&) = delete;

  bool ok() const { return listen_fd_ >= 0; }
  int port() const { return port_; }
  void setHandler(Handler handler);
  // Answers "100 Continue" to a request with "Expect: 100-continue" and a body before reading
  // the body (as origin servers do), so a client waiting for it can go on.
  void setContinueBeforeBody(bool on) { continue_before_body_ = on; }
  // Runs on each accepted connection's thread before anything is read (a TLS handshake that
  // sets the stream's transport, see tlsServer() in tls_client.h); false drops the connection.
  // Set it before the first connection arrives.
  using AcceptHook = std::function<bool(Stream&, const std::atomic<bool>& stop)>;
  void setAcceptHook(AcceptHook hook) { accept_hook_ = std::move(hook); }
  void stop();  // closes everything and joins the threads; idempotent

  int connectionCount() const;
  size_t requestCount() const;
  std::vector<Request> requests() const;
  std::string receivedBytes() const;  // every connection's bytes, in accept order
  std::string receivedBytes(int connection) const;
  // The proxy closed backend connection `connection` (it read end-of-stream there).
  bool peerClosed(int connection) const;
  bool waitForPeerClose(int connection, Millis timeout) const;
  std::vector<std::string> errors() const;  // malformed input seen, with its connection
  bool waitForRequests(size_t count, Millis timeout) const;
  bool waitForConnections(int count, Millis timeout) const;

  // Handlers.
  static Handler fixed(int status, std::string body, Headers headers = {});
  static Handler echo(EchoFraming framing = EchoFraming::kSameAsRequest);
  static Handler targetEcho();                          // 200 with the request target as body
  static Handler largeBody(uint64_t bytes);             // Content-Length, patternBytes(0, bytes)
  static Handler sse(std::shared_ptr<EventFeed> feed);  // chunked text/event-stream
  static Handler sseTimed(std::vector<std::string> events, Millis gap);
  static Handler webSocketEcho();
  static Handler delayed(Millis delay, Handler then);
  static Handler hang();             // never answers; holds the connection until the backend stops
  static Handler closeConnection();  // closes without answering
  static Handler resetConnection();  // resets the connection (SO_LINGER 0) without answering
  static Handler garbage(std::string bytes = "this is not HTTP at all\r\n\r\n");

 private:
  struct Connection {
    std::unique_ptr<Stream> stream;
    std::string received;
    std::thread thread;
  };

  void acceptLoop();
  void serve(int index);
  void serveHttp(int index, Stream& stream);
  void recordRaw(Stream& stream);
  bool readRequest(int index, Stream& stream, Request* request);
  void noteError(int index, std::string what);

  Handler handler_;
  Mode mode_;
  std::atomic<bool> continue_before_body_{false};
  AcceptHook accept_hook_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Request> requests_;
  std::vector<std::string> errors_;
};

// Requests `backend` received whose target starts with `prefix`.
size_t countTargets(const FakeBackend& backend, std::string_view prefix);

// ---------------------------------------------------------------------------------------------
// Proxy: the real binary with a generated config in a temporary prefix.

// A port on 127.0.0.1 that was free a moment ago (bind :0, read it, close).
// A loopback port that is free now, and that no earlier call returned.
int pickFreePort();

// An active health check of a backend (written as its `health_check` block).
struct HealthCheckSpec {
  std::string path = "/health";
  std::string interval = "200ms";
  // Well above a probe's time on a loaded machine: a probe that times out would flap a healthy
  // backend. The tests take backends down by failing statuses and refused connects, not hangs.
  std::string timeout = "1s";
  int failures = 2;
  int successes = 2;
};

struct BackendSpec {
  std::string id;
  int port = 0;
  int weight = 1;
  bool active = true;
  std::string host = "127.0.0.1";
  // Written only when set, so the config defaults apply otherwise.
  uint64_t max_conn = 0;     // 0 = not written (unlimited)
  int max_fails = -1;        // -1 = not written
  int keepalive = -1;        // -1 = not written
  std::string fail_timeout;  // "" = not written
  std::optional<HealthCheckSpec> health_check;
  std::string scheme;                 // "" = not written (http); "https"
  std::optional<bool> tls_verify;     // not written when unset
  std::string ca_file;                // "" = not written
};

struct RouteSpec {
  std::string name;
  std::string path = "/";
  std::string upstream;
  std::string load_balancer = "weight";
  std::string host;                              // "" = any
  std::map<std::string, std::string> protocols;  // protocol class -> balancer; empty = not written
  int retries = -1;                              // -1 = not written
  std::optional<std::vector<std::string>> retry_on;  // not written when unset
  int retry_budget = -1;                             // -1 = not written
};

// The `ssl` block. Certificate paths are written as given (absolute ones are simplest).
struct SslSpec {
  bool enabled = true;
  // -1: a TLS listener beside plain HTTP on a port picked at start (Proxy::sslPort());
  // 0: server.port itself speaks TLS; else that port.
  int port = -1;
  std::string cert_file;
  std::string key_file;
  std::vector<std::pair<std::string, std::string>> certificates;  // extra {cert_file, key_file}
  std::vector<std::string> protocols;                             // empty = not written
};

struct ProxyOptions {
  int port = 0;  // 0: picked at start
  int workers = 1;
  std::string read_timeout = "10s";
  std::string write_timeout = "10s";
  std::string connect_timeout = "2s";
  std::string header_timeout = "5s";
  std::string idle_timeout = "30s";
  std::string shutdown_timeout = "5s";
  std::string max_body_size = "100m";
  std::string max_header_size = "16k";
  int max_headers = 100;
  int max_conn = 1000;
  std::string log_level = "info";
  std::string access_log_format;  // "" = not written (combined); "json"
  std::string real_ip_header;                // "" = not written (the config default)
  std::vector<std::string> trusted_proxies;  // empty = not written
  std::string user;  // server.user; "" = not written (when set, the prefix is made 0755)
  // Run a private copy of the binary (PREFIX/sbin/speedmimi) instead of Proxy::binaryPath(),
  // so that a binary-upgrade test can replace the file on disk.
  bool private_binary = false;
  // RLIMIT_NOFILE (soft and hard) of the master, and so of its children; 0 = inherited.
  int nofile_limit = 0;
  // start() returns once the first generation serves: the master logged "speedmimi started on"
  // (every worker accepts) and, with `api`, the control process answered. false: as soon as the
  // port accepts and the workers are forked (the tests of signals sent during startup).
  bool wait_serving = true;
  std::map<std::string, std::vector<BackendSpec>> backends;
  std::vector<RouteSpec> routes;
  // The management API (the `admin` block): off unless `api`; its port is picked at start.
  bool api = false;
  int api_port = 0;
  std::string auth_token;                // "" = not written
  std::vector<std::string> admin_allow;  // empty = not written (the default: loopback)
  std::optional<SslSpec> ssl;            // not written when unset (TLS off)

  // One upstream "app" with these backend ports and one route "/" to it.
  static ProxyOptions forBackends(const std::vector<int>& ports);
  std::string toYaml() const;
};

class Proxy {
 public:
  explicit Proxy(ProxyOptions options);
  ~Proxy();  // stops the processes; removes the prefix unless keepPrefix()
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  static std::string binaryPath();  // $SPEEDMIMI_BIN, else the SPEEDMIMI_BIN macro

  // Writes the config, starts the binary, waits until the port accepts and the workers exist.
  bool start(std::string* error);
  int port() const { return options_.port; }
  int apiPort() const { return options_.api_port; }
  // The port that speaks TLS: ssl.port, or server.port when ssl.port is 0; 0 without ssl.
  int sslPort() const;
  std::string stateFilePath() const { return prefix_ + "/logs/speedmimi.state.json"; }
  // One call to the management API on a connection of its own: `body` is sent with
  // Content-Type: application/json when not empty; `headers` are added (Authorization...).
  // The proxy's auth_token is sent unless `headers` has an Authorization or `no_token`.
  std::optional<Response> api(const std::string& method, const std::string& target,
                              const std::string& body = "", const Headers& headers = {},
                              bool no_token = false, Millis timeout = Millis(15'000)) const;
  pid_t pid() const { return pid_; }
  bool running();  // reaps the master if it exited
  const std::string& prefix() const { return prefix_; }
  const ProxyOptions& options() const { return options_; }

  // The executable this proxy runs: PREFIX/sbin/speedmimi with private_binary, else binaryPath().
  std::string binary() const;
  std::string configPath() const { return prefix_ + "/speedmimi.yaml"; }
  std::string pidFilePath() const { return prefix_ + "/logs/speedmimi.pid"; }
  pid_t pidFromFile() const;  // the pid in the pid file, 0 if none
  // Replaces the config file (atomically, by rename) with `yaml`, or with the YAML of `options`
  // (the ports stay the ones picked at start). Nothing is signalled.
  bool writeConfig(const std::string& yaml);
  bool rewriteConfig(ProxyOptions options);

  // Runs the binary with "-c CONFIG -p PREFIX" and `args` (e.g. {"-s", "reload"}), waiting at
  // most `timeout` (then it is killed and timed_out is set).
  struct CommandResult {
    int exit_code = -1;  // -1: killed or did not exit normally
    bool timed_out = false;
    std::string out;
    std::string err;
  };
  CommandResult runCommand(const std::vector<std::string>& args,
                           Millis timeout = Millis(15'000)) const;

  // After a binary upgrade: the new master (not a child of the harness) is the one tracked from
  // now on; the old one, if it is our child, is reaped once it has exited.
  void adoptMaster(pid_t pid);

  std::vector<pid_t> childPids() const;  // the master's children (workers and helpers)
  std::vector<pid_t> workerPids() const { return childPids(); }
  long totalRssKiB() const;  // master + children, VmRSS
  std::string errorLog() const;
  std::string accessLog() const;
  std::string stdoutLog() const;

  // Remembers the children, so stop() can check they exit too. A SIGKILL sent here does not
  // count as a crash.
  bool signal(int sig);
  // Waits for the master to exit (reaps it). *status gets the wait status.
  bool waitExit(Millis timeout, int* status = nullptr);
  // TERM, then waits; SIGKILL for whatever is left. False if SIGKILL was needed.
  bool stop(Millis timeout = Millis(10'000));
  void keepPrefix() { keep_prefix_ = true; }
  // The master died from a signal that the harness did not send (a crash).
  bool crashed() const;

 private:
  bool waitReady(std::string* error);
  bool reapChildrenOf(const std::vector<pid_t>& children, Millis timeout);

  ProxyOptions options_;
  std::string prefix_;
  pid_t pid_ = -1;
  bool adopted_ = false;        // pid_ is not our child (see adoptMaster)
  pid_t old_master_ = -1;       // our child, replaced by an adopted master, not reaped yet
  int exit_status_ = 0;
  bool keep_prefix_ = false;
  bool killed_ = false;  // the harness had to SIGKILL the master, or a test sent SIGKILL
  std::vector<pid_t> last_children_;
};

// Runs `program` (argv[0] looked up in PATH) with stdin from /dev/null, its stdout and stderr
// into `dir`/command.{out,err}, waiting at most `timeout` (then it is killed): curl, openssl.
Proxy::CommandResult runProgram(const std::vector<std::string>& program, const std::string& dir,
                                Millis timeout = Millis(15'000));

// The worker process that holds `client`'s connection to `proxy` (found through /proc: the
// accepted socket's inode among each child's descriptors), 0 if none within 2 s.
pid_t workerHolding(const Proxy& proxy, Client& client);

std::string readFile(const std::string& path);
long rssKiB(pid_t pid);       // VmRSS of a process, -1 if unknown
// True when the process runs under AddressSanitizer, whose shadow memory inflates every RSS.
bool sanitized(pid_t pid);
bool processGone(pid_t pid);  // no such process, or a zombie

// ---------------------------------------------------------------------------------------------
// Fixture: owns the proxies of a test, stops them and checks their logs after it.

class ProxyTest : public ::testing::Test {
 protected:
  // Starts a proxy; nullptr (with a test failure recorded) if it did not come up.
  Proxy* startProxy(ProxyOptions options);
  void TearDown() override;

  std::vector<std::unique_ptr<Proxy>> proxies_;
};

// Equality for large byte strings: on failure it names the sizes and the first differing offset
// instead of printing megabytes.
::testing::AssertionResult sameBytes(std::string_view expected, std::string_view actual);

// Whole-string match against a pattern where '*' is any run of characters, '?' any one
// character and '#' one decimal digit; everything else is literal. (std::regex is avoided: GCC 12
// warns inside it under -fsanitize builds, and -Werror turns that into a build failure.)
bool globMatch(std::string_view text, std::string_view pattern);

// Lines of `log` containing any of `needles`.
std::vector<std::string> linesContaining(const std::string& log,
                                         const std::vector<std::string>& needles);

}  // namespace speedmimi::test
