#include "admin/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "event/handles.h"
#include "event/timer.h"
#include "loopback.h"

namespace speedmimi::admin {
namespace {

using testing::listenOnLoopback;

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServer::Options options = {}) {
    base_.reset(event_base_new());
    server_ = std::make_unique<HttpServer>(base_.get(), options);
    int fd = listenOnLoopback(port_);
    ASSERT_GE(fd, 0);
    std::string error;
    ASSERT_TRUE(server_->listen(fd, error)) << error;
  }

  std::string send(const std::string& request) {
    return testing::sendWhileLooping(base_.get(), port_, request);
  }

  static std::string get(const std::string& path, const std::string& extra = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + "\r\n";
  }

  event::EventBasePtr base_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};


TEST_F(HttpServerTest, AnswersJsonFromARoute) {
  start();
  server_->route("/api/v1/ping", Method::kGet, [](const CallPtr& call) {
    core::JsonPtr data(json_pack("{s:s}", "echo", call->query("x").c_str()));
    call->succeed(200, "pong", std::move(data));
  });
  std::string answer = send(get("/api/v1/ping?x=a%20b"));
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(answer.find("\"success\": true"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"message\": \"pong\""), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"echo\": \"a b\""), std::string::npos) << answer;
  EXPECT_EQ(server_->pending(), 0u);
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  start();
  server_->route("/a", Method::kGet, [](const CallPtr& call) { call->succeed(200, "a"); });
  server_->route("/a", Method::kPut, [](const CallPtr& call) { call->succeed(200, "a"); });
  std::string missing = send(get("/nope"));
  EXPECT_EQ(missing.rfind("HTTP/1.1 404 ", 0), 0u) << missing;
  EXPECT_NE(missing.find("\"error\": \"no such endpoint: /nope\""), std::string::npos) << missing;
  std::string wrong = send("DELETE /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(wrong.rfind("HTTP/1.1 405 ", 0), 0u) << wrong;
  EXPECT_NE(wrong.find("Allow: GET, PUT\r\n"), std::string::npos) << wrong;
  std::string patch = send("PATCH /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(patch.rfind("HTTP/1.1 405 ", 0), 0u) << patch;
  EXPECT_NE(send(get("/a/")).find("HTTP/1.1 200 "), std::string::npos);  // trailing slash
}

TEST_F(HttpServerTest, BearerTokenIsRequiredWhenSet) {
  HttpServer::Options options;
  options.auth_token = "s3cret";
  start(options);
  server_->route("/a", Method::kGet, [](const CallPtr& call) { call->succeed(200, "a"); });
  std::string none = send(get("/a"));
  EXPECT_EQ(none.rfind("HTTP/1.1 401 ", 0), 0u) << none;
  EXPECT_NE(none.find("WWW-Authenticate: Bearer realm=\"speedmimi\"\r\n"), std::string::npos);
  std::string wrong = send(get("/a", "Authorization: Bearer s3cre\r\n"));
  EXPECT_EQ(wrong.rfind("HTTP/1.1 401 ", 0), 0u) << wrong;
  std::string right = send(get("/a", "Authorization: Bearer s3cret\r\n"));
  EXPECT_EQ(right.rfind("HTTP/1.1 200 ", 0), 0u) << right;
  // 401 comes before routing: an unknown path does not tell an unauthenticated caller anything.
  EXPECT_EQ(send(get("/nope")).rfind("HTTP/1.1 401 ", 0), 0u);
}

TEST_F(HttpServerTest, ClientsOutsideAllowGet403) {
  HttpServer::Options options;
  options.allow = {*core::Cidr::parse("10.0.0.0/8")};
  start(options);
  server_->route("/a", Method::kGet, [](const CallPtr& call) { call->succeed(200, "a"); });
  std::string answer = send(get("/a"));
  EXPECT_EQ(answer.rfind("HTTP/1.1 403 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("admin.allow"), std::string::npos) << answer;
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413) {
  HttpServer::Options options;
  options.max_body = 100;
  start(options);
  bool called = false;
  server_->route("/a", Method::kPost, [&](const CallPtr& call) {
    called = true;
    call->succeed(200, "a");
  });
  std::string body(101, 'x');
  std::string answer = send("POST /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            "Content-Length: 101\r\n\r\n" + body);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"success\": false"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"error\": \"the request body is over the limit of 100 bytes\""), std::string::npos)
      << answer;
  EXPECT_FALSE(called);
  std::string fits = send("POST /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          "Content-Length: 100\r\n\r\n" + body.substr(1));
  EXPECT_EQ(fits.rfind("HTTP/1.1 200 ", 0), 0u) << fits;
}

TEST_F(HttpServerTest, ACallCanBeAnsweredLaterAndADroppedOneGets500) {
  start();
  CallPtr kept;
  server_->route("/later", Method::kPost, [&](const CallPtr& call) {
    kept = call;
    EXPECT_EQ(call->body(), "hello");
  });
  server_->route("/dropped", Method::kGet, [](const CallPtr&) {});
  event::EventPtr timer = event::newTimer(
      base_.get(),
      [](evutil_socket_t, short, void* arg) {
        auto* held = static_cast<CallPtr*>(arg);
        if (*held) (*held)->succeed(202, "later");
        held->reset();
      },
      &kept);
  event::addTimer(timer.get(), std::chrono::milliseconds(50));
  std::string answer = send("POST /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            "Content-Length: 5\r\n\r\nhello");
  EXPECT_EQ(answer.rfind("HTTP/1.1 202 ", 0), 0u) << answer;
  std::string dropped = send(get("/dropped"));
  EXPECT_EQ(dropped.rfind("HTTP/1.1 500 ", 0), 0u) << dropped;
  EXPECT_EQ(server_->pending(), 0u);
}

TEST_F(HttpServerTest, AStoppingServerRefusesNewCallsWith503) {
  start();
  server_->route("/a", Method::kGet, [](const CallPtr& call) { call->succeed(200, "a"); });
  server_->refuseNewCalls();
  std::string answer = send(get("/a"));
  EXPECT_EQ(answer.rfind("HTTP/1.1 503 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1\r\n"), std::string::npos) << answer;
}

TEST(HttpServerToken, ComparesTheWholeBearerToken) {
  EXPECT_TRUE(HttpServer::tokenMatches("Bearer abc", "abc"));
  EXPECT_TRUE(HttpServer::tokenMatches("bearer abc", "abc"));
  EXPECT_FALSE(HttpServer::tokenMatches("Bearer abcd", "abc"));
  EXPECT_FALSE(HttpServer::tokenMatches("Bearer ab", "abc"));
  EXPECT_FALSE(HttpServer::tokenMatches("Basic abc", "abc"));
  EXPECT_FALSE(HttpServer::tokenMatches("Bearer", "abc"));
  EXPECT_FALSE(HttpServer::tokenMatches(nullptr, "abc"));
}

}  // namespace
}  // namespace speedmimi::admin
