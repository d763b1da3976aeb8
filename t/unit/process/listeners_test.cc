// Listening sockets across generations: kept, bound, closed with the last generation holding
// them, and handed to a new binary through the environment.
#include "process/listeners.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "event/listener.h"

namespace speedmimi::process {
namespace {

int portOf(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

bool isOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

// A free loopback port: bind to 0 and ask.
int freePort() {
  std::string error;
  event::Fd fd = event::openListener("127.0.0.1", 0, 1, error);
  return fd.valid() ? portOf(fd.get()) : 0;
}

TEST(ListenerAddress, Ipv6InBrackets) {
  EXPECT_EQ(listenerAddress("127.0.0.1", 8080), "127.0.0.1:8080");
  EXPECT_EQ(listenerAddress("::", 8080), "[::]:8080");
}

TEST(ListenerSet, AnAddressStillHeldKeepsItsSocket) {
  ListenerSet set;
  std::string error;
  int port = freePort();
  ListenerRef first = set.acquire("127.0.0.1", port, error);
  ASSERT_NE(first, nullptr) << error;
  ListenerRef again = set.acquire("127.0.0.1", port, error);
  EXPECT_EQ(again, first);  // same socket, same accept queue
  EXPECT_EQ(portOf(again->fd.get()), port);
}

TEST(ListenerSet, ASocketClosesWithTheLastGenerationHoldingIt) {
  ListenerSet set;
  std::string error;
  int port = freePort();
  ListenerRef held = set.acquire("127.0.0.1", port, error);
  ASSERT_NE(held, nullptr) << error;
  int fd = held->fd.get();
  EXPECT_EQ(set.open().size(), 1u);
  held.reset();
  EXPECT_FALSE(isOpen(fd));
  EXPECT_TRUE(set.open().empty());
  // And the address can be bound again.
  EXPECT_NE(set.acquire("127.0.0.1", port, error), nullptr) << error;
}

TEST(ListenerSet, ABindFailureIsAnErrorNamingTheAddress) {
  ListenerSet set;
  std::string error;
  int port = freePort();
  event::Fd taken = event::openListener("127.0.0.1", port, 1, error);
  ASSERT_TRUE(taken.valid());
  EXPECT_EQ(set.acquire("127.0.0.1", port, error), nullptr);
  EXPECT_NE(error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << error;
}

TEST(ListenerSet, SocketsGoToANewBinaryThroughTheEnvironment) {
  ListenerSet old_set;
  std::string error;
  int port = freePort();
  ListenerRef l = old_set.acquire("127.0.0.1", port, error);
  ASSERT_NE(l, nullptr) << error;
  std::string value = old_set.environmentValue();
  EXPECT_EQ(value, "127.0.0.1:" + std::to_string(port) + "=" + std::to_string(l->fd.get()));

  // The new binary's set adopts a dup of it, as exec would hand it over.
  int inherited = dup(l->fd.get());
  ListenerSet new_set;
  new_set.inherit("127.0.0.1:" + std::to_string(port) + "=" + std::to_string(inherited), error);
  EXPECT_TRUE(error.empty()) << error;
  ListenerRef adopted = new_set.acquire("127.0.0.1", port, error);
  ASSERT_NE(adopted, nullptr) << error;  // no bind: the port is still held by `l`
  EXPECT_EQ(adopted->fd.get(), inherited);
  EXPECT_EQ(fcntl(inherited, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(ListenerSet, AnUnclaimedInheritedSocketIsClosed) {
  ListenerSet set;
  std::string error;
  event::Fd l = event::openListener("127.0.0.1", 0, 1, error);
  int fd = dup(l.get());
  set.inherit("127.0.0.1:1=" + std::to_string(fd), error);
  set.closeUnclaimed();
  EXPECT_FALSE(isOpen(fd));
}

TEST(ListenerSet, AMalformedInheritedValueIsReported) {
  ListenerSet set;
  std::string error;
  set.inherit("127.0.0.1:8080", error);
  EXPECT_NE(error.find("is not ADDRESS=FD"), std::string::npos) << error;
  error.clear();
  set.inherit("127.0.0.1:8080=99999", error);  // not an open descriptor
  EXPECT_NE(error.find("99999"), std::string::npos) << error;
}

}  // namespace
}  // namespace speedmimi::process
