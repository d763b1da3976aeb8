// GET /metrics rendering (admin/metrics.h): a zone with known counters gives exact lines; label
// values are escaped; every family has one # HELP and one # TYPE, before its samples, which are
// contiguous; histogram buckets are cumulative and _count equals the +Inf bucket.
#include "admin/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace speedmimi::admin {
namespace {

constexpr size_t kShmSize = 4u << 20;

std::vector<std::string> linesOf(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

bool hasLine(const std::string& text, const std::string& line) {
  for (const std::string& l : linesOf(text)) {
    if (l == line) return true;
  }
  return false;
}

// The lines of `text` that start with `prefix`, in order.
std::vector<std::string> linesStarting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  for (const std::string& l : linesOf(text)) {
    if (l.rfind(prefix, 0) == 0) out.push_back(l);
  }
  return out;
}

core::BackendConfig backend(const std::string& id, int port, int weight) {
  core::BackendConfig b;
  b.id = id;
  b.host = "127.0.0.1";
  b.port = port;
  b.weight = weight;
  return b;
}

core::BackendAddress loopback(int port) {
  core::BackendAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(static_cast<uint16_t>(port));
  v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.length = sizeof(sockaddr_in);
  return a;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    zone_ = core::Zone::create(kShmSize, 4, error);
    ASSERT_TRUE(zone_) << error;
    add("web", backend("w1", 8081, 3));
    add("web", backend("w2", 8082, 1));
    info_.version = "1.2.3";
    info_.generation = 4;
    info_.start_unix_ms = 1'700'000'000'250;
    info_.now_ms = 1'000;
  }

  void add(const std::string& upstream, const core::BackendConfig& b) {
    core::ChangeResult r = zone_->addBackend(upstream, b, loopback(b.port));
    ASSERT_TRUE(r.ok()) << r.message;
  }

  size_t indexOf(const std::string& upstream, const std::string& id) {
    core::BackendSlot* slot = zone_->find(upstream, id);
    EXPECT_NE(slot, nullptr) << upstream << "/" << id;
    return slot ? static_cast<size_t>(slot - zone_->slot(0)) : 0;
  }

  // A worker slot, ready, with a pid.
  size_t worker() {
    int slot = zone_->claimWorkerSlot(getpid());
    EXPECT_GE(slot, 0);
    core::ServerCounters& c = zone_->workers()[slot];
    c.pid.store(getpid());
    c.ready.store(1);
    return static_cast<size_t>(slot);
  }

  std::string render() { return renderMetrics(*zone_, info_); }

  std::unique_ptr<core::Zone> zone_;
  MetricsInfo info_;
};

TEST(MetricsFormat, ValuesAreTheShortestTextThatReadsBack) {
  const std::pair<double, const char*> cases[] = {
      {0.0001, "0.0001"},
      {0.00025, "0.00025"},
      {0.0005, "0.0005"},
      {0.001, "0.001"},
      {2.5, "2.5"},
      {60, "60"},
      {0, "0"},
      {1e21, "1e+21"},
      {2e-6, "2e-06"},
      {-1.5, "-1.5"},
      {1700000000.25, "1700000000.25"},
      {std::numeric_limits<double>::quiet_NaN(), "NaN"},
      {std::numeric_limits<double>::infinity(), "+Inf"},
      {-std::numeric_limits<double>::infinity(), "-Inf"},
  };
  for (const auto& [value, text] : cases) EXPECT_EQ(formatValue(value), text) << value;
}

