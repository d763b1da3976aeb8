// Backend: address resolution, availability and passive health (DESIGN §6).
//
// Concurrency: BackendState is shared by every worker. All accesses are relaxed atomics and the
// passive-failure bookkeeping is a sequence of separate loads and stores, not a transaction.
// Two workers recording failures at the same moment may both open a window or both reset the
// count, so a backend can be taken out one failure early or late. That race is benign: passive
// checks are a heuristic, and a lock per failed request is not worth exactness.
#include "upstream/backend.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

namespace speedmimi::upstream {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

// Fills `out` with the numeric address `host` (IPv4 or IPv6 text) and `port`. False when `host`
// is not a numeric address.
bool parseNumeric(const std::string& host, int port, sockaddr_storage* out, socklen_t* len) {
  sockaddr_in v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(out, &v4, sizeof(v4));
    *len = sizeof(v4);
    return true;
  }
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(out, &v6, sizeof(v6));
    *len = sizeof(v6);
    return true;
  }
  return false;
}

// Name lookup at configuration time (blocking): the first address getaddrinfo returns.
bool lookUp(const std::string& host, int port, sockaddr_storage* out, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &result) != 0 || result == nullptr) {
    return false;
  }
  const bool fits = result->ai_addrlen <= sizeof(sockaddr_storage);
  if (fits) {
    std::memcpy(out, result->ai_addr, result->ai_addrlen);
    *len = result->ai_addrlen;
  }
  freeaddrinfo(result);
  return fits;
}

// "127.0.0.1:8081" or "[::1]:8081"; empty if the family is neither IPv4 nor IPv6.
std::string formatAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    if (inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text)) == nullptr) return {};
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text)) == nullptr) return {};
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return {};
}

}  // namespace

Backend::Backend(core::BackendConfig config, BackendState* state)
    : config_(std::move(config)),
      state_(state),
      own_counters_(std::make_unique<core::BackendWorkerCounters>()),
      counters_(own_counters_.get()) {}

bool Backend::resolve() {
  addr_ = {};
  addr_len_ = 0;
  address_text_.clear();
  if (config_.host.empty() || config_.port < 1 || config_.port > 65535) return false;
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!parseNumeric(config_.host, config_.port, &addr, &len) &&
      !lookUp(config_.host, config_.port, &addr, &len)) {
    return false;
  }
  std::string text = formatAddress(addr);
  if (text.empty()) return false;
  addr_ = addr;
  addr_len_ = len;
  address_text_ = std::move(text);
  return true;
}

bool Backend::setAddress(const sockaddr_storage& addr, socklen_t len) {
  std::string text = formatAddress(addr);
  if (text.empty()) return false;
  addr_ = addr;
  addr_len_ = len;
  address_text_ = std::move(text);
  return true;
}

bool Backend::available(int64_t now_ms) const {
  if (!config_.active) return false;
  if (state_->health.load(kRelaxed) == static_cast<int>(Health::kDown)) return false;
  if (!solo_ && now_ms < state_->passive_down_until_ms.load(kRelaxed)) return false;
  if (config_.max_conn == 0) return true;
  const int64_t active = state_->active_connections.load(kRelaxed);
  return active < 0 || static_cast<uint64_t>(active) < config_.max_conn;
}

// nginx semantics: the failure window opens at the first failure and lasts fail_timeout; the
// max_fails-th failure inside it takes the backend out for fail_timeout and closes the window.
// max_fails 0 disables passive checks (the failure is still counted in the statistics).
void Backend::recordFailure(int64_t now_ms) {
  add(counters_->counters.failures, uint64_t{1});
  if (config_.max_fails <= 0) return;
  const int64_t timeout_ms = config_.fail_timeout.count();
  int fails = state_->passive_fails.load(kRelaxed);
  if (fails == 0 || now_ms - state_->passive_window_start_ms.load(kRelaxed) >= timeout_ms) {
    state_->passive_window_start_ms.store(now_ms, kRelaxed);
    state_->passive_fails.store(1, kRelaxed);
    fails = 1;
  } else {
    fails = state_->passive_fails.fetch_add(1, kRelaxed) + 1;
  }
  if (fails >= config_.max_fails) {
    state_->passive_down_until_ms.store(now_ms + timeout_ms, kRelaxed);
    state_->passive_fails.store(0, kRelaxed);
  }
}

void Backend::recordSuccess() {
  // Load first: successes are the common case and a store would bounce the cache line between
  // workers for nothing.
  if (state_->passive_fails.load(kRelaxed) != 0) state_->passive_fails.store(0, kRelaxed);
}

namespace {

uint64_t clampedUs(std::chrono::microseconds sample) {
  return static_cast<uint64_t>(
      std::clamp<int64_t>(sample.count(), 0, Backend::kMaxLatencySample.count()));
}

}  // namespace

// A load and a store rather than a compare-and-swap loop: two workers sampling at once may lose
// one sample, which an average over many does not notice.
void Backend::recordLatency(std::chrono::microseconds sample) {
  const uint64_t us = clampedUs(sample);
  const uint64_t old = state_->latency_us.load(kRelaxed);
  state_->latency_us.store(old == core::kLatencyUnmeasured ? us : (old * 4 + us) / 5, kRelaxed);
}

void Backend::recordResponseHead(int status, std::chrono::microseconds sample) {
  recordLatency(sample);
  core::BackendCounters& c = counters_->counters;
  const int cls = status / 100;
  if (cls >= 0 && cls <= 5) add(c.responses_by_class[cls], uint64_t{1});
  c.head_time.record(clampedUs(sample));
}

std::optional<std::chrono::microseconds> Backend::latency() const {
  const uint64_t us = state_->latency_us.load(kRelaxed);
  if (us == core::kLatencyUnmeasured) return std::nullopt;
  return std::chrono::microseconds(static_cast<int64_t>(us));
}

bool Backend::reconfigure(core::BackendConfig config) {
  const bool transport = config.scheme != config_.scheme ||
                         config.tls_verify != config_.tls_verify ||
                         config.ca_file != config_.ca_file;
  config_ = std::move(config);
  if (transport) client_tls_.reset();
  return transport;
}

const event::ClientTls* Backend::clientTls(const std::string& prefix, std::string& error) const {
  if (client_tls_) return client_tls_.get();
  event::ClientTlsOptions options;
  options.verify = config_.tls_verify;
  // An absolute ca_file stays as it is (path's operator/).
  if (!config_.ca_file.empty()) options.ca_file = std::filesystem::path(prefix) / config_.ca_file;
  try {
    client_tls_ = event::ClientTls::load(options);
  } catch (const event::TlsError& e) {
    error = e.file().empty() ? e.what() : e.file() + ": " + e.what();
    return nullptr;
  }
  return client_tls_.get();
}

}  // namespace speedmimi::upstream
