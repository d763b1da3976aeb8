// How `speedmimi -s reload|upgrade` learns whether it worked, and how a new binary tells the old
// master it serves: a signal queued with sigqueue(2) carries a value, and the receiver answers
// the sender (si_pid) with kReplySignal. A plain `kill -HUP` (no value) gets no answer.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>

namespace speedmimi::process {

// Values of a request (the sender waits for a reply) and of the replies.
constexpr int kRequestWantsReply = 0x534d5251;  // "SMRQ"
constexpr int kReplyFailed = -1;
// A reply > 0 is a success: the generation now serving.

inline int replySignal() { return SIGRTMIN + 1; }

// Sends `sig` to `pid` asking for a reply. False with errno set when it cannot be sent.
bool sendRequest(pid_t pid, int sig);

// Whether `info` (from sigtimedwait) is a request that wants a reply.
bool wantsReply(const siginfo_t& info);

// Answers `pid` (best effort: it may have given up waiting).
void reply(pid_t pid, int value);

// Waits for a reply from `from`, at most `timeout`. Call blockReplySignal() before sending the
// request, so the reply cannot arrive before the wait. Returns the value, or 0 on timeout.
void blockReplySignal();
int awaitReply(pid_t from, std::chrono::milliseconds timeout);

}  // namespace speedmimi::process
