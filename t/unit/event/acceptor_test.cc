// The acceptor: a bounded batch per readiness, and a pause (not a spin) when descriptors run out.
#include "event/acceptor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "event/listener.h"

namespace speedmimi::event {
namespace {

using std::chrono::milliseconds;

int portOf(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// A blocking connect to 127.0.0.1:port; it returns once the kernel has queued the connection.
Fd connectTo(int port) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fd();
  return fd;
}

// Connections waiting in a listening socket's accept queue (TCP_INFO reports it as unacked).
int queued(int listen_fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(listen_fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
  return static_cast<int>(info.tcpi_unacked);
}

class AcceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_.reset(event_base_new());
    std::string error;
    Fd listener = openListener("127.0.0.1", 0, 511, error);
    ASSERT_TRUE(listener.valid()) << error;
    listen_fd_ = listener.get();
    port_ = portOf(listen_fd_);
    options_.pause = milliseconds(50);
    acceptor_ = std::make_unique<Acceptor>(
        base_.get(), std::move(listener),
        [this](int fd, sockaddr*, socklen_t) { accepted_.emplace_back(fd); }, options_);
    ASSERT_TRUE(acceptor_->start(error)) << error;
  }
  // One turn of the loop that runs the acceptor's events (waiting at most 1 s for one).
  void runOnce() {
    timeval tv{1, 0};
    event_base_loopexit(base_.get(), &tv);
    event_base_loop(base_.get(), EVLOOP_ONCE);
  }
  // Runs the loop until `done` holds; at most ~2 s.
  bool runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 200 && !done(); ++i) {
      timeval tv{0, 10'000};
      event_base_loopexit(base_.get(), &tv);
      event_base_dispatch(base_.get());
    }
    return done();
  }
  std::vector<Fd> connectMany(int n) {
    std::vector<Fd> clients;
    for (int i = 0; i < n; ++i) {
      clients.push_back(connectTo(port_));
      EXPECT_TRUE(clients.back().valid()) << "connect " << i << ": " << std::strerror(errno);
    }
    return clients;
  }

  EventBasePtr base_;
  Acceptor::Options options_;
  std::unique_ptr<Acceptor> acceptor_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<Fd> accepted_;
};

TEST_F(AcceptorTest, OneReadinessAcceptsAtMostOneBatch) {
  const int pending = options_.batch + options_.batch / 2;
  std::vector<Fd> clients = connectMany(pending);
  ASSERT_EQ(queued(listen_fd_), pending);

  runOnce();
  EXPECT_EQ(accepted_.size(), static_cast<size_t>(options_.batch));
  EXPECT_EQ(queued(listen_fd_), pending - options_.batch);

  runOnce();  // the rest, on the next turn: the listener is still readable
  EXPECT_EQ(accepted_.size(), static_cast<size_t>(pending));
  EXPECT_EQ(acceptor_->accepted(), static_cast<uint64_t>(pending));
}

TEST_F(AcceptorTest, AcceptedSocketsAreNonBlockingAndCloseOnExec) {
  std::vector<Fd> clients = connectMany(1);
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 1; }));
  EXPECT_TRUE(fcntl(accepted_[0].get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(fcntl(accepted_[0].get(), F_GETFD) & FD_CLOEXEC);
}

// Lowers the soft descriptor limit for the test's duration and fills every free descriptor
// below it, so the next accept() fails with EMFILE.
class DescriptorShortage {
 public:
  DescriptorShortage() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit low = saved_;
    low.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 512);
    setrlimit(RLIMIT_NOFILE, &low);
    for (int i = 0; i < 1024; ++i) {
      int fd = dup(0);
      if (fd < 0) break;
      filler_.emplace_back(fd);
    }
  }
  ~DescriptorShortage() {
    filler_.clear();
    setrlimit(RLIMIT_NOFILE, &saved_);
  }
  bool exhausted() const { return dup(0) < 0 && errno == EMFILE; }
  void release() { filler_.clear(); }

 private:
  rlimit saved_{};
  std::vector<Fd> filler_;
};

TEST_F(AcceptorTest, OutOfDescriptorsPausesThenAcceptsAgain) {
  std::vector<Fd> clients = connectMany(3);
  ASSERT_EQ(queued(listen_fd_), 3);
  DescriptorShortage shortage;
  ASSERT_TRUE(shortage.exhausted());

  runOnce();
  EXPECT_TRUE(acceptor_->paused());
  EXPECT_TRUE(accepted_.empty());
  // Paused, the listener is not watched: turns of the loop meanwhile do not retry accept (a
  // level-triggered event would fire on every one of them).
  event_base_loop(base_.get(), EVLOOP_NONBLOCK);
  EXPECT_EQ(queued(listen_fd_), 3);

  shortage.release();
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil([&] { return accepted_.size() == 3; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, options_.pause - milliseconds(5));
  EXPECT_FALSE(acceptor_->paused());
}

TEST_F(AcceptorTest, DestroyingItClosesTheListener) {
  acceptor_.reset();
  EXPECT_LT(fcntl(listen_fd_, F_GETFD), 0);
  EXPECT_FALSE(connectTo(port_).valid());
}

}  // namespace
}  // namespace speedmimi::event
