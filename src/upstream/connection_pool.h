// Idle keep-alive connections to backends, per worker and per backend (DESIGN §4). A connection
// enters the pool only after a fully framed response with nothing left over, and leaves it when
// the backend closes it, sends anything, or it stays idle past the idle timeout.
#pragma once

#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "event/stream.h"
#include "upstream/backend.h"

namespace speedmimi::upstream {

class ConnectionPool final : public event::StreamHandler {
 public:
  // Idle connections kept per backend; the most recently used one is reused first.
  static constexpr size_t kMaxIdlePerBackend = 128;

  explicit ConnectionPool(std::chrono::milliseconds idle_timeout) : idle_timeout_(idle_timeout) {}
  ~ConnectionPool() = default;

  // An idle connection to `backend`, or nullptr. The caller must set itself as the handler
  // at once: the stream is still reading.
  std::unique_ptr<event::Stream> take(const Backend* backend);

  // Keeps `stream` (buffers empty, at a message boundary) for the next request to `backend`;
  // closes it when the backend already has kMaxIdlePerBackend idle connections.
  void put(const Backend* backend, std::unique_ptr<event::Stream> stream);

  // Closes every idle connection (graceful stop) or those of one backend.
  void clear();
  void clear(const Backend* backend);

  size_t idleCount() const { return owners_.size(); }

 private:
  void onStreamEvent(event::Stream& stream, event::StreamEvent ev) override;

  std::chrono::milliseconds idle_timeout_;
  std::unordered_map<const Backend*, std::vector<std::unique_ptr<event::Stream>>> idle_;
  std::unordered_map<const event::Stream*, const Backend*> owners_;
};

}  // namespace speedmimi::upstream
