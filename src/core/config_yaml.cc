// The effective configuration as YAML (-T), through libyaml's event emitter: one event per
// mapping, sequence and scalar, keys in the order of DESIGN §7. Values are written in the
// spellings the parser reads (durations "30s", sizes "16k", workers "auto"), so the output is a
// valid configuration file that means the same as the one it came from.
#include "core/config_yaml.h"

#include <yaml.h>

#include <algorithm>
#include <charconv>
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

enum class Style { kBlock, kFlow };

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
class Writer {
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

  void beginMapping(Style style = Style::kBlock) {
    yaml_event_t event;
    yaml_mapping_start_event_initialize(
        &event, nullptr, nullptr, 1,
        style == Style::kFlow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    emit(event);
  }
  void endMapping() {
    yaml_event_t event;
    yaml_mapping_end_event_initialize(&event);
    emit(event);
  }

  void beginSequence(Style style) {
    yaml_event_t event;
    yaml_sequence_start_event_initialize(
        &event, nullptr, nullptr, 1,
        style == Style::kFlow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    emit(event);
  }
  void endSequence() {
    yaml_event_t event;
    yaml_sequence_end_event_initialize(&event);
    emit(event);
  }

  // Text (a key, a name, a path): plain where libyaml allows it and nothing reads it as
  // another type, else quoted.
  void text(std::string_view s) { scalar(s, readsAsNonString(s)); }

  // A key with a text value.
  void text(std::string_view key, std::string_view value) {
    text(key);
    text(value);
  }

  // A key with a number, boolean, duration or size in the parser's spelling: always plain.
  void value(std::string_view key, std::string_view spelling) {
    text(key);
    scalar(spelling, false);
  }

  // A key with a list of text.
  void list(std::string_view key, const std::vector<std::string>& items) {
    text(key);
    beginSequence(Style::kFlow);
    for (const std::string& item : items) text(item);
    endSequence();
  }

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

std::string boolText(bool value) {
  return value ? "true" : "false";
}

std::vector<std::string> cidrTexts(const std::vector<Cidr>& blocks) {
  std::vector<std::string> texts;
  for (const Cidr& block : blocks) texts.push_back(block.toString());
  return texts;
}

void writeServer(Writer& w, const ServerConfig& s) {
  w.text("server");
  w.beginMapping();
  w.text("host", s.host);
  w.value("port", std::to_string(s.port));
  w.value("read_timeout", formatDuration(s.read_timeout));
  w.value("write_timeout", formatDuration(s.write_timeout));
  w.value("max_conn", std::to_string(s.max_conn));
  w.text("real_ip_header", s.real_ip_header);
  w.list("trusted_proxies", cidrTexts(s.trusted_proxies));
  w.value("workers", s.workers == 0 ? "auto" : std::to_string(s.workers));
  w.value("idle_timeout", formatDuration(s.idle_timeout));
  w.value("header_timeout", formatDuration(s.header_timeout));
  w.value("connect_timeout", formatDuration(s.connect_timeout));
  w.value("max_header_size", formatSize(s.max_header_size));
  w.value("max_headers", std::to_string(s.max_headers));
  w.value("max_body_size", formatSize(s.max_body_size));
  w.value("shutdown_timeout", formatDuration(s.shutdown_timeout));
  w.value("shm_size", formatSize(s.shm_size));
  w.text("pid_file", s.pid_file);
  w.text("state_file", s.state_file);
  w.text("error_log", s.error_log);
  w.value("log_level", logLevelName(s.log_level));
  w.text("access_log", s.access_log);
  w.value("access_log_format", s.access_log_format == AccessLogFormat::kJson ? "json" : "combined");
  w.text("user", s.user);
  w.endMapping();
}

void writeSsl(Writer& w, const SslConfig& ssl) {
  w.text("ssl");
  w.beginMapping();
  w.value("enabled", boolText(ssl.enabled));
  w.text("cert_file", ssl.cert_file);
  w.text("key_file", ssl.key_file);
  w.value("port", std::to_string(ssl.port));
  w.text("certificates");
  w.beginSequence(Style::kBlock);
  for (const CertificatePair& pair : ssl.certificates) {
    w.beginMapping();
    w.text("cert_file", pair.cert_file);
    w.text("key_file", pair.key_file);
    w.endMapping();
  }
  w.endSequence();
  w.list("protocols", ssl.protocols);
  w.endMapping();
}

void writeBackend(Writer& w, const BackendConfig& b) {
  w.beginMapping();
  w.text("id", b.id);
  w.text("name", b.name);
  w.text("host", b.host);
  w.value("port", std::to_string(b.port));
  w.value("weight", std::to_string(b.weight));
  w.text("scheme", b.scheme);
  w.value("active", boolText(b.active));
  w.value("max_conn", std::to_string(b.max_conn));
  w.value("max_fails", std::to_string(b.max_fails));
  w.value("fail_timeout", formatDuration(b.fail_timeout));
  w.value("tls_verify", boolText(b.tls_verify));
  w.value("keepalive", std::to_string(b.keepalive));
  if (b.health_check.enabled) {
    const HealthCheckConfig& hc = b.health_check;
    w.text("health_check");
    w.beginMapping();
    w.text("path", hc.path);
    w.value("interval", formatDuration(hc.interval));
    w.value("timeout", formatDuration(hc.timeout));
    w.value("failures", std::to_string(hc.failures));
    w.value("successes", std::to_string(hc.successes));
    w.endMapping();
  }
  w.endMapping();
}

void writeBackends(Writer& w, const Config& config) {
  w.text("backends");
  w.beginMapping();
  for (const auto& [upstream, backends] : config.backends) {
    w.text(upstream);
    w.beginSequence(Style::kBlock);
    for (const BackendConfig& b : backends) writeBackend(w, b);
    w.endSequence();
  }
  w.endMapping();
}

void writeRouting(Writer& w, const Config& config) {
  w.text("routing");
  w.beginMapping();
  for (const RouteConfig& route : config.routes) {
    w.text(route.name);
    w.beginMapping();
    w.text("path", route.path);
    w.text("host", route.host);
    w.text("upstream", route.upstream);
    w.text("load_balancer", route.load_balancer);
    // Only the classes given: the others use load_balancer.
    w.text("protocols");
    w.beginMapping(Style::kFlow);
    for (const auto& [protocol, balancer] : route.protocols) w.text(protocol, balancer);
    w.endMapping();
    w.value("retries", std::to_string(route.retries));
    w.endMapping();
  }
  w.endMapping();
}

// Under its own name: `grpc` is the seed's spelling of the same listener.
void writeAdmin(Writer& w, const AdminConfig& admin) {
  w.text("admin");
  w.beginMapping();
  w.value("enabled", boolText(admin.enabled));
  w.text("host", admin.host);
  w.value("port", std::to_string(admin.port));
  w.text("auth_token", admin.auth_token);
  w.list("allow", cidrTexts(admin.allow));
  w.endMapping();
}

}  // namespace

std::string configToYaml(const Config& config) {
  std::string out;
  Writer w(out);
  w.beginMapping();
  writeServer(w, config.server);
  writeSsl(w, config.ssl);
  writeBackends(w, config);
  writeRouting(w, config);
  writeAdmin(w, config.admin);
  w.endMapping();
  w.finish();
  return out;
}

}  // namespace speedmimi::core
