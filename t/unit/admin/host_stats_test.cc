#include "admin/host_stats.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

namespace speedmimi::admin {
namespace {

TEST(HostStats, ParsesCpuAsBusyAndTotalJiffies) {
  uint64_t busy = 0, total = 0;
  ASSERT_TRUE(HostStats::parseCpu("cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4\n", busy, total));
  EXPECT_EQ(total, 1000u);
  EXPECT_EQ(busy, 160u);  // all but idle (800) and iowait (40)
  EXPECT_FALSE(HostStats::parseCpu("cpu0 1 2 3\n", busy, total));
  EXPECT_FALSE(HostStats::parseCpu("cpu  1 2\n", busy, total));
}

TEST(HostStats, ParsesMemoryAsTheShareNotAvailable) {
  double used = 0;
  ASSERT_TRUE(HostStats::parseMemory(
      "MemTotal:        1000 kB\nMemFree:  100 kB\nMemAvailable:     250 kB\n", used));
  EXPECT_DOUBLE_EQ(used, 75.0);
  EXPECT_FALSE(HostStats::parseMemory("MemTotal: 1000 kB\n", used));
}

TEST(HostStats, ParsesLoadAndNetwork) {
  double l1, l5, l15;
  ASSERT_TRUE(HostStats::parseLoad("2.10 1.50 0.75 3/200 12345\n", l1, l5, l15));
  EXPECT_DOUBLE_EQ(l1, 2.1);
  EXPECT_DOUBLE_EQ(l5, 1.5);
  EXPECT_DOUBLE_EQ(l15, 0.75);
  uint64_t in = 0, out = 0;
  ASSERT_TRUE(HostStats::parseNetwork(
      "Inter-|   Receive                            |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes ...\n"
      "    lo:  1000      10    0    0    0     0          0         0  1000 10 0 0 0 0 0 0\n"
      "  eth0:  2500      20    0    0    0     0          0         0   700  7 0 0 0 0 0 0\n",
      in, out));
  EXPECT_EQ(in, 3500u);
  EXPECT_EQ(out, 1700u);
}

TEST(HostStats, CpuUsageComesFromTheIntervalBetweenTwoSamples) {
  char tmpl[] = "/tmp/speedmimi-proc-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string root = tmpl;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(root + "/" + name) << text;
  };
  system(("mkdir -p " + root + "/net").c_str());
  write("stat", "cpu  100 0 0 900 0 0 0 0 0 0\n");
  write("meminfo", "MemTotal: 200 kB\nMemAvailable: 150 kB\n");
  write("loadavg", "0.5 0.25 0.125 1/1 1\n");
  write("net/dev", "a|b\nc|d\n lo: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n");
  HostStats stats(root);
  stats.sample();
  EXPECT_DOUBLE_EQ(stats.current().cpu_usage, 0.0);  // one sample: no interval yet
  write("stat", "cpu  400 0 0 1600 0 0 0 0 0 0\n");    // +300 busy of +1000
  stats.sample();
  EXPECT_DOUBLE_EQ(stats.current().cpu_usage, 30.0);
  EXPECT_DOUBLE_EQ(stats.current().memory_usage, 25.0);
  EXPECT_DOUBLE_EQ(stats.current().load_avg_15, 0.125);
  EXPECT_EQ(stats.current().network_in, 1u);
  EXPECT_EQ(stats.current().network_out, 2u);
  EXPECT_GT(stats.current().timestamp, 1700000000);
  system(("rm -rf " + root).c_str());
}

}  // namespace
}  // namespace speedmimi::admin
