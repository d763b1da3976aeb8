#include "event/stream.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

namespace speedmimi::event {
namespace {

using std::chrono::milliseconds;

// Records events; runs the loop until one of `want` arrives or a deadline passes.
class Recorder : public StreamHandler {
 public:
  void onStreamEvent(Stream&, StreamEvent ev) override { events.push_back(ev); }
  std::vector<StreamEvent> events;
};

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_.reset(event_base_new());
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    stream_ = std::make_unique<Stream>(base_.get(), sv[0], &rec_);
    peer_.reset(sv[1]);
  }
  // Runs the loop until `ev` was recorded; at most ~2 s.
  bool runUntil(StreamEvent ev) {
    for (int i = 0; i < 200; ++i) {
      for (StreamEvent e : rec_.events) {
        if (e == ev) return true;
      }
      timeval tv{0, 10'000};
      event_base_loopexit(base_.get(), &tv);
      event_base_dispatch(base_.get());
    }
    return false;
  }
  std::string drainInput() {
    std::string s(evbuffer_get_length(stream_->input()), '\0');
    evbuffer_remove(stream_->input(), s.data(), s.size());
    return s;
  }

  EventBasePtr base_;
  Recorder rec_;
  std::unique_ptr<Stream> stream_;
  Fd peer_;
};

TEST_F(StreamTest, FlushWritesAtOnceWithoutTheLoop) {
  evbuffer_add(stream_->output(), "hello", 5);
  ASSERT_TRUE(stream_->flush());
  EXPECT_EQ(stream_->pendingOutput(), 0u);
  char buf[16];
  ASSERT_EQ(read(peer_.get(), buf, sizeof(buf)), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_TRUE(rec_.events.empty());  // no callback from inside flush()
}

TEST_F(StreamTest, ReadsArriveInInputAndEofIsReported) {
  stream_->startReading(milliseconds(0));
  ASSERT_EQ(write(peer_.get(), "abc", 3), 3);
  ASSERT_TRUE(runUntil(StreamEvent::kReadable));
  EXPECT_EQ(drainInput(), "abc");
  EXPECT_EQ(stream_->bytesRead(), 3u);
  peer_.reset();
  ASSERT_TRUE(runUntil(StreamEvent::kEof));
  EXPECT_FALSE(stream_->reading());
}

TEST_F(StreamTest, StoppedStreamSeesNothing) {
  stream_->startReading(milliseconds(0));
  stream_->stopReading();
  ASSERT_EQ(write(peer_.get(), "abc", 3), 3);
  EXPECT_FALSE(runUntil(StreamEvent::kReadable));
  EXPECT_EQ(evbuffer_get_length(stream_->input()), 0u);
}

TEST_F(StreamTest, ReadTimeoutFiresWhenIdle) {
  stream_->startReading(milliseconds(30));
  ASSERT_TRUE(runUntil(StreamEvent::kReadTimeout));
}

TEST_F(StreamTest, BlockedOutputDrainsWhenPeerReads) {
  std::string big(4 * 1024 * 1024, 'x');
  evbuffer_add(stream_->output(), big.data(), big.size());
  stream_->setLowWatermark(0);
  ASSERT_TRUE(stream_->flush());
  ASSERT_GT(stream_->pendingOutput(), 0u);  // the socket buffer is smaller than 4 MiB
  size_t got = 0;
  char buf[65536];
  for (int i = 0; i < 2000 && got < big.size(); ++i) {
    ssize_t n = read(peer_.get(), buf, sizeof(buf));
    if (n > 0) got += static_cast<size_t>(n);
    timeval tv{0, 1000};
    event_base_loopexit(base_.get(), &tv);
    event_base_dispatch(base_.get());
  }
  EXPECT_EQ(got, big.size());
  EXPECT_EQ(stream_->pendingOutput(), 0u);
  bool drained = false;
  for (StreamEvent e : rec_.events) drained |= e == StreamEvent::kDrained;
  EXPECT_TRUE(drained);
}

TEST_F(StreamTest, WriteToClosedPeerFails) {
  signal(SIGPIPE, SIG_IGN);  // as the master does before forking workers
  peer_.reset();
  evbuffer_add(stream_->output(), "x", 1);
  EXPECT_FALSE(stream_->flush());
  EXPECT_EQ(stream_->lastError(), EPIPE);
}

TEST(StreamConnectTest, RefusedConnectIsReportedFromTheLoop) {
  EventBasePtr base(event_base_new());
  // A port nobody listens on: bind one, close it, connect to it.
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  close(s);
  Recorder rec;
  auto stream = Stream::connect(base.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr),
                                milliseconds(1000), &rec);
  ASSERT_NE(stream, nullptr);
  EXPECT_TRUE(rec.events.empty());
  for (int i = 0; i < 100 && rec.events.empty(); ++i) event_base_loop(base.get(), EVLOOP_ONCE);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0], StreamEvent::kError);
  EXPECT_EQ(stream->lastError(), ECONNREFUSED);
}

