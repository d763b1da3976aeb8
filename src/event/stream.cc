#include "event/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/uio.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/log.h"

namespace speedmimi::event {
namespace {

// libevent allocates a chunk and its header (48 bytes on 64-bit) in one block rounded up to a
// power of two: asking for a power of two minus this makes the block what was asked for, where
// 16 KiB would have taken 32 KiB.
constexpr size_t kChunkOverhead = 64;
// Reads start at 2 KiB (nginx's client_header_buffer_size is 1 KiB) and double up to 64 KiB
// while they come back full (bulk transfers: a 1 MiB answer in 16 KiB reads costs a third more
// CPU than in 64 KiB ones).
constexpr size_t kMinRead = 2 * 1024 - kChunkOverhead;
constexpr size_t kMaxRead = 64 * 1024 - kChunkOverhead;
constexpr size_t kSmallRead = 512;
// TLS writes go out in records of at most this much plaintext (the protocol's maximum), small
// pieces of output (a head and a short body) gathered into one.
constexpr size_t kTlsRecord = 16 * 1024;

bool isTransient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

// Turns on the TCP option `option` (`name` for the log) of `fd`. False when it is not on; a
// descriptor that is not a TCP socket (AF_UNIX or a file, in tests) refuses with EOPNOTSUPP or
// ENOTSOCK, which is no error.
bool enableTcpOption(int fd, int option, const char* name) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, option, &one, sizeof(one)) == 0) return true;
  if (errno != EOPNOTSUPP && errno != ENOTSOCK) {
    SM_WARN("setsockopt(%s) on fd %d failed: %s", name, fd, std::strerror(errno));
  }
  return false;
}

// A timeout in libevent's "common timeout" form when it can be: the events waiting with one
// duration then sit in a FIFO queue, O(1) to add or remove, instead of the timer heap, where
// each change walks O(log n) entries scattered over memory. With thousands of connections that
// all wait with the same few durations (read, write, idle), that is most of the timer work.
// libevent has room for 256 such durations; past that it is an ordinary timeout.
timeval commonTimeout(event_base* base, std::chrono::milliseconds duration) {
  timeval tv = toTimeval(duration);
  const timeval* common = event_base_init_common_timeout(base, &tv);
  return common != nullptr ? *common : tv;
}

}  // namespace

const char* streamEventName(StreamEvent ev) {
  switch (ev) {
    case StreamEvent::kReadable: return "readable";
    case StreamEvent::kEof: return "eof";
    case StreamEvent::kError: return "error";
    case StreamEvent::kReadTimeout: return "read timeout";
    case StreamEvent::kWriteTimeout: return "write timeout";
    case StreamEvent::kConnected: return "connected";
    case StreamEvent::kDrained: return "drained";
  }
  return "?";
}

Stream::Stream(event_base* base, int fd, StreamHandler* handler)
    : fd_(fd),
      base_(base),
      handler_(handler),
      input_(evbuffer_new()),
      output_(evbuffer_new()),
      read_event_(event_new(base, fd, EV_READ | EV_PERSIST, &Stream::onRead, this)),
      read_size_(kMinRead) {
  // Out of memory here leaves nothing sensible to do in a proxy worker.
  if (!input_ || !output_ || !read_event_) std::abort();
  // Our writes never wait for the peer's ACK: every flush() is a whole message or all we have.
  enableTcpOption(fd, TCP_NODELAY, "TCP_NODELAY");
}