TEST(MetricsFormat, LabelValuesEscapeBackslashQuoteAndLineFeed) {
  const std::pair<const char*, const char*> cases[] = {
      {"plain", "plain"},
      {"a\\b", "a\\\\b"},
      {"say \"hi\"", "say \\\"hi\\\""},
      {"two\nlines", "two\\nlines"},
      {"\\\"\n", "\\\\\\\"\\n"},
      {"tab\tand é", "tab\tand é"},  // only those three are escaped
      {"", ""},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(escapeLabelValue(in), out) << in;
}

TEST(MetricsFormat, HelpTextEscapesBackslashAndLineFeedOnly) {
  Exposition out;
  out.family("x_total", "counter", "a \\ b \"c\"\nd");
  EXPECT_EQ(out.text(), "# HELP x_total a \\\\ b \"c\"\\nd\n# TYPE x_total counter\n");
}

TEST(MetricsFormat, SamplesWithAndWithoutLabels) {
  Exposition out;
  out.sample("a", {}, uint64_t{18446744073709551615u});
  out.sample("b", {{"k", "v"}, {"q", "x\"y"}}, int64_t{-3});
  out.sample("c", {{"k", "v"}}, 0.5);
  EXPECT_EQ(out.text(),
            "a 18446744073709551615\n"
            "b{k=\"v\",q=\"x\\\"y\"} -3\n"
            "c{k=\"v\"} 0.5\n");
}

TEST(MetricsFormat, HistogramBucketsAreCumulativeAndCountIsTheInfBucket) {
  core::LatencyTotals h;
  h.buckets[0] = 2;                          // <= 0.1 ms
  h.buckets[3] = 5;                          // (0.5, 1] ms
  h.buckets[core::kLatencyBuckets - 1] = 1;  // > 60 s
  h.sum_us = 61'004'250;
  Exposition out;
  out.histogram("t_seconds", {{"upstream", "u"}}, h);
  std::vector<std::string> lines = linesOf(out.text());
  ASSERT_EQ(lines.size(), core::kLatencyBuckets + 2);
  const char* expected[] = {
      "t_seconds_bucket{upstream=\"u\",le=\"0.0001\"} 2",
      "t_seconds_bucket{upstream=\"u\",le=\"0.00025\"} 2",
      "t_seconds_bucket{upstream=\"u\",le=\"0.0005\"} 2",
      "t_seconds_bucket{upstream=\"u\",le=\"0.001\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.0025\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.005\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.01\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.025\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.05\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.1\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.25\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"0.5\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"1\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"2.5\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"5\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"10\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"30\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"60\"} 7",
      "t_seconds_bucket{upstream=\"u\",le=\"+Inf\"} 8",
      "t_seconds_sum{upstream=\"u\"} 61.00425",
      "t_seconds_count{upstream=\"u\"} 8",
  };
  ASSERT_EQ(std::size(expected), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i], expected[i]) << i;
}

TEST(MetricsFormat, AnEmptyHistogramHasEveryBucketAtZero) {
  Exposition out;
  out.histogram("e_seconds", {}, core::LatencyTotals{});
  EXPECT_TRUE(hasLine(out.text(), "e_seconds_bucket{le=\"+Inf\"} 0")) << out.text();
  EXPECT_TRUE(hasLine(out.text(), "e_seconds_sum 0")) << out.text();
  EXPECT_TRUE(hasLine(out.text(), "e_seconds_count 0")) << out.text();
}