TEST(StreamConnectTest, ConnectsAndFlushesQueuedOutput) {
  EventBasePtr base(event_base_new());
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(ls, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  Recorder rec;
  auto stream = Stream::connect(base.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr),
                                milliseconds(1000), &rec);
  ASSERT_NE(stream, nullptr);
  evbuffer_add(stream->output(), "ping", 4);
  EXPECT_TRUE(stream->flush());  // queued until connected
  for (int i = 0; i < 100 && rec.events.empty(); ++i) event_base_loop(base.get(), EVLOOP_ONCE);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0], StreamEvent::kConnected);
  EXPECT_TRUE(stream->connected());
  int c = accept(ls, nullptr, nullptr);
  ASSERT_GE(c, 0);
  char buf[8];
  EXPECT_EQ(read(c, buf, sizeof(buf)), 4);
  close(c);
  close(ls);
}

}  // namespace
}  // namespace speedmimi::event

namespace speedmimi::event {
namespace {

TEST_F(StreamTest, ReadingWithoutATimeoutDropsTheEarlierDeadline) {
  stream_->startReading(milliseconds(30));
  stream_->startReading(milliseconds(0));  // e.g. waiting for a slow backend
  EXPECT_FALSE(runUntil(StreamEvent::kReadTimeout));
  ASSERT_EQ(write(peer_.get(), "x", 1), 1);
  EXPECT_TRUE(runUntil(StreamEvent::kReadable));  // still reading
}

// A small read must not tie up a large chunk: libevent rounds a chunk and its header up to a
// power of two, and reserving 16 KiB per read took a 32 KiB block for a 3-byte request.
TEST_F(StreamTest, ASmallReadTakesASmallChunk) {
  stream_->startReading(milliseconds(0));
  ASSERT_EQ(write(peer_.get(), "abc", 3), 3);
  ASSERT_TRUE(runUntil(StreamEvent::kReadable));
  evbuffer_iovec free_space;
  ASSERT_EQ(evbuffer_reserve_space(stream_->input(), 1, &free_space, 1), 1);
  EXPECT_LE(free_space.iov_len + 3, 2048u) << "the chunk holding 3 bytes is larger than 2 KiB";
  evbuffer_commit_space(stream_->input(), &free_space, 0);
}

// Reads that come back full double the next read, up to 64 KiB (minus libevent's chunk header);
// small ones after that halve it again, down to where it started.
TEST_F(StreamTest, ReadSizeFollowsWhatThePeerSends) {
  const size_t first = stream_->readSize();
  EXPECT_LT(first, 2048u);
  stream_->startReading(milliseconds(0));
  std::string bulk(256 * 1024, 'x');
  size_t sent = 0;
  while (sent < bulk.size()) {
    ssize_t n = write(peer_.get(), bulk.data() + sent, bulk.size() - sent);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ASSERT_GT(sent, 64u * 1024);
  for (int i = 0; i < 200 && evbuffer_get_length(stream_->input()) < sent; ++i) {
    rec_.events.clear();
    ASSERT_TRUE(runUntil(StreamEvent::kReadable));
  }
  EXPECT_GT(stream_->readSize(), 32u * 1024);
  EXPECT_LT(stream_->readSize(), 64u * 1024);
  drainInput();
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(write(peer_.get(), "a", 1), 1);
    rec_.events.clear();
    ASSERT_TRUE(runUntil(StreamEvent::kReadable));
  }
  EXPECT_EQ(stream_->readSize(), first);
}

// Bytes written by the write event (after a flush that could not write them all) are counted
// too, not only those flush() wrote when called.
TEST_F(StreamTest, BytesWrittenLaterByTheLoopAreCounted) {
  std::atomic<uint64_t> read_total{0}, written_total{0};
  stream_->countInto(&read_total, &written_total);
  std::string big(1024 * 1024, 'y');
  evbuffer_add(stream_->output(), big.data(), big.size());
  ASSERT_TRUE(stream_->flush());
  const uint64_t at_once = written_total.load();
  ASSERT_LT(at_once, big.size()) << "the socket buffer took everything; nothing left to test";
  std::string sink(64 * 1024, '\0');
  for (int i = 0; i < 2000 && stream_->pendingOutput() > 0; ++i) {
    while (read(peer_.get(), sink.data(), sink.size()) > 0) {
    }
    timeval tv{0, 2'000};
    event_base_loopexit(base_.get(), &tv);
    event_base_dispatch(base_.get());
  }
  ASSERT_EQ(stream_->pendingOutput(), 0u);
  EXPECT_EQ(written_total.load(), big.size());
  EXPECT_EQ(stream_->bytesWritten(), big.size());
  ASSERT_EQ(write(peer_.get(), "abcd", 4), 4);
  stream_->startReading(milliseconds(0));
  ASSERT_TRUE(runUntil(StreamEvent::kReadable));
  EXPECT_EQ(read_total.load(), 4u);
}

// epoll refuses some descriptors (a regular file: EPERM; at max_user_watches: ENOSPC). A stream
// that cannot register must say so, from the loop, instead of waiting for bytes forever.
TEST(StreamRegistrationTest, ARefusedRegistrationIsReportedAsAnError) {
  EventBasePtr base(event_base_new());
  char path[] = "/tmp/stream_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  Recorder rec;
  Stream stream(base.get(), fd, &rec);
  stream.startReading(milliseconds(0));
  for (int i = 0; i < 50 && rec.events.empty(); ++i) {
    timeval tv{0, 10'000};
    event_base_loopexit(base.get(), &tv);
    event_base_dispatch(base.get());
  }
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0], StreamEvent::kError);
  EXPECT_EQ(stream.lastError(), EPERM);
}

// A TCP connection on loopback: `near` non-blocking, for a Stream; `far` blocking, with Nagle's
// algorithm on (no TCP_NODELAY) and a 2 s receive timeout, for the peer.
struct TcpPair {
  Fd near;
  Fd far;
};

TcpPair tcpPair() {
  Fd listener(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return {};
  }
  Fd near(socket(AF_INET, SOCK_STREAM, 0));
  if (connect(near.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  Fd far(accept(listener.get(), nullptr, nullptr));
  timeval timeout{2, 0};
  setsockopt(far.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (fcntl(near.get(), F_SETFL, O_NONBLOCK) != 0) return {};
  return {std::move(near), std::move(far)};
}

// Breaks the loop once `want` bytes are in the stream's input (or the stream fails); with
// `hand_to`, first gives the stream to that handler, as a session gives a finished upstream
// connection to the pool.
class AnswerWaiter : public StreamHandler {
 public:
  AnswerWaiter(event_base* base, size_t want, StreamHandler* hand_to)
      : base_(base), want_(want), hand_to_(hand_to) {}
  void onStreamEvent(Stream& stream, StreamEvent ev) override {
    if (ev == StreamEvent::kReadable && evbuffer_get_length(stream.input()) < want_) return;
    complete = ev == StreamEvent::kReadable;
    if (complete && hand_to_) stream.setHandler(hand_to_);
    event_base_loopbreak(base_);
  }
  bool complete = false;

 private:
  event_base* base_;
  size_t want_;
  StreamHandler* hand_to_;
};

constexpr std::string_view kRequest = "GET / HTTP/1.1\r\n\r\n";
constexpr std::string_view kHead = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
constexpr std::string_view kBody = "ok";

// A pooled upstream exchange: `stream` sends a request; the peer answers with the head and the
// body in one write or, `split`, in two, where Nagle's algorithm holds the body until the head
// is acknowledged. Returns how long the whole answer took to arrive (the stream then belongs to
// `hand_to` if given), or -1 ms when it did not within 2 s.
milliseconds exchange(event_base* base, Stream& stream, int peer, bool split,
                      StreamHandler* hand_to = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  evbuffer_add(stream.output(), kRequest.data(), kRequest.size());
  if (!stream.flush()) return milliseconds(-1);
  std::string request(kRequest.size(), '\0');
  std::string whole = std::string(kHead) + std::string(kBody);
  if (recv(peer, request.data(), request.size(), MSG_WAITALL) != ssize_t(kRequest.size())) {
    return milliseconds(-1);
  }
  if (split) {
    if (send(peer, kHead.data(), kHead.size(), 0) != ssize_t(kHead.size()) ||
        send(peer, kBody.data(), kBody.size(), 0) != ssize_t(kBody.size())) {
      return milliseconds(-1);
    }
  } else if (send(peer, whole.data(), whole.size(), 0) != ssize_t(whole.size())) {
    return milliseconds(-1);
  }
  AnswerWaiter waiter(base, whole.size(), hand_to);
  stream.setHandler(&waiter);
  timeval bound{2, 0};
  event_base_loopexit(base, &bound);
  event_base_dispatch(base);
  if (!waiter.complete) return milliseconds(-1);
  auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  event_base_loop(base, EVLOOP_NONBLOCK);  // what the loop still had to do after the answer
  evbuffer_drain(stream.input(), evbuffer_get_length(stream.input()));
  return took;
}

class StreamQuickAckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_.reset(event_base_new());
    pair_ = tcpPair();
    ASSERT_GE(pair_.far.get(), 0);
    stream_ = std::make_unique<Stream>(base_.get(), pair_.near.release(), &rec_);
    stream_->setQuickAck(true);
    stream_->startReading(milliseconds(0));
  }

  EventBasePtr base_;
  TcpPair pair_;
  Recorder rec_;
  std::unique_ptr<Stream> stream_;
};

// Linux delays the ACK of the head once this side has sent soon after receiving (~40 ms): with
// quick ACKs, no exchange waits for it, and each costs one setsockopt().
TEST_F(StreamQuickAckTest, ANagleAnswerIsNotHeldByADelayedAck) {
  std::vector<milliseconds> took;
  for (int i = 0; i < 12; ++i) {
    milliseconds t = exchange(base_.get(), *stream_, pair_.far.get(), /*split=*/true);
    ASSERT_GE(t.count(), 0) << "exchange " << i << " did not complete";
    // A new connection starts in quick-ACK mode: the first exchanges show nothing.
    if (i >= 3) took.push_back(t);
  }
  std::sort(took.begin(), took.end());
  EXPECT_LT(took[took.size() / 2], milliseconds(20)) << "median of " << took.size();
  EXPECT_EQ(stream_->quickAcks(), 12u);
}

// An answer that arrives whole and whose stream goes to the pool owes the backend nothing: the
// ACK rides on the next request, as without quick ACKs.
TEST_F(StreamQuickAckTest, AWholeAnswerHandedOnCostsNoSyscall) {
  Recorder pool;
  for (int i = 0; i < 5; ++i) {
    ASSERT_GE(exchange(base_.get(), *stream_, pair_.far.get(), /*split=*/false, &pool).count(), 0)
        << "exchange " << i << " did not complete";
  }
  EXPECT_EQ(stream_->quickAcks(), 0u);
}

// On a socket that is not TCP the option is dropped quietly and the stream works as before.
TEST_F(StreamTest, QuickAckOnAUnixSocketIsDroppedQuietly) {
  stream_->setQuickAck(true);
  stream_->startReading(milliseconds(0));
  for (int i = 0; i < 2; ++i) {
    evbuffer_add(stream_->output(), "q", 1);
    ASSERT_TRUE(stream_->flush());
    char c;
    ASSERT_EQ(read(peer_.get(), &c, 1), 1);
    ASSERT_EQ(write(peer_.get(), "a", 1), 1);
    rec_.events.clear();
    ASSERT_TRUE(runUntil(StreamEvent::kReadable));
    EXPECT_EQ(drainInput(), "a");
  }
  EXPECT_EQ(stream_->quickAcks(), 0u);
}

}  // namespace
}  // namespace speedmimi::event
