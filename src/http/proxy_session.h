// One client connection on a worker and the exchange in progress on it (DESIGN §4): parse the
// request head, route, pick a backend, send the rewritten head, stream the body, parse the
// response head, stream the body back, then keep-alive on both sides or close.
//
// Runs on the worker's event loop only. A session owns its client stream and, while an exchange
// is in progress, the upstream stream; it deletes itself when the client connection ends.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/cidr.h"
#include "core/config_limits.h"
#include "core/config_types.h"
#include "core/zone_types.h"
#include "event/stream.h"
#include "event/tls.h"
#include "http/access_log.h"
#include "http/chunked.h"
#include "http/header_rewrite.h"
#include "http/message_types.h"
#include "http/parser.h"
#include "http/router.h"
#include "upstream/connection_pool.h"
#include "upstream/upstream_set.h"

namespace speedmimi::http {

using core::ServerCounters;

class ProxySession;

// One request/response exchange of a session: what it has read, where it is going, and the
// buffers it writes into. Sessions take one from the worker for an exchange and give it back
// when it ends (ProxyContext::takeExchange), so an idle keep-alive connection holds none:
// memory follows the exchanges in progress, not the connections open.
struct Exchange {
  int route = -1;
  upstream::Protocol protocol = upstream::Protocol::kHttp;
  BodyFraming request_framing = BodyFraming::kNone;
  uint64_t request_remaining = 0;  // kContentLength: bytes still to forward
  uint64_t request_body_total = 0;
  ChunkedDecoder request_chunks;
  bool request_done = false;
  bool body_moved = false;  // a body byte left the client buffer: no more retries
  bool keep_alive = true;   // the client connection may serve another request
  bool head_method = false;
  bool idempotent = true;
  bool upgrade_requested = false;
  int client_minor = 1;
  // The backend of the current (or last) attempt. Its in-flight slot is held while
  // `backend_held`; once released it stays allocated at least until the current event callback
  // returns (retired backends are freed only by the worker's tick), so the access log may still
  // read it.
  upstream::Backend* backend = nullptr;
  bool backend_held = false;
  // The attempts so far, one per backend tried (the transparent retry of a stale connection
  // takes the place of its attempt): the balancers never pick these again, and the access log
  // shows each one's outcome ($upstream_status): its response head's status, 502/504 when it
  // failed without one, 0 while it has neither. A retry needs tried_count <= retries, so there
  // are at most kMaxRetries + 1.
  static constexpr size_t kMaxAttempts = core::limits::kMaxRetries + 1;
  const upstream::Backend* tried[kMaxAttempts] = {};
  int tried_status[kMaxAttempts] = {};
  size_t tried_count = 0;
  bool retry_attempt = false;  // the current attempt is a retry (in the route's RetryBudget)
  // The attempts' backend addresses, ", " between them ($upstream_addr), kept only while the
  // access log is on: a backend tried earlier may be freed before the exchange is logged.
  // The current attempt's part starts at upstream_addrs_last (its separator included).
  std::string upstream_addrs;
  size_t upstream_addrs_last = 0;
  // Set by onBackendsDisconnected while this exchange waited for `backend`'s response head:
  // should that response open a tunnel or an event stream, the client gets a 503 instead.
  const upstream::Backend* disconnected = nullptr;
  bool reused_connection = false;
  bool stale_retried = false;  // the one transparent retry of a stale connection is used
  bool response_head_done = false;
  bool response_started = false;  // bytes of the response reached the client output
  bool interim_sent = false;      // a 1xx response reached the client output: no more retries
  bool response_done = false;
  bool upstream_reusable = false;
  bool upstream_got_bytes = false;
  ResponseInfo response;
  uint64_t response_remaining = 0;
  ChunkedDecoder response_chunks;
  bool rechunk_response = false;  // chunked to an HTTP/1.1 client
  int status = 0;
  int upstream_status = 0;
  uint64_t body_bytes_sent = 0;
  int64_t start_ms = 0;
  int64_t upstream_start_ms = -1;
  int64_t upstream_end_ms = -1;
  int64_t attempt_start_us = 0;  // this attempt's start, ProxyContext::preciseNowUs()
  // ServerCounters::request_latency: from the request head parsed (complete or malformed) to
  // the end of the response, ProxyContext::preciseNowUs(); 0 = not yet. An exchange is counted
  // (responses_by_class, request_latency) once, when it is logged or, if it never is (a
  // tunnel, a response cut short, a client gone), when its connection closes.
  int64_t head_us = 0;
  int64_t end_us = 0;
  bool counted = false;
  int64_t upstream_header_us = -1;  // the answering attempt's time to its head; -1: none
  // The upstream stream's byte counts when this attempt took it (pooled streams carry theirs).
  uint64_t upstream_read_base = 0;
  uint64_t upstream_written_base = 0;
  std::string out_head;    // rewritten request head (kept for retries)
  std::string log_fields;  // method, target, referer, user agent for the access log
  size_t log_method_len = 0, log_target_len = 0, log_referer_len = 0;
};

// The sessions of a worker, linked through the sessions themselves: no allocation per
// connection. Iterating while sessions are deleted is not supported; copy first.
class SessionList {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ProxySession*;
    using difference_type = std::ptrdiff_t;
    using pointer = ProxySession* const*;
    using reference = ProxySession* const&;
    explicit iterator(ProxySession* at) : at_(at) {}
    ProxySession* operator*() const { return at_; }
    iterator& operator++();
    bool operator==(const iterator& o) const { return at_ == o.at_; }

