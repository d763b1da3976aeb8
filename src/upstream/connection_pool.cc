#include "upstream/connection_pool.h"

#include <algorithm>

#include "core/clock.h"
#include "event/timer.h"

namespace speedmimi::upstream {

ConnectionPool::ConnectionPool(event_base* base, std::chrono::milliseconds idle_timeout)
    : idle_timeout_(idle_timeout) {
  if (base != nullptr) purge_timer_ = event::newTimer(base, &ConnectionPool::onPurgeTimer, this);
}

int64_t ConnectionPool::nowMs() { return core::monotonicMs(); }

std::unique_ptr<event::Stream> ConnectionPool::take(const Backend* backend) {
  auto it = idle_.find(backend);
  if (it == idle_.end() || it->second->list.empty()) return nullptr;
  std::vector<Idle>& list = it->second->list;
  std::unique_ptr<event::Stream> stream = std::move(list.back().stream);
  list.pop_back();
  --idle_count_;
  return stream;  // still reading (no epoll change); the caller takes over the events
}

void ConnectionPool::put(const Backend* backend, std::unique_ptr<event::Stream> stream) {
  // `stream` closes here: nobody will ask for it again. An inactive backend (disconnected, or
  // updated with active=false) takes no new requests; re-activated, it gets new connections.
  if (backend->retired() || !backend->config().active) return;
  std::unique_ptr<BackendIdle>& idle = idle_[backend];
  if (!idle) idle = std::make_unique<BackendIdle>(*this);
  int bound = backend->config().keepalive;
  if (bound > 0 && idle->list.size() >= static_cast<size_t>(bound)) return;
  stream->setHandler(idle.get());
  // Watch for the backend closing it (or sending junk); the timeout bounds the idle time.
  stream->startReading(idle_timeout_);
  idle->list.push_back({std::move(stream), nowMs()});
  ++idle_count_;
  armPurge();
}

size_t ConnectionPool::idleCount(const Backend* backend) const {
  auto it = idle_.find(backend);
  return it == idle_.end() ? 0 : it->second->list.size();
}

void ConnectionPool::clear() {
  idle_.clear();
  idle_count_ = 0;
}

void ConnectionPool::clear(const Backend* backend) {
  auto it = idle_.find(backend);
  if (it == idle_.end()) return;
  idle_count_ -= it->second->list.size();
  idle_.erase(it);
}

void ConnectionPool::purge(int64_t now_ms) {
  const int64_t unused_since = now_ms - kPurgeDelay.count();
  for (auto it = idle_.begin(); it != idle_.end();) {
    std::vector<Idle>& list = it->second->list;
    // Least recently used first: the surplus is a prefix of the list.
    auto end = std::find_if(list.begin(), list.end(),
                            [&](const Idle& i) { return i.since_ms > unused_since; });
    size_t surplus = static_cast<size_t>(end - list.begin());
    remove(*it->second, list.begin(), list.begin() + static_cast<ptrdiff_t>((surplus + 1) / 2));
    if (list.empty()) {
      it = idle_.erase(it);  // a backend that left the view does not stay in the map
    } else {
      ++it;
    }
  }
}

void ConnectionPool::remove(BackendIdle& idle, std::vector<Idle>::iterator first,
                            std::vector<Idle>::iterator last) {
  idle_count_ -= static_cast<size_t>(last - first);
  idle.list.erase(first, last);  // destroys the streams; nothing touches them afterwards
}

void ConnectionPool::armPurge() {
  if (purge_armed_ || !purge_timer_) return;
  event::addTimer(purge_timer_.get(), kPurgeInterval);
  purge_armed_ = true;
}

void ConnectionPool::onPurgeTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<ConnectionPool*>(arg);
  self->purge_armed_ = false;
  self->purge(nowMs());
  if (self->idle_count_ > 0) self->armPurge();
}

// Any event on an idle connection (EOF, unexpected bytes, error, idle timeout) ends it.
void ConnectionPool::BackendIdle::onStreamEvent(event::Stream& stream, event::StreamEvent) {
  auto it = std::find_if(list.begin(), list.end(),
                         [&](const Idle& i) { return i.stream.get() == &stream; });
  if (it != list.end()) pool_.remove(*this, it, it + 1);
}

}  // namespace speedmimi::upstream
