#include "core/zone.h"

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "core/clock.h"
#include "core/log.h"

namespace speedmimi::core {

struct ZoneHeader {
  static constexpr uint64_t kMagic = 0x5350454544'4d494dull;  // "SPEEDMIM"
  static constexpr size_t kMaxRetired = 1024;

  uint64_t magic = kMagic;
  uint64_t layout = 0;  // kLayout of the binary that made the zone
  Slab* slab = nullptr;
  pthread_mutex_t write_lock;  // structural changes; process-shared, robust
  std::atomic<uint64_t> generation{1};
  std::atomic<uint32_t> worker_slot_limit{0};  // slots [0, limit) have been used
  ServerCounters workers[kWorkerSlots];
  ServerCounters retired_workers;  // the totals of workers that exited
  // Each worker slot's row of per-backend counters (Zone::backendCounters), from the slab at
  // the slot's first claim; nullptr before.
  std::atomic<BackendWorkerCounters*> backend_rows[kWorkerSlots];
  size_t slot_capacity = 0;
  BackendSlot* slots = nullptr;
  // Configuration blocks replaced by an update, freed once no worker can read them.
  struct Retired {
    ZoneBackendConfig* block;
    uint64_t generation;
  } retired[kMaxRetired];
  size_t retired_count = 0;
  // Why the master's last reload or upgrade failed (Zone::setLifecycleError).
  char lifecycle_error[512] = {};
  TicketKeyRing ticket_keys;
  // Bumped by each POST /api/v1/config/reload-ssl (Zone::bumpTlsSerial): the workers load
  // their certificates anew when it moves.
  std::atomic<uint64_t> tls_serial{0};
};

// Changes whenever a type that lives in the zone changes size; a binary upgrade between two
// layouts starts a clean zone rather than misreading the old one.
// The leading number counts changes that keep every size (5: BackendState::disconnect_epoch,
// in the padding of a cache line), and is bumped as well when sizes change in ways the xor of
// sizes might not tell apart (6: latency histograms, responses by class, health history; also
// the rows of BackendWorkerCounters, whose size the formula does not hold; 7: the retry
// counters of ServerCounters; 8: BackendState::ramp_start_ms, in the padding of a cache line;
// 9: ZoneBackendConfig::ca_file, the ticket keys, the TLS serials).
constexpr uint64_t kLayout = (uint64_t{9} << 56) ^ (uint64_t{sizeof(Slab)} << 48) ^
                             (sizeof(ZoneHeader) << 32) ^ (sizeof(BackendSlot) << 16) ^
                             sizeof(ZoneBackendConfig);

// Configuration blocks are replaced on every update: they stay in the slab's largest size
// class, whose freed blocks the next ones reuse, rather than take page runs.
static_assert(sizeof(ZoneBackendConfig) <= Slab::kMinBlock << (Slab::kClasses - 1));

// The writer lock over structural changes. A holder that died leaves the table as it was
// between two of its steps, each of which keeps the table consistent. When it cannot be taken
// (ENOTRECOVERABLE, see lockRobust) it is not held: callers check held() and change nothing.
class Zone::WriteLock {
 public:
  explicit WriteLock(ZoneHeader& h) : mutex_(h.write_lock), error_(lockRobust(mutex_)) {
    if (error_ != 0) {
      SM_ALERT("the shared zone's writer lock cannot be taken: %s", std::strerror(error_));
    }
  }
  ~WriteLock() {
    if (error_ == 0 && pthread_mutex_unlock(&mutex_) != 0) {
      SM_ALERT("the shared zone's writer lock cannot be released");
    }
  }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;

  bool held() const { return error_ == 0; }
  // The answer to a change that could not take the lock.
  ChangeResult failure() const {
    return {500, std::string("the shared zone's writer lock cannot be taken (") +
                     std::strerror(error_) + "); restart the server to start a clean zone"};
  }