// Events are freed (and so deleted) before the fd closes. An SSL freed without a shutdown has
// its session made unresumable (OpenSSL takes it for a broken one): a TLS stream that ended
// well, close_notify sent or not, keeps it.
Stream::~Stream() {
  if (tls_ && handshake_done_ && tls_error_.empty()) {
    SSL_set_shutdown(tls_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
}

std::unique_ptr<Stream> Stream::connect(event_base* base, const sockaddr* addr, socklen_t len,
                                        std::chrono::milliseconds timeout,
                                        StreamHandler* handler) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  auto stream = std::make_unique<Stream>(base, fd, handler);
  stream->connected_ = false;
  stream->client_ = true;
  if (::connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
    // Refused at once (loopback): report it from the loop like any other failure.
    stream->failLater(errno);
    return stream;
  }
  timeval tv = commonTimeout(base, timeout);
  if (!stream->armWrite(&tv)) stream->failLater(errno != 0 ? errno : ENOMEM);
  return stream;
}

void Stream::makeWriteEvent() {
  if (write_event_) return;
  write_event_.reset(event_new(base_, fd_.get(), EV_WRITE | EV_PERSIST, &Stream::onWrite, this));
  if (!write_event_) std::abort();  // out of memory, as in the constructor
}

bool Stream::armWrite(const timeval* timeout) {
  makeWriteEvent();
  if (event_add(write_event_.get(), timeout) != 0) return false;
  write_armed_ = true;
  return true;
}

void Stream::failLater(int err) {
  last_error_ = err;
  failed_ = true;
  event_active(read_event_.get(), EV_READ, 0);  // needs no epoll change: cannot fail
}

void Stream::startReading(std::chrono::milliseconds timeout) {
  if (reading_ && timeout == read_timeout_) return;
  read_timeout_ = timeout;
  int rc;
  if (timeout.count() > 0) {
    timeval tv = commonTimeout(base_, timeout);
    rc = event_add(read_event_.get(), &tv);
  } else if (reading_ || read_armed_for_write_) {
    // event_add(ev, NULL) would keep an armed timeout: drop it, the fd stays registered.
    rc = event_remove_timer(read_event_.get());
  } else {
    rc = event_add(read_event_.get(), nullptr);
  }
  if (rc != 0) return failLater(errno != 0 ? errno : ENOMEM);
  reading_ = true;
  read_armed_for_write_ = false;  // a flush that waits to read now waits on the reads
  if (tls_eof_) event_active(read_event_.get(), EV_READ, 0);  // the end read before, told now
}

void Stream::stopReading() {
  if (!reading_) return;
  reading_ = false;
  if (write_wants_read_) {
    // A TLS flush waits for the peer's bytes on this event: it stays, with the write timeout,
    // or the write would stall with no timeout at all.
    if (!armReadForWrite()) failLater(errno != 0 ? errno : ENOMEM);
    return;
  }
  event_del(read_event_.get());
}

bool Stream::armReadForWrite() {
  timeval tv = commonTimeout(base_, write_timeout_);
  const bool timed = write_timeout_.count() > 0;
  int rc = event_add(read_event_.get(), timed ? &tv : nullptr);
  // Armed for reading before, it may keep the read timeout.
  if (rc == 0 && !timed) rc = event_remove_timer(read_event_.get());
  if (rc != 0) return false;
  read_armed_for_write_ = true;
  return true;
}

void Stream::disarmReadForWrite() {
  if (std::exchange(read_armed_for_write_, false)) event_del(read_event_.get());
}

bool Stream::flush() {
  if (!connected_) return true;  // written once connected
  if (tls_) return flushTls();
  while (evbuffer_get_length(output_.get()) > 0) {
    int n = evbuffer_write(output_.get(), fd_.get());
    if (n > 0) {
      bytes_written_ += static_cast<uint64_t>(n);
      if (written_counter_) written_counter_->fetch_add(n, std::memory_order_relaxed);
      wrote_since_read_ = true;
      ack_owed_ = false;  // the data carries it
      continue;
    }
    if (n < 0 && isTransient(errno)) break;
    last_error_ = n < 0 ? errno : EPIPE;
    return false;
  }
  return waitForWrite(evbuffer_get_length(output_.get()) > 0);
}

bool Stream::waitForWrite(bool wait) {
  if (wait && !write_armed_) {
    timeval tv = commonTimeout(base_, write_timeout_);
    if (!armWrite(write_timeout_.count() > 0 ? &tv : nullptr)) {
      last_error_ = errno != 0 ? errno : ENOMEM;
      return false;
    }
  } else if (!wait && write_armed_) {
    event_del(write_event_.get());
    write_armed_ = false;
  }
  return true;
}

void Stream::setQuickAck(bool on) {
  quick_ack_ = on;
  if (on && !ack_event_) {
    ack_event_.reset(event_new(base_, -1, 0, &Stream::onAckDue, this));
    if (!ack_event_) std::abort();  // out of memory, as in the constructor
  }
}

void Stream::onAckDue(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Stream*>(arg);
  if (!self->ack_owed_) return;
  self->ack_owed_ = false;
  if (enableTcpOption(self->fd(), TCP_QUICKACK, "TCP_QUICKACK")) {
    ++self->quick_acks_;
  } else {
    self->quick_ack_ = false;  // a socket that refuses it once will refuse it every time
  }
}

void Stream::shutdownWrite() {
  if (tls_ && handshake_done_) {
    // close_notify, once: whether the peer answers it does not matter to a closing stream.
    ERR_clear_error();
    SSL_shutdown(tls_.get());
    ERR_clear_error();
  }
  ::shutdown(fd_.get(), SHUT_WR);
}

void Stream::onRead(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<Stream*>(arg);
  if (self->failed_) return self->notify(StreamEvent::kError);
  if (what & EV_TIMEOUT) {
    // Not reading, the event waits only for a TLS write that wants the peer's bytes.
    return self->notify(self->reading_ ? StreamEvent::kReadTimeout : StreamEvent::kWriteTimeout);
  }
  if (self->tls_) return self->readTls();
  self->readPlain();
}

void Stream::readPlain() {
  evbuffer_iovec vec[2];
  const size_t asked = read_size_;
  int nvec = evbuffer_reserve_space(input_.get(), static_cast<ev_ssize_t>(asked), vec, 2);
  if (nvec < 0) std::abort();
  size_t room = 0;
  for (int i = 0; i < nvec; ++i) room += vec[i].iov_len;
  ssize_t n = ::readv(fd_.get(), reinterpret_cast<iovec*>(vec), nvec);
  if (n < 0) {
    evbuffer_commit_space(input_.get(), vec, 0);
    if (isTransient(errno)) return;
    last_error_ = errno;
    return notify(StreamEvent::kError);
  }
  // Shrink the iovecs to what was read before committing.
  size_t left = static_cast<size_t>(n);
  for (int i = 0; i < nvec; ++i) {
    if (vec[i].iov_len > left) vec[i].iov_len = left;
    left -= vec[i].iov_len;
  }
  evbuffer_commit_space(input_.get(), vec, nvec);
  afterRead(static_cast<size_t>(n), asked, room);
  if (n == 0) {
    stopReading();
    return notify(StreamEvent::kEof);
  }
  notify(StreamEvent::kReadable);
}

void Stream::afterRead(size_t n, size_t asked, size_t room) {
  bytes_read_ += n;
  if (read_counter_) read_counter_->fetch_add(n, std::memory_order_relaxed);
  if (n > 0 && std::exchange(wrote_since_read_, false) && quick_ack_) {
    // Run after this pass's callbacks: by then the handler knows if it awaits more.
    ack_owed_ = true;
    event_active(ack_event_.get(), EV_TIMEOUT, 0);
  }
  // A full read means more is waiting: read more at once next time. Only a read that is small
  // by any measure (a message's tail, a keep-alive request) halves it: in a bulk transfer reads
  // often come back part-full, and shrinking on those would shrink every read, while a client
  // that sends a body per request keeps most of its size from one request to the next.
  if (n >= room && asked < kMaxRead) {
    read_size_ = std::min(kMaxRead, (asked + kChunkOverhead) * 2 - kChunkOverhead);
  } else if (n <= kSmallRead && asked > kMinRead) {
    read_size_ = (asked + kChunkOverhead) / 2 - kChunkOverhead;
  }
}

void Stream::onWrite(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<Stream*>(arg);
  if (!self->connected_) return self->handleConnect(what);
  if (what & EV_TIMEOUT) return self->notify(StreamEvent::kWriteTimeout);
  if (self->tls_ && std::exchange(self->read_wants_write_, false)) {
    event_active(self->read_event_.get(), EV_READ, 0);  // the read that waited, from the loop
  }
  // Over TLS the event also serves the handshake and reads that wanted to write: kDrained only
  // after a write that was blocked (a pooled stream takes any event for its end).
  const bool blocked = evbuffer_get_length(self->output_.get()) > 0;
  if (!self->flush()) return self->notify(StreamEvent::kError);
  if (blocked && evbuffer_get_length(self->output_.get()) <= self->low_watermark_) {
    self->notify(StreamEvent::kDrained);
  }
}

void Stream::handleConnect(short what) {
  event_del(write_event_.get());
  write_armed_ = false;
  if (what & EV_TIMEOUT) {
    last_error_ = ETIMEDOUT;
    return notify(StreamEvent::kWriteTimeout);
  }
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    last_error_ = err;
    return notify(StreamEvent::kError);
  }
  connected_ = true;
  if (!flush()) return notify(StreamEvent::kError);
  notify(StreamEvent::kConnected);
}

