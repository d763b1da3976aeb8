#include "admin/host_stats.h"

#include <time.h>

#include <cstdio>
#include <sstream>

#include "core/atomic_file.h"

namespace speedmimi::admin {

bool HostStats::parseCpu(const std::string& stat, uint64_t& busy, uint64_t& total) {
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  if (stat.compare(0, 4, "cpu ") != 0) return false;
  std::istringstream in(stat.substr(4));
  uint64_t v[8] = {};
  for (uint64_t& x : v) {
    if (!(in >> x)) return false;
  }
  total = 0;
  for (uint64_t x : v) total += x;  // guest time is already counted in user
  busy = total - v[3] - v[4];       // minus idle and iowait
  return true;
}

bool HostStats::parseMemory(const std::string& meminfo, double& used_percent) {
  uint64_t total = 0, available = 0;
  bool have_total = false, have_available = false;
  std::istringstream in(meminfo);
  std::string key;
  uint64_t value;
  std::string unit;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    if (!(fields >> key >> value)) continue;
    if (key == "MemTotal:") total = value, have_total = true;
    if (key == "MemAvailable:") available = value, have_available = true;
  }
  if (!have_total || !have_available || total == 0 || available > total) return false;
  used_percent = 100.0 * static_cast<double>(total - available) / static_cast<double>(total);
  return true;
}

bool HostStats::parseLoad(const std::string& loadavg, double& l1, double& l5, double& l15) {
  return sscanf(loadavg.c_str(), "%lf %lf %lf", &l1, &l5, &l15) == 3;
}

bool HostStats::parseNetwork(const std::string& netdev, uint64_t& in_bytes, uint64_t& out_bytes) {
  // Two header lines, then "  eth0: rx_bytes rx_packets ... (8 rx fields) tx_bytes ...".
  std::istringstream in(netdev);
  std::string line;
  in_bytes = out_bytes = 0;
  int interfaces = 0;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos || line.find('|') != std::string::npos) continue;
    std::istringstream fields(line.substr(colon + 1));
    uint64_t v[9] = {};
    bool ok = true;
    for (uint64_t& x : v) ok = ok && static_cast<bool>(fields >> x);
    if (!ok) return false;
    in_bytes += v[0];
    out_bytes += v[8];
    ++interfaces;
  }
  return interfaces > 0;
}

void HostStats::sample() {
  std::string text, error;
  if (core::readWholeFile(proc_ + "/stat", text, error)) {
    uint64_t busy, total;
    if (parseCpu(text, busy, total)) {
      if (last_total_ != 0 && total > last_total_ && busy >= last_busy_) {
        figures_.cpu_usage = 100.0 * static_cast<double>(busy - last_busy_) /
                             static_cast<double>(total - last_total_);
      }
      last_busy_ = busy;
      last_total_ = total;
    }
  }
  if (core::readWholeFile(proc_ + "/meminfo", text, error)) {
    parseMemory(text, figures_.memory_usage);
  }
  if (core::readWholeFile(proc_ + "/loadavg", text, error)) {
    parseLoad(text, figures_.load_avg_1, figures_.load_avg_5, figures_.load_avg_15);
  }
  if (core::readWholeFile(proc_ + "/net/dev", text, error)) {
    parseNetwork(text, figures_.network_in, figures_.network_out);
  }
  figures_.timestamp = static_cast<int64_t>(time(nullptr));
}

}  // namespace speedmimi::admin