 private:
  pthread_mutex_t& mutex_;
  int error_;
};

namespace {

bool copyString(char* out, size_t size, const std::string& in, const char* what,
                std::string& error) {
  if (in.size() >= size) {
    error = std::string(what) + " \"" + in + "\" is longer than " + std::to_string(size - 1) +
            " bytes";
    return false;
  }
  std::memcpy(out, in.c_str(), in.size() + 1);
  return true;
}

// Every live worker has applied generation `g` or later.
bool allWorkersSaw(const ZoneHeader& h, uint64_t g) {
  for (const ServerCounters& w : h.workers) {
    if (w.pid.load(std::memory_order_acquire) != 0 &&
        w.seen_generation.load(std::memory_order_acquire) < g) {
      return false;
    }
  }
  return true;
}

ChangeResult notFound(const std::string& upstream, const std::string& id) {
  return {404, "backend \"" + id + "\" not found in upstream \"" + upstream + "\""};
}

constexpr auto kRelaxed = std::memory_order_relaxed;

// Moves what `from` counted into `to` (a worker that exited, into the retired totals).
void move(std::atomic<uint64_t>& from, std::atomic<uint64_t>& to) {
  to.fetch_add(from.exchange(0, kRelaxed), kRelaxed);
}

void fold(BackendCounters& from, BackendCounters& to) {
  move(from.requests, to.requests);
  move(from.failures, to.failures);
  move(from.bytes_in, to.bytes_in);
  move(from.bytes_out, to.bytes_out);
  for (size_t i = 0; i < 6; ++i) move(from.responses_by_class[i], to.responses_by_class[i]);
  from.head_time.moveInto(to.head_time);
}

void add(const BackendCounters& c, BackendTotals& t) {
  t.requests += c.requests.load(kRelaxed);
  t.failures += c.failures.load(kRelaxed);
  t.bytes_in += c.bytes_in.load(kRelaxed);
  t.bytes_out += c.bytes_out.load(kRelaxed);
  for (size_t i = 0; i < 6; ++i) t.responses_by_class[i] += c.responses_by_class[i].load(kRelaxed);
  t.head_time.add(c.head_time);
}

void clear(BackendCounters& c) {
  c.requests.store(0, kRelaxed);
  c.failures.store(0, kRelaxed);
  c.bytes_in.store(0, kRelaxed);
  c.bytes_out.store(0, kRelaxed);
  for (auto& n : c.responses_by_class) n.store(0, kRelaxed);
  c.head_time.clear();
}

size_t pagesFor(size_t bytes) {
  return (bytes + Slab::kPageSize - 1) / Slab::kPageSize;
}

// Room for the configured backends and as many again added at run time, at least 256 when the
// zone can spare it. Every slot also costs an entry in each worker slot's row of counters
// (about 250 bytes, most of it the head-time histogram), so in a small zone (server.shm_size
// near its 1m minimum) the spare slots give way to the rows of kRowsKept worker slots; the
// configured backends always keep theirs (a zone too small for them fails on the first add).
size_t slotCapacityFor(size_t usable, size_t backends) {
  constexpr size_t kRowsKept = 12;  // 4 workers, in the 3 generations of a reload or upgrade
  auto bytesFor = [](size_t capacity) {
    size_t row = capacity * sizeof(BackendWorkerCounters);
    size_t pages = pagesFor(sizeof(ZoneHeader)) + pagesFor(capacity * sizeof(BackendSlot)) +
                   kRowsKept * pagesFor(row);
    return pages * Slab::kPageSize + capacity * sizeof(ZoneBackendConfig);
  };
  const size_t least = std::max<size_t>(1, backends * 2);
  size_t capacity = std::max<size_t>(256, least);
  while (capacity > least && bytesFor(capacity) > usable) capacity = std::max(least, capacity / 2);
  return capacity;
}

}  // namespace

void appendHealthEvent(HealthHistory& history, int64_t unix_ms, Health health,
                       std::string_view reason) {
  uint32_t n = history.count.load(kRelaxed);  // the only writer
  HealthEvent& e = history.events[n % kHealthHistory];
  e.unix_ms = unix_ms;
  e.health = static_cast<int32_t>(health);
  size_t len = std::min(reason.size(), sizeof(e.reason) - 1);
  std::memcpy(e.reason, reason.data(), len);
  e.reason[len] = '\0';
  history.count.store(n + 1, std::memory_order_release);
}

std::vector<HealthEvent> healthEvents(const HealthHistory& history) {
  uint32_t n = history.count.load(std::memory_order_acquire);
  uint32_t kept = std::min<uint32_t>(n, kHealthHistory);
  std::vector<HealthEvent> out;
  out.reserve(kept);
  for (uint32_t i = 0; i < kept; ++i) out.push_back(history.events[(n - 1 - i) % kHealthHistory]);
  // Events the writer reused while they were copied are dropped: event n + k goes where event
  // n + k - kHealthHistory was. (One it is writing at this instant is not counted yet: only a
  // reader in another process than the writer's can see it torn, the API reads in the writer's.)
  std::atomic_thread_fence(std::memory_order_acquire);
  uint32_t written = history.count.load(kRelaxed) - n;
  uint32_t spare = static_cast<uint32_t>(kHealthHistory) - kept;  // slots we did not copy
  uint32_t lost = written > spare ? written - spare : 0;
  out.resize(lost >= kept ? 0 : kept - lost);
  for (HealthEvent& e : out) e.reason[sizeof(e.reason) - 1] = '\0';
  return out;
}

bool toZoneConfig(const std::string& upstream, const BackendConfig& in,
                  const BackendAddress& address, ZoneBackendConfig& out, std::string& error) {
  out = ZoneBackendConfig{};
  if (!copyString(out.upstream, sizeof(out.upstream), upstream, "upstream name", error) ||
      !copyString(out.id, sizeof(out.id), in.id, "backend id", error) ||
      !copyString(out.name, sizeof(out.name), in.name, "backend name", error) ||
      !copyString(out.host, sizeof(out.host), in.host, "backend host", error) ||
      !copyString(out.scheme, sizeof(out.scheme), in.scheme, "scheme", error) ||
      !copyString(out.ca_file, sizeof(out.ca_file), in.ca_file, "backend ca_file", error) ||
      !copyString(out.health_path, sizeof(out.health_path), in.health_check.path,
                  "health_check path", error)) {
    return false;
  }
  out.port = in.port;
  out.weight = in.weight;
  out.max_fails = in.max_fails;
  out.keepalive = in.keepalive;
  out.max_conn = in.max_conn;
  out.fail_timeout_ms = in.fail_timeout.count();
  out.slow_start_ms = in.slow_start.count();
  out.active = in.active;
  out.tls_verify = in.tls_verify;
  out.health_enabled = in.health_check.enabled;
  out.health_interval_ms = in.health_check.interval.count();
  out.health_timeout_ms = in.health_check.timeout.count();
  out.health_failures = in.health_check.failures;
  out.health_successes = in.health_check.successes;
  if (address.length == 0 || address.length > sizeof(out.address)) {
    error = "backend host \"" + in.host + "\" has no resolved address";
    return false;
  }
  out.address = address.storage;
  out.address_len = address.length;
  return true;
}

BackendConfig fromZoneConfig(const ZoneBackendConfig& in) {
  BackendConfig out;
  out.id = in.id;
  out.name = in.name;
  out.host = in.host;
  out.port = in.port;
  out.weight = in.weight;
  out.scheme = in.scheme;
  out.active = in.active;
  out.max_conn = in.max_conn;
  out.max_fails = in.max_fails;
  out.keepalive = in.keepalive;
  out.fail_timeout = Duration(in.fail_timeout_ms);
  out.slow_start = Duration(in.slow_start_ms);
  out.tls_verify = in.tls_verify;
  out.ca_file = in.ca_file;
  out.health_check.enabled = in.health_enabled;
  out.health_check.path = in.health_path;
  out.health_check.interval = Duration(in.health_interval_ms);
  out.health_check.timeout = Duration(in.health_timeout_ms);
  out.health_check.failures = in.health_failures;
  out.health_check.successes = in.health_successes;
  return out;
}

std::unique_ptr<Zone> Zone::create(size_t size, size_t backend_capacity, std::string& error) {
  std::unique_ptr<Zone> zone(new Zone());
  if (!zone->memory_.map(size, error)) return nullptr;
  char* base = static_cast<char*>(zone->memory_.data());
  Slab* slab = Slab::create(base, size, error);
  if (!slab) return nullptr;
  void* h = slab->allocate(sizeof(ZoneHeader));
  size_t capacity = slotCapacityFor(slab->totalPages() * Slab::kPageSize, backend_capacity);
  void* slots = slab->allocate(capacity * sizeof(BackendSlot));
  if (!h || !slots) {
    error = "server.shm_size (" + std::to_string(size) + " bytes) is too small for " +
            std::to_string(backend_capacity) + " backends";
    return nullptr;
  }
  ZoneHeader* header = new (h) ZoneHeader();
  header->layout = kLayout;
  header->slab = slab;
  if (int rc = initRobustMutex(header->write_lock); rc != 0) {
    error =
        std::string("the shared zone's writer lock cannot be initialized: ") + std::strerror(rc);
    return nullptr;
  }
  header->slot_capacity = capacity;
  header->slots = new (slots) BackendSlot[capacity];
  slab->setRoot(header);
  zone->header_ = header;
  return zone;
}

std::unique_ptr<Zone> Zone::inherit(int fd, uintptr_t address, std::string& error) {
  std::unique_ptr<Zone> zone(new Zone());
  if (!zone->memory_.attach(fd, address, error)) return nullptr;
  // Nothing in the bytes is trusted before it is checked to lie inside the mapping.
  char* begin = static_cast<char*>(zone->memory_.data());
  char* end = begin + zone->memory_.size();
  auto* header = zone->memory_.size() >= sizeof(Slab)
                     ? static_cast<ZoneHeader*>(Slab::at(begin)->root())
                     : nullptr;
  bool inside = header && reinterpret_cast<char*>(header) >= begin + sizeof(Slab) &&
                reinterpret_cast<char*>(header) + sizeof(ZoneHeader) <= end;
  if (!inside || header->magic != ZoneHeader::kMagic || header->layout != kLayout) {
    error = "the inherited zone was laid out by another version";
    return nullptr;
  }
  zone->header_ = header;
  return zone;
}

Zone::~Zone() = default;

ServerCounters* Zone::workers() const { return header_->workers; }

size_t Zone::workerSlotLimit() const {
  return header_->worker_slot_limit.load(std::memory_order_acquire);
}

const std::atomic<uint32_t>* Zone::workerSlotLimitPtr() const {
  return &header_->worker_slot_limit;
}

int Zone::claimWorkerSlot(pid_t owner) {
  for (size_t i = 0; i < kWorkerSlots; ++i) {
    ServerCounters& c = header_->workers[i];
    uint32_t free = 0;
    if (!c.claimed.compare_exchange_strong(free, 1, std::memory_order_acq_rel)) continue;
    if (!ensureBackendRow(i)) {
      c.claimed.store(0, std::memory_order_release);  // a slot that has a row may still do
      continue;
    }
    c.active_connections.store(0, kRelaxed);
    c.accepted.store(0, kRelaxed);
    c.requests.store(0, kRelaxed);
    c.retries.store(0, kRelaxed);
    c.retries_refused.store(0, kRelaxed);
    for (auto& n : c.responses_by_class) n.store(0, kRelaxed);
    c.bytes_in.store(0, kRelaxed);
    c.bytes_out.store(0, kRelaxed);
    c.request_latency.clear();
    c.seen_generation.store(0, kRelaxed);
    c.seen_tls_serial.store(0, kRelaxed);
    c.failed_tls_serial.store(0, kRelaxed);
    c.ready.store(0, kRelaxed);
    c.pid.store(owner, std::memory_order_release);  // reclaim waits for it from now on
    uint32_t limit = header_->worker_slot_limit.load(std::memory_order_acquire);
    while (limit < i + 1 && !header_->worker_slot_limit.compare_exchange_weak(
                                limit, static_cast<uint32_t>(i + 1), std::memory_order_acq_rel)) {
    }
    return static_cast<int>(i);
  }
  return -1;
}

void Zone::releaseWorkerSlot(size_t worker) {
  ServerCounters& c = header_->workers[worker];
  c.pid.store(0, std::memory_order_release);
  ServerCounters& r = header_->retired_workers;
  r.accepted.fetch_add(c.accepted.exchange(0, kRelaxed), kRelaxed);
  r.requests.fetch_add(c.requests.exchange(0, kRelaxed), kRelaxed);
  r.retries.fetch_add(c.retries.exchange(0, kRelaxed), kRelaxed);
  r.retries_refused.fetch_add(c.retries_refused.exchange(0, kRelaxed), kRelaxed);
  r.bytes_in.fetch_add(c.bytes_in.exchange(0, kRelaxed), kRelaxed);
  r.bytes_out.fetch_add(c.bytes_out.exchange(0, kRelaxed), kRelaxed);
  for (size_t i = 0; i < 6; ++i) {
    r.responses_by_class[i].fetch_add(c.responses_by_class[i].exchange(0, kRelaxed), kRelaxed);
  }
  c.request_latency.moveInto(r.request_latency);
  c.active_connections.store(0, kRelaxed);  // its connections died with it
  foldBackendRow(worker);
  c.ready.store(0, kRelaxed);
  c.claimed.store(0, std::memory_order_release);  // free for the next worker
}

const ServerCounters& Zone::retiredCounters() const { return header_->retired_workers; }

// A row is allocated once per worker slot and kept when the slot is released, so a reload does
// not churn the slab. Its size is rounded up to whole cache lines; blocks of 64 bytes and more
// start on a line (slab classes are aligned to their size, page runs to a page), so the row
// shares no line with another worker's row.
bool Zone::ensureBackendRow(size_t worker) {
  if (header_->backend_rows[worker].load(std::memory_order_acquire)) return true;
  size_t bytes = header_->slot_capacity * sizeof(BackendWorkerCounters);
  bytes = (bytes + kCacheLine - 1) / kCacheLine * kCacheLine;
  void* block = header_->slab->allocate(bytes);
  if (!block) return false;
  auto* row = new (block) BackendWorkerCounters[header_->slot_capacity];
  header_->backend_rows[worker].store(row, std::memory_order_release);
  return true;
}

// The worker of slot `worker` is gone: its share of each backend's active connections is taken
// back out and its counts move to the backend's retired totals. Its row is left zeroed.
void Zone::foldBackendRow(size_t worker) {
  BackendWorkerCounters* row = header_->backend_rows[worker].load(std::memory_order_acquire);
  if (!row) return;
  for (size_t i = 0; i < header_->slot_capacity; ++i) {
    BackendSlot& s = header_->slots[i];
    int32_t n = row[i].active.exchange(0, std::memory_order_acq_rel);
    if (n != 0) s.runtime.active_connections.fetch_sub(n, std::memory_order_acq_rel);
    fold(row[i].counters, s.retired);
  }
}

BackendWorkerCounters* Zone::backendCounters(size_t worker) const {
  return header_->backend_rows[worker].load(std::memory_order_acquire);
}

std::vector<HealthEvent> Zone::healthHistory(size_t index) const {
  return healthEvents(header_->slots[index].health_history);
}

BackendTotals Zone::backendTotals(size_t index) const {
  BackendTotals totals;
  add(header_->slots[index].retired, totals);
  size_t limit = workerSlotLimit();
  for (size_t w = 0; w < limit; ++w) {
    const BackendWorkerCounters* row = backendCounters(w);
    if (row) add(row[index].counters, totals);
  }
  return totals;
}

uint64_t Zone::generation() const { return header_->generation.load(std::memory_order_acquire); }

size_t Zone::slotCapacity() const { return header_->slot_capacity; }

BackendSlot* Zone::slot(size_t index) const { return &header_->slots[index]; }

Slab& Zone::slab() const { return *header_->slab; }

void Zone::forEachLive(const std::function<void(size_t, BackendSlot&)>& fn) const {
  for (size_t i = 0; i < header_->slot_capacity; ++i) {
    BackendSlot& s = header_->slots[i];
    if (s.state.load(std::memory_order_acquire) == static_cast<uint32_t>(SlotState::kLive)) {
      fn(i, s);
    }
  }
}

BackendSlot* Zone::find(const std::string& upstream, const std::string& id) const {
  BackendSlot* found = nullptr;
  forEachLive([&](size_t, BackendSlot& s) {
    const ZoneBackendConfig* c = s.config.load(std::memory_order_acquire);
    if (!found && upstream == c->upstream && id == c->id) found = &s;
  });
  return found;
}

void Zone::publish() { header_->generation.fetch_add(1, std::memory_order_acq_rel); }

void Zone::retire(ZoneBackendConfig* block) {
  ZoneHeader& h = *header_;
  if (h.retired_count == ZoneHeader::kMaxRetired) reclaimLocked();
  if (h.retired_count == ZoneHeader::kMaxRetired) return;  // leak one block rather than crash
  h.retired[h.retired_count++] = {block, h.generation.load(std::memory_order_relaxed)};
}

ChangeResult Zone::validate(const std::string& upstream, const BackendConfig& b) const {
  if (upstream.empty()) return {400, "upstream: must not be empty"};
  if (b.id.empty()) return {400, "backend.id: must not be empty"};
  if (b.host.empty()) return {400, "backend.host: must not be empty"};
  if (b.port < 1 || b.port > 65535) {
    return {400, "backend.port: " + std::to_string(b.port) + " is out of range 1..65535"};
  }
  if (b.weight < 1 || b.weight > 10000) {
    return {400, "backend.weight: " + std::to_string(b.weight) + " is out of range 1..10000"};
  }
  if (b.scheme != "http" && b.scheme != "https") {
    return {400, "backend.scheme: must be \"http\" or \"https\""};
  }
  if (b.max_fails < 0) return {400, "backend.max_fails: must not be negative"};
  if (b.keepalive < 0) return {400, "backend.keepalive: must not be negative"};
  if (b.health_check.failures < 1 || b.health_check.successes < 1) {
    return {400, "backend.health_check: failures and successes must be at least 1"};
  }
  return {200, ""};
}

ZoneBackendConfig* Zone::newBlock(const std::string& upstream, const BackendConfig& config,
                                  const BackendAddress& address, ChangeResult& failure) {
  auto* block = static_cast<ZoneBackendConfig*>(header_->slab->allocate(sizeof(ZoneBackendConfig)));
  if (!block) {
    failure = {507, "the shared zone is full (raise server.shm_size)"};
    return nullptr;
  }
  std::string error;
  if (!toZoneConfig(upstream, config, address, *block, error)) {
    header_->slab->free(block);
    failure = {400, error};
    return nullptr;
  }
  return block;
}

ChangeResult Zone::addBackend(const std::string& upstream, const BackendConfig& config,
                              const BackendAddress& address, Arrival arrival) {
  ChangeResult v = validate(upstream, config);
  if (!v.ok()) return v;
  WriteLock lock(*header_);
  if (!lock.held()) return lock.failure();
  if (find(upstream, config.id)) {
    return {409, "backend \"" + config.id + "\" already exists in upstream \"" + upstream + "\""};
  }
  ChangeResult failure;
  ZoneBackendConfig* block = newBlock(upstream, config, address, failure);
  if (!block) return failure;
  for (size_t i = 0; i < header_->slot_capacity; ++i) {
    BackendSlot& s = header_->slots[i];
    if (s.state.load(std::memory_order_acquire) != static_cast<uint32_t>(SlotState::kFree)) {
      continue;
    }
    // Fresh runtime state: a reused slot must not inherit its predecessor's counters.
    s.runtime.~BackendState();
    new (&s.runtime) BackendState();
    s.health.~HealthRecord();
    new (&s.health) HealthRecord();
    s.health_history.~HealthHistory();
    new (&s.health_history) HealthHistory();
    if (arrival == Arrival::kComeback) s.runtime.ramp_start_ms.store(monotonicMs(), kRelaxed);
    // Every worker let go of the previous tenant (reclaim), so no row entry is being written.
    clear(s.retired);
    for (size_t w = 0; w < kWorkerSlots; ++w) {
      if (BackendWorkerCounters* row = backendCounters(w)) {
        clear(row[i].counters);
        row[i].active.store(0, kRelaxed);
      }
    }
    s.config.store(block, std::memory_order_release);
    s.incarnation.fetch_add(1, std::memory_order_acq_rel);
    s.state.store(static_cast<uint32_t>(SlotState::kLive), std::memory_order_release);
    publish();
    return {201, "backend \"" + config.id + "\" added to upstream \"" + upstream + "\""};
  }
  header_->slab->free(block);
  return {507, "the backend table is full (" + std::to_string(header_->slot_capacity) +
                   " backends)"};
}

ChangeResult Zone::check(const std::string& upstream, const BackendConfig& config,
                         const BackendAddress& address) const {
  ChangeResult v = validate(upstream, config);
  if (!v.ok()) return v;
  ZoneBackendConfig scratch;
  std::string error;
  if (!toZoneConfig(upstream, config, address, scratch, error)) return {400, error};
  return {200, ""};
}

size_t Zone::freeSlots() const {
  size_t n = 0;
  for (size_t i = 0; i < header_->slot_capacity; ++i) {
    n += header_->slots[i].state.load(std::memory_order_acquire) ==
         static_cast<uint32_t>(SlotState::kFree);
  }
  return n;
}

ChangeResult Zone::removeBackend(const std::string& upstream, const std::string& id) {
  WriteLock lock(*header_);
  if (!lock.held()) return lock.failure();
  BackendSlot* s = find(upstream, id);
  if (!s) return notFound(upstream, id);
  s->state.store(static_cast<uint32_t>(SlotState::kRemoved), std::memory_order_release);
  publish();
  s->removed_at.store(generation(), std::memory_order_release);
  return {200, "backend \"" + id + "\" removed from upstream \"" + upstream + "\""};
}

ChangeResult Zone::updateBackend(const std::string& upstream, const BackendConfig& config,
                                 const BackendAddress& address, bool reset_health) {
  ChangeResult v = validate(upstream, config);
  if (!v.ok()) return v;
  WriteLock lock(*header_);
  if (!lock.held()) return lock.failure();
  BackendSlot* s = find(upstream, config.id);
  if (!s) return notFound(upstream, config.id);
  ChangeResult failure;
  ZoneBackendConfig* block = newBlock(upstream, config, address, failure);
  if (!block) return failure;
  if (reset_health) {
    s->runtime.health.store(static_cast<int>(Health::kUnknown), std::memory_order_release);
    s->health.consecutive_failures.store(0, std::memory_order_relaxed);
    s->health.consecutive_successes.store(0, std::memory_order_relaxed);
    s->health.last_check_unix_ms.store(0, std::memory_order_relaxed);
    s->health.last_passed.store(0, std::memory_order_relaxed);
    s->health.reason[0] = '\0';
  }
  // Readers copy the block they loaded; the old one is freed once no worker can hold it.
  ZoneBackendConfig* old = s->config.exchange(block, std::memory_order_acq_rel);
  // Before the generation: a worker that sees the backend active sees its ramp.
  if (!old->active && config.active) s->runtime.ramp_start_ms.store(monotonicMs(), kRelaxed);
  publish();
  retire(old);
  return {200, "backend \"" + config.id + "\" updated in upstream \"" + upstream + "\""};
}

ChangeResult Zone::disconnectBackend(const std::string& upstream, const std::string& id) {
  WriteLock lock(*header_);
  if (!lock.held()) return lock.failure();
  BackendSlot* s = find(upstream, id);
  if (!s) return notFound(upstream, id);
  auto* block = static_cast<ZoneBackendConfig*>(header_->slab->allocate(sizeof(ZoneBackendConfig)));
  if (!block) return {507, "the shared zone is full (raise server.shm_size)"};
  // A copy of the block as it is (nothing lost in a round trip through BackendConfig).
  ZoneBackendConfig* old = s->config.load(std::memory_order_acquire);
  *block = *old;
  block->active = false;
  s->config.store(block, std::memory_order_release);
  // Before the generation: a worker that sees the new generation sees the new epoch.
  s->runtime.disconnect_epoch.fetch_add(1, std::memory_order_release);
  publish();
  retire(old);
  return {200, "backend \"" + id + "\" disconnected from upstream \"" + upstream + "\""};
}

ChangeResult Zone::recordReport(const std::string& upstream, const std::string& id,
                                const PerformanceReport& r, int64_t now_ms) {
  for (auto [name, value] : {std::pair{"cpu_usage", r.cpu_usage},
                             std::pair{"memory_usage", r.memory_usage},
                             std::pair{"disk_usage", r.disk_usage}}) {
    if (!(value >= 0 && value <= 100)) {
      return {400, std::string("performance.") + name + ": must be between 0 and 100"};
    }
  }
  for (auto [name, value] : {std::pair{"load_avg_1", r.load_avg_1},
                             std::pair{"load_avg_5", r.load_avg_5},
                             std::pair{"load_avg_15", r.load_avg_15}}) {
    if (!(value >= 0 && value < 1e6)) {
      return {400, std::string("performance.") + name + ": must be a non-negative number"};
    }
  }
  BackendSlot* s = find(upstream, id);
  if (!s) return notFound(upstream, id);
  BackendState& st = s->runtime;
  st.report_cpu.store(static_cast<uint32_t>(r.cpu_usage * 100), std::memory_order_relaxed);
  st.report_memory.store(static_cast<uint32_t>(r.memory_usage * 100), std::memory_order_relaxed);
  st.report_load.store(static_cast<uint32_t>(r.load_avg_1 * 100), std::memory_order_relaxed);
  st.report_time_ms.store(now_ms, std::memory_order_release);
  return {200, "report recorded for backend \"" + id + "\""};
}

void Zone::setLifecycleError(const std::string& why) {
  char* out = header_->lifecycle_error;
  size_t n = std::min(why.size(), sizeof(header_->lifecycle_error) - 1);
  std::memcpy(out, why.data(), n);
  out[n] = '\0';
}

std::string Zone::lifecycleError() const {
  const char* in = header_->lifecycle_error;
  return std::string(in, strnlen(in, sizeof(header_->lifecycle_error)));
}

namespace {

void storeTicketKey(TicketKeySlot& slot, const ZoneTicketKey& key) {
  uint64_t words[kTicketKeyWords];
  std::memcpy(words, &key, sizeof(words));
  for (size_t i = 0; i < kTicketKeyWords; ++i) slot.words[i].store(words[i], kRelaxed);
}

ZoneTicketKey loadTicketKey(const TicketKeySlot& slot) {
  uint64_t words[kTicketKeyWords];
  for (size_t i = 0; i < kTicketKeyWords; ++i) words[i] = slot.words[i].load(kRelaxed);
  ZoneTicketKey key;
  std::memcpy(&key, words, sizeof(key));
  return key;
}

}  // namespace

bool Zone::rotateTicketKey(const ZoneTicketKey& fresh, int64_t interval_s) {
  WriteLock lock(*header_);
  if (!lock.held()) return false;
  TicketKeyRing& ring = header_->ticket_keys;
  const uint64_t current = ring.serial.load(kRelaxed);  // written under this lock only
  if (current != 0 &&
      fresh.created_unix - loadTicketKey(ring.slots[current % kTicketKeySlots]).created_unix <
          interval_s) {
    return false;  // another master rotated meanwhile (a binary upgrade), or it is not due
  }
  const uint64_t next = current + 1;
  ring.writing.store(next, kRelaxed);
  std::atomic_thread_fence(std::memory_order_release);  // `writing` before the slot's bytes
  storeTicketKey(ring.slots[next % kTicketKeySlots], fresh);
  ring.serial.store(next, std::memory_order_release);
  return true;
}

uint64_t Zone::ticketKeySerial() const {
  return header_->ticket_keys.serial.load(std::memory_order_acquire);
}

bool Zone::ticketKey(uint64_t n, ZoneTicketKey& out) const {
  const TicketKeyRing& ring = header_->ticket_keys;
  if (n == 0 || n > ring.serial.load(std::memory_order_acquire)) return false;
  out = loadTicketKey(ring.slots[n % kTicketKeySlots]);
  std::atomic_thread_fence(std::memory_order_acquire);  // the copy before `writing`
  return ring.writing.load(kRelaxed) < n + kTicketKeySlots;
}

uint64_t Zone::tlsSerial() const { return header_->tls_serial.load(std::memory_order_acquire); }

uint64_t Zone::bumpTlsSerial() {
  const uint64_t serial = header_->tls_serial.fetch_add(1, std::memory_order_acq_rel) + 1;
  publish();
  return serial;
}

// Characters as relaxed atomics: the API may read while a worker writes the next failure.
void Zone::setTlsFailure(size_t slot, uint64_t serial, const std::string& why) {
  ServerCounters& c = header_->workers[slot];
  const size_t n = std::min(why.size(), std::size(c.tls_error) - 1);
  for (size_t i = 0; i < n; ++i) c.tls_error[i].store(why[i], kRelaxed);
  c.tls_error[n].store('\0', kRelaxed);
  c.failed_tls_serial.store(serial, std::memory_order_release);
}

std::string Zone::tlsFailure(size_t slot, uint64_t serial) const {
  const ServerCounters& c = header_->workers[slot];
  if (c.failed_tls_serial.load(std::memory_order_acquire) < serial) return {};
  std::string why;
  for (const std::atomic<char>& ch : c.tls_error) {
    const char x = ch.load(kRelaxed);
    if (x == '\0') break;
    why += x;
  }
  return why;
}

size_t Zone::wakeWorkers() const {
  size_t woken = 0;
  const size_t limit = workerSlotLimit();
  for (size_t i = 0; i < limit; ++i) {
    const pid_t pid = header_->workers[i].pid.load(std::memory_order_acquire);
    if (pid <= 0) continue;
    if (kill(pid, kZoneChangedSignal) == 0) {
      ++woken;
    } else if (errno != ESRCH) {
      SM_WARN("cannot wake worker %d after a zone change: %s", static_cast<int>(pid),
              std::strerror(errno));
    }
  }
  return woken;
}

void Zone::reclaim() {
  WriteLock lock(*header_);
  if (lock.held()) reclaimLocked();
}

void Zone::reclaimLocked() {
  ZoneHeader& h = *header_;
  size_t kept = 0;
  for (size_t i = 0; i < h.retired_count; ++i) {
    if (allWorkersSaw(h, h.retired[i].generation)) {
      h.slab->free(h.retired[i].block);
    } else {
      h.retired[kept++] = h.retired[i];
    }
  }
  h.retired_count = kept;
  for (size_t i = 0; i < h.slot_capacity; ++i) {
    BackendSlot& s = h.slots[i];
    if (s.state.load(std::memory_order_acquire) != static_cast<uint32_t>(SlotState::kRemoved)) {
      continue;
    }
    if (!allWorkersSaw(h, s.removed_at.load(std::memory_order_acquire)) ||
        s.runtime.active_connections.load(std::memory_order_acquire) > 0) {
      continue;
    }
    h.slab->free(s.config.exchange(nullptr, std::memory_order_acq_rel));
    s.state.store(static_cast<uint32_t>(SlotState::kFree), std::memory_order_release);
  }
}

}  // namespace speedmimi::core
