#include "core/cidr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <string>

namespace speedmimi::core {
namespace {

IpAddress ip(const std::string& text) {
  const auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress{});
}

Cidr cidr(const std::string& text) {
  const auto parsed = Cidr::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(Cidr{});
}

TEST(IpAddress, ParsesAndPrintsBothFamilies) {
  struct Case {
    std::string text;
    bool v4;
    std::string printed;
  };
  const Case cases[] = {
      {"127.0.0.1", true, "127.0.0.1"},
      {"10.1.2.3", true, "10.1.2.3"},
      {"0.0.0.0", true, "0.0.0.0"},
      {"255.255.255.255", true, "255.255.255.255"},
      {"::ffff:10.1.2.3", true, "10.1.2.3"},  // v4-mapped is the IPv4 address
      {"::1", false, "::1"},
      {"::", false, "::"},
      {"2001:DB8::1", false, "2001:db8::1"},
      {"2001:db8:0:0:1:0:0:1", false, "2001:db8::1:0:0:1"},     // first of equal runs
      {"2001:db8:0:1:1:1:1:1", false, "2001:db8:0:1:1:1:1:1"},  // one zero group stays
      {"2001:0db8:0000:0000:0000:0000:0000:0001", false, "2001:db8::1"},
      {"fe80::", false, "fe80::"},
      {"::102:304", false, "::102:304"},         // IPv4-compatible is plain IPv6 (RFC 5952 §5)
      {"1:0:0:2:0:0:0:3", false, "1:0:0:2::3"},  // the longest run wins
  };
  for (const auto& c : cases) {
    const IpAddress a = ip(c.text);
    EXPECT_EQ(a.isV4(), c.v4) << c.text;
    EXPECT_EQ(a.toString(), c.printed) << c.text;
  }
}

TEST(IpAddress, StoresIpv4AsMapped) {
  EXPECT_EQ(ip("10.1.2.3"), ip("::ffff:10.1.2.3"));
  const IpAddress a = ip("192.0.2.7");
  const std::array<uint8_t, 16> expected = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
  EXPECT_EQ(a.bytes, expected);
}

TEST(IpAddress, RejectsWhatIsNotAnAddress) {
  const char* cases[] = {"",
                         "localhost",
                         "1.2.3",
                         "1.2.3.4.5",
                         "256.0.0.1",
                         "1.2.3.4/8",
                         " 1.2.3.4",
                         "1.2.3.4 ",
                         "::1::2",
                         "fe80::1%eth0",
                         "12345::",
                         "g::1",
                         "[::1]",
                         "1.2.3.04x",
                         "0000:0000:0000:0000:0000:0000:0000:0000:0000"};
  for (const char* text : cases) {
    EXPECT_FALSE(IpAddress::parse(text).has_value()) << "'" << text << "'";
  }
}

TEST(IpAddress, FromSockaddr) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  ASSERT_EQ(inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr), 1);
  EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&v4)), ip("127.0.0.1"));

  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "::1", &v6.sin6_addr), 1);
  EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&v6)), ip("::1"));

  // A dual-stack socket reports IPv4 peers as v4-mapped IPv6: the same address.
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr), 1);
  const IpAddress mapped = IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&v6));
  EXPECT_TRUE(mapped.isV4());
  EXPECT_EQ(mapped, ip("127.0.0.1"));

  sockaddr_un unix_peer{};
  unix_peer.sun_family = AF_UNIX;
  EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&unix_peer)), ip("::"));
  EXPECT_EQ(IpAddress::fromSockaddr(nullptr), ip("::"));
}

