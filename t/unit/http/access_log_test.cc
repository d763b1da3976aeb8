#include "http/access_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <fstream>
#include <string>
#include <vector>

namespace speedmimi::http {
namespace {

class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
  }
  AccessLogEntry entry() {
    AccessLogEntry e;
    e.client_ip = "203.0.113.7";
    e.method = "GET";
    e.target = "/index.html?q=1";
    e.minor_version = 1;
    e.status = 200;
    e.body_bytes = 612;
    e.referer = "http://example.com/";
    e.user_agent = "curl/8.0";
    e.upstream_addr = "127.0.0.1:8081";
    e.upstream_status = kOneAnswer;
    e.request_time = 0.0123;
    e.upstream_time = 0.011;
    e.upstream_header_time = 0.0042;
    e.route = "default";
    return e;
  }
  static constexpr time_t kNow = 1795780800;  // 2026-11-27 12:00:00 UTC
  static constexpr int kOneAnswer[] = {200};
};

// combined, then "upstream_addr" upstream_status request_time upstream_response_time
// upstream_header_time "route".
// Over TLS both formats add the protocol and the cipher; plain lines have neither.
TEST_F(AccessLogTest, TlsConnectionsShowProtocolAndCipher) {
  AccessLogEntry e = entry();
  e.ssl_protocol = "TLSv1.3";
  e.ssl_cipher = "TLS_AES_128_GCM_SHA256";
  std::string combined = AccessLog::format(e, core::AccessLogFormat::kCombined, kNow);
  EXPECT_TRUE(combined.ends_with(" \"default\" \"TLSv1.3\" \"TLS_AES_128_GCM_SHA256\""))
      << combined;
  std::string json = AccessLog::format(e, core::AccessLogFormat::kJson, kNow);
  EXPECT_TRUE(json.ends_with(
      ",\"route\":\"default\",\"ssl_protocol\":\"TLSv1.3\",\"ssl_cipher\":\"TLS_AES_128_GCM_SHA256\"}"))
      << json;
  EXPECT_EQ(AccessLog::format(entry(), core::AccessLogFormat::kJson, kNow).find("ssl_"),
            std::string::npos);
}

TEST_F(AccessLogTest, CombinedFormatWithUpstreamFields) {
  EXPECT_EQ(AccessLog::format(entry(), core::AccessLogFormat::kCombined, kNow),
            "203.0.113.7 - - [27/Nov/2026:12:00:00 +0000] \"GET /index.html?q=1 HTTP/1.1\" 200 "
            "612 \"http://example.com/\" \"curl/8.0\" \"127.0.0.1:8081\" 200 0.012 0.011 0.004 "
            "\"default\"");
}

// The time to the head is in seconds with milliseconds, as nginx's $upstream_header_time.
TEST_F(AccessLogTest, HeaderTimeHasMillisecondsAndRouteNamesAreEscaped) {
  AccessLogEntry e = entry();
  e.upstream_header_time = 1.5;
  e.route = "a \"b\"";
  std::string line = AccessLog::format(e, core::AccessLogFormat::kCombined, kNow);
  EXPECT_TRUE(line.ends_with(" 0.012 0.011 1.500 \"a \\\"b\\\"\"")) << line;
  line = AccessLog::format(e, core::AccessLogFormat::kJson, kNow);
  EXPECT_TRUE(line.ends_with(",\"upstream_header_time\":1.500,\"route\":\"a \\\"b\\\"\"}")) << line;
  e.upstream_header_time = 0;  // a backend that answered within a millisecond
  line = AccessLog::format(e, core::AccessLogFormat::kCombined, kNow);
  EXPECT_TRUE(line.ends_with(" 0.011 0.000 \"a \\\"b\\\"\"")) << line;
}

TEST_F(AccessLogTest, MissingFieldsAreDashes) {
  AccessLogEntry e = entry();
  e.referer = "";
  e.user_agent = "";
  e.upstream_addr = "-";
  e.upstream_status = {};
  e.upstream_time = -1;
  e.upstream_header_time = -1;
  e.route = "";
  e.status = 404;
  e.body_bytes = 0;
  EXPECT_EQ(AccessLog::format(e, core::AccessLogFormat::kCombined, kNow),
            "203.0.113.7 - - [27/Nov/2026:12:00:00 +0000] \"GET /index.html?q=1 HTTP/1.1\" 404 "
            "0 \"-\" \"-\" \"-\" - 0.012 - - \"-\"");
  EXPECT_TRUE(AccessLog::format(e, core::AccessLogFormat::kJson, kNow)
                  .ends_with(",\"upstream_addr\":\"-\",\"upstream_status\":null,"
                             "\"request_time\":0.012,\"upstream_response_time\":null,"
                             "\"upstream_header_time\":null,\"route\":null}"));
}

// A route matched but no backend answered (503: none available, or a connect that failed).
TEST_F(AccessLogTest, ARouteWithoutAnAnswerHasItsNameAndNoHeaderTime) {
  AccessLogEntry e = entry();
  e.status = 503;
  e.upstream_addr = "-";
  e.upstream_status = {};
  e.upstream_time = -1;
  e.upstream_header_time = -1;
  std::string line = AccessLog::format(e, core::AccessLogFormat::kCombined, kNow);
  EXPECT_TRUE(line.ends_with(" \"-\" - 0.012 - - \"default\"")) << line;
}