   private:
    ProxySession* at_;
  };

  void insert(ProxySession* session);
  void erase(ProxySession* session);
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  iterator begin() const { return iterator(head_); }
  iterator end() const { return iterator(nullptr); }

 private:
  ProxySession* head_ = nullptr;
  size_t size_ = 0;
};

// What every session of a worker shares. Owned by the worker; outlives its sessions.
struct ProxyContext {
  event_base* base = nullptr;
  const core::Config* config = nullptr;
  const Router* router = nullptr;
  upstream::UpstreamSet* upstreams = nullptr;
  upstream::ConnectionPool* pool = nullptr;
  AccessLog* access_log = nullptr;
  // The certificates new TLS connections are served with (ssl.enabled); the worker replaces it
  // on a certificate reload, and the connections made before keep the contexts they started on.
  std::shared_ptr<const event::ServerTls> server_tls;
  ServerCounters* counters = nullptr;      // this worker's slot
  ServerCounters* all_counters = nullptr;  // every worker's slot, for server.max_conn
  const std::atomic<uint32_t>* worker_slot_limit = nullptr;  // slots [0, limit) are summed
  bool draining = false;    // graceful stop: every response from now on closes its connection
  bool idle_grace_over = false;  // draining, and idle connections are closed when they go idle
  SessionList sessions;
  // Scratch storage reused by every parse on this worker (parsing is synchronous).
  std::vector<Header> header_storage;
  // Exchanges not in use, with their buffers' capacity: at most as many as ran at once.
  std::unique_ptr<Exchange> takeExchange();
  void giveBack(std::unique_ptr<Exchange> exchange);
  std::vector<std::unique_ptr<Exchange>> spare_exchanges;
  HeadLimits request_limits;
  HeadLimits response_limits;
  // What the relative ca_file paths of https backends are under (-p).
  std::string prefix;

  // Monotonic milliseconds (cheap: CLOCK_MONOTONIC_COARSE, which ticks every 1-4 ms).
  static int64_t nowMs();
  // Monotonic microseconds (CLOCK_MONOTONIC), for backend latencies: a fast backend answers
  // within one coarse tick.
  static int64_t preciseNowUs();
  // Connections open on all workers, for server.max_conn.
  int64_t totalActiveConnections() const;
};

class ProxySession final : public event::StreamHandler {
 public:
  // Takes ownership of the accepted socket `fd`, accepted on a TLS listener when `tls` (then
  // ctx.server_tls is set). The session registers itself in ctx.sessions.
  ProxySession(ProxyContext& ctx, int fd, const sockaddr* peer, bool tls = false);
  ~ProxySession();

  // Starts reading the first request.
  void start();

  // Draining (reload, QUIT), once the worker's idle grace has passed: an idle keep-alive
  // connection is closed gracefully (FIN, then its input is discarded until EOF; never a reset).
  // Until then, and for connections that are not idle, ctx.draining alone does the work: the
  // next response carries "Connection: close"; a tunnel or event stream is closed by the
  // worker's shutdown deadline.
  void closeIfIdle();
  // Fast stop (shutdown_timeout passed): closes at once.
  void abort() { closeNow(); }

  // `backends` were disconnected (UpstreamSet::takeDisconnected). A tunnel or an event stream
  // to one of them ends: the backend's connection closes at once, the client's gets a FIN once
  // what it was already sent is flushed (a lingering close, never a reset). An exchange still
  // waiting for the response head of one of them is marked (Exchange::disconnected); any other
  // exchange, a plain request in flight, finishes normally. True when a stream was ended. Only
  // from the worker's tick, outside every session's callbacks; may delete the session.
  bool onBackendsDisconnected(std::span<upstream::Backend* const> backends);

  void onStreamEvent(event::Stream& stream, event::StreamEvent ev) override;

 private:
  enum class Phase {
    kIdle,      // between requests: no byte of the next head yet
    kHead,      // reading a request head
    kExchange,  // a request is being proxied
    kTunnel,    // after 101: bytes both ways
    kClosing,   // flushing the last response, then closing
    kLinger,    // after an error response: discard input until EOF or a short timeout
    kDead,      // to be deleted when the current callback returns
  };

