// The master's book of its children across generations (DESIGN §2): which process is a worker
// or the control process of which generation, which are retiring, and when one that died is
// due to be respawned. Pure bookkeeping, no system calls: the master forks, kills and reaps.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <vector>

namespace speedmimi::process {

using Clock = std::chrono::steady_clock;

enum class Role { kWorker, kControl };

struct Child {
  Role role = Role::kWorker;
  uint64_t generation = 0;
  pid_t pid = 0;         // 0: not running (waiting to be spawned or respawned)
  int slot = -1;         // a worker's counter slot in the zone, while it runs
  bool retiring = false;  // told to stop: never respawned
  Clock::time_point started{};
  Clock::time_point respawn_at{};
  std::chrono::milliseconds backoff{0};
};

class ChildTable {
 public:
  static constexpr std::chrono::milliseconds kFirstBackoff{100};
  static constexpr std::chrono::milliseconds kMaxBackoff{10'000};

  // A place for a new child of `generation`, due to be spawned now. References stay valid until
  // the entry is removed.
  Child& add(Role role, uint64_t generation, Clock::time_point now);

  Child* byPid(pid_t pid);

  // The child `c` exited at `now`. A retiring child (or any child while `stopping`) is removed
  // and false returned. Otherwise it stays, due for a respawn after a backoff that doubles
  // (from kFirstBackoff to kMaxBackoff) while it keeps dying within a second of its start, and
  // true is returned.
  bool exited(Child& c, Clock::time_point now, bool stopping);

  // Every child of generations before `generation` (or of exactly `generation` when `only` is
  // set) starts retiring. Those not running are removed at once. Returns the running ones, to
  // be told to stop.
  std::vector<Child*> retire(uint64_t generation, bool only = false);
  // The same for every child `which` selects.
  std::vector<Child*> retireIf(const std::function<bool(const Child&)>& which);

  // Children waiting to be (re)spawned whose time has come, not retiring.
  std::vector<Child*> due(Clock::time_point now);

  // Running children (of a role / of a generation), retiring ones included.
  size_t running(Role role) const;
  size_t runningOf(uint64_t generation) const;
  // Entries (running or waiting) of `generation`.
  size_t countOf(uint64_t generation) const;
  std::vector<Child*> all();

 private:
  std::list<Child> children_;
};

}  // namespace speedmimi::process
