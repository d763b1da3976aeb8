// Accepting connections on a listening socket that several worker processes share (DESIGN §2,
// §4): a bounded batch per loop turn, and a pause instead of a spin when descriptors run out.
// libevent's evconnlistener does neither: it accepts until EAGAIN, and on EMFILE it returns to a
// level-triggered event that fires again at once (a worker wrote 933k log lines in 2 s).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "event/handles.h"

namespace speedmimi::event {

class Acceptor {
 public:
  // Gets each accepted socket (non-blocking, close-on-exec) and owns it from then on. It must not
  // destroy the Acceptor.
  using Handler = std::function<void(int fd, sockaddr* peer, socklen_t peer_len)>;

  struct Options {
    // Accepts per readiness. A bound keeps one turn of the loop short when a burst arrives
    // (thousands queued after a reload or a network blip), so the connections this worker
    // already has are served between batches and the other workers take their share of the
    // queue. 64 accepts with their session set-up take well under a millisecond and still spread
    // one epoll round trip over many connections; HAProxy's tune.maxaccept is 64 too.
    int batch = 64;
    // How long accepting stops when descriptors or memory run out. Short enough that a freed
    // descriptor is used soon (a client waits in the kernel's queue meanwhile), long enough that
    // the loop does other work, closing connections among it, instead of retrying. nginx: 500 ms.
    std::chrono::milliseconds pause{500};
    // At most one "accept() failed" line per this interval; the failures in between are
    // counted in the next line. Longer than `pause`, so a lasting shortage costs a line every few
    // seconds, not two a second.
    std::chrono::milliseconds log_interval{5000};
  };
  // Every worker waiting on the listener is woken for each connection (the thundering herd).
  // EPOLLEXCLUSIVE cannot help here: libevent 2.1 cannot add it to its own epoll set, and in a
  // private epoll set whose fd libevent watches it wakes every worker all the same, because the
  // kernel counts an exclusive wakeup only for a task waiting on that set itself (measured: 4
  // waiting processes, 4.0 wakeups per connection, as without the flag).

  // Takes ownership of `listen_fd`: destroying the Acceptor stops accepting and closes this
  // process's copy (the other processes keep theirs). Call start() before the loop runs.
  Acceptor(event_base* base, Fd listen_fd, Handler handler, Options options);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Registers the events. False with `error` set when libevent refuses.
  bool start(std::string& error);

  bool paused() const { return paused_; }
  uint64_t accepted() const { return accepted_; }

 private:
  static void onReadable(evutil_socket_t, short, void* arg);
  static void onResume(evutil_socket_t, short, void* arg);
  // Out of descriptors or memory (or an error we cannot skip): stop for options_.pause.
  void pause(int err);

  event_base* base_;
  Fd listen_fd_;
  Handler handler_;
  Options options_;
  EventPtr readable_;
  EventPtr resume_;
  bool paused_ = false;
  uint64_t accepted_ = 0;
  uint64_t unlogged_failures_ = 0;  // since the last "accept() failed" line
  std::chrono::steady_clock::time_point last_log_{};
};

}  // namespace speedmimi::event