// ---------------------------------------------------------------------------------------------
// TLS

void Stream::startTls(SslPtr ssl) {
  if (!ssl || SSL_set_fd(ssl.get(), fd_.get()) != 1) {
    ERR_clear_error();
    return failLater(ENOMEM);
  }
  SSL_set_mode(ssl.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
  // Whole socket reads rather than one per record header and one per record body.
  SSL_set_read_ahead(ssl.get(), 1);
  if (client_) {
    SSL_set_connect_state(ssl.get());
  } else {
    SSL_set_accept_state(ssl.get());
  }
  tls_ = std::move(ssl);
  // A connected client side says hello now: the server speaks only after it.
  if (client_ && connected_ && !flushTls()) failLater(last_error_);
}

const char* Stream::tlsVersion() const {
  return tls_ && handshake_done_ ? SSL_get_version(tls_.get()) : "";
}

const char* Stream::tlsCipher() const {
  const SSL_CIPHER* cipher = tls_ && handshake_done_ ? SSL_get_current_cipher(tls_.get()) : nullptr;
  return cipher != nullptr ? SSL_CIPHER_get_name(cipher) : "";
}

std::string_view Stream::tlsAlpn() const {
  if (!tls_) return {};
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(tls_.get(), &data, &len);
  return std::string_view(reinterpret_cast<const char*>(data), len);
}

void Stream::tlsFailed(int ssl_error, int saved_errno) {
  if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0) {
    // A socket error under TLS reads as on a plain stream (a stale pooled connection's EPIPE).
    last_error_ = saved_errno;
    ERR_clear_error();
    return;
  }
  last_error_ = ssl_error == SSL_ERROR_ZERO_RETURN ? EPIPE : EPROTO;
  tls_error_ = tlsErrorReason(ssl_error == SSL_ERROR_ZERO_RETURN ? "the peer closed the TLS session"
                                                                 : "TLS failure");
  long verify = client_ ? SSL_get_verify_result(tls_.get()) : X509_V_OK;
  if (verify != X509_V_OK) {
    tls_error_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  }
}

