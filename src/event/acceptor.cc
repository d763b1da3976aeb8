#include "event/acceptor.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/log.h"
#include "event/timer.h"

namespace speedmimi::event {
namespace {

// Errors that belong to one connection that died in the queue (accept(2): "Linux accept()
// passes already-pending network errors on the new socket as an error code"), or a signal:
// skip it and accept the next.
bool skippable(int err) {
  switch (err) {
    case ECONNABORTED:
    case EINTR:
    case EPROTO:
    case EPERM:  // a firewall rule refused it
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ENETDOWN:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

}  // namespace

Acceptor::Acceptor(event_base* base, Fd listen_fd, Handler handler, Options options)
    : base_(base),
      listen_fd_(std::move(listen_fd)),
      handler_(std::move(handler)),
      options_(options) {}

bool Acceptor::start(std::string& error) {
  readable_.reset(
      event_new(base_, listen_fd_.get(), EV_READ | EV_PERSIST, &Acceptor::onReadable, this));
  resume_ = newTimer(base_, &Acceptor::onResume, this);
  if (!readable_ || event_add(readable_.get(), nullptr) != 0) {
    error = "cannot watch the listening socket (event_new/event_add failed)";
    return false;
  }
  return true;
}

void Acceptor::onReadable(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Acceptor*>(arg);
  for (int i = 0; i < self->options_.batch; ++i) {
    sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int fd = accept4(self->listen_fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      ++self->accepted_;
      self->handler_(fd, reinterpret_cast<sockaddr*>(&peer), len);
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;  // another worker may have taken it
    if (skippable(err)) continue;                     // counts against the batch: still bounded
    // EMFILE, ENFILE, ENOBUFS, ENOMEM, or something we do not expect (EBADF, EINVAL): the
    // listener stays readable, so retrying now would spin.
    return self->pause(err);
  }
}

void Acceptor::pause(int err) {
  paused_ = true;
  event_del(readable_.get());
  addTimer(resume_.get(), options_.pause);
  ++unlogged_failures_;
  auto now = std::chrono::steady_clock::now();
  if (last_log_ != std::chrono::steady_clock::time_point{} &&
      now - last_log_ < options_.log_interval) {
    return;
  }
  auto pause_ms = static_cast<long long>(options_.pause.count());
  if (unlogged_failures_ > 1) {
    SM_ERROR("accept() failed: %s; not accepting for %lld ms (%llu more since last message)",
             std::strerror(err), pause_ms, static_cast<unsigned long long>(unlogged_failures_ - 1));
  } else {
    SM_ERROR("accept() failed: %s; not accepting for %lld ms", std::strerror(err), pause_ms);
  }
  unlogged_failures_ = 0;
  last_log_ = now;
}

void Acceptor::onResume(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Acceptor*>(arg);
  self->paused_ = false;
  if (event_add(self->readable_.get(), nullptr) != 0) {
    SM_ALERT("cannot watch the listening socket again; not accepting");
  }
}

}  // namespace speedmimi::event
