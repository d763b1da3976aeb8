// How `speedmimi -s reload|upgrade` learns whether it worked, and how a new binary tells the old
// master it serves. Requests and replies are real-time signals queued with sigqueue(2), so none
// is lost when several arrive at once (two HUPs at once are one), and each carries a value: a
// request names its action, and the master answers the sender (si_pid). A plain `kill -HUP` or
// `kill -USR2` does the same work and gets no answer. The control process asks through a pipe
// instead (writeRequest), and is answered by signal as the others are.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <utility>
#include <vector>

namespace speedmimi::process {

// The actions a request asks for (its value).
enum class Request : int { kReload = 1, kUpgrade = 2 };

// Reply values: > 0 is a success (the generation, or the new master's pid), kReplyFailed not.
constexpr int kReplyFailed = -1;

inline int requestSignal() { return SIGRTMIN + 2; }
inline int replySignal() { return SIGRTMIN + 1; }

// Asks `pid` for `request`. False with errno set when it cannot be sent.
bool sendRequest(pid_t pid, Request request);

// The control process runs as server.user and so may not signal a master running as root: it
// asks through the master's request pipe instead, writing to `fd` (its non-blocking write end)
// one record naming itself. The master answers with reply() all the same. False with errno set.
bool writeRequest(int fd, Request request);
// The requests waiting in `fd`, the pipe's non-blocking read end, each with its sender.
std::vector<std::pair<pid_t, Request>> readRequests(int fd);

// Answers `pid` (best effort: it may have given up waiting).
void reply(pid_t pid, int value);

// Waits for a reply from `from`, at most `timeout`. Call blockReplySignal() before sending the
// request, so the reply cannot arrive before the wait. Returns the value, or 0 on timeout.
void blockReplySignal();
int awaitReply(pid_t from, std::chrono::milliseconds timeout);

}  // namespace speedmimi::process
