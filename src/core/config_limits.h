// The ranges of configuration values, shared by every reader of them: the YAML reader and the
// cross-checks (core/config.cc) and the JSON reader of a backend (core/backend_json.cc, for the
// API and the state file), so that a value refused in one is refused in all.
#pragma once

#include <cstdint>
#include <limits>

#include "core/config_types.h"

namespace speedmimi::core::limits {

constexpr int64_t kMinPort = 1;
constexpr int64_t kMaxPort = 65535;
constexpr int64_t kMinWeight = 1;
constexpr int64_t kMaxWeight = 10000;
constexpr int64_t kMaxRetries = 10;
constexpr int64_t kMaxRetryBudget = 100;  // percent
constexpr int64_t kMaxWorkers = 256;  // core::kMaxWorkers: the zone has slots for 3 x this
constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();  // max_conn
constexpr int64_t kMaxFails = 1000;
constexpr int64_t kMaxCheckCount = 1000;    // health_check.failures and .successes, from 1
constexpr int64_t kMaxKeepalive = 1000000;  // idle pooled connections per backend and worker
constexpr Duration kPositive{1};            // the smallest timeout that is not "immediately"

}  // namespace speedmimi::core::limits
