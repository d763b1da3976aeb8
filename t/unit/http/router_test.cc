#include "http/router.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace speedmimi::http {
namespace {

core::RouteConfig route(std::string name, std::string path, std::string host = "") {
  core::RouteConfig r;
  r.name = std::move(name);
  r.path = std::move(path);
  r.host = std::move(host);
  r.upstream = "default";
  return r;
}

struct MatchCase {
  const char* host;
  const char* path;
  int expected;
};

void expectMatches(const std::vector<core::RouteConfig>& routes,
                   const std::vector<MatchCase>& cases) {
  const Router router(routes);
  for (const MatchCase& c : cases) {
    EXPECT_EQ(router.match(c.host, c.path), c.expected) << "host=" << c.host << " path=" << c.path;
  }
}

TEST(RouterTest, LongestPrefixWinsWhateverTheConfigOrder) {
  const std::vector<core::RouteConfig> routes = {
      route("root", "/"),
      route("api", "/api"),
      route("api_v2", "/api/v2/"),
      route("static", "/static/"),
  };
  expectMatches(routes, {
                            {"a.test", "/", 0},
                            {"a.test", "/index.html", 0},
                            {"a.test", "/api", 1},
                            {"a.test", "/api/users", 1},
                            {"a.test", "/apix", 1},  // nginx: a plain byte prefix
                            {"a.test", "/api/v2", 1},
                            {"a.test", "/api/v2/items", 2},
                            {"a.test", "/static/app.js", 3},
                            {"a.test", "/static", 0},
                        });
}

TEST(RouterTest, QueryStringIsPartOfThePath) {
  const std::vector<core::RouteConfig> routes = {route("root", "/"), route("search", "/search")};
  expectMatches(routes, {
                            {"a.test", "/search?q=1", 1},
                            {"a.test", "/?q=/search", 0},
                        });
}

TEST(RouterTest, NoMatchIsMinusOne) {
  const std::vector<core::RouteConfig> routes = {route("api", "/api"),
                                                 route("only_b", "/", "b.test")};
  expectMatches(routes, {
                            {"a.test", "/", -1},
                            {"a.test", "/ap", -1},
                            {"a.test", "", -1},
                            {"b.test", "/", 1},
                        });
  EXPECT_EQ(Router({}).match("a.test", "/"), -1);
}

TEST(RouterTest, HostComparisonIgnoresCaseAndPort) {
  const std::vector<core::RouteConfig> routes = {route("any", "/"),
                                                 route("shop", "/", "Shop.Example.TEST")};
  expectMatches(routes, {
                            {"shop.example.test", "/", 1},
                            {"SHOP.EXAMPLE.TEST", "/cart", 1},
                            {"shop.example.test:8080", "/", 1},
                            {"shop.example.test.other", "/", 0},
                            {"shop.example", "/", 0},
                            {"", "/", 0},
                        });
}

TEST(RouterTest, Ipv6HostLiterals) {
  const std::vector<core::RouteConfig> routes = {
      route("any", "/"), route("loopback6", "/", "[::1]"), route("doc", "/", "2001:DB8::1")};
  expectMatches(routes, {
                            {"[::1]", "/", 1},
                            {"[::1]:8080", "/", 1},
                            {"[::2]:8080", "/", 0},
                            {"[2001:db8::1]:443", "/", 2},
                            {"127.0.0.1:8080", "/", 0},
                        });
}

TEST(RouterTest, HostSpecificRouteWinsOnEqualPrefix) {
  const std::vector<core::RouteConfig> routes = {route("generic", "/api"),
                                                 route("shop", "/api", "shop.test")};
  expectMatches(routes, {
                            {"shop.test", "/api/x", 1},
                            {"other.test", "/api/x", 0},
                        });
}

TEST(RouterTest, LongerPrefixBeatsHostSpecificShorterOne) {
  const std::vector<core::RouteConfig> routes = {route("shop_root", "/", "shop.test"),
                                                 route("api", "/api")};
  expectMatches(routes, {
                            {"shop.test", "/api/x", 1},
                            {"shop.test", "/about", 0},
                        });
}

TEST(RouterTest, EqualRoutesResolveToTheEarlierOne) {
  const std::vector<core::RouteConfig> routes = {route("first", "/x"), route("second", "/x"),
                                                 route("host_first", "/x", "h.test"),
                                                 route("host_second", "/x", "H.TEST")};
  expectMatches(routes, {
                            {"other.test", "/x", 0},
                            {"h.test", "/x", 2},
                        });
}

TEST(RouterTest, PortOnlyRouteHostIsNotAWildcard) {
  const std::vector<core::RouteConfig> routes = {route("any", "/"), route("odd", "/", ":80")};
  expectMatches(routes, {{"a.test", "/", 0}, {"a.test:80", "/", 0}});
}

}  // namespace
}  // namespace speedmimi::http
