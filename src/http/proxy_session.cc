#include "http/proxy_session.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/clock.h"
#include "core/log.h"
#include "http/error_pages.h"
#include "http/header_rewrite.h"
#include "event/timer.h"
#include "http/real_ip.h"

namespace speedmimi::http {
namespace {

using event::StreamEvent;
using std::chrono::milliseconds;

// Backpressure: stop reading one side while the other side's output holds more than this;
// resume when it has drained to the low watermark (DESIGN §4, bounded buffering).
constexpr size_t kHighWater = 64 * 1024;
constexpr size_t kLowWater = 16 * 1024;
constexpr milliseconds kLingerTime{2000};

using event::toTimeval;

// Contiguous view of the first `max` bytes of `buf` (copies only when they span chunks).
std::string_view pullup(evbuffer* buf, size_t max) {
  size_t len = std::min(evbuffer_get_length(buf), max);
  if (len == 0) return {};
  auto* p = reinterpret_cast<const char*>(evbuffer_pullup(buf, static_cast<ssize_t>(len)));
  return {p, len};
}

// The first contiguous segment of `buf`, without copying.
std::string_view firstSegment(evbuffer* buf) {
  evbuffer_iovec v;
  if (evbuffer_peek(buf, -1, nullptr, &v, 1) < 1) return {};
  return {static_cast<const char*>(v.iov_base), v.iov_len};
}

void appendChunkHeader(evbuffer* out, size_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + 16, n, 16);
  *r.ptr++ = '\r';
  *r.ptr++ = '\n';
  evbuffer_add(out, buf, r.ptr - buf);
}

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

// What a backend's response status counts as for retry_on (core::RetryOn bits).
uint32_t statusConditions(int status) {
  if (status < 500 || status > 599) return 0;
  uint32_t bits = core::kRetry5xx;
  if (status == 502) bits |= core::kRetry502;
  if (status == 503) bits |= core::kRetry503;
  if (status == 504) bits |= core::kRetry504;
  return bits;
}

// Passive health (DESIGN §6) after a response head: the backend's own 502 or 504 counts as a
// failure, any other status as a success.
void recordAnswer(upstream::Backend& backend, int status, int64_t now_ms) {
  if (status == 502 || status == 504) {
    backend.recordFailure(now_ms);
  } else {
    backend.recordSuccess();
  }
}

}  // namespace

int64_t ProxyContext::nowMs() { return core::monotonicMs(); }

SessionList::iterator& SessionList::iterator::operator++() {
  at_ = at_->next_;
  return *this;
}

void SessionList::insert(ProxySession* s) {
  s->prev_ = nullptr;
  s->next_ = head_;
  if (head_) head_->prev_ = s;
  head_ = s;
  ++size_;
}

void SessionList::erase(ProxySession* s) {
  (s->prev_ ? s->prev_->next_ : head_) = s->next_;
  if (s->next_) s->next_->prev_ = s->prev_;
  s->prev_ = s->next_ = nullptr;
  --size_;
}

std::unique_ptr<Exchange> ProxyContext::takeExchange() {
  if (spare_exchanges.empty()) return std::make_unique<Exchange>();
  std::unique_ptr<Exchange> x = std::move(spare_exchanges.back());
  spare_exchanges.pop_back();
  return x;
}

void ProxyContext::giveBack(std::unique_ptr<Exchange> x) {
  // As many as ran at once, within reason; one that grew huge buffers is not worth keeping.
  constexpr size_t kMaxSpare = 4096, kMaxKept = 64 * 1024;
  if (spare_exchanges.size() >= kMaxSpare || x->out_head.capacity() > kMaxKept ||
      x->log_fields.capacity() > kMaxKept) {
    return;
  }
  // A clean exchange that keeps its buffers' capacity.
  std::string out_head = std::move(x->out_head), log_fields = std::move(x->log_fields),
              upstream_addrs = std::move(x->upstream_addrs);
  *x = Exchange{};
  out_head.clear();
  log_fields.clear();
  upstream_addrs.clear();
  x->out_head = std::move(out_head);
  x->log_fields = std::move(log_fields);
  x->upstream_addrs = std::move(upstream_addrs);
  spare_exchanges.push_back(std::move(x));
}

int64_t ProxyContext::preciseNowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

int64_t ProxyContext::totalActiveConnections() const {
  int64_t total = 0;
  size_t limit = worker_slot_limit->load(std::memory_order_relaxed);
  for (size_t i = 0; i < limit; ++i) {
    total += all_counters[i].active_connections.load(std::memory_order_relaxed);
  }
  return total;
}

ProxySession::ProxySession(ProxyContext& ctx, int fd, const sockaddr* peer, bool tls)
    : ctx_(ctx),
      client_(std::make_unique<event::Stream>(ctx.base, fd, this)),
      peer_(core::IpAddress::fromSockaddr(peer)),
      peer_text_(peer_.toString()) {
  client_->setWriteTimeout(ctx.config->server.write_timeout);
  client_->setLowWatermark(kLowWater);
  client_->countInto(&ctx_.counters->bytes_in, &ctx_.counters->bytes_out);
  if (tls) client_->startTls(ctx.server_tls->newSession());  // nullptr: kError from the loop
  ctx_.sessions.insert(this);
  ctx_.counters->active_connections.fetch_add(1, std::memory_order_relaxed);
  ctx_.counters->accepted.fetch_add(1, std::memory_order_relaxed);
}

ProxySession::~ProxySession() {
  if (upstream_) releaseUpstream(false);
  releaseBackend();
  if (x_) ctx_.giveBack(std::move(x_));
  ctx_.sessions.erase(this);
  ctx_.counters->active_connections.fetch_sub(1, std::memory_order_relaxed);
}

