#include "process/notify.h"

#include <time.h>

#include <cerrno>

namespace speedmimi::process {

bool sendRequest(pid_t pid, Request request) {
  sigval value{};
  value.sival_int = static_cast<int>(request);
  return sigqueue(pid, requestSignal(), value) == 0;
}

void reply(pid_t pid, int value) {
  sigval v{};
  v.sival_int = value;
  sigqueue(pid, replySignal(), v);
}

void blockReplySignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, replySignal());
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

int awaitReply(pid_t from, std::chrono::milliseconds timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, replySignal());
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return 0;
    timespec ts{static_cast<time_t>(left.count() / 1000),
                static_cast<long>((left.count() % 1000) * 1'000'000)};
    siginfo_t info;
    if (sigtimedwait(&set, &info, &ts) < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    if (info.si_pid == from && info.si_code == SI_QUEUE) return info.si_value.sival_int;
  }
}

}  // namespace speedmimi::process