  // Client side.
  void onClientEvent(event::StreamEvent ev);
  void driveClient();
  bool readHead();  // false: nothing more can be done now
  bool beginExchange(const RequestHead& head, const RequestInfo& info);
  void captureLogFields(const RequestHead& head);
  void forwardRequestBody();
  bool forwardChunkedRequest();

  // Why an attempt at a backend failed; it decides what may be retried (DESIGN §4).
  enum class UpstreamFailure {
    kClosed,          // EOF before the response was complete
    kReset,           // ECONNRESET or EPIPE
    kSocketError,     // any other socket error (refused, unreachable...)
    kConnectTimeout,  // connect_timeout passed: nothing reached the backend
    kTimeout,         // write_timeout or read_timeout on an established connection
    kBadResponse,     // a response that cannot be forwarded
  };
  static UpstreamFailure socketFailure(int error);

  // Upstream side.
  void onUpstreamEvent(event::StreamEvent ev);
  // The backend for the exchange's next attempt, none of those tried; nullptr when none is
  // available.
  upstream::Backend* pickBackend();
  // Sends the request to `backend` (an attempt; Exchange::retry_attempt says whether it is a
  // retry), on an idle pooled connection unless `fresh` (the retry of a stale connection).
  void startAttempt(upstream::Backend* backend, bool fresh);
  void sendRequestHead();
  void processResponse();
  bool readResponseHead();
  void writeResponseHead(const ResponseHead& head, const ResponseInfo& info,
                         const ClientResponseContext& cc);
  void forwardResponseBody();
  void upstreamFailed(int status, UpstreamFailure failure, const char* why);
  // A socket or TLS error of the upstream stream: upstreamFailed with the TLS reason, if any,
  // else `why`.
  void upstreamStreamFailed(const char* why);
  bool isStale(UpstreamFailure failure) const;
  // What a failed attempt counts as for retry_on (core::RetryOn bits).
  uint32_t failureConditions(UpstreamFailure failure, bool connected) const;
  // Whether the current attempt, whose outcome counts as `conditions`, may be retried by the
  // route's retry_on, retries and the rules of DESIGN §4 (nothing of the response reached the
  // client, no body byte left our buffers).
  bool mayRetry(uint32_t conditions) const;
  // Once mayRetry: the backend to retry at (picked first, before anything is discarded), or
  // nullptr when there is none or the retry budget refuses (a refusal is counted).
  upstream::Backend* retryBackend();
  bool retriedOnStatus(int status);
  // Ends the current attempt and starts a retry at `next`.
  void retryAt(upstream::Backend* next);
  // Drops the current attempt from the list (the stale connection it used is not the backend's
  // answer).
  void forgetAttempt();
  const core::RouteConfig& route() const;
  upstream::RetryBudget& retryBudget() const;
  void releaseUpstream(bool reusable);
  void releaseBackend();

  // Exchange lifecycle.
  void finishExchange();
  void resetExchange();
  // `detail`, when given, is a line of the page's body that says more than the status.
  void respondError(int status, const char* why, const char* detail = nullptr);
  // A plain HTTP request on a TLS listener (event::Stream::plainHttpOnTls): 400 in clear text.
  void answerPlainHttpOnTls();
  void startTunnel();
  void endStream();
  void tunnelData(event::Stream& from, event::Stream& to);
  void updateReading();
  void flushClient();
  void closeAfterFlush();
  void startLinger();
  void armLinger();  // the answer is flushed: FIN, then discard until EOF or kLingerTime
  void closeNow();
  void countExchange();
  void logAccess();

  static void onHeaderTimeout(evutil_socket_t, short, void* arg);
  static void onLingerTimeout(evutil_socket_t, short, void* arg);

  friend class SessionList;
  ProxySession* prev_ = nullptr;  // in ctx_.sessions
  ProxySession* next_ = nullptr;

  ProxyContext& ctx_;
  std::unique_ptr<event::Stream> client_;
  std::unique_ptr<event::Stream> upstream_;
  event::EventPtr header_timer_;
  event::EventPtr linger_timer_;
  Phase phase_ = Phase::kIdle;
  size_t head_scanned_ = 0;  // kHead: bytes of the partial head already parsed

  core::IpAddress peer_;
  core::IpAddress real_ip_;  // of the current request
  std::string peer_text_;
  std::string real_ip_text_;

  std::unique_ptr<Exchange> x_;  // the exchange in progress; none while idle

  void armTimer(event::EventPtr& timer, event_callback_fn fn, std::chrono::milliseconds after);

};

}  // namespace speedmimi::http
