#include "process/children.h"

#include <algorithm>

namespace speedmimi::process {

Child& ChildTable::add(Role role, uint64_t generation, Clock::time_point now) {
  Child& c = children_.emplace_back();
  c.role = role;
  c.generation = generation;
  c.respawn_at = now;
  return c;
}

Child* ChildTable::byPid(pid_t pid) {
  for (Child& c : children_) {
    if (c.pid == pid && pid > 0) return &c;
  }
  return nullptr;
}

bool ChildTable::exited(Child& c, Clock::time_point now, bool stopping) {
  c.pid = 0;
  c.slot = -1;
  if (c.retiring || stopping) {
    children_.remove_if([&](const Child& x) { return &x == &c; });
    return false;
  }
  bool quick = now - c.started < std::chrono::seconds(1);
  c.backoff = quick ? std::clamp(c.backoff * 2, kFirstBackoff, kMaxBackoff)
                    : std::chrono::milliseconds(0);
  c.respawn_at = now + c.backoff;
  return true;
}

std::vector<Child*> ChildTable::retire(uint64_t generation, bool only) {
  return retireIf([&](const Child& c) {
    return only ? c.generation == generation : c.generation < generation;
  });
}

std::vector<Child*> ChildTable::retireIf(const std::function<bool(const Child&)>& which) {
  std::vector<Child*> running;
  children_.remove_if([&](const Child& c) { return c.pid == 0 && which(c); });
  for (Child& c : children_) {
    if (c.retiring || !which(c)) continue;
    c.retiring = true;
    running.push_back(&c);
  }
  return running;
}

std::vector<Child*> ChildTable::due(Clock::time_point now) {
  std::vector<Child*> out;
  for (Child& c : children_) {
    if (c.pid == 0 && !c.retiring && now >= c.respawn_at) out.push_back(&c);
  }
  return out;
}

size_t ChildTable::running(Role role) const {
  return std::count_if(children_.begin(), children_.end(),
                       [&](const Child& c) { return c.role == role && c.pid > 0; });
}

size_t ChildTable::runningOf(uint64_t generation) const {
  return std::count_if(children_.begin(), children_.end(),
                       [&](const Child& c) { return c.generation == generation && c.pid > 0; });
}

size_t ChildTable::countOf(uint64_t generation) const {
  return std::count_if(children_.begin(), children_.end(),
                       [&](const Child& c) { return c.generation == generation; });
}

std::vector<Child*> ChildTable::all() {
  std::vector<Child*> out;
  for (Child& c : children_) out.push_back(&c);
  return out;
}

}  // namespace speedmimi::process
