// Owning smart pointers for C handles (libevent, OpenSSL, libyaml, Jansson), each with its free
// function as deleter, and a small RAII file descriptor.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <utility>

namespace speedmimi::event {

template <typename T, void (*Free)(T*)>
struct CDeleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};

template <typename T, void (*Free)(T*)>
using CPtr = std::unique_ptr<T, CDeleter<T, Free>>;

using EventBasePtr = CPtr<event_base, event_base_free>;
using EventPtr = CPtr<struct event, event_free>;
using EvbufferPtr = CPtr<evbuffer, evbuffer_free>;

// libevent takes timeouts as timevals.
inline timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// An owned file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace speedmimi::event
