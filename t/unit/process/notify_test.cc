// The control process's requests to the master through the request pipe.
#include "process/notify.h"

#include <fcntl.h>
#include <signal.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

namespace speedmimi::process {
namespace {

class RequestPipe : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(pipe2(fds_, O_CLOEXEC | O_NONBLOCK), 0); }
  void TearDown() override {
    close(fds_[0]);
    close(fds_[1]);
  }
  int fds_[2] = {-1, -1};
};

TEST_F(RequestPipe, EachRequestIsReadWithItsSenderInOrder) {
  ASSERT_TRUE(writeRequest(fds_[1], Request::kReload));
  ASSERT_TRUE(writeRequest(fds_[1], Request::kUpgrade));
  std::vector<std::pair<pid_t, Request>> got = readRequests(fds_[0]);
  std::vector<std::pair<pid_t, Request>> want = {{getpid(), Request::kReload},
                                                 {getpid(), Request::kUpgrade}};
  EXPECT_EQ(got, want);
  EXPECT_TRUE(readRequests(fds_[0]).empty()) << "read twice";
}

TEST_F(RequestPipe, NothingWaitingIsNoRequest) {
  EXPECT_TRUE(readRequests(fds_[0]).empty());
}

TEST_F(RequestPipe, AnUnknownActionIsSkipped) {
  struct {
    pid_t from;
    int request;
  } junk{getpid(), 99};
  ASSERT_EQ(write(fds_[1], &junk, sizeof(junk)), static_cast<ssize_t>(sizeof(junk)));
  ASSERT_TRUE(writeRequest(fds_[1], Request::kReload));
  std::vector<std::pair<pid_t, Request>> got = readRequests(fds_[0]);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second, Request::kReload);
}

TEST_F(RequestPipe, AClosedPipeIsAnError) {
  close(fds_[0]);
  fds_[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);  // closed again by TearDown
  signal(SIGPIPE, SIG_IGN);
  errno = 0;
  EXPECT_FALSE(writeRequest(fds_[1], Request::kReload));
  EXPECT_EQ(errno, EPIPE);
}

}  // namespace
}  // namespace speedmimi::process