// Every backend tried and each attempt's outcome, in order, as nginx's $upstream_addr and
// $upstream_status: a failed attempt shows 502 or 504, one cut short without an answer "-".
TEST_F(AccessLogTest, EveryAttemptIsListed) {
  AccessLogEntry e = entry();
  e.upstream_addr = "127.0.0.1:8081, 127.0.0.1:8082, [::1]:8083";
  const int statuses[] = {502, 504, 200};
  e.upstream_status = statuses;
  std::string line = AccessLog::format(e, core::AccessLogFormat::kCombined, kNow);
  EXPECT_NE(line.find(" \"127.0.0.1:8081, 127.0.0.1:8082, [::1]:8083\" 502, 504, 200 0.012 "),
            std::string::npos)
      << line;
  line = AccessLog::format(e, core::AccessLogFormat::kJson, kNow);
  EXPECT_NE(line.find(",\"upstream_addr\":\"127.0.0.1:8081, 127.0.0.1:8082, [::1]:8083\","
                      "\"upstream_status\":\"502, 504, 200\",\"request_time\""),
            std::string::npos)
      << line;
  const int cut_short[] = {503, 0};
  e.upstream_status = cut_short;
  line = AccessLog::format(e, core::AccessLogFormat::kCombined, kNow);
  EXPECT_NE(line.find("\" 503, - 0.012 "), std::string::npos) << line;
}

TEST_F(AccessLogTest, QuotesAndControlBytesAreEscaped) {
  AccessLogEntry e = entry();
  e.user_agent = "evil\"agent\n";
  std::string line = AccessLog::format(e, core::AccessLogFormat::kCombined, kNow);
  EXPECT_NE(line.find("\"evil\\\"agent\\x0A\""), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST_F(AccessLogTest, JsonFormat) {
  AccessLogEntry e = entry();
  e.user_agent = "a\"b";
  EXPECT_EQ(AccessLog::format(e, core::AccessLogFormat::kJson, kNow),
            "{\"time\":\"2026-11-27T12:00:00+0000\",\"remote_addr\":\"203.0.113.7\","
            "\"method\":\"GET\",\"uri\":\"/index.html?q=1\",\"protocol\":\"HTTP/1.1\","
            "\"status\":200,\"body_bytes_sent\":612,\"http_referer\":\"http://example.com/\","
            "\"http_user_agent\":\"a\\\"b\",\"upstream_addr\":\"127.0.0.1:8081\","
            "\"upstream_status\":\"200\",\"request_time\":0.012,\"upstream_response_time\":0.011,"
            "\"upstream_header_time\":0.004,\"route\":\"default\"}");
}

TEST_F(AccessLogTest, OffWritesNothingAndFileGetsBufferedLines) {
  AccessLog off;
  std::string error;
  ASSERT_TRUE(off.open("off", core::AccessLogFormat::kCombined, error));
  EXPECT_FALSE(off.enabled());

  char path[] = "/tmp/speedmimi-access-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    AccessLog log;
    ASSERT_TRUE(log.open(path, core::AccessLogFormat::kCombined, error)) << error;
    log.write(entry());
    log.write(entry());
  }  // flushed on destruction
  FILE* f = fopen(path, "r");
  ASSERT_NE(f, nullptr);
  int lines = 0;
  char buf[1024];
  while (fgets(buf, sizeof(buf), f)) ++lines;
  fclose(f);
  unlink(path);
  EXPECT_EQ(lines, 2);
}

time_t g_fake_now = 0;
time_t fakeTime(time_t*) {
  return g_fake_now;
}

// The time is formatted once per second with lines, not once per line (as nginx caches it).
TEST_F(AccessLogTest, TimeIsFormattedOncePerSecond) {
  char path[] = "/tmp/speedmimi-access-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  g_fake_now = kNow;
  std::string error;
  {
    AccessLog log(&fakeTime);
    ASSERT_TRUE(log.open(path, core::AccessLogFormat::kCombined, error)) << error;
    log.write(entry());
    log.write(entry());
    EXPECT_EQ(log.timeFormats(), 1u);
    g_fake_now = kNow + 1;
    log.write(entry());
    EXPECT_EQ(log.timeFormats(), 2u);
  }
  std::ifstream in(path);
  std::vector<std::string> times;
  for (std::string line; std::getline(in, line);) {
    times.push_back(line.substr(line.find('[') + 1, line.find(']') - line.find('[') - 1));
  }
  unlink(path);
  EXPECT_EQ(times,
            (std::vector<std::string>{"27/Nov/2026:12:00:00 +0000", "27/Nov/2026:12:00:00 +0000",
                                      "27/Nov/2026:12:00:01 +0000"}));
}

TEST_F(AccessLogTest, UnwritablePathIsAnError) {
  AccessLog log;
  std::string error;
  EXPECT_FALSE(log.open("/nonexistent-dir/x/access.log", core::AccessLogFormat::kCombined, error));
  EXPECT_NE(error.find("cannot open access log /nonexistent-dir/x/access.log"), std::string::npos);
}

}  // namespace
}  // namespace speedmimi::http
