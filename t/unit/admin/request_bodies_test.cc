#include "admin/request_bodies.h"

#include <gtest/gtest.h>

#include <string>

namespace speedmimi::admin {
namespace {

core::JsonPtr parsed(const std::string& text) {
  core::JsonPtr body;
  std::string error;
  EXPECT_TRUE(parseObject(text, body, error)) << error;
  return body;
}

TEST(RequestBodies, BadJsonNamesLineAndColumn) {
  core::JsonPtr body;
  std::string error;
  EXPECT_FALSE(parseObject("{\n  \"upstream\": \"default\",\n  \"backend\": {\"id\": }\n}", body,
                           error));
  EXPECT_EQ(error.rfind("invalid JSON at line 3, column ", 0), 0u) << error;
  EXPECT_EQ(body, nullptr);
  EXPECT_FALSE(parseObject("[1, 2]", body, error));
  EXPECT_EQ(error, "the body must be a JSON object");
  EXPECT_FALSE(parseObject("{\"a\": 1, \"a\": 2}", body, error));
  EXPECT_NE(error.find("duplicate"), std::string::npos) << error;
}

TEST(RequestBodies, AddBodyOfTheOriginalReadme) {
  AddBody add;
  std::string error;
  ASSERT_TRUE(readAddBody(parsed(R"({"upstream": "default", "backend": {"id": "backend3",
      "host": "127.0.0.1", "port": 8083, "weight": 50}})").get(), add, error)) << error;
  EXPECT_EQ(add.upstream, "default");
  EXPECT_EQ(add.backend.id, "backend3");
  EXPECT_EQ(add.backend.host, "127.0.0.1");
  EXPECT_EQ(add.backend.port, 8083);
  EXPECT_EQ(add.backend.weight, 50);
  EXPECT_TRUE(add.backend.active);
}

TEST(RequestBodies, SlowStartInAddAndUpdateBodies) {
  AddBody add;
  std::string error;
  ASSERT_TRUE(readAddBody(parsed(R"({"upstream": "u", "backend": {"host": "::1", "port": 81,
      "slow_start": "30s"}})")
                              .get(),
                          add, error))
      << error;
  EXPECT_EQ(add.backend.slow_start, std::chrono::milliseconds(30'000));
  ASSERT_TRUE(readAddBody(
      parsed(R"({"upstream": "u", "backend": {"host": "::1", "port": 81}})").get(), add, error))
      << error;
  EXPECT_EQ(add.backend.slow_start, std::chrono::milliseconds(0)) << "off by default";
  EXPECT_FALSE(readAddBody(parsed(R"({"upstream": "u", "backend": {"host": "::1", "port": 81,
      "slow_start": -5}})")
                               .get(),
                           add, error));
  EXPECT_EQ(error, "backend.slow_start: must be at least 0s");

  UpdateBody update;
  ASSERT_TRUE(readUpdateBody(parsed(R"({"upstream": "u", "backend": {"id": "b",
      "slow_start": 0}})")
                                 .get(),
                             update, error))
      << error;
  EXPECT_EQ(core::jsonText(update.fields.get()), R"({"slow_start":0})");
  EXPECT_FALSE(readUpdateBody(parsed(R"({"upstream": "u", "backend": {"id": "b",
      "slow_start": "later"}})")
                                  .get(),
                              update, error));
  EXPECT_EQ(error, R"(backend.slow_start: must be a duration such as "10s")");
}

TEST(RequestBodies, AddBodyWithoutIdGetsHostAndPort) {
  AddBody add;
  std::string error;
  ASSERT_TRUE(readAddBody(parsed(R"({"upstream": "u", "backend": {"host": "::1", "port": 81}})")
                              .get(), add, error)) << error;
  EXPECT_EQ(add.backend.id, "::1:81");
}

TEST(RequestBodies, AddBodyErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* error;
  } cases[] = {
      {R"({"backend": {"host": "h", "port": 1}})", "upstream: is required"},
      {R"({"upstream": "", "backend": {"host": "h", "port": 1}})",
       "upstream: must be a non-empty string"},
      {R"({"upstream": 7, "backend": {"host": "h", "port": 1}})",
       "upstream: must be a non-empty string"},
      {R"({"upstream": "u"})", "backend: is required"},
      {R"({"upstream": "u", "backend": [1]})", "backend: must be an object"},
      {R"({"upstream": "u", "backend": {"port": 1}})", "backend.host: is required"},
      {R"({"upstream": "u", "backend": {"host": "h"}})", "backend.port: is required"},
      {R"({"upstream": "u", "backend": {"host": "h", "port": 1}, "colour": 1})",
       "colour: is not a known field"},
  };
  for (const Case& c : cases) {
    AddBody add;
    std::string error;
    EXPECT_FALSE(readAddBody(parsed(c.body).get(), add, error)) << c.body;
    EXPECT_EQ(error, c.error) << c.body;
  }
  // Values are checked by the backend reader, with their path.
  AddBody add;
  std::string error;
  EXPECT_FALSE(readAddBody(parsed(R"({"upstream": "u", "backend": {"host": "h", "port": 70000}})")
                               .get(), add, error));
  EXPECT_EQ(error.rfind("backend.port: ", 0), 0u) << error;
}

