// The load-balancing interface (DESIGN §5). One implementation per file (lb_*.cc), created by
// name through the explicit table in balancer_factory.cc. A balancer instance belongs to one
// worker and one (route, protocol class); it reads the shared counters in BackendState, so its
// decisions account for every worker's connections.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/cidr.h"
#include "upstream/backend.h"

namespace speedmimi::upstream {

// Injected randomness, so tests can assert exact sequences.
class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t next() = 0;  // uniformly distributed 64 bits
};

// xorshift64* seeded from the clock and pid; the default in production.
class DefaultRandom final : public Random {
 public:
  DefaultRandom();
  explicit DefaultRandom(uint64_t seed) : state_(seed ? seed : 1) {}
  uint64_t next() override;

 private:
  uint64_t state_;
};

struct PickContext {
  core::IpAddress client_ip;  // the real client IP (ip_hash)
  int64_t now_ms = 0;         // steady clock, for availability and report freshness
  // Backends already tried for this request (retries); never picked again.
  std::span<const Backend* const> exclude;
};

class Balancer {
 public:
  virtual ~Balancer() = default;

  // Sets the backends to choose from (configuration time and after each structural change).
  // The pointers stay valid until the next reset().
  virtual void reset(std::span<Backend* const> backends) = 0;

  // The backend for this request, or nullptr when none is available (503).
  virtual Backend* pick(const PickContext& ctx) = 0;
};

// Creates the balancer named `name` (DESIGN §5 names and the alias "performance"), or nullptr
// when the name is unknown. `random` must outlive the balancer.
std::unique_ptr<Balancer> makeBalancer(std::string_view name, Random& random);
bool isKnownBalancer(std::string_view name);
// Every name makeBalancer() accepts (for configuration validation).
std::vector<std::string> balancerNames();

// Helper for implementations: may `b` be picked under `ctx`?
bool isCandidate(const Backend& b, const PickContext& ctx);

}  // namespace speedmimi::upstream
