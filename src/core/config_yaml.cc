// The effective configuration as YAML (-T), through libyaml's event emitter: one event per
// mapping, sequence and scalar, keys in the order of DESIGN §7. Values are written in the
// spellings the parser reads (durations "30s", sizes "16k", workers "auto"), so the output is a
// valid configuration file that means the same as the one it came from. emitConfig() walks the
// Config once; Writer turns its events into YAML, and the admin API's JSON is built from the
// same events, so the two always show the same keys and values.
#include "core/config_yaml.h"

#include <yaml.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/cidr.h"
#include "core/log.h"
#include "core/units.h"

namespace speedmimi::core {
namespace {

struct EmitterDeleter {
  void operator()(yaml_emitter_t* emitter) const {
    yaml_emitter_delete(emitter);
    delete emitter;
  }
};
using EmitterPtr = std::unique_ptr<yaml_emitter_t, EmitterDeleter>;

// libyaml's write handler: appends to the std::string behind `data`. Returns 0 (a writer
// error, reported by yaml_emitter_emit) rather than let bad_alloc unwind through libyaml.
int appendOutput(void* data, unsigned char* buffer, size_t size) {
  try {
    static_cast<std::string*>(data)->append(reinterpret_cast<const char*>(buffer), size);
    return 1;
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

// Whether a YAML 1.1 reader (yq, PyYAML and most tools) would take plain `text` for a null, a
// boolean or a number. Our parser reads every scalar by its text, so such text is quoted for
// those tools' sake, except the null words: our parser reads those as an empty value too.
bool readsAsNonString(std::string_view text) {
  static constexpr std::string_view kWords[] = {
      "",      "~",     "null",  "Null", "NULL", "y",  "Y",    "yes",  "Yes",
      "YES",   "n",     "N",     "no",   "No",   "NO", "true", "True", "TRUE",
      "false", "False", "FALSE", "on",   "On",   "ON", "off",  "Off",  "OFF"};
  if (std::find(std::begin(kWords), std::end(kWords), text) != std::end(kWords)) return true;
  // Numbers: what from_chars takes whole (integers, decimals, exponents), with an optional '+'.
  if (text.front() == '+') text.remove_prefix(1);
  double number = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  return error == std::errc() && end == text.data() + text.size();
}

// One YAML document into `out`, event by event; every failure throws.
class Writer : public ConfigEvents {
 public:
  explicit Writer(std::string& out) {
    auto emitter = std::make_unique<yaml_emitter_t>();
    if (!yaml_emitter_initialize(emitter.get())) throw std::bad_alloc();
    emitter_.reset(emitter.release());
    // The emitter writes into `out`, which outlives it (same caller).
    yaml_emitter_set_output(emitter_.get(), appendOutput, &out);
    yaml_emitter_set_unicode(emitter_.get(), 1);  // non-ASCII text as is, not as escapes
    yaml_emitter_set_width(emitter_.get(), -1);   // never fold a long value over two lines
    yaml_event_t event;
    yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING);
    emit(event);
    // Implicit: no "---" line.
    yaml_document_start_event_initialize(&event, nullptr, nullptr, nullptr, 1);
    emit(event);
  }

  // Ends the document and flushes it into `out`.
  void finish() {
    yaml_event_t event;
    yaml_document_end_event_initialize(&event, 1);
    emit(event);
    yaml_stream_end_event_initialize(&event);
    emit(event);
    if (!yaml_emitter_flush(emitter_.get())) failed();
  }

  void beginMapping(Style style) override {
    yaml_event_t event;
    yaml_mapping_start_event_initialize(
        &event, nullptr, nullptr, 1,
        style == Style::kFlow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    emit(event);
  }
  void endMapping() override {
    yaml_event_t event;
    yaml_mapping_end_event_initialize(&event);
    emit(event);
  }

  void beginSequence(Style style) override {
    yaml_event_t event;
    yaml_sequence_start_event_initialize(
        &event, nullptr, nullptr, 1,
        style == Style::kFlow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    emit(event);
  }
  void endSequence() override {
    yaml_event_t event;
    yaml_sequence_end_event_initialize(&event);
    emit(event);
  }

  // Plain where libyaml allows it and nothing reads it as another type, else quoted.
  void text(std::string_view s) override { scalar(s, readsAsNonString(s)); }

  // Numbers, booleans and the parser's spellings: always plain.
  void number(std::string_view decimal) override { scalar(decimal, false); }
  void boolean(bool value) override { scalar(value ? "true" : "false", false); }
  void spelling(std::string_view s) override { scalar(s, false); }

 private:
  // yaml_emitter_emit owns the event from here on, and frees it even when it fails.
  void emit(yaml_event_t& event) {
    if (!yaml_emitter_emit(emitter_.get(), &event)) failed();
  }

  [[noreturn]] void failed() const {
    // A writer error is appendOutput running out of memory.
    if (emitter_->error == YAML_MEMORY_ERROR || emitter_->error == YAML_WRITER_ERROR) {
      throw std::bad_alloc();
    }
    throw std::runtime_error(std::string("cannot write the configuration as YAML: ") +
                             (emitter_->problem != nullptr ? emitter_->problem : "emitter error"));
  }

  // libyaml picks plain style when the text allows it, quotes otherwise.
  void scalar(std::string_view text, bool quote) {
    yaml_event_t event;
    if (!yaml_scalar_event_initialize(
            &event, nullptr, nullptr,
            reinterpret_cast<yaml_char_t*>(const_cast<char*>(text.data())),
            static_cast<int>(text.size()), 1, 1,
            quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE)) {
      // It copies the text, checking that it is UTF-8 (or runs out of memory).
      throw std::runtime_error("cannot write the configuration as YAML: a value is not UTF-8");
    }
    emit(event);
  }

  EmitterPtr emitter_;
};

using Style = ConfigEvents::Style;

// Keys with their values, on top of the events.
class Document {
 public:
  explicit Document(ConfigEvents& out) : out_(out) {}

  void key(std::string_view key) { out_.text(key); }
  void text(std::string_view key, std::string_view value) {
    out_.text(key);
    out_.text(value);
  }
  template <typename Integer>
  void number(std::string_view key, Integer value) {
    out_.text(key);
    out_.number(std::to_string(value));
  }
  void boolean(std::string_view key, bool value) {
    out_.text(key);
    out_.boolean(value);
  }
  void spelling(std::string_view key, std::string_view spelling) {
    out_.text(key);
    out_.spelling(spelling);
  }
  // A key with a list of text.
  void list(std::string_view key, const std::vector<std::string>& items) {
    out_.text(key);
    out_.beginSequence(Style::kFlow);
    for (const std::string& item : items) out_.text(item);
    out_.endSequence();
  }

  ConfigEvents& events() { return out_; }

 private:
  ConfigEvents& out_;
};

std::vector<std::string> cidrTexts(const std::vector<Cidr>& blocks) {
  std::vector<std::string> texts;
  for (const Cidr& block : blocks) texts.push_back(block.toString());
  return texts;
}

void writeServer(Document& d, const ServerConfig& s) {
  d.key("server");
  d.events().beginMapping(Style::kBlock);
  d.text("host", s.host);
  d.number("port", s.port);
  d.spelling("read_timeout", formatDuration(s.read_timeout));
  d.spelling("write_timeout", formatDuration(s.write_timeout));
  d.number("max_conn", s.max_conn);
  d.text("real_ip_header", s.real_ip_header);
  d.list("trusted_proxies", cidrTexts(s.trusted_proxies));
  if (s.workers == 0) {
    d.spelling("workers", "auto");
  } else {
    d.number("workers", s.workers);
  }
  d.spelling("idle_timeout", formatDuration(s.idle_timeout));
  d.spelling("header_timeout", formatDuration(s.header_timeout));
  d.spelling("connect_timeout", formatDuration(s.connect_timeout));
  d.spelling("max_header_size", formatSize(s.max_header_size));
  d.number("max_headers", s.max_headers);
  d.spelling("max_body_size", formatSize(s.max_body_size));
  d.spelling("shutdown_timeout", formatDuration(s.shutdown_timeout));
  d.spelling("shm_size", formatSize(s.shm_size));
  d.text("pid_file", s.pid_file);
  d.text("state_file", s.state_file);
  d.text("error_log", s.error_log);
  d.spelling("log_level", logLevelName(s.log_level));
  d.text("access_log", s.access_log);
  d.spelling("access_log_format",
             s.access_log_format == AccessLogFormat::kJson ? "json" : "combined");
  d.text("user", s.user);
  d.events().endMapping();
}

void writeSsl(Document& d, const SslConfig& ssl) {
  d.key("ssl");
  d.events().beginMapping(Style::kBlock);
  d.boolean("enabled", ssl.enabled);
  d.text("cert_file", ssl.cert_file);
  d.text("key_file", ssl.key_file);
  d.number("port", ssl.port);
  d.key("certificates");
  d.events().beginSequence(Style::kBlock);
  for (const CertificatePair& pair : ssl.certificates) {
    d.events().beginMapping(Style::kBlock);
    d.text("cert_file", pair.cert_file);
    d.text("key_file", pair.key_file);
    d.events().endMapping();
  }
  d.events().endSequence();
  d.list("protocols", ssl.protocols);
  d.events().endMapping();
}

void writeBackend(Document& d, const BackendConfig& b) {
  d.events().beginMapping(Style::kBlock);
  d.text("id", b.id);
  d.text("name", b.name);
  d.text("host", b.host);
  d.number("port", b.port);
  d.number("weight", b.weight);
  d.text("scheme", b.scheme);
  d.boolean("active", b.active);
  d.number("max_conn", b.max_conn);
  d.number("max_fails", b.max_fails);
  d.spelling("fail_timeout", formatDuration(b.fail_timeout));
  d.spelling("slow_start", formatDuration(b.slow_start));
  d.boolean("tls_verify", b.tls_verify);
  d.text("ca_file", b.ca_file);
  d.number("keepalive", b.keepalive);
  if (b.health_check.enabled) {
    const HealthCheckConfig& hc = b.health_check;
    d.key("health_check");
    d.events().beginMapping(Style::kBlock);
    d.text("path", hc.path);
    d.spelling("interval", formatDuration(hc.interval));
    d.spelling("timeout", formatDuration(hc.timeout));
    d.number("failures", hc.failures);
    d.number("successes", hc.successes);
    d.events().endMapping();
  }
  d.events().endMapping();
}

void writeBackends(Document& d, const Config& config) {
  d.key("backends");
  d.events().beginMapping(Style::kBlock);
  for (const auto& [upstream, backends] : config.backends) {
    d.key(upstream);
    d.events().beginSequence(Style::kBlock);
    for (const BackendConfig& b : backends) writeBackend(d, b);
    d.events().endSequence();
  }
  d.events().endMapping();
}

void writeRouting(Document& d, const Config& config) {
  d.key("routing");
  d.events().beginMapping(Style::kBlock);
  for (const RouteConfig& route : config.routes) {
    d.key(route.name);
    d.events().beginMapping(Style::kBlock);
    d.text("path", route.path);
    d.text("host", route.host);
    d.text("upstream", route.upstream);
    d.text("load_balancer", route.load_balancer);
    // Only the classes given: the others use load_balancer.
    d.key("protocols");
    d.events().beginMapping(Style::kFlow);
    for (const auto& [protocol, balancer] : route.protocols) d.text(protocol, balancer);
    d.events().endMapping();
    d.number("retries", route.retries);
    d.key("retry_on");
    d.events().beginSequence(Style::kFlow);
    for (const RetryCondition& c : kRetryConditions) {
      if ((route.retry_on & c.bit) != 0) d.events().spelling(c.name);
    }
    d.events().endSequence();
    d.number("retry_budget", route.retry_budget);
    d.events().endMapping();
  }
  d.events().endMapping();
}

// Under its own name: `grpc` is the seed's spelling of the same listener.
void writeAdmin(Document& d, const AdminConfig& admin) {
  d.key("admin");
  d.events().beginMapping(Style::kBlock);
  d.boolean("enabled", admin.enabled);
  d.text("host", admin.host);
  d.number("port", admin.port);
  d.text("auth_token", admin.auth_token);
  d.list("allow", cidrTexts(admin.allow));
  d.events().endMapping();
}

}  // namespace

void emitConfig(const Config& config, ConfigEvents& out) {
  Document d(out);
  out.beginMapping(Style::kBlock);
  writeServer(d, config.server);
  writeSsl(d, config.ssl);
  writeBackends(d, config);
  writeRouting(d, config);
  writeAdmin(d, config.admin);
  out.endMapping();
}

std::string eventsToYaml(const std::function<void(ConfigEvents&)>& write) {
  std::string out;
  Writer w(out);
  write(w);
  w.finish();
  return out;
}

std::string configToYaml(const Config& config) {
  return eventsToYaml([&](ConfigEvents& out) { emitConfig(config, out); });
}

}  // namespace speedmimi::core
