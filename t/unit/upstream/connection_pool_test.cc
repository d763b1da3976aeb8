#include "upstream/connection_pool.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace speedmimi::upstream {
namespace {

using std::chrono::milliseconds;

class NullHandler : public event::StreamHandler {
 public:
  void onStreamEvent(event::Stream&, event::StreamEvent) override {}
};

class ConnectionPoolTest : public ::testing::Test {
 protected:
  void SetUp() override { base_.reset(event_base_new()); }

  // A stream over a socketpair; the other end is returned in `peer`.
  std::unique_ptr<event::Stream> makeStream(event::Fd& peer) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    peer.reset(sv[1]);
    return std::make_unique<event::Stream>(base_.get(), sv[0], &handler_);
  }
  void spin(int rounds) {
    for (int i = 0; i < rounds; ++i) {
      timeval tv{0, 5'000};
      event_base_loopexit(base_.get(), &tv);
      event_base_dispatch(base_.get());
    }
  }

  event::EventBasePtr base_;
  NullHandler handler_;
  core::BackendConfig config_;
  BackendState state_;
};

TEST_F(ConnectionPoolTest, TakeReturnsTheMostRecentlyUsedConnectionOfThatBackend) {
  Backend a(config_, &state_), b(config_, &state_);
  ConnectionPool pool(milliseconds(10'000));
  event::Fd p1, p2;
  auto s1 = makeStream(p1);
  auto s2 = makeStream(p2);
  event::Stream* raw1 = s1.get();
  event::Stream* raw2 = s2.get();
  pool.put(&a, std::move(s1));
  pool.put(&a, std::move(s2));
  EXPECT_EQ(pool.idleCount(), 2u);
  EXPECT_EQ(pool.take(&b), nullptr);
  auto t = pool.take(&a);
  EXPECT_EQ(t.get(), raw2);
  EXPECT_TRUE(t->reading());  // handed over still reading: no epoll change
  EXPECT_EQ(pool.take(&a).get(), raw1);
  EXPECT_EQ(pool.take(&a), nullptr);
  EXPECT_EQ(pool.idleCount(), 0u);
}

TEST_F(ConnectionPoolTest, ConnectionClosedByTheBackendLeavesThePool) {
  Backend a(config_, &state_);
  ConnectionPool pool(milliseconds(10'000));
  event::Fd peer;
  pool.put(&a, makeStream(peer));
  peer.reset();  // the backend closes its idle keep-alive connection
  for (int i = 0; i < 100 && pool.idleCount() > 0; ++i) spin(1);
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(pool.take(&a), nullptr);
}

TEST_F(ConnectionPoolTest, UnexpectedBytesOrIdleTimeoutEndTheConnection) {
  Backend a(config_, &state_);
  ConnectionPool pool(milliseconds(50));
  event::Fd p1, p2;
  pool.put(&a, makeStream(p1));
  ASSERT_EQ(write(p1.get(), "junk", 4), 4);
  for (int i = 0; i < 100 && pool.idleCount() > 0; ++i) spin(1);
  EXPECT_EQ(pool.idleCount(), 0u);

  pool.put(&a, makeStream(p2));
  for (int i = 0; i < 100 && pool.idleCount() > 0; ++i) spin(1);  // the 50 ms idle timeout
  EXPECT_EQ(pool.idleCount(), 0u);
}

TEST_F(ConnectionPoolTest, KeepsAtMostTheLimitPerBackend) {
  Backend a(config_, &state_);
  ConnectionPool pool(milliseconds(10'000));
  std::vector<event::Fd> peers(ConnectionPool::kMaxIdlePerBackend + 3);
  for (auto& p : peers) pool.put(&a, makeStream(p));
  EXPECT_EQ(pool.idleCount(), ConnectionPool::kMaxIdlePerBackend);
  pool.clear(&a);
  EXPECT_EQ(pool.idleCount(), 0u);
}

}  // namespace
}  // namespace speedmimi::upstream