void ProxySession::start() {
  // The first request of a connection gets header_timeout from accept (as nginx does). Over
  // TLS the handshake must be done within it too, however slowly its bytes come.
  client_->startReading(ctx_.config->server.header_timeout);
  if (client_->isTls()) {
    armTimer(header_timer_, &ProxySession::onHeaderTimeout, ctx_.config->server.header_timeout);
  }
}

void ProxySession::closeIfIdle() {
  if (phase_ != Phase::kIdle) return;
  startLinger();
  if (phase_ == Phase::kDead) delete this;
}

bool ProxySession::onBackendsDisconnected(std::span<upstream::Backend* const> backends) {
  if (!x_ || !x_->backend_held ||
      std::find(backends.begin(), backends.end(), x_->backend) == backends.end()) {
    return false;
  }
  const bool event_stream = phase_ == Phase::kExchange && x_->response_head_done &&
                            x_->response.event_stream && !x_->response_done;
  if (phase_ != Phase::kTunnel && !event_stream) {
    if (phase_ == Phase::kExchange && !x_->response_head_done) x_->disconnected = x_->backend;
    return false;
  }
  SM_INFO("backend %s (%s) was disconnected; closing the %s of client %s",
          x_->backend->id().c_str(), x_->backend->addressText().c_str(),
          event_stream ? "event stream" : "tunnel", peer_text_.c_str());
  endStream();
  if (phase_ == Phase::kDead) delete this;
  return true;
}

// Entry point for both streams. Deletes the session when it died during the callback; nothing
// may touch `this` afterwards.
void ProxySession::onStreamEvent(event::Stream& stream, StreamEvent ev) {
  if (&stream == client_.get()) {
    onClientEvent(ev);
  } else if (&stream == upstream_.get()) {
    onUpstreamEvent(ev);
  }
  if (phase_ == Phase::kDead) delete this;
}

// ---------------------------------------------------------------------------------------------
// Client side

void ProxySession::onClientEvent(StreamEvent ev) {
  switch (ev) {
    case StreamEvent::kReadable:
      if (phase_ == Phase::kLinger) {
        evbuffer_drain(client_->input(), evbuffer_get_length(client_->input()));
      } else if (phase_ == Phase::kTunnel) {
        tunnelData(*client_, *upstream_);
      } else if (phase_ == Phase::kExchange) {
        forwardRequestBody();
      } else if (client_->plainHttpOnTls()) {
        answerPlainHttpOnTls();
      } else {
        driveClient();
      }
      return;
    case StreamEvent::kDrained:
      if (phase_ == Phase::kClosing || phase_ == Phase::kLinger) {
        if (client_->pendingOutput() != 0) return;
        // Closing with the client's bytes unread would send a reset, losing the answer: when
        // some are buffered, or while draining (the client may be sending its next request
        // right now), close with a FIN and discard until its EOF.
        if (phase_ == Phase::kClosing &&
            !ctx_.draining && evbuffer_get_length(client_->input()) == 0) {
          return closeNow();
        }
        phase_ = Phase::kLinger;
        return armLinger();
      }
      return updateReading();
    case StreamEvent::kEof:
      if (phase_ == Phase::kTunnel && upstream_) {
        // Deliver what the client sent, then end the tunnel.
        tunnelData(*client_, *upstream_);
        return closeNow();
      }
      if (phase_ == Phase::kExchange && x_->request_done) {
        x_->keep_alive = false;  // half-close: answer this request, then close
        return;
      }
      if (phase_ == Phase::kExchange && !x_->response_started) {
        SM_INFO("client %s closed the connection before sending the whole request",
                peer_text_.c_str());
      }
      return closeNow();
    case StreamEvent::kReadTimeout:
      if (phase_ == Phase::kHead) {
        return respondError(408, "client sent no complete request head in time");
      }
      if (phase_ == Phase::kExchange && !x_->request_done) {
        SM_INFO("client %s timed out sending the request body", peer_text_.c_str());
      }
      return closeNow();
    case StreamEvent::kWriteTimeout:
      SM_INFO("client %s timed out reading the response", peer_text_.c_str());
      return closeNow();
    case StreamEvent::kError:
      SM_INFO("client %s connection error: %s", peer_text_.c_str(),
              client_->tlsError().empty() ? std::strerror(client_->lastError())
                                          : client_->tlsError().c_str());
      return closeNow();
    case StreamEvent::kConnected:
      return;
  }
}

void ProxySession::answerPlainHttpOnTls() {
  if (!x_) x_ = ctx_.takeExchange();
  x_->start_ms = ProxyContext::nowMs();
  x_->head_us = ProxyContext::preciseNowUs();
  // The request line for the access log, when the head came whole.
  RequestHead head;
  ParseError error;
  std::string_view bytes = pullup(client_->input(), ctx_.request_limits.max_head_size + 2);
  if (parseRequestHead(bytes, ctx_.request_limits, ctx_.header_storage, head, error) ==
      ParseStatus::kComplete) {
    captureLogFields(head);
    x_->client_minor = head.minor_version;
  }
  respondError(400, "plain HTTP request on the TLS port",
               "The plain HTTP request was sent to HTTPS port");
}

// Serves requests while complete heads are buffered (pipelining), one at a time.
void ProxySession::driveClient() {
  while ((phase_ == Phase::kIdle || phase_ == Phase::kHead) &&
         evbuffer_get_length(client_->input()) > 0) {
    if (!readHead()) return;
  }
}

