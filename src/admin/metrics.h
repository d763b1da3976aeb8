// GET /metrics (DESIGN §9): the shared zone's counters in the Prometheus text exposition format
// 0.0.4. Names follow Prometheus's conventions (speedmimi_ prefix, _total for counters, base
// units seconds and bytes); per-backend series carry the labels `upstream` and `backend`, per
// status class `code` ("2xx"...).
//
// renderMetrics is a pure function over the zone and MetricsInfo, so that tests give it a zone
// with known counters and compare lines. Any process may call it; the control process does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/histogram.h"
#include "core/zone.h"

namespace speedmimi::admin {

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// What the exposition says beyond the zone's counters.
struct MetricsInfo {
  std::string version;        // speedmimi_build_info{version=...}
  uint64_t generation = 0;    // the master's generation the answering process belongs to
  int64_t start_unix_ms = 0;  // when this master started
  int64_t now_ms = 0;         // core::monotonicMs(), for passive health
};

std::string renderMetrics(const core::Zone& zone, const MetricsInfo& info);

// The building blocks, exposed for tests.

// A label value as the format escapes it: backslash, double quote and line feed.
std::string escapeLabelValue(std::string_view value);
// A sample value or `le` bound: the shortest text that reads back as `value`, in plain decimals
// from 1e-5 to 1e16 ("0.00025", "60") and with an exponent beyond ("1e+21"); "NaN", "+Inf",
// "-Inf".
std::string formatValue(double value);

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// Writes families one after the other: family() writes the # HELP and # TYPE lines, then the
// family's samples follow. The caller writes each family once, with all its series.
class Exposition {
 public:
  // `type` is "counter", "gauge" or "histogram".
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, uint64_t value);
  void sample(std::string_view name, const Labels& labels, int64_t value);
  void sample(std::string_view name, const Labels& labels, double value);
  // `name`_bucket{le=...} (cumulative, with +Inf), `name`_sum in seconds and `name`_count, which
  // equals the +Inf bucket. The histogram's samples are microseconds.
  void histogram(std::string_view name, const Labels& labels, const core::LatencyTotals& h);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void series(std::string_view name, const Labels& labels, std::string_view extra_name = {},
              std::string_view extra_value = {});

  std::string out_;
};

}  // namespace speedmimi::admin
