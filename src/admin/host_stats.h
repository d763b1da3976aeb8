// This host's figures for GET /api/v1/stats/server, as the original README reports them:
// cpu_usage and memory_usage (percent), load averages, network bytes, read from /proc.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace speedmimi::admin {

struct HostFigures {
  double cpu_usage = 0;     // percent of all CPUs busy since the previous sample
  double memory_usage = 0;  // percent of MemTotal not MemAvailable
  double load_avg_1 = 0;
  double load_avg_5 = 0;
  double load_avg_15 = 0;
  uint64_t network_in = 0;   // bytes received on every interface since boot
  uint64_t network_out = 0;  // bytes sent
  int64_t timestamp = 0;     // unix seconds of the sample
};

// Samples /proc. CPU usage needs two samples: sample() each second keeps the last one, so
// current() always has a recent interval to report.
class HostStats {
 public:
  explicit HostStats(std::string proc_root = "/proc") : proc_(std::move(proc_root)) {}
  void sample();
  const HostFigures& current() const { return figures_; }

  // Parsers over the text of /proc files (exposed for tests). Each returns false when the
  // text does not have the expected shape.
  static bool parseCpu(const std::string& stat, uint64_t& busy, uint64_t& total);
  static bool parseMemory(const std::string& meminfo, double& used_percent);
  static bool parseLoad(const std::string& loadavg, double& l1, double& l5, double& l15);
  static bool parseNetwork(const std::string& netdev, uint64_t& in, uint64_t& out);

 private:
  std::string proc_;
  HostFigures figures_;
  uint64_t last_busy_ = 0;
  uint64_t last_total_ = 0;
};

}  // namespace speedmimi::admin
