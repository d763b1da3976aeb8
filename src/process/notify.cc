#include "process/notify.h"

#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace speedmimi::process {

bool sendRequest(pid_t pid, Request request) {
  sigval value{};
  value.sival_int = static_cast<int>(request);
  return sigqueue(pid, requestSignal(), value) == 0;
}

namespace {
// Smaller than PIPE_BUF, so each is written and read whole.
struct RequestRecord {
  pid_t from;
  int request;
};
}  // namespace

bool writeRequest(int fd, Request request) {
  RequestRecord record{getpid(), static_cast<int>(request)};
  ssize_t n = write(fd, &record, sizeof(record));
  if (n == static_cast<ssize_t>(sizeof(record))) return true;
  if (n >= 0) errno = EIO;  // cannot happen for a pipe and PIPE_BUF
  return false;
}

std::vector<std::pair<pid_t, Request>> readRequests(int fd) {
  std::vector<std::pair<pid_t, Request>> out;
  RequestRecord record;
  while (read(fd, &record, sizeof(record)) == static_cast<ssize_t>(sizeof(record))) {
    if (record.request == static_cast<int>(Request::kReload) ||
        record.request == static_cast<int>(Request::kUpgrade)) {
      out.emplace_back(record.from, static_cast<Request>(record.request));
    }
  }
  return out;
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
