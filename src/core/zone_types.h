// The types of the shared-memory zone (DESIGN §3), apart from the functions that manage it, so
// that the request path (src/upstream, src/http) can use them without depending on the zone.
// Everything here lives in shared memory: fixed size, no pointers to process-local memory, and
// only atomics where several processes write.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/histogram.h"

namespace speedmimi::core {

enum class Health : int { kUnknown = 0, kUp = 1, kDown = 2 };

// BackendState::latency_us before the first sample. Not 0: a fast backend measures 0 us.
constexpr uint64_t kLatencyUnmeasured = UINT64_MAX;

// The cache line size of the machines we run on. Rows that different processes write are
// aligned to it, so that one worker's writes never evict another's line (false sharing).
// Not std::hardware_destructive_interference_size: GCC warns that it may vary between builds,
// and the zone layout must not.
constexpr size_t kCacheLine = 64;

// Runtime state of one backend, shared by every worker. Only atomics; the request path never
// locks. What is here must be shared; per-request counters that every worker would write live
// in per-worker rows instead (BackendWorkerCounters). Each group is on its own cache lines, so
// that the writes of one do not evict the others from every worker's cache.
struct BackendState {
  // Written by every worker twice per exchange (acquire, release): true sharing, kept apart.
  alignas(kCacheLine) std::atomic<int64_t> active_connections{0};  // in flight, all workers
  // Written by every worker once per response. Shared rather than per worker so that every
  // worker's balancer learns from each sample and the EWMA survives a reload (DESIGN §3).
  // EWMA of the time to the response head, microseconds (Backend::recordLatency);
  // kLatencyUnmeasured until the first sample.
  alignas(kCacheLine) std::atomic<uint64_t> latency_us{kLatencyUnmeasured};
  // Read on every pick, written rarely (a failure, a probe, a report).
  alignas(kCacheLine) std::atomic<int> health{static_cast<int>(Health::kUnknown)};
  // Passive checks: failures counted within the current fail_timeout window.
  std::atomic<int> passive_fails{0};
  std::atomic<int64_t> passive_window_start_ms{0};
  std::atomic<int64_t> passive_down_until_ms{0};
  // Last performance report (percent x 100, i.e. 0..10000) and its time; 0 = never.
  std::atomic<uint32_t> report_cpu{0};
  std::atomic<uint32_t> report_memory{0};
  std::atomic<uint32_t> report_load{0};  // load_avg_1 x 100
  std::atomic<int64_t> report_time_ms{0};
  // Bumped by Zone::disconnectBackend, before the generation that publishes it: each worker, on
  // the rebuild that sees it move, closes its idle connections, tunnels and event streams to the
  // backend (UpstreamSet::takeDisconnected). A count, not a flag, so that a disconnect followed
  // at once by a re-activation still closes them. 0 for a new backend.
  std::atomic<uint64_t> disconnect_epoch{0};
  // When the backend last came back, core::monotonicMs() (the same clock in every process); 0 =
  // never since it entered the zone with the server. Its slow start ramps from here, or from the
  // end of its last passive take-out if that is later (core/slow_start.h). Stored by the control
  // process (health up again, an API add or re-activation) and the master (a reload's add or
  // re-activation).
  std::atomic<int64_t> ramp_start_ms{0};
};

// Per-request counters of one backend: as one worker counted them, or (BackendSlot::retired)
// the totals of the workers that exited.
struct BackendCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> bytes_in{0};   // from the backend
  std::atomic<uint64_t> bytes_out{0};  // to the backend
  // Per attempt that got a response head from the backend: index = its status / 100 (the
  // backend's status, not the one the client got), and the time from the attempt's start to
  // that head (the sample Backend::recordLatency takes), microseconds.
  std::atomic<uint64_t> responses_by_class[6]{};
  LatencyHistogram head_time;
};