TEST_F(MetricsTest, ServerCountersGiveExactLines) {
  size_t a = worker();
  size_t b = worker();
  core::ServerCounters& wa = zone_->workers()[a];
  core::ServerCounters& wb = zone_->workers()[b];
  wa.accepted = 5;
  wa.active_connections = 2;
  wa.requests = 9;
  wa.retries = 4;
  wa.retries_refused = 1;
  wa.responses_by_class[2] = 6;
  wa.responses_by_class[4] = 3;
  wa.bytes_in = 1000;
  wa.bytes_out = 20000;
  wb.accepted = 1;
  wb.requests = 3;
  wb.retries = 2;
  wb.responses_by_class[5] = 2;
  wb.responses_by_class[0] = 1;  // none sent: not a class of its own in the exposition
  wb.bytes_in = 1;
  wb.bytes_out = 2;
  // A third worker that exited: its counts are folded into the retired totals, still counted.
  size_t c = worker();
  zone_->workers()[c].requests = 100;
  zone_->workers()[c].responses_by_class[2] = 100;
  zone_->workers()[c].accepted = 10;
  zone_->workers()[c].retries = 30;
  zone_->workers()[c].retries_refused = 7;
  zone_->releaseWorkerSlot(c);

  std::string text = render();
  for (const char* line : {
           "speedmimi_build_info{version=\"1.2.3\"} 1",
           "speedmimi_generation 4",
           "speedmimi_start_time_seconds 1700000000.25",
           "speedmimi_workers 2",
           "speedmimi_connections_accepted_total 16",
           "speedmimi_connections_active 2",
           "speedmimi_requests_total 112",
           "speedmimi_retries_total 36",
           "speedmimi_retries_refused_total 8",
           "speedmimi_responses_total{code=\"1xx\"} 0",
           "speedmimi_responses_total{code=\"2xx\"} 106",
           "speedmimi_responses_total{code=\"3xx\"} 0",
           "speedmimi_responses_total{code=\"4xx\"} 3",
           "speedmimi_responses_total{code=\"5xx\"} 2",
           "speedmimi_received_bytes_total 1001",
           "speedmimi_sent_bytes_total 20002",
       }) {
    EXPECT_TRUE(hasLine(text, line)) << line << "\nin:\n" << text;
  }
  EXPECT_EQ(linesStarting(text, "speedmimi_responses_total{").size(), 5u) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE speedmimi_requests_total counter")) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE speedmimi_retries_total counter")) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE speedmimi_retries_refused_total counter")) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE speedmimi_connections_active gauge")) << text;
}

TEST_F(MetricsTest, BackendCountersGiveExactLinesInUpstreamThenIdOrder) {
  add("api", backend("a1", 9001, 7));  // a later slot, an earlier upstream
  size_t w = worker();
  core::BackendWorkerCounters* row = zone_->backendCounters(w);
  ASSERT_NE(row, nullptr);
  size_t w1 = indexOf("web", "w1");
  row[w1].counters.requests = 10;
  row[w1].counters.failures = 1;
  row[w1].counters.bytes_in = 4096;
  row[w1].counters.bytes_out = 512;
  core::BackendSlot& s1 = *zone_->slot(w1);
  s1.runtime.active_connections = 3;
  s1.runtime.latency_us = 1500;
  s1.runtime.health = static_cast<int>(core::Health::kUp);
  core::BackendSlot& s2 = *zone_->slot(indexOf("web", "w2"));
  s2.runtime.health = static_cast<int>(core::Health::kDown);
  ASSERT_TRUE(zone_->disconnectBackend("web", "w2").ok());
  // a1: health unknown, but passive checks took it out until after now_ms.
  zone_->slot(indexOf("api", "a1"))->runtime.passive_down_until_ms = info_.now_ms + 1;

  std::string text = render();
  const std::vector<std::string> expected_up = {
      "speedmimi_backend_up{upstream=\"api\",backend=\"a1\"} 0",
      "speedmimi_backend_up{upstream=\"web\",backend=\"w1\"} 1",
      "speedmimi_backend_up{upstream=\"web\",backend=\"w2\"} 0",
  };
  EXPECT_EQ(linesStarting(text, "speedmimi_backend_up{"), expected_up) << text;
  const std::vector<std::string> expected_state = {
      "speedmimi_backend_health_state{upstream=\"api\",backend=\"a1\",state=\"up\"} 0",
      "speedmimi_backend_health_state{upstream=\"api\",backend=\"a1\",state=\"down\"} 1",
      "speedmimi_backend_health_state{upstream=\"api\",backend=\"a1\",state=\"unknown\"} 0",
      "speedmimi_backend_health_state{upstream=\"web\",backend=\"w1\",state=\"up\"} 1",
      "speedmimi_backend_health_state{upstream=\"web\",backend=\"w1\",state=\"down\"} 0",
      "speedmimi_backend_health_state{upstream=\"web\",backend=\"w1\",state=\"unknown\"} 0",
      "speedmimi_backend_health_state{upstream=\"web\",backend=\"w2\",state=\"up\"} 0",
      "speedmimi_backend_health_state{upstream=\"web\",backend=\"w2\",state=\"down\"} 1",
      "speedmimi_backend_health_state{upstream=\"web\",backend=\"w2\",state=\"unknown\"} 0",
  };
  EXPECT_EQ(linesStarting(text, "speedmimi_backend_health_state{"), expected_state) << text;
  for (const char* line : {
           "speedmimi_backend_active{upstream=\"api\",backend=\"a1\"} 1",
           "speedmimi_backend_active{upstream=\"web\",backend=\"w1\"} 1",
           "speedmimi_backend_active{upstream=\"web\",backend=\"w2\"} 0",
           "speedmimi_backend_weight{upstream=\"api\",backend=\"a1\"} 7",
           "speedmimi_backend_weight{upstream=\"web\",backend=\"w1\"} 3",
           "speedmimi_backend_active_connections{upstream=\"web\",backend=\"w1\"} 3",
           "speedmimi_backend_active_connections{upstream=\"web\",backend=\"w2\"} 0",
           "speedmimi_backend_requests_total{upstream=\"web\",backend=\"w1\"} 10",
           "speedmimi_backend_requests_total{upstream=\"web\",backend=\"w2\"} 0",
           "speedmimi_backend_failures_total{upstream=\"web\",backend=\"w1\"} 1",
           "speedmimi_backend_received_bytes_total{upstream=\"web\",backend=\"w1\"} 4096",
           "speedmimi_backend_sent_bytes_total{upstream=\"web\",backend=\"w1\"} 512",
       }) {
    EXPECT_TRUE(hasLine(text, line)) << line << "\nin:\n" << text;
  }
  // The EWMA only once measured.
  const std::vector<std::string> expected_ewma = {
      "speedmimi_backend_latency_ewma_seconds{upstream=\"web\",backend=\"w1\"} 0.0015",
  };
  EXPECT_EQ(linesStarting(text, "speedmimi_backend_latency_ewma_seconds{"), expected_ewma) << text;
}