TEST(RequestBodies, UpdateBodyKeepsOnlyTheFieldsToChange) {
  UpdateBody update;
  std::string error;
  ASSERT_TRUE(readUpdateBody(parsed(R"({"upstream": "default", "backend": {"id": "backend1",
      "weight": 200}})").get(), update, error)) << error;
  EXPECT_EQ(update.upstream, "default");
  EXPECT_EQ(update.id, "backend1");
  EXPECT_EQ(core::jsonText(update.fields.get()), R"({"weight":200})");
}

TEST(RequestBodies, UpdateBodyErrors) {
  struct Case {
    const char* body;
    const char* prefix;
  } cases[] = {
      {R"({"upstream": "u", "backend": {"weight": 2}})", "backend.id: is required"},
      {R"({"upstream": "u", "backend": {"id": "b"}})",
       "backend: names no field to change besides \"id\""},
      {R"({"upstream": "u", "backend": {"id": "b", "weight": "heavy"}})", "backend.weight: "},
      {R"({"upstream": "u", "backend": {"id": "b", "colour": "red"}})", "backend.colour: "},
  };
  for (const Case& c : cases) {
    UpdateBody update;
    std::string error;
    EXPECT_FALSE(readUpdateBody(parsed(c.body).get(), update, error)) << c.body;
    EXPECT_EQ(error.rfind(c.prefix, 0), 0u) << c.body << " -> " << error;
  }
}

TEST(RequestBodies, ReportBodyOfTheOriginalReadmeAndItsRanges) {
  ReportBody report;
  std::string error;
  ASSERT_TRUE(readReportBody(parsed(R"({"upstream": "default", "backend_id": "backend1",
      "performance": {"cpu_usage": 45.2, "memory_usage": 67.8, "load_avg_1": 2.1}})").get(),
                             report, error)) << error;
  EXPECT_DOUBLE_EQ(report.report.cpu_usage, 45.2);
  EXPECT_DOUBLE_EQ(report.report.memory_usage, 67.8);
  EXPECT_DOUBLE_EQ(report.report.load_avg_1, 2.1);
  EXPECT_EQ(report.report.timestamp, 0);

  struct Case {
    const char* performance;
    const char* error;
  } cases[] = {
      {R"({"cpu_usage": 100.5})", "performance.cpu_usage: must be between 0 and 100"},
      {R"({"memory_usage": -1})", "performance.memory_usage: must be between 0 and 100"},
      {R"({"load_avg_5": -0.1})", "performance.load_avg_5: must not be negative"},
      {R"({"network_in": -5})", "performance.network_in: must not be negative"},
      {R"({"cpu_usage": "high"})", "performance.cpu_usage: must be a number"},
      {R"({"gpu_usage": 3})", "performance.gpu_usage: is not a known field"},
  };
  for (const Case& c : cases) {
    std::string body = std::string(R"({"upstream": "u", "backend_id": "b", "performance": )") +
                       c.performance + "}";
    EXPECT_FALSE(readReportBody(parsed(body).get(), report, error)) << body;
    EXPECT_EQ(error, c.error) << body;
  }
  EXPECT_FALSE(readReportBody(parsed(R"({"upstream": "u", "backend_id": "b"})").get(), report,
                              error));
  EXPECT_EQ(error, "performance: is required");
}

TEST(RequestBodies, ConfigBody) {
  const json_t* config = nullptr;
  std::string error;
  core::JsonPtr body = parsed(R"({"config": {"server": {"port": 8080}}})");
  ASSERT_TRUE(readConfigBody(body.get(), config, error)) << error;
  EXPECT_EQ(json_object_get(body.get(), "config"), config);
  EXPECT_FALSE(readConfigBody(parsed(R"({"server": {}})").get(), config, error));
  EXPECT_EQ(error, "server: is not a known field");
  // GET's answer, sent back as it came.
  body = parsed(R"({"success": true, "message": "m", "config": {}})");
  EXPECT_TRUE(readConfigBody(body.get(), config, error)) << error;
  EXPECT_FALSE(readConfigBody(parsed(R"({"config": "x"})").get(), config, error));
  EXPECT_EQ(error, "config: must be an object");
}

}  // namespace
}  // namespace speedmimi::admin
