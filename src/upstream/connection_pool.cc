#include "upstream/connection_pool.h"

#include <algorithm>

namespace speedmimi::upstream {

std::unique_ptr<event::Stream> ConnectionPool::take(const Backend* backend) {
  auto it = idle_.find(backend);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  std::unique_ptr<event::Stream> stream = std::move(it->second.back());
  it->second.pop_back();
  owners_.erase(stream.get());
  return stream;  // still reading (no epoll change); the caller takes over the events
}

void ConnectionPool::put(const Backend* backend, std::unique_ptr<event::Stream> stream) {
  auto& list = idle_[backend];
  if (list.size() >= kMaxIdlePerBackend) return;  // `stream` closes here
  stream->setHandler(this);
  // Watch for the backend closing it (or sending junk); the timeout bounds the idle time.
  stream->startReading(idle_timeout_);
  owners_[stream.get()] = backend;
  list.push_back(std::move(stream));
}

void ConnectionPool::clear() {
  idle_.clear();
  owners_.clear();
}

void ConnectionPool::clear(const Backend* backend) {
  auto it = idle_.find(backend);
  if (it == idle_.end()) return;
  for (auto& s : it->second) owners_.erase(s.get());
  idle_.erase(it);
}

// Any event on an idle connection (EOF, unexpected bytes, error, idle timeout) ends it.
void ConnectionPool::onStreamEvent(event::Stream& stream, event::StreamEvent) {
  auto owner = owners_.find(&stream);
  if (owner == owners_.end()) return;
  auto& list = idle_[owner->second];
  owners_.erase(owner);
  auto it = std::find_if(list.begin(), list.end(), [&](const auto& s) { return s.get() == &stream; });
  if (it != list.end()) list.erase(it);  // destroys the stream; nothing touches it afterwards
}

}  // namespace speedmimi::upstream
