// The error log's rate limiter: repeats from one call site within the interval are counted and
// reported by the next line written from there; other sites and crit lines are not held back.
#include "core/log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace speedmimi::core {
namespace {

int64_t g_fake_now = 0;
int64_t fakeNow() {
  return g_fake_now;
}

void backendFailed(int request) {
  SM_ERROR("backend failed for request %d", request);
}
void otherFailure() {
  SM_WARN("another failure");
}
void critical(int i) {
  SM_CRIT("critical %d", i);
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/speedmimi-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = path;
    std::string error;
    ASSERT_TRUE(openErrorLog(path_, LogLevel::kInfo, error)) << error;
    g_fake_now += 1'000'000;  // monotonic across tests: the call sites remember it
    setLogClock(&fakeNow);
    setLogRateLimit(std::chrono::milliseconds(1000));
  }
  void TearDown() override {
    setLogRateLimit(std::chrono::milliseconds(0));
    setLogClock(nullptr);
    std::string error;
    openErrorLog("stderr", LogLevel::kInfo, error);
    unlink(path_.c_str());
  }
  std::vector<std::string> lines() const {
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line.substr(line.find(": ") + 2));
    return out;
  }

  std::string path_;
};

TEST_F(LogTest, RepeatsWithinTheIntervalAreCountedInTheNextLine) {
  for (int i = 0; i < 5; ++i) backendFailed(i);
  g_fake_now += 999;
  backendFailed(5);
  EXPECT_EQ(lines(), std::vector<std::string>{"backend failed for request 0"});

  g_fake_now += 1;  // one interval after the line written
  backendFailed(6);
  backendFailed(7);
  g_fake_now += 1000;
  backendFailed(8);
  EXPECT_EQ(lines(), (std::vector<std::string>{
                         "backend failed for request 0",
                         "backend failed for request 6 (5 similar messages suppressed)",
                         "backend failed for request 8 (1 similar messages suppressed)"}));
}

TEST_F(LogTest, CallSitesAreLimitedApart) {
  backendFailed(1);
  otherFailure();
  backendFailed(2);
  otherFailure();
  EXPECT_EQ(lines(), (std::vector<std::string>{"backend failed for request 1", "another failure"}));
}

TEST_F(LogTest, CriticalLinesAreNeverHeldBack) {
  for (int i = 0; i < 3; ++i) critical(i);
  EXPECT_EQ(lines(), (std::vector<std::string>{"critical 0", "critical 1", "critical 2"}));
}

TEST_F(LogTest, WithoutALimitEveryLineIsWritten) {
  setLogRateLimit(std::chrono::milliseconds(0));
  for (int i = 0; i < 3; ++i) backendFailed(i);
  EXPECT_EQ(lines().size(), 3u);
}

}  // namespace
}  // namespace speedmimi::core