int Stream::continueHandshake(int& saved_errno) {
  if (handshake_done_) return SSL_ERROR_NONE;
  ERR_clear_error();
  errno = 0;  // SSL_ERROR_SYSCALL with errno 0 is a FIN: no errno of an earlier call
  int rc = SSL_do_handshake(tls_.get());
  saved_errno = errno;
  if (rc != 1) return SSL_get_error(tls_.get(), rc);
  handshake_done_ = true;
  return SSL_ERROR_NONE;
}

bool Stream::sniffTls() {
  unsigned char first;
  ssize_t n = ::recv(fd_.get(), &first, 1, MSG_PEEK);
  if (n < 0) {
    if (isTransient(errno)) return false;
    last_error_ = errno;
    notify(StreamEvent::kError);
    return false;
  }
  if (n == 0) {
    stopReading();
    notify(StreamEvent::kEof);
    return false;
  }
  sniffed_ = true;
  if (first == 0x16) return true;  // a handshake record
  if (std::isalpha(first)) {
    // "GET / HTTP/1.1" to a TLS port: plain from now on, the session answers in clear text.
    plain_on_tls_ = true;
    tls_.reset();
    readPlain();
    return false;
  }
  last_error_ = EPROTO;
  tls_error_ = "not a TLS handshake";
  notify(StreamEvent::kError);
  return false;
}