TEST(Cidr, ParsesAndPrints) {
  struct Case {
    std::string text;
    int prefix;
    std::string printed;
  };
  const Case cases[] = {
      {"10.0.0.0/8", 104, "10.0.0.0/8"},
      {"127.0.0.1/32", 128, "127.0.0.1/32"},
      {"0.0.0.0/0", 96, "0.0.0.0/0"},
      {"127.0.0.1", 128, "127.0.0.1/32"},  // a bare address is a host block
      {"10.1.2.3/8", 104, "10.0.0.0/8"},   // host bits are cleared
      {"192.168.1.130/25", 121, "192.168.1.128/25"},
      {"::1/128", 128, "::1/128"},
      {"::1", 128, "::1/128"},
      {"::/0", 0, "::/0"},
      {"2001:db8::/32", 32, "2001:db8::/32"},
      {"2001:db8:ffff::1/33", 33, "2001:db8:8000::/33"},
      {"fe80::1/10", 10, "fe80::/10"},
      {"::ffff:10.0.0.0/104", 104, "10.0.0.0/8"},  // the v4-mapped block is the IPv4 block
  };
  for (const auto& c : cases) {
    const Cidr block = cidr(c.text);
    EXPECT_EQ(block.prefix, c.prefix) << c.text;
    EXPECT_EQ(block.toString(), c.printed) << c.text;
  }
}

TEST(Cidr, RejectsMalformedBlocks) {
  const char* cases[] = {"",
                         "/8",
                         "10.0.0.0/",
                         "10.0.0.0/33",
                         "10.0.0.0/-1",
                         "10.0.0.0/+8",
                         "10.0.0.0/8/8",
                         "10.0.0.0/8x",
                         "10.0.0/8",
                         "::1/129",
                         "::/1000",
                         "::1/ 64",
                         "host/8",
                         "10.0.0.0 /8",
                         "10.0.0.0/0008"};
  for (const char* text : cases) {
    EXPECT_FALSE(Cidr::parse(text).has_value()) << "'" << text << "'";
  }
}

struct ContainsCase {
  std::string block;
  std::string address;
  bool inside;
};

TEST(Cidr, ContainsIpv4) {
  const ContainsCase cases[] = {
      {"10.0.0.0/8", "10.0.0.0", true},
      {"10.0.0.0/8", "10.255.255.255", true},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"10.0.0.0/8", "9.255.255.255", false},
      {"127.0.0.1/32", "127.0.0.1", true},
      {"127.0.0.1/32", "127.0.0.2", false},
      {"192.168.1.128/25", "192.168.1.200", true},
      {"192.168.1.128/25", "192.168.1.127", false},
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "::1", false},  // an IPv4 block never contains IPv6
      {"10.0.0.0/8", "::ffff:10.9.9.9", true},
      {"10.0.0.0/8", "::a09:909", false},  // IPv4-compatible is not IPv4
  };
  for (const auto& c : cases) {
    EXPECT_EQ(cidr(c.block).contains(ip(c.address)), c.inside) << c.block << " " << c.address;
  }
}

TEST(Cidr, ContainsIpv6) {
  const ContainsCase cases[] = {
      {"::1/128", "::1", true},
      {"::1/128", "::2", false},
      {"::1/128", "127.0.0.1", false},
      {"2001:db8::/32", "2001:db8:1234::5", true},
      {"2001:db8::/32", "2001:db9::", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      {"fe80::/10", "febf::1", true},
      {"fe80::/10", "fec0::1", false},
      {"::/0", "2001:db8::1", true},
      {"::/0", "10.0.0.1", true},  // every address, IPv4 ones included
      {"::ffff:0:0/96", "192.0.2.1", true},
      {"::ffff:0:0/96", "2001:db8::1", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(cidr(c.block).contains(ip(c.address)), c.inside) << c.block << " " << c.address;
  }
}

TEST(Cidr, AnyContains) {
  const std::vector<Cidr> blocks = {cidr("127.0.0.1/32"), cidr("10.0.0.0/8"), cidr("::1/128")};
  EXPECT_TRUE(anyContains(blocks, ip("127.0.0.1")));
  EXPECT_TRUE(anyContains(blocks, ip("10.20.30.40")));
  EXPECT_TRUE(anyContains(blocks, ip("::1")));
  EXPECT_FALSE(anyContains(blocks, ip("127.0.0.2")));
  EXPECT_FALSE(anyContains(blocks, ip("192.168.0.1")));
  EXPECT_FALSE(anyContains(blocks, ip("::2")));
  EXPECT_FALSE(anyContains({}, ip("127.0.0.1")));
}

}  // namespace
}  // namespace speedmimi::core