// One worker's entry for one backend slot. A worker's entries for every slot form its row
// (Zone::backendCounters), which starts on a cache line of its own and is padded to whole
// lines: only that worker writes it while it lives (the master folds it once it died, the
// control process clears an entry for a slot's next backend), so entries of one row may share
// lines but two workers never write the same line.
struct BackendWorkerCounters {
  BackendCounters counters;
  // This worker's share of BackendState::active_connections, so the share of a worker that
  // died can be taken back out (Zone::releaseWorkerSlot).
  std::atomic<int32_t> active{0};
};

// A backend's counters summed over every worker, live or exited (Zone::backendTotals).
struct BackendTotals {
  uint64_t requests = 0;
  uint64_t failures = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t responses_by_class[6] = {};
  LatencyTotals head_time;
};

// A backend's address, resolved before it enters the zone (by the master or the control process),
// so workers never block on a name lookup.
struct BackendAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// server.workers at most; the zone holds three times as many counter slots, for the workers of
// the generation serving, of one starting and of one draining (a reload or a binary upgrade).
constexpr size_t kMaxWorkers = 256;
constexpr size_t kWorkerSlots = 3 * kMaxWorkers;

// Per-worker server counters (one slot per worker; the server's figures are the sum). Each slot
// is on cache lines of its own: workers write theirs on every request.
struct alignas(kCacheLine) ServerCounters {
  std::atomic<int64_t> active_connections{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> retries{0};               // attempts at another backend after a failed one
  std::atomic<uint64_t> retries_refused{0};       // retries the route's retry_budget refused
  std::atomic<uint64_t> responses_by_class[6]{};  // index = status / 100 (0: none sent)
  std::atomic<uint64_t> bytes_in{0};              // from clients
  std::atomic<uint64_t> bytes_out{0};             // to clients
  // Per exchange: from the request head complete to the end of the response (its last byte
  // queued to the client, or the exchange's end without one), CLOCK_MONOTONIC microseconds.
  LatencyHistogram request_latency;
  std::atomic<uint64_t> seen_generation{0};       // the zone generation this worker applied
  std::atomic<uint64_t> seen_tls_serial{0};       // the certificates it serves (Zone::tlsSerial)
  // The last TLS serial whose certificates this worker could not load (it serves the ones it
  // had), stored before seen_tls_serial, and why (Zone::setTlsFailure, Zone::tlsFailure).
  std::atomic<uint64_t> failed_tls_serial{0};
  std::atomic<char> tls_error[160]{};
  std::atomic<int32_t> pid{0};                    // 0: no worker in this slot
  std::atomic<uint32_t> claimed{0};  // handed to a worker by a master (Zone::claimWorkerSlot)
  std::atomic<uint32_t> ready{0};    // the worker accepts connections
};

// A backend's configuration as stored in the zone: fixed-size, copied in and out whole.
struct ZoneBackendConfig {
  static constexpr size_t kShort = 64;   // upstream, id, scheme
  static constexpr size_t kLong = 256;   // name, host, health path
  static constexpr size_t kPath = 512;   // ca_file
  char upstream[kShort];
  char id[kShort];
  char name[kLong];
  char host[kLong];
  char health_path[kLong];
  char scheme[kShort];
  char ca_file[kPath];  // as configured (relative to the prefix); "" = the system store
  int32_t port;
  int32_t weight;
  int32_t max_fails;
  int32_t keepalive;
  int32_t health_failures;
  int32_t health_successes;
  uint64_t max_conn;
  int64_t fail_timeout_ms;
  int64_t slow_start_ms;
  int64_t health_interval_ms;
  int64_t health_timeout_ms;
  bool active;
  bool tls_verify;
  bool health_enabled;
  // Resolved before the backend was added or updated (see BackendAddress).
  sockaddr_storage address;
  uint32_t address_len;
};

// A session-ticket key (RFC 5077: its name, AES-256 and HMAC-SHA256 keys) as the zone keeps it.
struct ZoneTicketKey {
  uint8_t name[16];
  uint8_t aes_key[32];
  uint8_t hmac_key[32];
  int64_t created_unix;  // wall clock, seconds: the next rotation is due from it
};

// The ticket keys every worker's TLS contexts share, so a client resumes on any worker and
// after any reload (DESIGN §10). Made and rotated by the masters (Zone::rotateTicketKey, under
// the writer lock: two masters share the zone during a binary upgrade), read without a lock by
// the workers (Zone::ticketKey). Key n (1, 2, ...) lives in slots[n % kTicketKeySlots]; the
// newest, `serial`, encrypts new tickets, and the two before it still decrypt (with a new
// ticket issued). A seqlock: the writer stores `writing` = n before it overwrites key n - 3's
// slot and `serial` = n after; a reader that copied key k checks afterwards that `writing` has
// not reached k + kTicketKeySlots.
// A slot holds its key as words copied with relaxed atomics, so that a reader copying it while
// the writer overwrites it (which the check above then rejects) is no data race.
constexpr size_t kTicketKeySlots = 3;
constexpr size_t kTicketKeyWords = sizeof(ZoneTicketKey) / sizeof(uint64_t);
static_assert(sizeof(ZoneTicketKey) == kTicketKeyWords * sizeof(uint64_t));
struct TicketKeySlot {
  std::atomic<uint64_t> words[kTicketKeyWords];
};
struct TicketKeyRing {
  std::atomic<uint64_t> serial{0};  // the current key; 0 = none made yet
  std::atomic<uint64_t> writing{0};
  TicketKeySlot slots[kTicketKeySlots];
};

// Active health-check results, written by the control process only.
struct HealthRecord {
  std::atomic<int32_t> consecutive_failures{0};
  std::atomic<int32_t> consecutive_successes{0};
  std::atomic<int64_t> last_check_unix_ms{0};  // wall clock; 0 = never checked
  std::atomic<int32_t> last_passed{0};         // 1 passed, 0 failed or never
  char reason[160];                            // why the last state change happened
};

// A backend's health changes, newest last (Zone::healthHistory reads them newest first). Written
// by the control process only (active checks, and the passive transitions it sees in its tick),
// so one writer appends: event i lives at events[i % kHealthHistory], `count` counts every event
// ever appended and is stored after the event (release), readers load it first (acquire).
struct HealthEvent {
  int64_t unix_ms;  // wall clock
  int32_t health;   // core::Health after the change
  char reason[120];
};
constexpr size_t kHealthHistory = 16;
struct HealthHistory {
  std::atomic<uint32_t> count{0};
  HealthEvent events[kHealthHistory];
};

enum class SlotState : uint32_t { kFree = 0, kLive = 1, kRemoved = 2 };

struct BackendSlot {
  std::atomic<uint32_t> state{0};        // SlotState
  std::atomic<uint64_t> incarnation{0};  // bumped each time the slot is (re)used
  std::atomic<uint64_t> removed_at{0};   // generation of the removal
  std::atomic<ZoneBackendConfig*> config{nullptr};
  BackendState runtime;
  HealthRecord health;
  HealthHistory health_history;
  // What the workers that exited counted for this backend (Zone::releaseWorkerSlot): with the
  // live workers' rows, the totals never go backwards.
  BackendCounters retired;
};

struct PerformanceReport {
  double cpu_usage = 0;     // percent
  double memory_usage = 0;  // percent
  double disk_usage = 0;    // percent
  double load_avg_1 = 0;
  double load_avg_5 = 0;
  double load_avg_15 = 0;
  uint64_t network_in = 0;
  uint64_t network_out = 0;
  int64_t timestamp = 0;  // as sent by the backend (unix seconds)
};

// Outcome of a runtime change, shaped for the management API (HTTP status + message).
struct ChangeResult {
  int status = 200;  // 200/201 ok, 400 invalid, 404 unknown, 409 duplicate, 500 zone lock
                     // unusable, 507 zone full
  std::string message;
  bool ok() const { return status < 300; }
};

}  // namespace speedmimi::core
