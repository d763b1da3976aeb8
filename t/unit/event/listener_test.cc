// Listening sockets: "::" is dual-stack (IPV6_V6ONLY off, as nginx's ipv6only=off), whatever
// the system default (net.ipv6.bindv6only).
#include "event/listener.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace speedmimi::event {
namespace {

TEST(OpenListener, AnyIpv6AddressAlsoAcceptsIpv4) {
  std::string error;
  Fd fd = openListener("::", 0, 8, error);
  ASSERT_TRUE(fd.valid()) << error;
  int v6only = -1;
  socklen_t len = sizeof(v6only);
  ASSERT_EQ(getsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
  EXPECT_EQ(v6only, 0);

  sockaddr_in6 bound{};
  len = sizeof(bound);
  ASSERT_EQ(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len), 0);
  Fd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = bound.sin6_port;
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(client.get(), reinterpret_cast<sockaddr*>(&v4), sizeof(v4)), 0);
}

}  // namespace
}  // namespace speedmimi::event
