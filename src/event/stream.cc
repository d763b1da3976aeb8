#include "event/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>

#include <algorithm>
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

Stream::~Stream() = default;  // events are freed (and so deleted) before the fd closes

std::unique_ptr<Stream> Stream::connect(event_base* base, const sockaddr* addr, socklen_t len,
                                        std::chrono::milliseconds timeout,
                                        StreamHandler* handler) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  auto stream = std::make_unique<Stream>(base, fd, handler);
  stream->connected_ = false;
  if (::connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
    // Refused at once (loopback): report it from the loop like any other failure.
    stream->failLater(errno);
    return stream;
  }
  timeval tv = commonTimeout(base, timeout);
  if (!stream->armWrite(&tv)) stream->failLater(errno != 0 ? errno : ENOMEM);
  return stream;
}

bool Stream::armWrite(const timeval* timeout) {
  if (!write_event_) {
    write_event_.reset(event_new(base_, fd_.get(), EV_WRITE | EV_PERSIST, &Stream::onWrite, this));
    if (!write_event_) std::abort();  // out of memory, as in the constructor
  }
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
  } else if (reading_) {
    // event_add(ev, NULL) would keep an armed timeout: drop it, the fd stays registered.
    rc = event_remove_timer(read_event_.get());
  } else {
    rc = event_add(read_event_.get(), nullptr);
  }
  if (rc != 0) return failLater(errno != 0 ? errno : ENOMEM);
  reading_ = true;
}

void Stream::stopReading() {
  if (!reading_) return;
  event_del(read_event_.get());
  reading_ = false;
}

bool Stream::flush() {
  if (!connected_) return true;  // written once connected
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
  bool pending = evbuffer_get_length(output_.get()) > 0;
  if (pending && !write_armed_) {
    timeval tv = commonTimeout(base_, write_timeout_);
    if (!armWrite(write_timeout_.count() > 0 ? &tv : nullptr)) {
      last_error_ = errno != 0 ? errno : ENOMEM;
      return false;
    }
  } else if (!pending && write_armed_) {
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

void Stream::shutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

void Stream::onRead(evutil_socket_t fd, short what, void* arg) {
  auto* self = static_cast<Stream*>(arg);
  if (self->failed_) return self->notify(StreamEvent::kError);
  if (what & EV_TIMEOUT) return self->notify(StreamEvent::kReadTimeout);
  evbuffer_iovec vec[2];
  const size_t asked = self->read_size_;
  int nvec = evbuffer_reserve_space(self->input_.get(), static_cast<ev_ssize_t>(asked), vec, 2);
  if (nvec < 0) std::abort();
  size_t room = 0;
  for (int i = 0; i < nvec; ++i) room += vec[i].iov_len;
  ssize_t n = ::readv(fd, reinterpret_cast<iovec*>(vec), nvec);
  if (n < 0) {
    evbuffer_commit_space(self->input_.get(), vec, 0);
    if (isTransient(errno)) return;
    self->last_error_ = errno;
    return self->notify(StreamEvent::kError);
  }
  // Shrink the iovecs to what was read before committing.
  size_t left = static_cast<size_t>(n);
  for (int i = 0; i < nvec; ++i) {
    if (vec[i].iov_len > left) vec[i].iov_len = left;
    left -= vec[i].iov_len;
  }
  evbuffer_commit_space(self->input_.get(), vec, nvec);
  self->bytes_read_ += static_cast<uint64_t>(n);
  if (self->read_counter_) self->read_counter_->fetch_add(n, std::memory_order_relaxed);
  if (n > 0 && std::exchange(self->wrote_since_read_, false) && self->quick_ack_) {
    // Run after this pass's callbacks: by then the handler knows if it awaits more.
    self->ack_owed_ = true;
    event_active(self->ack_event_.get(), EV_TIMEOUT, 0);
  }
  // A full read means more is waiting: read more at once next time. Only a read that is small
  // by any measure (a message's tail, a keep-alive request) halves it: in a bulk transfer reads
  // often come back part-full, and shrinking on those would shrink every read, while a client
  // that sends a body per request keeps most of its size from one request to the next.
  if (static_cast<size_t>(n) >= room && asked < kMaxRead) {
    self->read_size_ = std::min(kMaxRead, (asked + kChunkOverhead) * 2 - kChunkOverhead);
  } else if (static_cast<size_t>(n) <= kSmallRead && asked > kMinRead) {
    self->read_size_ = (asked + kChunkOverhead) / 2 - kChunkOverhead;
  }
  if (n == 0) {
    self->stopReading();
    return self->notify(StreamEvent::kEof);
  }
  self->notify(StreamEvent::kReadable);
}

void Stream::onWrite(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<Stream*>(arg);
  if (!self->connected_) return self->handleConnect(what);
  if (what & EV_TIMEOUT) return self->notify(StreamEvent::kWriteTimeout);
  if (!self->flush()) return self->notify(StreamEvent::kError);
  if (evbuffer_get_length(self->output_.get()) <= self->low_watermark_) {
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

}  // namespace speedmimi::event