TEST_F(MetricsTest, HistogramsSumEveryWorkerAndTheRetiredOnes) {
  size_t a = worker();
  size_t b = worker();
  size_t gone = worker();
  zone_->workers()[a].request_latency.record(80);             // <= 0.1 ms
  zone_->workers()[a].request_latency.record(2'000);          // <= 2.5 ms
  zone_->workers()[b].request_latency.record(2'500);          // <= 2.5 ms (le is inclusive)
  zone_->workers()[gone].request_latency.record(70'000'000);  // > 60 s
  size_t w1 = indexOf("web", "w1");
  core::BackendWorkerCounters* row_a = zone_->backendCounters(a);
  core::BackendWorkerCounters* row_gone = zone_->backendCounters(gone);
  row_a[w1].counters.head_time.record(400);
  row_a[w1].counters.responses_by_class[2] = 4;
  row_gone[w1].counters.head_time.record(30'000'000);
  row_gone[w1].counters.responses_by_class[5] = 1;
  zone_->releaseWorkerSlot(gone);

  std::string text = render();
  const std::vector<std::string> server = {
      "speedmimi_request_duration_seconds_bucket{le=\"0.0001\"} 1",
      "speedmimi_request_duration_seconds_bucket{le=\"0.00025\"} 1",
      "speedmimi_request_duration_seconds_bucket{le=\"0.0005\"} 1",
      "speedmimi_request_duration_seconds_bucket{le=\"0.001\"} 1",
      "speedmimi_request_duration_seconds_bucket{le=\"0.0025\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"0.005\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"0.01\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"0.025\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"0.05\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"0.1\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"0.25\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"0.5\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"1\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"2.5\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"5\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"10\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"30\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"60\"} 3",
      "speedmimi_request_duration_seconds_bucket{le=\"+Inf\"} 4",
      "speedmimi_request_duration_seconds_sum 70.00458",
      "speedmimi_request_duration_seconds_count 4",
  };
  EXPECT_EQ(linesStarting(text, "speedmimi_request_duration_seconds_"), server) << text;
  const std::string w1_labels = "{upstream=\"web\",backend=\"w1\"";
  for (const std::string& line : {
           "speedmimi_backend_response_head_seconds_bucket" + w1_labels + ",le=\"0.00025\"} 0",
           "speedmimi_backend_response_head_seconds_bucket" + w1_labels + ",le=\"0.0005\"} 1",
           "speedmimi_backend_response_head_seconds_bucket" + w1_labels + ",le=\"10\"} 1",
           "speedmimi_backend_response_head_seconds_bucket" + w1_labels + ",le=\"30\"} 2",
           "speedmimi_backend_response_head_seconds_bucket" + w1_labels + ",le=\"+Inf\"} 2",
           "speedmimi_backend_response_head_seconds_sum" + w1_labels + "} 30.0004",
           "speedmimi_backend_response_head_seconds_count" + w1_labels + "} 2",
           std::string(
               "speedmimi_backend_response_head_seconds_count{upstream=\"web\",backend=\"w2\"} 0"),
           "speedmimi_backend_responses_total" + w1_labels + ",code=\"2xx\"} 4",
           "speedmimi_backend_responses_total" + w1_labels + ",code=\"5xx\"} 1",
           "speedmimi_backend_responses_total" + w1_labels + ",code=\"4xx\"} 0",
       }) {
    EXPECT_TRUE(hasLine(text, line)) << line << "\nin:\n" << text;
  }
  EXPECT_EQ(linesStarting(text, "speedmimi_backend_responses_total{").size(), 10u) << text;
  EXPECT_EQ(linesStarting(text, "speedmimi_backend_response_head_seconds_bucket{").size(),
            2 * core::kLatencyBuckets)
      << text;
}

// In every histogram of a rendering, each series' buckets never decrease, end with +Inf, and
// _count equals the +Inf bucket.
TEST_F(MetricsTest, EveryRenderedHistogramIsCumulativeAndCountsItsInfBucket) {
  size_t w = worker();
  for (uint64_t us : {1u, 300u, 300u, 9'000u, 120'000u, 4'000'000u}) {
    zone_->workers()[w].request_latency.record(us);
  }
  core::BackendWorkerCounters* row = zone_->backendCounters(w);
  for (uint64_t us : {50u, 700u, 61'000'000u})
    row[indexOf("web", "w2")].counters.head_time.record(us);
  std::string text = render();
  std::map<std::string, std::vector<std::pair<std::string, double>>> buckets;  // series -> le
  std::map<std::string, double> counts;
  for (const std::string& line : linesOf(text)) {
    if (line[0] == '#') continue;
    std::string series = line.substr(0, line.rfind(' '));
    double value = std::stod(line.substr(line.rfind(' ') + 1));
    size_t b = series.find("_bucket{");
    if (b != std::string::npos) {
      size_t le = series.find("le=\"");
      ASSERT_NE(le, std::string::npos) << line;
      std::string key = series.substr(0, b) + series.substr(b + 7, le - b - 7);
      std::string bound = series.substr(le + 4, series.find('"', le + 4) - le - 4);
      buckets[key].emplace_back(bound, value);
    }
    size_t c = series.find("_count");
    if (c != std::string::npos) {
      std::string labels = c + 6 < series.size() ? series.substr(c + 6) : "";
      // the same key as the buckets': name + "{labels," (or "{" alone)
      std::string key =
          series.substr(0, c) + (labels.empty() ? "{" : labels.substr(0, labels.size() - 1) + ",");
      counts[key] = value;
    }
  }
  ASSERT_EQ(buckets.size(), 3u) << text;  // the server's and two backends'
  for (const auto& [key, list] : buckets) {
    ASSERT_EQ(list.size(), core::kLatencyBuckets) << key;
    EXPECT_EQ(list.back().first, "+Inf") << key;
    for (size_t i = 1; i < list.size(); ++i) {
      EXPECT_LE(list[i - 1].second, list[i].second) << key << " le=" << list[i].first;
      if (i + 1 < list.size()) {
        EXPECT_LT(std::stod(list[i - 1].first), std::stod(list[i].first)) << key;
      }
    }
    ASSERT_EQ(counts.count(key), 1u) << key;
    EXPECT_EQ(counts[key], list.back().second) << key;
  }
  EXPECT_EQ(counts["speedmimi_request_duration_seconds{"], 6);
  EXPECT_EQ(counts["speedmimi_backend_response_head_seconds{upstream=\"web\",backend=\"w2\","], 3);
}

TEST_F(MetricsTest, LabelValuesFromTheZoneAreEscaped) {
  add("odd\"up", backend("back\\slash\nid", 9100, 1));
  std::string text = render();
  EXPECT_TRUE(hasLine(
      text, "speedmimi_backend_weight{upstream=\"odd\\\"up\",backend=\"back\\\\slash\\nid\"} 1"))
      << text;
  for (const std::string& line : linesOf(text)) {
    EXPECT_EQ(line.find('\r'), std::string::npos);
  }
}

// Every sample belongs to the family whose # TYPE came last; each family has exactly one # HELP
// and one # TYPE, HELP first; a family's samples are contiguous.
TEST_F(MetricsTest, OneHelpAndOneTypePerFamilyBeforeItsSamples) {
  size_t w = worker();
  zone_->workers()[w].requests = 1;
  zone_->slot(indexOf("web", "w1"))->runtime.latency_us = 10;
  std::string text = render();
  std::map<std::string, int> helps, types;
  std::map<std::string, std::string> type_of;
  std::set<std::string> closed;  // families whose samples are over
  std::string current, current_type;
  size_t samples = 0;
  for (const std::string& line : linesOf(text)) {
    ASSERT_FALSE(line.empty()) << "an empty line in:\n" << text;
    std::istringstream in(line);
    std::string first, name, type;
    in >> first;
    if (first == "#") {
      in >> type >> name;
      if (type == "HELP") {
        ++helps[name];
        EXPECT_EQ(types.count(name), 0u) << "HELP after TYPE for " << name;
      } else {
        ASSERT_EQ(type, "TYPE") << line;
        in >> current_type;
        ++types[name];
        EXPECT_EQ(helps[name], 1) << "TYPE without HELP for " << name;
        if (!current.empty()) closed.insert(current);
        current = name;
        type_of[name] = current_type;
      }
      continue;
    }
    ++samples;
    std::string metric = first.substr(0, first.find('{'));
    std::string family = metric;
    if (current_type == "histogram") {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        std::string s = suffix;
        if (metric.size() > s.size() &&
            metric.compare(metric.size() - s.size(), s.size(), s) == 0) {
          family = metric.substr(0, metric.size() - s.size());
        }
      }
    }
    EXPECT_EQ(family, current) << "sample outside its family: " << line;
    EXPECT_EQ(closed.count(family), 0u) << "family " << family << " is split: " << line;
    EXPECT_EQ(metric.rfind("speedmimi_", 0), 0u) << line;
    if (type_of[current] == "counter") {
      EXPECT_EQ(metric.substr(metric.size() - 6), "_total") << line;
    }
  }
  for (const auto& [name, n] : types) EXPECT_EQ(n, 1) << name;
  for (const auto& [name, n] : helps) EXPECT_EQ(n, 1) << name;
  EXPECT_GE(types.size(), 23u) << text;
  EXPECT_GT(samples, types.size());
  EXPECT_EQ(text.back(), '\n');
}

}  // namespace
}  // namespace speedmimi::admin
