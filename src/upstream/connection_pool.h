// Idle keep-alive connections to backends, per worker and per backend (DESIGN §4). A connection
// enters the pool only after a fully framed response with nothing left over, and leaves it when
// the backend closes it, sends anything, or it stays idle past the idle timeout.
//
// The pool is sized by demand, as HAProxy's is: it keeps every connection the load handed back,
// reuses the most recently used one first, and so the connections at the bottom of a backend's
// stack are exactly those the load has not needed lately. Once one has gone unused for
// kPurgeDelay it is surplus, and every kPurgeInterval half of the surplus (rounded up) is
// closed: a burst's extra connections go away gradually, while a steady load of N clients
// settles at about N connections and then opens none. A backend's `keepalive` bounds it.
#pragma once

#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "event/handles.h"
#include "event/stream.h"
#include "upstream/backend.h"

namespace speedmimi::upstream {

class ConnectionPool {
 public:
  static constexpr std::chrono::milliseconds kPurgeDelay{5000};
  static constexpr std::chrono::milliseconds kPurgeInterval{1000};

  // `base` runs the purge timer (nullptr: none; tests call purge() themselves).
  ConnectionPool(event_base* base, std::chrono::milliseconds idle_timeout);
  ~ConnectionPool() = default;
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // An idle connection to `backend`, or nullptr. The caller must set itself as the handler
  // at once: the stream is still reading.
  std::unique_ptr<event::Stream> take(const Backend* backend);

  // Keeps `stream` (buffers empty, at a message boundary) for the next request to `backend`;
  // closes it instead when the backend has left this worker's view, is inactive, or already has
  // `keepalive` idle connections here.
  void put(const Backend* backend, std::unique_ptr<event::Stream> stream);

  // Closes every idle connection (graceful stop) or those of one backend.
  void clear();
  void clear(const Backend* backend);

  // Closes half (rounded up) of each backend's connections idle since `now_ms - kPurgeDelay`
  // or longer, the least recently used first. The timer calls it every kPurgeInterval.
  void purge(int64_t now_ms);

  size_t idleCount() const { return idle_count_; }
  size_t idleCount(const Backend* backend) const;

  // Monotonic milliseconds, the clock of purge().
  static int64_t nowMs();

 private:
  struct Idle {
    std::unique_ptr<event::Stream> stream;
    int64_t since_ms;
  };
  // One backend's idle connections, least recently used first. It is the handler of its
  // streams, so an event finds its list without a per-connection index.
  class BackendIdle final : public event::StreamHandler {
   public:
    explicit BackendIdle(ConnectionPool& pool) : pool_(pool) {}
    void onStreamEvent(event::Stream& stream, event::StreamEvent ev) override;

    std::vector<Idle> list;

   private:
    ConnectionPool& pool_;
  };

  static void onPurgeTimer(evutil_socket_t, short, void* arg);
  void armPurge();
  void remove(BackendIdle& idle, std::vector<Idle>::iterator first,
              std::vector<Idle>::iterator last);

  std::chrono::milliseconds idle_timeout_;
  // Node-based: a BackendIdle keeps its address, its streams point at it.
  std::unordered_map<const Backend*, std::unique_ptr<BackendIdle>> idle_;
  size_t idle_count_ = 0;
  event::EventPtr purge_timer_;
  bool purge_armed_ = false;
};

}  // namespace speedmimi::upstream
