#include "upstream/connection_pool.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

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
  ConnectionPool pool(nullptr, milliseconds(10'000));
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
  ConnectionPool pool(nullptr, milliseconds(10'000));
  event::Fd peer;
  pool.put(&a, makeStream(peer));
  peer.reset();  // the backend closes its idle keep-alive connection
  for (int i = 0; i < 100 && pool.idleCount() > 0; ++i) spin(1);
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(pool.take(&a), nullptr);
}

TEST_F(ConnectionPoolTest, UnexpectedBytesOrIdleTimeoutEndTheConnection) {
  Backend a(config_, &state_);
  ConnectionPool pool(nullptr, milliseconds(50));
  event::Fd p1, p2;
  pool.put(&a, makeStream(p1));
  ASSERT_EQ(write(p1.get(), "junk", 4), 4);
  for (int i = 0; i < 100 && pool.idleCount() > 0; ++i) spin(1);
  EXPECT_EQ(pool.idleCount(), 0u);

  pool.put(&a, makeStream(p2));
  for (int i = 0; i < 100 && pool.idleCount() > 0; ++i) spin(1);  // the 50 ms idle timeout
  EXPECT_EQ(pool.idleCount(), 0u);
}

// The old fixed cap of 128 idle connections per backend made a load of 1,000 clients close
// and reopen hundreds of connections per burst. Without `keepalive` the pool keeps what the load
// handed back.
TEST_F(ConnectionPoolTest, KeepsEveryConnectionTheLoadHandsBackByDefault) {
  Backend a(config_, &state_);
  ConnectionPool pool(nullptr, milliseconds(10'000));
  std::vector<event::Fd> peers(1000);
  for (auto& p : peers) pool.put(&a, makeStream(p));
  EXPECT_EQ(pool.idleCount(), 1000u);
  EXPECT_EQ(pool.idleCount(&a), 1000u);
  pool.clear(&a);
  EXPECT_EQ(pool.idleCount(), 0u);
}

TEST_F(ConnectionPoolTest, KeepaliveBoundsTheIdleConnectionsOfItsBackend) {
  core::BackendConfig bounded = config_;
  bounded.keepalive = 3;
  Backend a(bounded, &state_), b(config_, &state_);
  ConnectionPool pool(nullptr, milliseconds(10'000));
  std::vector<event::Fd> peers(10);
  for (size_t i = 0; i < 5; ++i) pool.put(&a, makeStream(peers[i]));
  for (size_t i = 5; i < 10; ++i) pool.put(&b, makeStream(peers[i]));
  EXPECT_EQ(pool.idleCount(&a), 3u);
  EXPECT_EQ(pool.idleCount(&b), 5u);
}

// A connection nobody used for kPurgeDelay is surplus; half of the surplus closes per purge,
// least recently used first, and what the load keeps using stays.
TEST_F(ConnectionPoolTest, PurgeClosesHalfTheSurplusLeastRecentlyUsedFirst) {
  Backend a(config_, &state_);
  ConnectionPool pool(nullptr, milliseconds(600'000));
  std::vector<event::Fd> peers(8);
  std::vector<event::Stream*> raw;
  for (auto& p : peers) {
    auto s = makeStream(p);
    raw.push_back(s.get());
    pool.put(&a, std::move(s));
  }
  const int64_t delay = ConnectionPool::kPurgeDelay.count();
  int64_t now = ConnectionPool::nowMs();
  pool.purge(now);  // nothing idle long enough yet
  EXPECT_EQ(pool.idleCount(&a), 8u);
  pool.purge(now + delay + 1000);
  EXPECT_EQ(pool.idleCount(&a), 4u);
  pool.purge(now + delay + 2000);
  EXPECT_EQ(pool.idleCount(&a), 2u);
  pool.purge(now + delay + 3000);
  EXPECT_EQ(pool.idleCount(&a), 1u);
  // The survivor is the most recently used one.
  EXPECT_EQ(pool.take(&a).get(), raw.back());
  pool.purge(now + delay + 4000);
  EXPECT_EQ(pool.idleCount(), 0u);
}

TEST_F(ConnectionPoolTest, PurgeKeepsConnectionsUsedWithinTheDelay) {
  Backend a(config_, &state_);
  ConnectionPool pool(nullptr, milliseconds(600'000));
  std::vector<event::Fd> peers(4);
  for (auto& p : peers) pool.put(&a, makeStream(p));
  pool.purge(ConnectionPool::nowMs() + ConnectionPool::kPurgeDelay.count() - 1000);
  EXPECT_EQ(pool.idleCount(&a), 4u);
}

// The purge timer does the same on its own, once a kPurgeInterval.
TEST_F(ConnectionPoolTest, TheTimerPurgesConnectionsLeftUnused) {
  Backend a(config_, &state_);
  ConnectionPool pool(base_.get(), milliseconds(600'000));
  event::Fd peer;
  pool.put(&a, makeStream(peer));
  const auto limit = ConnectionPool::kPurgeDelay + 4 * ConnectionPool::kPurgeInterval;
  auto start = std::chrono::steady_clock::now();
  while (pool.idleCount() > 0 && std::chrono::steady_clock::now() - start < limit) spin(20);
  EXPECT_EQ(pool.idleCount(), 0u);
}

// A connection released by an exchange of a backend that has left the view must close: nobody
// asks for that backend again, and once it is freed its address may be reused by another.
TEST_F(ConnectionPoolTest, AConnectionOfARetiredBackendIsNotPooled) {
  Backend a(config_, &state_);
  a.retire();
  ConnectionPool pool(nullptr, milliseconds(10'000));
  event::Fd peer;
  pool.put(&a, makeStream(peer));
  EXPECT_EQ(pool.idleCount(), 0u);
  char c;
  EXPECT_EQ(read(peer.get(), &c, 1), 0);  // closed
}

// An exchange that was in flight when its backend was disconnected finishes normally; its
// connection then closes instead of waiting in the pool for requests that cannot come.
TEST_F(ConnectionPoolTest, AConnectionOfAnInactiveBackendIsNotPooled) {
  core::BackendConfig inactive = config_;
  inactive.active = false;
  Backend a(inactive, &state_);
  ConnectionPool pool(nullptr, milliseconds(10'000));
  event::Fd peer;
  pool.put(&a, makeStream(peer));
  EXPECT_EQ(pool.idleCount(), 0u);
  char c;
  EXPECT_EQ(read(peer.get(), &c, 1), 0);  // closed

  a.reconfigure(config_);  // active again: pooled as before
  pool.put(&a, makeStream(peer));
  EXPECT_EQ(pool.idleCount(&a), 1u);
}

}  // namespace
}  // namespace speedmimi::upstream