void Stream::readTls() {
  if (std::exchange(write_wants_read_, false)) {
    // The flush waiting for the peer's bytes goes on from the loop (and says kDrained).
    makeWriteEvent();
    event_active(write_event_.get(), EV_WRITE, 0);
    disarmReadForWrite();
  }
  // Nothing for a handler that reads nothing (a read that wanted to write and was retried
  // after stopReading(), the end owed: startReading() comes back here).
  if (!reading_) return;
  if (tls_eof_) {
    stopReading();
    return notify(StreamEvent::kEof);
  }
  if (!sniffed_ && !client_ && !sniffTls()) return;
  SSL* ssl = tls_.get();
  int saved_errno = 0;
  int err = continueHandshake(saved_errno);
  // Every decrypted byte reaches input() before the handler runs: what OpenSSL holds already
  // read (read-ahead, a record bigger than the room) gives the socket no reason to wake us.
  const size_t asked = read_size_;
  size_t total = 0;
  while (err == SSL_ERROR_NONE) {
    evbuffer_iovec vec;
    size_t want = total < asked ? asked - total : kTlsRecord;
    if (evbuffer_reserve_space(input_.get(), static_cast<ev_ssize_t>(want), &vec, 1) != 1) {
      std::abort();
    }
    size_t n = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_read_ex(ssl, vec.iov_base, vec.iov_len, &n);
    saved_errno = errno;
    vec.iov_len = rc == 1 ? n : 0;
    evbuffer_commit_space(input_.get(), &vec, 1);
    if (rc != 1) {
      err = SSL_get_error(ssl, rc);
      break;
    }
    total += n;
    // Only what OpenSSL holds: more on the socket wakes us again, as a plain read would, and
    // a request then costs one read(2), not a second one that finds nothing.
    if (!SSL_has_pending(ssl)) break;
  }
  afterRead(total, asked, asked);
  switch (err) {
    case SSL_ERROR_NONE:
    case SSL_ERROR_WANT_READ:
      break;
    case SSL_ERROR_WANT_WRITE:
      read_wants_write_ = true;
      if (!waitForWrite(true)) return notify(StreamEvent::kError);
      break;
    case SSL_ERROR_SYSCALL:
      if (saved_errno != 0) {
        tlsFailed(err, saved_errno);
        return notify(StreamEvent::kError);
      }
      [[fallthrough]];  // a FIN
    case SSL_ERROR_ZERO_RETURN:
      // close_notify (or a bare FIN, SSL_OP_IGNORE_UNEXPECTED_EOF): the bytes first, the end
      // from the loop, as a peer that sent close_notify and waits for ours wakes nobody again.
      if (total == 0) {
        stopReading();
        return notify(StreamEvent::kEof);
      }
      tls_eof_ = true;
      event_active(read_event_.get(), EV_READ, 0);
      return notify(StreamEvent::kReadable);
    default:
      tlsFailed(err, saved_errno);
      return notify(StreamEvent::kError);
  }
  if (total > 0) notify(StreamEvent::kReadable);
}

bool Stream::flushTls() {
  SSL* ssl = tls_.get();
  write_wants_read_ = false;
  int saved_errno = 0;
  int err = continueHandshake(saved_errno);
  while (err == SSL_ERROR_NONE) {
    size_t left = evbuffer_get_length(output_.get());
    if (left == 0) break;
    // One record of what is queued, gathered: a head and a small body go out together. A retry
    // after WANT_WRITE asks for at least as much as before, as OpenSSL requires.
    size_t chunk = std::min(left, kTlsRecord);
    unsigned char* data = evbuffer_pullup(output_.get(), static_cast<ev_ssize_t>(chunk));
    if (data == nullptr) std::abort();
    size_t n = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_write_ex(ssl, data, chunk, &n);
    saved_errno = errno;
    if (rc != 1) {
      err = SSL_get_error(ssl, rc);
      break;
    }
    evbuffer_drain(output_.get(), n);
    bytes_written_ += n;
    if (written_counter_) written_counter_->fetch_add(n, std::memory_order_relaxed);
    wrote_since_read_ = true;
    ack_owed_ = false;
  }
  bool want_write = read_wants_write_;
  switch (err) {
    case SSL_ERROR_NONE:
      break;
    case SSL_ERROR_WANT_WRITE:
      want_write = true;
      break;
    case SSL_ERROR_WANT_READ:
      // Only the peer's bytes let this go on: wait on the read event (with the write timeout
      // when nothing else waits on it), never on writability, which would spin.
      // The timeout is armed once, when the wait begins.
      write_wants_read_ = true;
      if (!reading_ && !read_armed_for_write_ && !armReadForWrite()) {
        last_error_ = errno != 0 ? errno : ENOMEM;
        return false;
      }
      break;
    default:
      tlsFailed(err, saved_errno);
      return false;
  }
  // Done waiting for the peer's bytes: an event left armed would read for a handler that
  // reads nothing, unbounded.
  if (!write_wants_read_) disarmReadForWrite();
  return waitForWrite(want_write);
}

}  // namespace speedmimi::event
