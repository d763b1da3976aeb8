// Pure timers (no descriptor). Creating or arming one fails only when memory runs out: the
// libevent timer heap grows by malloc. A worker or the control process can do nothing useful
// without its timers, so that is fatal here, and the master starts a new process.
#pragma once

#include <chrono>
#include <cstdlib>

#include "core/log.h"
#include "event/handles.h"

namespace speedmimi::event {

inline EventPtr newTimer(event_base* base, event_callback_fn fn, void* arg) {
  EventPtr timer(evtimer_new(base, fn, arg));
  if (!timer) {
    SM_ALERT("out of memory creating a timer");
    std::abort();
  }
  return timer;
}

// Arms (or re-arms) `timer` to fire once after `after`, or every `after` for an EV_PERSIST one.
inline void addTimer(struct event* timer, std::chrono::milliseconds after) {
  timeval tv = toTimeval(after);
  if (event_add(timer, &tv) != 0) {
    SM_ALERT("out of memory arming a timer");
    std::abort();
  }
}

}  // namespace speedmimi::event
