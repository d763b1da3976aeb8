// The configured backends in the shared zone (DESIGN §3): loaded at start, and brought in line
// with a new configuration on reload, when the zone keeps every kept backend's runtime state.
// Runs in the master (and in -t), which may block on name lookups.
#pragma once

#include <string>
#include <vector>

#include "core/config_types.h"
#include "core/zone.h"

namespace speedmimi::upstream {

// Resolves a backend's host: a numeric address, or a (blocking) name lookup. False with `error`.
bool resolveBackend(const core::BackendConfig& backend, core::BackendAddress& out,
                    std::string& error);

// What a new configuration does to one backend, matched by (upstream, id).
struct BackendChange {
  enum class Action {
    kKeep,         // same settings
    kUpdate,       // settings changed; health, counters, EWMA and report kept
    kUpdateHealth, // host, port or health check changed: its health starts again as unknown
    kAdd,
    kRemove,
  };
  Action action;
  std::string upstream;
  core::BackendConfig config;  // the new settings (kRemove: the old ones)
};

// A backend as it is now: its upstream and settings.
struct CurrentBackend {
  std::string upstream;
  core::BackendConfig config;
};

// Compares what the zone holds with `next`. Pure; the order is removals, then the backends of
// `next` in file order.
std::vector<BackendChange> planBackendChanges(const std::vector<CurrentBackend>& current,
                                              const core::Config& next);

// The zone's live backends, in slot order.
std::vector<CurrentBackend> currentBackends(const core::Zone& zone);

// Resolves and checks every backend of `next` first (a name that does not resolve, a value the
// zone cannot hold, more new backends than free slots: the whole change fails and nothing is
// changed), then applies planBackendChanges() to the zone. False with `error` (only a slab
// exhausted midway can still fail after the first change: what was applied stays, and is
// valid). Added backends enter as `arrival` says: kAtStart when the server starts with a
// clean zone, kComeback on a reload (their slow start begins).
bool syncBackends(core::Zone& zone, const core::Config& next, std::string& error,
                  std::vector<BackendChange>* applied = nullptr,
                  core::Zone::Arrival arrival = core::Zone::Arrival::kComeback);

}  // namespace speedmimi::upstream