bool ProxySession::readHead() {
  evbuffer* in = client_->input();
  if (phase_ == Phase::kIdle) {
    if (!x_) x_ = ctx_.takeExchange();
    x_->start_ms = ProxyContext::nowMs();
  }
  std::string_view bytes = pullup(in, ctx_.request_limits.max_head_size + 2);
  // A head arriving in small pieces is parsed again only when a line has ended (or the limit is
  // reached), so a slow client cannot make us re-scan its head once per byte.
  if (phase_ == Phase::kHead && bytes.size() <= ctx_.request_limits.max_head_size &&
      bytes.substr(head_scanned_).find('\n') == std::string_view::npos) {
    head_scanned_ = bytes.size();
    return false;
  }
  RequestHead head;
  ParseError error;
  ParseStatus status =
      parseRequestHead(bytes, ctx_.request_limits, ctx_.header_storage, head, error);
  if (status == ParseStatus::kNeedMore) {
    head_scanned_ = bytes.size();
    if (phase_ == Phase::kIdle) {
      // A head arriving in pieces must be complete within header_timeout of its first byte.
      phase_ = Phase::kHead;
      armTimer(header_timer_, &ProxySession::onHeaderTimeout, ctx_.config->server.header_timeout);
      client_->startReading(ctx_.config->server.header_timeout);
    }
    return false;
  }
  x_->head_us = ProxyContext::preciseNowUs();
  if (status == ParseStatus::kError) {
    respondError(error.status, error.reason);
    return false;
  }
  if (phase_ == Phase::kHead) header_timer_.reset();
  x_->client_minor = head.minor_version;
  x_->head_method = head.method == "HEAD";
  x_->idempotent = isIdempotent(head.method);
  RequestInfo info;
  if (!analyzeRequest(head, ctx_.config->server.max_body_size, info, error)) {
    captureLogFields(head);
    evbuffer_drain(in, head.head_length);
    respondError(error.status, error.reason);
    return false;
  }
  ctx_.counters->requests.fetch_add(1, std::memory_order_relaxed);
  return beginExchange(head, info);
}

// The head is valid: route it, rewrite it and start talking to a backend.
bool ProxySession::beginExchange(const RequestHead& head, const RequestInfo& info) {
  const core::ServerConfig& server = ctx_.config->server;
  captureLogFields(head);
  phase_ = Phase::kExchange;
  x_->keep_alive = info.keep_alive && !ctx_.draining;
  x_->request_framing = info.framing;
  x_->request_remaining = info.content_length;
  x_->request_done = info.framing == BodyFraming::kNone;
  x_->upgrade_requested = info.upgrade_websocket;
  x_->route = ctx_.router->match(info.host, info.path);

  if (x_->route < 0) {
    evbuffer_drain(client_->input(), head.head_length);
    respondError(404, "no route matches");
    return phase_ == Phase::kIdle;
  }
  x_->protocol = info.upgrade_websocket      ? upstream::Protocol::kWebsocket
                : info.accepts_event_stream ? upstream::Protocol::kSse
                : client_->isTls()          ? upstream::Protocol::kHttps
                                            : upstream::Protocol::kHttp;
  real_ip_ = resolveRealIp(peer_, head.headers, head.num_headers, server.real_ip_header,
                           server.trusted_proxies);
  real_ip_text_ = real_ip_ == peer_ ? peer_text_ : real_ip_.toString();

  ForwardContext fwd;
  fwd.peer_ip = peer_text_;
  fwd.real_ip = real_ip_text_;
  fwd.tunnel = info.upgrade_websocket;
  fwd.tls = client_->isTls();
  x_->out_head.clear();
  appendUpstreamRequestHead(head, info, fwd, x_->out_head);
  evbuffer_drain(client_->input(), head.head_length);  // views into the head end here

  upstream::Backend* backend = pickBackend();
  if (!backend) {
    respondError(503, "no backend available");
  } else {
    startAttempt(backend, false);
  }
  return phase_ == Phase::kIdle;
}

void ProxySession::captureLogFields(const RequestHead& head) {
  if (!ctx_.access_log->enabled()) return;
  const Header* referer = findHeader(head.headers, head.num_headers, "Referer");
  const Header* agent = findHeader(head.headers, head.num_headers, "User-Agent");
  x_->log_fields.assign(head.method);
  x_->log_fields.append(head.target);
  x_->log_method_len = head.method.size();
  x_->log_target_len = head.target.size();
  x_->log_referer_len = referer ? referer->value.size() : 0;
  if (referer) x_->log_fields.append(referer->value);
  if (agent) x_->log_fields.append(agent->value);
}

// Moves request body bytes from the client to the backend, re-framing chunked bodies.
void ProxySession::forwardRequestBody() {
  if (x_->request_done || !upstream_) return updateReading();
  evbuffer* in = client_->input();
  evbuffer* out = upstream_->output();
  if (x_->request_framing == BodyFraming::kContentLength) {
    size_t n = std::min<uint64_t>(x_->request_remaining, evbuffer_get_length(in));
    if (n > 0) {
      evbuffer_remove_buffer(in, out, n);
      x_->request_remaining -= n;
      x_->body_moved = true;
    }
    x_->request_done = x_->request_remaining == 0;
  } else if (x_->request_framing == BodyFraming::kChunked) {
    if (!forwardChunkedRequest()) return;
  }
  if (!upstream_->flush()) {
    return upstreamStreamFailed("write to backend failed");
  }
  updateReading();
}

bool ProxySession::forwardChunkedRequest() {
  evbuffer* in = client_->input();
  evbuffer* out = upstream_->output();
  uint64_t limit = ctx_.config->server.max_body_size;
  while (!x_->request_done && evbuffer_get_length(in) > 0) {
    ChunkedDecoder::Step step = x_->request_chunks.next(firstSegment(in));
    evbuffer_drain(in, step.framing);
    switch (step.kind) {
      case ChunkedDecoder::Kind::kData:
        x_->request_body_total += step.data;
        if (limit != 0 && x_->request_body_total > limit) {
          respondError(413, "chunked request body over max_body_size");
          return false;
        }
        appendChunkHeader(out, step.data);
        evbuffer_remove_buffer(in, out, step.data);
        evbuffer_add(out, "\r\n", 2);
        x_->body_moved = true;
        break;
      case ChunkedDecoder::Kind::kDone:
        evbuffer_add(out, "0\r\n\r\n", 5);
        x_->request_done = true;
        break;
      case ChunkedDecoder::Kind::kError:
        respondError(step.error.status, step.error.reason);
        return false;
      case ChunkedDecoder::Kind::kNeedMore:
        break;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Upstream side

upstream::Backend* ProxySession::pickBackend() {
  upstream::PickContext pick;
  pick.client_ip = real_ip_;
  pick.now_ms = ProxyContext::nowMs();
  pick.exclude = std::span<const upstream::Backend* const>(x_->tried, x_->tried_count);
  ctx_.upstreams->refresh();  // one load unless the zone changed
  return ctx_.upstreams->balancer(static_cast<size_t>(x_->route), x_->protocol).pick(pick);
}

void ProxySession::startAttempt(upstream::Backend* backend, bool fresh) {
  x_->backend = backend;
  // Bounded: a retry needs tried_count <= retries, at most kMaxRetries.
  if (x_->tried_count == Exchange::kMaxAttempts) std::abort();
  x_->tried[x_->tried_count] = backend;
  x_->tried_status[x_->tried_count] = 0;
  ++x_->tried_count;
  if (ctx_.access_log->enabled()) {
    x_->upstream_addrs_last = x_->upstream_addrs.size();
    if (!x_->upstream_addrs.empty()) x_->upstream_addrs += ", ";
    x_->upstream_addrs += backend->addressText();
  }
  x_->upstream_got_bytes = false;
  x_->upstream_status = 0;
  x_->upstream_header_us = -1;
  backend->acquire();
  x_->backend_held = true;
  retryBudget().attemptStarted(x_->retry_attempt);
  backend->recordRequest();
  if (x_->upstream_start_ms < 0) x_->upstream_start_ms = ProxyContext::nowMs();
  x_->attempt_start_us = ProxyContext::preciseNowUs();

  if (!fresh) upstream_ = ctx_.pool->take(backend);
  x_->reused_connection = upstream_ != nullptr;
  x_->upstream_read_base = upstream_ ? upstream_->bytesRead() : 0;
  x_->upstream_written_base = upstream_ ? upstream_->bytesWritten() : 0;
  if (upstream_) {
    upstream_->setHandler(this);
  } else {
    upstream_ = event::Stream::connect(ctx_.base, backend->address(), backend->addressLength(),
                                       ctx_.config->server.connect_timeout, this);
    if (!upstream_) {
      SM_ERROR("socket() for backend %s failed: %s", backend->addressText().c_str(),
               std::strerror(errno));
      x_->tried_status[x_->tried_count - 1] = 502;
      return respondError(502, "cannot create a socket");
    }
    if (backend->usesTls()) {
      // The handshake runs under the request's first write (Stream::startTls).
      std::string error;
      const event::ClientTls* tls = backend->clientTls(ctx_.prefix, error);
      if (tls == nullptr) {
        SM_ERROR("TLS to backend %s (%s): %s", backend->addressText().c_str(),
                 backend->id().c_str(), error.c_str());
        x_->tried_status[x_->tried_count - 1] = 502;
        return respondError(502, "no TLS context for the backend");
      }
      upstream_->startTls(tls->newSession(backend->config().host));
    }
  }
  upstream_->setWriteTimeout(ctx_.config->server.write_timeout);
  upstream_->setLowWatermark(kLowWater);
  upstream_->setQuickAck(true);  // no delayed-ACK stall with Nagle backends (Stream)
  sendRequestHead();
}

void ProxySession::sendRequestHead() {
  // By reference: the exchange keeps the head (for a retry) at least as long as this
  // connection holds unsent bytes (it is pooled only with none, and closed otherwise first).
  evbuffer_add_reference(upstream_->output(), x_->out_head.data(), x_->out_head.size(), nullptr,
                         nullptr);
  if (!x_->request_done) return forwardRequestBody();  // flushes and updates reading
  if (!upstream_->flush()) {
    return upstreamStreamFailed("write to backend failed");
  }
  updateReading();
}

void ProxySession::onUpstreamEvent(StreamEvent ev) {
  switch (ev) {
    case StreamEvent::kReadable:
      x_->upstream_got_bytes = true;
      if (phase_ == Phase::kTunnel) return tunnelData(*upstream_, *client_);
      return processResponse();
    case StreamEvent::kConnected:
    case StreamEvent::kDrained:
      return updateReading();
    case StreamEvent::kEof:
      if (phase_ == Phase::kTunnel) {
        tunnelData(*upstream_, *client_);
        upstream_->stopReading();
        if (client_->pendingOutput() == 0) return closeNow();
        return closeAfterFlush();
      }
      if (x_->response_head_done && x_->response.framing == BodyFraming::kUntilClose) {
        processResponse();  // whatever is left is the end of the body
        x_->response_done = true;
        x_->upstream_reusable = false;
        return finishExchange();
      }
      return upstreamFailed(502, UpstreamFailure::kClosed, "backend closed the connection");
    case StreamEvent::kError:
      return upstreamStreamFailed(std::strerror(upstream_->lastError()));
    case StreamEvent::kReadTimeout:
      if (phase_ == Phase::kTunnel) return closeNow();
      return upstreamFailed(504, UpstreamFailure::kTimeout,
                            "backend timed out sending the response");
    case StreamEvent::kWriteTimeout:
      if (!upstream_->connected()) {
        return upstreamFailed(504, UpstreamFailure::kConnectTimeout,
                              "connecting to the backend timed out");
      }
      return upstreamFailed(504, UpstreamFailure::kTimeout,
                            "backend timed out reading the request");
  }
}

void ProxySession::processResponse() {
  while (!x_->response_head_done) {
    if (!readResponseHead()) return;
    if (phase_ != Phase::kExchange) return;  // a tunnel started or the exchange failed
  }
  forwardResponseBody();
}

// Parses one response head. False when more bytes are needed or the exchange ended.
bool ProxySession::readResponseHead() {
  evbuffer* in = upstream_->input();
  std::string_view bytes = pullup(in, ctx_.response_limits.max_head_size + 2);
  if (bytes.empty()) return false;
  ResponseHead head;
  ParseError error;
  ParseStatus status =
      parseResponseHead(bytes, ctx_.response_limits, ctx_.header_storage, head, error);
  if (status == ParseStatus::kNeedMore) return false;
  ResponseInfo info;
  if (status == ParseStatus::kError ||
      !analyzeResponse(head, x_->head_method ? "HEAD" : "GET", x_->upgrade_requested, info,
                       error)) {
    SM_ERROR("backend %s sent an invalid response: %s", x_->backend->addressText().c_str(),
             error.reason);
    x_->upstream_reusable = false;
    upstreamFailed(502, UpstreamFailure::kBadResponse, "invalid response head");
    return false;
  }
  x_->upstream_status = head.status;
  if (!info.informational) {
    // The backend's latency: from this attempt's start (connect or reuse) to its response head,
    // not to the end of a body whose pace the client sets.
    x_->upstream_header_us = ProxyContext::preciseNowUs() - x_->attempt_start_us;
    x_->backend->recordResponseHead(head.status,
                                    std::chrono::microseconds(x_->upstream_header_us));
    x_->tried_status[x_->tried_count - 1] = head.status;
    if (retriedOnStatus(head.status)) return false;
  }

  ClientResponseContext cc;
  cc.client_minor_version = x_->client_minor;
  cc.send_body = !x_->head_method;
  if (info.informational) {
    // 1xx (100 Continue...) goes to HTTP/1.1 clients as is; another head follows.
    if (x_->client_minor >= 1) {
      writeResponseHead(head, info, cc);
      x_->interim_sent = true;
      flushClient();
    }
    evbuffer_drain(in, head.head_length);
    return phase_ == Phase::kExchange;
  }

  if ((info.switching || info.event_stream) && x_->disconnected == x_->backend) {
    respondError(503, "the backend was disconnected while the request was in flight");
    return false;
  }
  x_->response = info;
  x_->response_head_done = true;
  x_->response_remaining = info.content_length;
  x_->status = head.status;
  bool chunked_to_old_client = info.framing == BodyFraming::kChunked && x_->client_minor == 0;
  x_->rechunk_response = info.framing == BodyFraming::kChunked && !chunked_to_old_client;
  if (info.framing == BodyFraming::kUntilClose || chunked_to_old_client || !x_->request_done) {
    x_->keep_alive = false;
  }
  if (ctx_.draining) x_->keep_alive = false;
  cc.keep_alive = x_->keep_alive && !info.switching;
  writeResponseHead(head, info, cc);
  evbuffer_drain(in, head.head_length);
  x_->response_started = true;

  if (info.switching) {
    startTunnel();
    return false;
  }
  if (info.framing == BodyFraming::kNone) x_->response_done = true;
  if (info.event_stream) upstream_->startReading(ctx_.config->server.idle_timeout);
  return true;
}

// A final response head with a status that retry_on lists, while a retry may go to another
// backend (picked before anything is dropped): that response is dropped unread with its
// connection, and the request goes to the other backend. False: forward it as it is.
bool ProxySession::retriedOnStatus(int status) {
  if (!mayRetry(statusConditions(status))) return false;
  upstream::Backend* next = retryBackend();
  if (!next) return false;
  SM_WARN("backend %s (%s) answered %d to client %s; retrying at %s",
          x_->backend->addressText().c_str(), x_->backend->id().c_str(), status, peer_text_.c_str(),
          next->addressText().c_str());
  recordAnswer(*x_->backend, status, ProxyContext::nowMs());
  releaseUpstream(false);  // the rest of that response is never read: never pooled
  retryAt(next);
  return true;
}

// Straight into reserved space at the end of the client's output: no intermediate copy.
void ProxySession::writeResponseHead(const ResponseHead& head, const ResponseInfo& info,
                                     const ClientResponseContext& cc) {
  evbuffer* out = client_->output();
  evbuffer_iovec space;
  const size_t bound = clientResponseHeadBound(head);
  if (evbuffer_reserve_space(out, static_cast<ev_ssize_t>(bound), &space, 1) != 1) std::abort();
  HeadWriter writer(static_cast<char*>(space.iov_base), bound);
  bool fits = writeClientResponseHead(head, info, cc, writer);
  space.iov_len = fits ? writer.size() : 0;
  evbuffer_commit_space(out, &space, 1);
  if (!fits) {
    // The bound is wrong: a bug, but not one to send a truncated head for.
    SM_ALERT("response head over its bound of %zu bytes", bound);
    std::string copy;
    appendClientResponseHead(head, info, cc, copy);
    evbuffer_add(out, copy.data(), copy.size());
  }
}

void ProxySession::forwardResponseBody() {
  evbuffer* in = upstream_->input();
  evbuffer* out = client_->output();
  size_t before = evbuffer_get_length(out);
  switch (x_->response.framing) {
    case BodyFraming::kNone:
      break;
    case BodyFraming::kContentLength: {
      size_t n = std::min<uint64_t>(x_->response_remaining, evbuffer_get_length(in));
      evbuffer_remove_buffer(in, out, n);
      x_->response_remaining -= n;
      if (x_->response_remaining == 0) x_->response_done = true;
      break;
    }
    case BodyFraming::kUntilClose:
      evbuffer_add_buffer(out, in);
      break;
    case BodyFraming::kChunked:
      while (!x_->response_done && evbuffer_get_length(in) > 0) {
        ChunkedDecoder::Step step = x_->response_chunks.next(firstSegment(in));
        evbuffer_drain(in, step.framing);
        if (step.kind == ChunkedDecoder::Kind::kError) {
          SM_ERROR("backend %s sent a malformed chunked body: %s",
                   x_->backend->addressText().c_str(), step.error.reason);
          x_->upstream_reusable = false;
          return upstreamFailed(502, UpstreamFailure::kBadResponse, "malformed chunked response");
        }
        if (step.kind == ChunkedDecoder::Kind::kData) {
          if (x_->rechunk_response) appendChunkHeader(out, step.data);
          evbuffer_remove_buffer(in, out, step.data);
          if (x_->rechunk_response) evbuffer_add(out, "\r\n", 2);
        } else if (step.kind == ChunkedDecoder::Kind::kDone) {
          if (x_->rechunk_response) evbuffer_add(out, "0\r\n\r\n", 5);
          x_->response_done = true;
        }
      }
      break;
  }
  x_->body_bytes_sent += evbuffer_get_length(out) - before;
  if (x_->response_done) return finishExchange();
  flushClient();
  if (phase_ == Phase::kExchange) updateReading();
}

ProxySession::UpstreamFailure ProxySession::socketFailure(int error) {
  return error == ECONNRESET || error == EPIPE ? UpstreamFailure::kReset
                                               : UpstreamFailure::kSocketError;
}

// An idle pooled connection that the backend closed fails like this: EOF, ECONNRESET or EPIPE
// before any byte of the response, on a reused connection (DESIGN §4). It gets one transparent
// retry per request, unless the backend may have acted on the request: a timeout (it was alive),
// a body already gone from our buffers, or a non-idempotent request written in full (a bodiless
// POST once its head left our buffer).
bool ProxySession::isStale(UpstreamFailure failure) const {
  if (failure != UpstreamFailure::kClosed && failure != UpstreamFailure::kReset) return false;
  if (!x_->reused_connection || x_->stale_retried) return false;
  if (x_->upstream_got_bytes || x_->response_started || x_->body_moved) return false;
  bool fully_written = x_->request_done && upstream_ && upstream_->pendingOutput() == 0;
  return x_->idempotent || !fully_written;
}

// A reset or a timeout counts only before the first response byte: after it, the backend has
// begun an answer (it got the request), and a response head that then breaks is none of
// retry_on's conditions. A failure before the connection was established is a connect failure
// whatever its errno; a connect timeout is a timeout too.
uint32_t ProxySession::failureConditions(UpstreamFailure failure, bool connected) const {
  switch (failure) {
    case UpstreamFailure::kConnectTimeout:
      return core::kRetryConnectFailure | core::kRetryTimeout;
    case UpstreamFailure::kTimeout:
      return x_->upstream_got_bytes ? 0u : uint32_t{core::kRetryTimeout};
    case UpstreamFailure::kBadResponse:
      return core::kRetryInvalidResponse;
    case UpstreamFailure::kClosed:
    case UpstreamFailure::kReset:
    case UpstreamFailure::kSocketError:
      if (!connected) return core::kRetryConnectFailure;
      return x_->upstream_got_bytes ? 0u : uint32_t{core::kRetryReset};
  }
  return 0;
}

// A request that is not idempotent is retried only when it never reached a backend (a connect
// failure); an idempotent one on any condition the route lists. Never once part of the response
// reached the client (it would see two answers), nor once a body byte left our buffers (we keep
// no copy to send again).
bool ProxySession::mayRetry(uint32_t conditions) const {
  const core::RouteConfig& r = route();
  const uint32_t listed = r.retry_on & (x_->idempotent ? ~0u : core::kRetryConnectFailure);
  if ((conditions & listed) == 0) return false;
  if (x_->response_started || x_->interim_sent || x_->body_moved) return false;
  return static_cast<int>(x_->tried_count) <= r.retries;
}

upstream::Backend* ProxySession::retryBackend() {
  upstream::Backend* next = pickBackend();
  if (!next) return nullptr;
  if (!retryBudget().allowsRetry(route().retry_budget, x_->retry_attempt)) {
    ctx_.counters->retries_refused.fetch_add(1, std::memory_order_relaxed);
    SM_WARN("retry budget of route %s (%d%%) exhausted on this worker; not retrying client %s",
            route().name.c_str(), route().retry_budget, peer_text_.c_str());
    return nullptr;
  }
  return next;
}

void ProxySession::retryAt(upstream::Backend* next) {
  releaseBackend();
  x_->retry_attempt = true;
  ctx_.counters->retries.fetch_add(1, std::memory_order_relaxed);
  startAttempt(next, false);
}

void ProxySession::forgetAttempt() {
  --x_->tried_count;
  if (ctx_.access_log->enabled()) x_->upstream_addrs.resize(x_->upstream_addrs_last);
}

const core::RouteConfig& ProxySession::route() const {
  return ctx_.config->routes[static_cast<size_t>(x_->route)];
}

upstream::RetryBudget& ProxySession::retryBudget() const {
  return ctx_.upstreams->retryBudget(static_cast<size_t>(x_->route));
}

// The backend failed before the exchange completed: retry, answer `status`, or cut the client.
void ProxySession::upstreamStreamFailed(const char* why) {
  const int error = upstream_->lastError();
  if (upstream_->tlsError().empty()) return upstreamFailed(502, socketFailure(error), why);
  // A copy: upstreamFailed releases the stream and still uses the reason afterwards.
  const std::string tls_why = "TLS with the backend failed: " + upstream_->tlsError();
  upstreamFailed(502, socketFailure(error), tls_why.c_str());
}

void ProxySession::upstreamFailed(int status, UpstreamFailure failure, const char* why) {
  upstream::Backend* backend = x_->backend;
  bool stale = isStale(failure);
  SM_LOG(stale ? core::LogLevel::kInfo : core::LogLevel::kError,
         "%s while proxying to backend %s (%s) for client %s", why,
         backend->addressText().c_str(), backend->id().c_str(), peer_text_.c_str());
  const bool connected = upstream_ && upstream_->connected();
  releaseUpstream(false);
  if (stale) {
    // On a new connection: the other idle ones may have been closed too.
    x_->stale_retried = true;
    forgetAttempt();
    releaseBackend();  // before the pick, which may choose this backend again
    upstream::Backend* again = pickBackend();
    if (!again) return respondError(status, "no backend left to retry a stale connection");
    return startAttempt(again, true);
  }
  if (!x_->response_head_done) x_->tried_status[x_->tried_count - 1] = status;
  backend->recordFailure(ProxyContext::nowMs());
  if (mayRetry(failureConditions(failure, connected))) {
    if (upstream::Backend* next = retryBackend()) return retryAt(next);
  }
  if (x_->response_started) {
    // Part of the response is out: the client must see a truncated message, never a new one.
    SM_INFO("response from %s truncated; closing client %s", backend->addressText().c_str(),
            peer_text_.c_str());
    return closeNow();
  }
  respondError(status, why);
}

// Returns the upstream connection to the pool or closes it. The backend stays held
// (releaseBackend) until the exchange is logged.
void ProxySession::releaseUpstream(bool reusable) {
  if (!upstream_) return;
  // The backend's traffic for this attempt (a pooled stream's totals span several exchanges).
  x_->backend->addTraffic(upstream_->bytesRead() - x_->upstream_read_base,
                          upstream_->bytesWritten() - x_->upstream_written_base);
  if (reusable && evbuffer_get_length(upstream_->input()) == 0 &&
      upstream_->pendingOutput() == 0) {
    ctx_.pool->put(x_->backend, std::move(upstream_));
  }
  upstream_.reset();
}

void ProxySession::releaseBackend() {
  if (!x_ || !x_->backend_held) return;
  x_->backend_held = false;
  x_->backend->release();
  retryBudget().attemptEnded(x_->retry_attempt);
}

// ---------------------------------------------------------------------------------------------
// Exchange lifecycle

void ProxySession::finishExchange() {
  // The last byte of the response is queued: the end of the exchange for its latency, the
  // access log and the backend's time.
  x_->end_us = ProxyContext::preciseNowUs();
  x_->upstream_end_ms = x_->end_us / 1000;
  bool reusable = x_->response.keep_alive && x_->request_done && !ctx_.draining;
  if (x_->backend) recordAnswer(*x_->backend, x_->upstream_status, x_->upstream_end_ms);
  releaseUpstream(reusable);
  logAccess();
  releaseBackend();
  flushClient();
  if (phase_ == Phase::kDead) return;
  if (!x_->keep_alive) return closeAfterFlush();
  resetExchange();
  phase_ = Phase::kIdle;
  client_->startReading(ctx_.config->server.idle_timeout);
  driveClient();  // pipelined requests already buffered
  // Its response promised keep-alive before the drain began, and the idle grace is over.
  if (phase_ == Phase::kIdle && ctx_.idle_grace_over) startLinger();
}

void ProxySession::resetExchange() { ctx_.giveBack(std::move(x_)); }

// Timers are created when first needed: most connections never arm one.
void ProxySession::armTimer(event::EventPtr& timer, event_callback_fn fn,
                            std::chrono::milliseconds after) {
  if (!timer) timer = event::newTimer(ctx_.base, fn, this);
  event::addTimer(timer.get(), after);
}

// Answers `status` ourselves. Malformed requests (4xx other than 404) close the connection after
// a lingering close; 404/502/503/504 keep it alive when the request had no body.
void ProxySession::respondError(int status, const char* why, const char* detail) {
  if (x_->backend == nullptr || status >= 500) {
    SM_LOG(status >= 500 ? core::LogLevel::kWarn : core::LogLevel::kInfo,
           "answering %d to client %s: %s", status, peer_text_.c_str(), why);
  }
  header_timer_.reset();
  if (upstream_) releaseUpstream(false);
  // After a malformed request the rest of the input cannot be framed: close.
  bool malformed = status != 404 && status != 502 && status != 503 && status != 504;
  bool keep = !malformed && x_->keep_alive && x_->request_framing == BodyFraming::kNone &&
              !ctx_.draining;
  x_->keep_alive = keep;
  x_->status = status;
  x_->body_bytes_sent =
      appendErrorResponse(status, keep, x_->head_method, client_->output(), detail);
  if (x_->start_ms == 0) x_->start_ms = ProxyContext::nowMs();
  logAccess();
  releaseBackend();
  flushClient();
  if (phase_ == Phase::kDead) return;
  if (malformed) return startLinger();
  if (!keep) return closeAfterFlush();
  resetExchange();
  phase_ = Phase::kIdle;
  client_->startReading(ctx_.config->server.idle_timeout);
}

void ProxySession::startTunnel() {
  phase_ = Phase::kTunnel;
  milliseconds idle = ctx_.config->server.idle_timeout;
  client_->startReading(idle);
  upstream_->startReading(idle);
  if (evbuffer_get_length(upstream_->input()) > 0) tunnelData(*upstream_, *client_);
  if (phase_ == Phase::kTunnel && evbuffer_get_length(client_->input()) > 0) {
    tunnelData(*client_, *upstream_);
  }
  if (phase_ == Phase::kTunnel) flushClient();
}

// A tunnel or event stream whose backend was disconnected: the backend's side closes now;
// what the client was sent is flushed, then a FIN (a truncated event stream, as when a backend
// dies mid-stream) and its input is discarded until its EOF or kLingerTime.
void ProxySession::endStream() {
  releaseUpstream(false);
  releaseBackend();
  x_->keep_alive = false;
  startLinger();
}

void ProxySession::tunnelData(event::Stream& from, event::Stream& to) {
  evbuffer_add_buffer(to.output(), from.input());
  if (!to.flush()) return closeNow();
  if (to.pendingOutput() > kHighWater) from.stopReading();
}

// Reads from a side only while its bytes are wanted and the other side's output has room.
void ProxySession::updateReading() {
  const core::ServerConfig& server = ctx_.config->server;
  if (phase_ == Phase::kTunnel) {
    if (client_->pendingOutput() <= kLowWater && !upstream_->reading()) {
      upstream_->startReading(server.idle_timeout);
    }
    if (upstream_->pendingOutput() <= kLowWater && !client_->reading()) {
      client_->startReading(server.idle_timeout);
    }
    return;
  }
  if (phase_ != Phase::kExchange) return;
  // Once the request is in, the client stays readable (no epoll change per request) until a
  // pipelined backlog reaches the high watermark; its bytes wait in the input buffer.
  bool want_client = x_->request_done
                         ? evbuffer_get_length(client_->input()) < kHighWater
                         : upstream_ && upstream_->pendingOutput() < kHighWater;
  if (want_client) {
    client_->startReading(x_->request_done ? milliseconds(0) : server.read_timeout);
  } else {
    client_->stopReading();
  }
  if (!upstream_) return;
  bool want_upstream = !x_->response_done && client_->pendingOutput() < kHighWater;
  if (!want_upstream) {
    upstream_->stopReading();
  } else if (!x_->request_done) {
    upstream_->startReading(milliseconds(0));  // an early answer or a close, no deadline yet
  } else {
    upstream_->startReading(x_->response.event_stream ? server.idle_timeout : server.read_timeout);
  }
}

void ProxySession::flushClient() {
  if (!client_->flush()) {
    SM_INFO("write to client %s failed: %s", peer_text_.c_str(),
            std::strerror(client_->lastError()));
    return closeNow();
  }
}

void ProxySession::closeAfterFlush() {
  if (client_->pendingOutput() == 0) return closeNow();
  phase_ = Phase::kClosing;
  client_->stopReading();
}

// After an error answer to a malformed request: stop sending, discard what the client still
// sends for a moment, so the answer is not lost to a reset (as nginx's lingering close).
//
// The answer is flushed first (write_timeout bounds that); the linger time starts with the FIN.
void ProxySession::startLinger() {
  phase_ = Phase::kLinger;
  evbuffer_drain(client_->input(), evbuffer_get_length(client_->input()));
  if (client_->pendingOutput() != 0) {
    client_->startReading(milliseconds(0));  // discarded as it comes; armLinger() once flushed
    return;
  }
  armLinger();
}

void ProxySession::armLinger() {
  client_->shutdownWrite();
  client_->startReading(kLingerTime);
  armTimer(linger_timer_, &ProxySession::onLingerTimeout, kLingerTime);
}

// Closes both connections. The session is deleted when the current callback returns.
void ProxySession::closeNow() {
  if (x_ && x_->head_us != 0) countExchange();  // an exchange that was neither logged nor counted
  if (upstream_) releaseUpstream(false);
  releaseBackend();
  client_->stopReading();
  phase_ = Phase::kDead;
}

// The exchange's server counters, once: its status class (0: nothing was sent) and its
// latency, when its request head was read.
void ProxySession::countExchange() {
  if (x_->counted) return;
  x_->counted = true;
  if (x_->end_us == 0) x_->end_us = ProxyContext::preciseNowUs();
  int cls = x_->status / 100;
  if (cls >= 0 && cls <= 5) {
    ctx_.counters->responses_by_class[cls].fetch_add(1, std::memory_order_relaxed);
  }
  if (x_->head_us != 0) {
    ctx_.counters->request_latency.record(
        static_cast<uint64_t>(std::max<int64_t>(0, x_->end_us - x_->head_us)));
  }
}

void ProxySession::logAccess() {
  countExchange();
  if (!ctx_.access_log->enabled()) return;
  AccessLogEntry e;
  e.client_ip = real_ip_text_.empty() ? peer_text_ : real_ip_text_;
  std::string_view f = x_->log_fields;
  e.method = f.substr(0, x_->log_method_len);
  e.target = f.substr(x_->log_method_len, x_->log_target_len);
  e.referer = f.substr(x_->log_method_len + x_->log_target_len, x_->log_referer_len);
  e.user_agent = f.substr(x_->log_method_len + x_->log_target_len + x_->log_referer_len);
  e.minor_version = x_->client_minor;
  e.status = x_->status;
  e.body_bytes = x_->body_bytes_sent;
  e.upstream_addr = x_->upstream_addrs.empty() ? std::string_view("-") : x_->upstream_addrs;
  e.upstream_status = std::span<const int>(x_->tried_status, x_->tried_count);
  int64_t now = x_->end_us / 1000;
  e.request_time = (now - x_->start_ms) / 1000.0;
  if (x_->upstream_start_ms >= 0) {
    e.upstream_time = ((x_->upstream_end_ms >= 0 ? x_->upstream_end_ms : now) -
                       x_->upstream_start_ms) / 1000.0;
  }
  if (x_->upstream_header_us >= 0) e.upstream_header_time = x_->upstream_header_us / 1e6;
  if (x_->route >= 0) e.route = ctx_.config->routes[static_cast<size_t>(x_->route)].name;
  e.ssl_protocol = client_->tlsVersion();
  e.ssl_cipher = client_->tlsCipher();
  ctx_.access_log->write(e);
}

void ProxySession::onHeaderTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<ProxySession*>(arg);
  if (self->phase_ == Phase::kHead) {
    self->respondError(408, "client sent no complete request head in time");
  } else if (self->phase_ == Phase::kIdle && !self->client_->handshakeDone() &&
             self->client_->isTls()) {
    // No answer can reach a client without a TLS session.
    SM_INFO("client %s did not complete the TLS handshake in time", self->peer_text_.c_str());
    self->closeNow();
  }
  if (self->phase_ == Phase::kDead) delete self;
}

void ProxySession::onLingerTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<ProxySession*>(arg);
  self->closeNow();
  delete self;
}

}  // namespace speedmimi::http
