// The YAML configuration of DESIGN §7: libyaml's document API turns the text into a node tree,
// a Reader walks it into the structs of config_types.h, and validateConfig() cross-checks the
// result. Every error is one ConfigError located at the offending value ("FILE:LINE:COLUMN"):
// the Reader fails at the node it is reading, and records every node's position in
// Config::marks so that the cross-checks can point at the value they refuse too.
//
// Conventions of the file format, as an operator sees them:
// - Unknown keys and repeated keys are errors; so is a second YAML document.
// - An empty value (`key:` or `~`) means an empty string, list or mapping, never a default
//   number: `port:` alone is an error.
// - Scalars are read by their text, so `port: "8080"` is the same as `port: 8080`.
// - An upstream with no backends is allowed; its routes answer 503 until the admin API adds one.
// - A backend without `id` gets "HOST:PORT" as its id.
// - `grpc` and `admin` name the same management listener; a key given in both must agree.
#include "core/config.h"

#include <unistd.h>
#include <yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/config_limits.h"
#include "core/text_mark.h"
#include "core/units.h"

namespace speedmimi::core {
namespace {

// The limits of core/config_limits.h, reported by the parser at the offending value and by
// validateConfig for configs built in code (by the API).
using namespace limits;
constexpr Duration kZero{0};

const std::initializer_list<std::string_view> kProtocolClasses = {"websocket", "sse", "http",
                                                                  "https"};

std::string quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

std::string outOfRange(std::string_view value, int64_t lo, int64_t hi) {
  return std::string(value) + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi);
}
std::string outOfRange(int64_t value, int64_t lo, int64_t hi) {
  return outOfRange(std::to_string(value), lo, hi);
}

std::string joinList(std::initializer_list<std::string_view> items) {
  std::string out;
  for (std::string_view item : items) out += (out.empty() ? "" : ", ") + std::string(item);
  return out;
}

bool isOneOf(std::string_view value, std::initializer_list<std::string_view> choices) {
  return std::find(choices.begin(), choices.end(), value) != choices.end();
}

// RFC 9110 token characters: what a header name may contain.
bool isHeaderName(std::string_view name) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || kSpecials.find(c) != kSpecials.npos;
  });
}

bool isLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  const std::optional<IpAddress> ip = IpAddress::parse(host);
  if (!ip) return false;
  if (ip->isV4()) return ip->bytes[12] == 127;
  return *ip == IpAddress::parse("::1");
}

std::string backendPath(const std::string& upstream, size_t index) {
  return "backends." + upstream + "[" + std::to_string(index) + "]";
}

// ---------------------------------------------------------------------------------------------
// libyaml handles

struct ParserDeleter {
  void operator()(yaml_parser_t* parser) const {
    yaml_parser_delete(parser);
    delete parser;
  }
};
using ParserPtr = std::unique_ptr<yaml_parser_t, ParserDeleter>;

struct DocumentDeleter {
  void operator()(yaml_document_t* document) const {
    yaml_document_delete(document);
    delete document;
  }
};
using DocumentPtr = std::unique_ptr<yaml_document_t, DocumentDeleter>;

ParserPtr makeParser(std::string_view yaml) {
  auto parser = std::make_unique<yaml_parser_t>();
  if (!yaml_parser_initialize(parser.get())) throw std::bad_alloc();
  ParserPtr owned(parser.release());
  // The parser reads `yaml` in place; it must outlive the parser (it does: same caller).
  yaml_parser_set_input_string(owned.get(), reinterpret_cast<const unsigned char*>(yaml.data()),
                               yaml.size());
  return owned;
}

[[noreturn]] void throwSyntaxError(const yaml_parser_t& parser, std::string_view yaml,
                                   const std::string& file) {
  if (parser.error == YAML_MEMORY_ERROR) throw std::bad_alloc();
  std::string message = parser.problem != nullptr ? parser.problem : "invalid YAML";
  if (parser.error == YAML_READER_ERROR) {
    // Bad encoding: libyaml knows the byte offset but not the line.
    const Mark where = markAtOffset(yaml, parser.problem_offset);
    throw ConfigError(file, where.line, where.column, message);
  }
  if (parser.context != nullptr) message = std::string(parser.context) + ": " + message;
  throw ConfigError(file, static_cast<int>(parser.problem_mark.line) + 1,
                    static_cast<int>(parser.problem_mark.column) + 1, message);
}

// The next document of the stream; its root is null at the end of the stream.
DocumentPtr loadDocument(yaml_parser_t& parser, std::string_view yaml, const std::string& file) {
  auto document = std::make_unique<yaml_document_t>();
  // On failure libyaml has already released the document's contents.
  if (!yaml_parser_load(&parser, document.get())) throwSyntaxError(parser, yaml, file);
  return DocumentPtr(document.release());
}

// ---------------------------------------------------------------------------------------------
// Reader: typed access to the nodes of one document, each failure located at its node.

using Node = const yaml_node_t*;
// Reads the value of one known key; `path` is the key's dotted path ("server.port").
using FieldReader = std::function<void(Node value, const std::string& path)>;

struct Field {
  std::string_view key;
  FieldReader read;
};

class Reader {
 public:
  // Records the position of every value it visits in `marks`, by path.
  Reader(yaml_document_t& document, const std::string& file, std::map<std::string, Mark>& marks)
      : doc_(document), file_(file), marks_(marks) {}

  Node root() { return yaml_document_get_root_node(&doc_); }

  // Fails at node `at`; `path` is the value at fault (ConfigError::path), "" for the top level.
  [[noreturn]] void fail(Node at, const std::string& path, const std::string& message) const {
    const Mark where = mark(at);
    throw ConfigError(file_, where.line, where.column, message, path);
  }
  // The same, with the message prefixed by the path.
  [[noreturn]] void failValue(Node at, const std::string& path, const std::string& message) const {
    fail(at, path, (path.empty() ? std::string("the top level") : quoted(path)) + ": " + message);
  }

  static Mark mark(Node node) {
    return {static_cast<int>(node->start_mark.line) + 1,
            static_cast<int>(node->start_mark.column) + 1};
  }

  // Calls visit(key, key_node, value_node) for each pair of a mapping (none for an empty value),
  // after checking that the key is a scalar and not repeated.
  template <typename Visit>
  void forEachPair(Node map, const std::string& path, Visit visit) {
    if (isNull(map)) return;
    if (map->type != YAML_MAPPING_NODE) expected(map, path, "a mapping");
    std::map<std::string, int> first_line;
    for (auto* pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; ++pair) {
      Node key = node(pair->key);
      if (key->type != YAML_SCALAR_NODE) fail(key, path, "expected a scalar key " + inPath(path));
      const std::string name = text(key);
      const auto [it, inserted] = first_line.emplace(name, mark(key).line);
      if (!inserted) {
        fail(key, childPath(path, name),
             "key " + quoted(name) + " is repeated " + inPath(path) + " (first at line " +
                 std::to_string(it->second) + ")");
      }
      Node value = node(pair->value);
      marks_[childPath(path, name)] = mark(value);
      visit(name, key, value);
    }
  }

  // A mapping with a fixed set of keys: each present key's reader is called with its value.
  void readFields(Node map, const std::string& path, const std::vector<Field>& fields) {
    forEachPair(map, path, [&](const std::string& name, Node key, Node value) {
      const auto field =
          std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == name; });
      if (field == fields.end()) {
        fail(key, childPath(path, name), "key " + quoted(name) + " is not known " + inPath(path));
      }
      field->read(value, childPath(path, name));
    });
  }

  // Calls visit(item, item_path) for each item of a sequence (none for an empty value).
  template <typename Visit>
  void forEachItem(Node seq, const std::string& path, Visit visit) {
    if (isNull(seq)) return;
    if (seq->type != YAML_SEQUENCE_NODE) expected(seq, path, "a sequence");
    size_t index = 0;
    for (auto* item = seq->data.sequence.items.start; item < seq->data.sequence.items.top;
         ++item, ++index) {
      const std::string item_path = path + "[" + std::to_string(index) + "]";
      marks_[item_path] = mark(node(*item));
      visit(node(*item), item_path);
    }
  }

  std::string string(Node value, const std::string& path) {
    if (isNull(value)) return "";
    if (value->type != YAML_SCALAR_NODE) expected(value, path, "a scalar");
    return text(value);
  }

  std::string nonEmptyString(Node value, const std::string& path) {
    std::string s = string(value, path);
    if (s.empty()) failValue(value, path, "must not be empty");
    return s;
  }

  // A decimal integer within lo..hi (a sign is read, so "-1" is out of range, not junk).
  int64_t integer(Node value, const std::string& path, int64_t lo, int64_t hi,
                  const std::string& what = "an integer") {
    const std::string s = scalar(value, path, what);
    int64_t number = 0;
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), number);
    if (end != s.data() + s.size() || error == std::errc::invalid_argument) {
      expected(value, path, what);
    }
    if (error == std::errc::result_out_of_range || number < lo || number > hi) {
      failValue(value, path, outOfRange(s, lo, hi));
    }
    return number;
  }

  int intValue(Node value, const std::string& path, int64_t lo, int64_t hi,
               const std::string& what = "an integer") {
    return static_cast<int>(integer(value, path, lo, hi, what));
  }

  bool boolean(Node value, const std::string& path) {
    const std::string s = scalar(value, path, "true or false");
    if (isOneOf(s, {"true", "True", "TRUE"})) return true;
    if (isOneOf(s, {"false", "False", "FALSE"})) return false;
    expected(value, path, "true or false");
  }

  Duration duration(Node value, const std::string& path, Duration min) {
    const std::string s = scalar(value, path, "a duration");
    const std::optional<Duration> d = parseDuration(s);
    if (!d) {
      failValue(value, path,
                onlyTooLarge(s, parseDuration)
                    ? "duration " + quoted(s) + " is too large"
                    : "invalid duration " + quoted(s) +
                          " (expected a whole number with ms, s, m or h, e.g. 30s)");
    }
    if (*d < min) failValue(value, path, "must be at least " + formatDuration(min));
    return *d;
  }

  uint64_t size(Node value, const std::string& path, uint64_t min, uint64_t max) {
    const std::string s = scalar(value, path, "a size");
    const std::optional<uint64_t> bytes = parseSize(s);
    if (!bytes) {
      failValue(value, path,
                onlyTooLarge(s, parseSize)
                    ? "size " + quoted(s) + " is too large"
                    : "invalid size " + quoted(s) +
                          " (expected a whole number of bytes with k, m or g, e.g. 16k)");
    }
    if (*bytes < min || *bytes > max) {
      failValue(value, path, "must be between " + formatSize(min) + " and " + formatSize(max));
    }
    return *bytes;
  }

  std::string oneOf(Node value, const std::string& path,
                    std::initializer_list<std::string_view> choices) {
    const std::string s = string(value, path);
    if (!isOneOf(s, choices)) {
      failValue(value, path, quoted(s) + " is not one of " + joinList(choices));
    }
    return s;
  }

  std::vector<Cidr> cidrs(Node value, const std::string& path) {
    std::vector<Cidr> blocks;
    forEachItem(value, path, [&](Node item, const std::string& item_path) {
      const std::string s = string(item, item_path);
      const std::optional<Cidr> block = Cidr::parse(s);
      if (!block) failValue(item, item_path, quoted(s) + " is not an IPv4 or IPv6 CIDR block");
      blocks.push_back(*block);
    });
    return blocks;
  }

 private:
  Node node(int index) { return yaml_document_get_node(&doc_, index); }

  static std::string text(Node scalar) {
    return std::string(reinterpret_cast<const char*>(scalar->data.scalar.value),
                       scalar->data.scalar.length);
  }

  // YAML's null: an unquoted "", "~" or "null".
  static bool isNull(Node n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           isOneOf(text(n), {"", "~", "null", "Null", "NULL"});
  }

  static std::string describe(Node n) {
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a sequence";
    if (isNull(n)) return "an empty value";
    return quoted(text(n));
  }

  static std::string childPath(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  static std::string inPath(const std::string& path) {
    return path.empty() ? "at the top level" : "in " + quoted(path);
  }

  // Whether `s` failed `parse` only by its magnitude: the same text with its number replaced
  // by 1 parses ("99999999999h" is too large, "30x" and "-5s" are junk).
  template <typename Parse>
  static bool onlyTooLarge(std::string_view s, Parse parse) {
    const size_t digits = std::min(s.find_first_not_of("0123456789"), s.size());
    return digits > 0 && parse("1" + std::string(s.substr(digits))).has_value();
  }

  [[noreturn]] void expected(Node value, const std::string& path, const std::string& what) {
    failValue(value, path, "expected " + what + ", got " + describe(value));
  }

  // The non-empty text of a scalar, for values that have no "empty" meaning.
  std::string scalar(Node value, const std::string& path, const std::string& what) {
    if (value->type != YAML_SCALAR_NODE || isNull(value)) expected(value, path, what);
    std::string s = text(value);
    if (s.empty()) expected(value, path, what);
    return s;
  }

  yaml_document_t& doc_;
  const std::string& file_;
  std::map<std::string, Mark>& marks_;
};

// ---------------------------------------------------------------------------------------------
// Sections

void readServer(Reader& r, Node map, ServerConfig& s) {
  auto timeout = [&](Duration& field) {
    return [&r, &field](Node v, const std::string& p) { field = r.duration(v, p, kPositive); };
  };
  auto path = [&](std::string& field) {
    return [&r, &field](Node v, const std::string& p) { field = r.nonEmptyString(v, p); };
  };
  r.readFields(
      map, "server",
      {
          {"host", path(s.host)},
          {"port",
           [&](Node v, const std::string& p) { s.port = r.intValue(v, p, kMinPort, kMaxPort); }},
          {"read_timeout", timeout(s.read_timeout)},
          {"write_timeout", timeout(s.write_timeout)},
          {"max_conn",
           [&](Node v, const std::string& p) { s.max_conn = r.integer(v, p, 1, kMaxInt); }},
          {"real_ip_header",
           [&](Node v, const std::string& p) {
             s.real_ip_header = r.string(v, p);
             if (!isHeaderName(s.real_ip_header)) {
               r.failValue(v, p, quoted(s.real_ip_header) + " is not a valid header name");
             }
           }},
          {"trusted_proxies",
           [&](Node v, const std::string& p) { s.trusted_proxies = r.cidrs(v, p); }},
          {"workers",
           [&](Node v, const std::string& p) {
             s.workers = r.string(v, p) == "auto"
                             ? 0
                             : r.intValue(v, p, 1, kMaxWorkers, "'auto' or an integer");
           }},
          {"idle_timeout", timeout(s.idle_timeout)},
          {"header_timeout", timeout(s.header_timeout)},
          {"connect_timeout", timeout(s.connect_timeout)},
          {"max_header_size",
           [&](Node v, const std::string& p) {
             s.max_header_size = r.size(v, p, 1024, 64ull << 20);
           }},
          {"max_headers",
           [&](Node v, const std::string& p) { s.max_headers = r.integer(v, p, 1, 10000); }},
          {"max_body_size",
           [&](Node v, const std::string& p) {
             s.max_body_size = r.size(v, p, 0, std::numeric_limits<uint64_t>::max());
           }},
          {"shutdown_timeout",
           [&](Node v, const std::string& p) { s.shutdown_timeout = r.duration(v, p, kZero); }},
          {"shm_size",
           [&](Node v, const std::string& p) {
             s.shm_size = r.size(v, p, 1ull << 20, 64ull << 30);
           }},
          {"pid_file", path(s.pid_file)},
          {"state_file", path(s.state_file)},
          {"error_log", path(s.error_log)},
          {"log_level",
           [&](Node v, const std::string& p) {
             static const std::initializer_list<std::string_view> kLevels = {
                 "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"};
             const std::string level = r.oneOf(v, p, kLevels);
             s.log_level = static_cast<LogLevel>(std::find(kLevels.begin(), kLevels.end(), level) -
                                                 kLevels.begin());
           }},
          {"access_log", path(s.access_log)},
          {"access_log_format",
           [&](Node v, const std::string& p) {
             s.access_log_format = r.oneOf(v, p, {"combined", "json"}) == "json"
                                       ? AccessLogFormat::kJson
                                       : AccessLogFormat::kCombined;
           }},
          {"user", [&](Node v, const std::string& p) { s.user = r.string(v, p); }},
      });
}

void readCertificate(Reader& r, Node map, const std::string& path, CertificatePair& pair) {
  r.readFields(map, path,
               {
                   {"cert_file",
                    [&](Node v, const std::string& p) { pair.cert_file = r.nonEmptyString(v, p); }},
                   {"key_file",
                    [&](Node v, const std::string& p) { pair.key_file = r.nonEmptyString(v, p); }},
               });
  if (pair.cert_file.empty() || pair.key_file.empty()) {
    r.fail(map, path, "keys 'cert_file' and 'key_file' are required in " + quoted(path));
  }
}

void readSsl(Reader& r, Node map, SslConfig& ssl) {
  r.readFields(
      map, "ssl",
      {
          {"enabled", [&](Node v, const std::string& p) { ssl.enabled = r.boolean(v, p); }},
          {"cert_file",
           [&](Node v, const std::string& p) { ssl.cert_file = r.nonEmptyString(v, p); }},
          {"key_file",
           [&](Node v, const std::string& p) { ssl.key_file = r.nonEmptyString(v, p); }},
          {"port", [&](Node v, const std::string& p) { ssl.port = r.intValue(v, p, 0, kMaxPort); }},
          {"certificates",
           [&](Node v, const std::string& p) {
             r.forEachItem(v, p, [&](Node item, const std::string& item_path) {
               readCertificate(r, item, item_path, ssl.certificates.emplace_back());
             });
           }},
          {"protocols",
           [&](Node v, const std::string& p) {
             ssl.protocols.clear();
             r.forEachItem(v, p, [&](Node item, const std::string& item_path) {
               ssl.protocols.push_back(r.oneOf(item, item_path, {"TLSv1.2", "TLSv1.3"}));
             });
             if (ssl.protocols.empty()) r.failValue(v, p, "at least one protocol is required");
           }},
      });
}

void readHealthCheck(Reader& r, Node map, const std::string& path, HealthCheckConfig& hc) {
  hc.enabled = true;
  r.readFields(
      map, path,
      {
          {"path",
           [&](Node v, const std::string& p) {
             hc.path = r.string(v, p);
             if (hc.path.empty() || hc.path[0] != '/') {
               r.failValue(v, p, "must start with '/', got " + quoted(hc.path));
             }
           }},
          {"interval",
           [&](Node v, const std::string& p) { hc.interval = r.duration(v, p, kPositive); }},
          {"timeout",
           [&](Node v, const std::string& p) { hc.timeout = r.duration(v, p, kPositive); }},
          {"failures",
           [&](Node v, const std::string& p) { hc.failures = r.intValue(v, p, 1, kMaxCheckCount); }},
          {"successes",
           [&](Node v, const std::string& p) { hc.successes = r.intValue(v, p, 1, kMaxCheckCount); }},
      });
}

BackendConfig readBackend(Reader& r, Node map, const std::string& path) {
  BackendConfig b;
  b.mark = Reader::mark(map);
  bool has_id = false;
  r.readFields(
      map, path,
      {
          {"id",
           [&](Node v, const std::string& p) {
             b.id = r.nonEmptyString(v, p);
             has_id = true;
           }},
          {"name", [&](Node v, const std::string& p) { b.name = r.string(v, p); }},
          {"host", [&](Node v, const std::string& p) { b.host = r.nonEmptyString(v, p); }},
          {"port",
           [&](Node v, const std::string& p) { b.port = r.intValue(v, p, kMinPort, kMaxPort); }},
          {"weight",
           [&](Node v, const std::string& p) {
             b.weight = r.intValue(v, p, kMinWeight, kMaxWeight);
           }},
          {"scheme",
           [&](Node v, const std::string& p) {
             b.scheme = r.oneOf(v, p, {"http", "https"});
           }},
          {"active", [&](Node v, const std::string& p) { b.active = r.boolean(v, p); }},
          {"max_conn",
           [&](Node v, const std::string& p) { b.max_conn = r.integer(v, p, 0, kMaxInt); }},
          {"max_fails",
           [&](Node v, const std::string& p) { b.max_fails = r.intValue(v, p, 0, kMaxFails); }},
          {"keepalive",
           [&](Node v, const std::string& p) { b.keepalive = r.intValue(v, p, 0, kMaxKeepalive); }},
          {"fail_timeout",
           [&](Node v, const std::string& p) { b.fail_timeout = r.duration(v, p, kPositive); }},
          {"slow_start",
           [&](Node v, const std::string& p) { b.slow_start = r.duration(v, p, kZero); }},
          {"tls_verify", [&](Node v, const std::string& p) { b.tls_verify = r.boolean(v, p); }},
          {"ca_file", [&](Node v, const std::string& p) { b.ca_file = r.string(v, p); }},
          {"health_check",
           [&](Node v, const std::string& p) { readHealthCheck(r, v, p, b.health_check); }},
      });
  if (!has_id && !b.host.empty()) b.id = b.host + ":" + std::to_string(b.port);
  return b;
}

void readBackends(Reader& r, Node map, Config& config) {
  r.forEachPair(map, "backends", [&](const std::string& upstream, Node key, Node list) {
    if (upstream.empty()) {
      r.fail(key, "backends", "an upstream name in 'backends' must not be empty");
    }
    std::vector<BackendConfig>& backends = config.backends[upstream];
    r.forEachItem(list, "backends." + upstream, [&](Node item, const std::string& item_path) {
      backends.push_back(readBackend(r, item, item_path));
    });
  });
}

std::string retryConditionNames() {
  std::string out;
  for (const RetryCondition& c : kRetryConditions) {
    out += (out.empty() ? "" : ", ") + std::string(c.name);
  }
  return out;
}

// routing.NAME.retry_on: a list of condition names, each at most once; empty turns retries off.
uint32_t readRetryOn(Reader& r, Node list, const std::string& path) {
  uint32_t bits = 0;
  std::map<uint32_t, std::string> first_path;
  r.forEachItem(list, path, [&](Node item, const std::string& item_path) {
    const std::string name = r.string(item, item_path);
    const auto condition = std::find_if(std::begin(kRetryConditions), std::end(kRetryConditions),
                                        [&](const RetryCondition& c) { return name == c.name; });
    if (condition == std::end(kRetryConditions)) {
      r.failValue(
          item, item_path,
          "unknown retry condition " + quoted(name) + " (one of " + retryConditionNames() + ")");
    }
    const auto [it, inserted] = first_path.emplace(condition->bit, item_path);
    if (!inserted) {
      r.failValue(
          item, item_path,
          "retry condition " + quoted(name) + " is repeated (first at " + quoted(it->second) + ")");
    }
    bits |= condition->bit;
  });
  return bits;
}

RouteConfig readRoute(Reader& r, Node map, const std::string& name) {
  RouteConfig route;
  route.name = name;
  route.mark = Reader::mark(map);
  const std::string path = "routing." + name;
  r.readFields(
      map, path,
      {
          {"path",
           [&](Node v, const std::string& p) {
             route.path = r.string(v, p);
             if (route.path.empty() || route.path[0] != '/') {
               r.failValue(v, p, "must start with '/', got " + quoted(route.path));
             }
           }},
          {"host", [&](Node v, const std::string& p) { route.host = r.string(v, p); }},
          {"upstream",
           [&](Node v, const std::string& p) { route.upstream = r.nonEmptyString(v, p); }},
          {"load_balancer",
           [&](Node v, const std::string& p) { route.load_balancer = r.nonEmptyString(v, p); }},
          {"protocols",
           [&](Node v, const std::string& p) {
             std::vector<Field> classes;
             for (std::string_view protocol : kProtocolClasses) {
               classes.push_back({protocol, [&r, &route, protocol](Node b, const std::string& bp) {
                                    route.protocols[std::string(protocol)] =
                                        r.nonEmptyString(b, bp);
                                  }});
             }
             r.readFields(v, p, classes);
           }},
          {"retries",
           [&](Node v, const std::string& p) { route.retries = r.intValue(v, p, 0, kMaxRetries); }},
          {"retry_on",
           [&](Node v, const std::string& p) { route.retry_on = readRetryOn(r, v, p); }},
          {"retry_budget",
           [&](Node v, const std::string& p) {
             route.retry_budget = r.intValue(v, p, 0, kMaxRetryBudget);
           }},
      });
  return route;
}

void readRouting(Reader& r, Node map, Config& config) {
  r.forEachPair(map, "routing", [&](const std::string& name, Node key, Node value) {
    if (name.empty()) r.fail(key, "routing", "a route name in 'routing' must not be empty");
    config.routes.push_back(readRoute(r, value, name));
  });
}

// `grpc` and `admin` both describe the management listener. Remembers which section set
// enabled/host/port first, so that the other may repeat a value but not contradict it.
class AdminReader {
 public:
  AdminReader(Reader& r, AdminConfig& admin) : r_(r), admin_(admin) {}

  void read(Node map, const std::string& section) {
    if (admin_.mark.line == 0) admin_.mark = Reader::mark(map);
    std::vector<Field> fields = {
        {"enabled",
         [&](Node v, const std::string& p) {
           admin_.enabled = r_.boolean(v, p);
           agree(v, p, admin_.enabled ? "true" : "false");
         }},
        {"host",
         [&](Node v, const std::string& p) {
           admin_.host = r_.nonEmptyString(v, p);
           admin_.mark = Reader::mark(v);  // an exposure error points at the host
           agree(v, p, admin_.host);
         }},
        {"port",
         [&](Node v, const std::string& p) {
           admin_.port = r_.intValue(v, p, kMinPort, kMaxPort);
           agree(v, p, std::to_string(admin_.port));
         }},
    };
    if (section == "admin") {
      fields.push_back({"auth_token", [&](Node v, const std::string& p) {
                          admin_.auth_token = r_.string(v, p);
                        }});
      fields.push_back({"allow", [&](Node v, const std::string& p) {
                          admin_.allow = r_.cidrs(v, p);
                          allow_given_ = true;
                        }});
    }
    r_.readFields(map, section, fields);
  }

  // Called once after both sections: the default allow list (loopback only).
  void finish() {
    if (!allow_given_) admin_.allow = {*Cidr::parse("127.0.0.1/32"), *Cidr::parse("::1/128")};
  }

 private:
  // `path` is "grpc.port" or "admin.port"; `value` the value in canonical text.
  void agree(Node at, const std::string& path, const std::string& value) {
    const std::string key = path.substr(path.find('.') + 1);
    const auto [it, inserted] = first_.emplace(key, std::make_pair(path, value));
    if (inserted || it->second.second == value) return;
    r_.fail(at, path,
            quoted(path) + " is " + value + " but " + quoted(it->second.first) + " is " +
                it->second.second + ": grpc and admin name the same listener");
  }

  Reader& r_;
  AdminConfig& admin_;
  bool allow_given_ = false;
  std::map<std::string, std::pair<std::string, std::string>> first_;  // key -> (path, value)
};

void readTop(Reader& r, Node root, Config& config) {
  AdminReader admin(r, config.admin);
  r.readFields(root, "",
               {
                   {"server", [&](Node v, const std::string&) { readServer(r, v, config.server); }},
                   {"ssl", [&](Node v, const std::string&) { readSsl(r, v, config.ssl); }},
                   {"backends", [&](Node v, const std::string&) { readBackends(r, v, config); }},
                   {"routing", [&](Node v, const std::string&) { readRouting(r, v, config); }},
                   {"grpc", [&](Node v, const std::string&) { admin.read(v, "grpc"); }},
                   {"admin", [&](Node v, const std::string&) { admin.read(v, "admin"); }},
               });
  admin.finish();
}

// ---------------------------------------------------------------------------------------------
// Cross-checks

// `path` is the value at fault (ConfigError::path).
[[noreturn]] void failAt(const Config& config, const Mark& mark, const std::string& path,
                         const std::string& message) {
  throw ConfigError(config.file, mark.line, mark.column, message, path);
}

// Where the value at `path` was written, else `fallback`: the enclosing mapping for a key left
// at its default, no position ("FILE: message") for a Config built in code.
Mark markOf(const Config& config, const std::string& path, const Mark& fallback = {}) {
  const auto it = config.marks.find(path);
  return it != config.marks.end() ? it->second : fallback;
}

// Fails at the value at `path`; the message starts with that path.
[[noreturn]] void failAtPath(const Config& config, const std::string& path, const Mark& fallback,
                             const std::string& message) {
  failAt(config, markOf(config, path, fallback), path, quoted(path) + ": " + message);
}

void validateBackend(const Config& config, const BackendConfig& b, const std::string& path) {
  // Host and port first: without them the parser could not derive the default id.
  // A key that was not written is at fault in the backend that lacks it.
  if (b.host.empty()) failAt(config, b.mark, path, quoted(path) + ": key 'host' is required");
  if (b.port == 0) failAt(config, b.mark, path, quoted(path) + ": key 'port' is required");
  if (b.id.empty()) failAt(config, b.mark, path, quoted(path) + ": key 'id' is required");
  if (b.port < kMinPort || b.port > kMaxPort) {
    failAtPath(config, path + ".port", b.mark, outOfRange(b.port, kMinPort, kMaxPort));
  }
  if (b.weight < kMinWeight || b.weight > kMaxWeight) {
    failAtPath(config, path + ".weight", b.mark, outOfRange(b.weight, kMinWeight, kMaxWeight));
  }
  if (!isOneOf(b.scheme, {"http", "https"})) {
    failAtPath(config, path + ".scheme", b.mark, quoted(b.scheme) + " is not one of http, https");
  }
}

void validateBackends(const Config& config) {
  for (const auto& [upstream, backends] : config.backends) {
    std::map<std::string, size_t> index_of_id;
    for (size_t i = 0; i < backends.size(); ++i) {
      const std::string path = backendPath(upstream, i);
      validateBackend(config, backends[i], path);
      const auto [it, inserted] = index_of_id.emplace(backends[i].id, i);
      if (!inserted) {
        // At the id, or at the backend when its id was derived from host and port.
        failAt(config, markOf(config, path + ".id", backends[i].mark), path,
               quoted(path) + ": id " + quoted(backends[i].id) + " is already used by " +
                   quoted(backendPath(upstream, it->second)));
      }
    }
  }
}

void checkBalancer(const Config& config, const RouteConfig& route, const std::string& path,
                   const std::string& name, const KnownNames& known) {
  if (std::find(known.balancers.begin(), known.balancers.end(), name) == known.balancers.end()) {
    failAtPath(config, path, route.mark, quoted(name) + " is not a known load balancer");
  }
}

void validateRoute(const Config& config, const RouteConfig& route, const KnownNames& known) {
  const std::string path = "routing." + route.name;
  if (route.path.empty() || route.path[0] != '/') {
    failAtPath(config, path + ".path", route.mark,
               "must start with '/', got " + quoted(route.path));
  }
  if (route.upstream.empty()) {
    failAt(config, route.mark, path, quoted(path) + ": key 'upstream' is required");
  }
  if (config.backends.count(route.upstream) == 0) {
    failAtPath(config, path + ".upstream", route.mark,
               "upstream " + quoted(route.upstream) + " is not defined in 'backends'");
  }
  checkBalancer(config, route, path + ".load_balancer", route.load_balancer, known);
  for (const auto& [protocol, balancer] : route.protocols) {
    if (!isOneOf(protocol, kProtocolClasses)) {
      failAt(config, markOf(config, path + ".protocols", route.mark),
             path + ".protocols." + protocol,
             "key " + quoted(protocol) + " is not known in " + quoted(path + ".protocols"));
    }
    checkBalancer(config, route, path + ".protocols." + protocol, balancer, known);
  }
  if (route.retries < 0 || route.retries > kMaxRetries) {
    failAtPath(config, path + ".retries", route.mark, outOfRange(route.retries, 0, kMaxRetries));
  }
  if ((route.retry_on & ~kRetryOnAll) != 0) {
    failAtPath(config, path + ".retry_on", route.mark, "holds an unknown retry condition");
  }
  if (route.retry_budget < 0 || route.retry_budget > kMaxRetryBudget) {
    failAtPath(config, path + ".retry_budget", route.mark,
               outOfRange(route.retry_budget, 0, kMaxRetryBudget));
  }
}

// Two routes with the same path and host could never both be chosen.
void validateRouteUniqueness(const Config& config) {
  std::map<std::pair<std::string, std::string>, const RouteConfig*> seen;
  for (const RouteConfig& route : config.routes) {
    std::string host = route.host;
    std::transform(host.begin(), host.end(), host.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const auto [it, inserted] = seen.emplace(std::make_pair(route.path, host), &route);
    if (!inserted) {
      // At the route: neither its path nor its host alone is at fault.
      failAt(config, route.mark, "routing." + route.name,
             quoted("routing." + route.name) + ": the same path and host as " +
                 quoted("routing." + it->second->name));
    }
  }
}

// ssl.port names a second listener beside server.port; the same port would be one socket.
void validateSsl(const Config& config) {
  const SslConfig& ssl = config.ssl;
  if (ssl.port < 0 || ssl.port > kMaxPort) {
    failAtPath(config, "ssl.port", markOf(config, "ssl"), outOfRange(ssl.port, 0, kMaxPort));
  }
  if (ssl.enabled && ssl.port == config.server.port) {
    failAtPath(config, "ssl.port", markOf(config, "ssl"),
               std::to_string(ssl.port) +
                   " is server.port; 0 makes server.port itself speak TLS");
  }
}

// The value an exposure error is about: the host where admin.mark points (the last one given,
// in `grpc` or `admin`); "admin.host" when it was not written.
std::string adminHostPath(const Config& config) {
  const auto grpc = config.marks.find("grpc.host");
  const bool from_grpc = grpc != config.marks.end() &&
                         grpc->second.line == config.admin.mark.line &&
                         grpc->second.column == config.admin.mark.column;
  return from_grpc ? "grpc.host" : "admin.host";
}

// The management API changes backends and the config file: reachable from other hosts only
// with a token.
void validateAdmin(const Config& config) {
  const AdminConfig& admin = config.admin;
  if (admin.port < kMinPort || admin.port > kMaxPort) {
    // The port may be spelled in either section; the parser has refused it there already.
    failAt(config, markOf(config, "admin.port", markOf(config, "grpc.port", admin.mark)),
           "admin.port", "'admin.port': " + outOfRange(admin.port, kMinPort, kMaxPort));
  }
  // admin.mark is the host's value when one was given.
  if (admin.enabled && admin.auth_token.empty() && !isLoopbackHost(admin.host)) {
    failAt(config, admin.mark, adminHostPath(config),
           "the management listener on " + quoted(admin.host) +
               " is not a loopback address; set 'admin.auth_token' or use 127.0.0.1");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ConfigError::ConfigError(std::string file, int line, int column, std::string message,
                         std::string path)
    : std::runtime_error(line > 0 ? file + ":" + std::to_string(line) + ":" +
                                        std::to_string(column) + ": " + message
                                  : file + ": " + message),
      file_(std::move(file)),
      line_(line),
      column_(column),
      message_(std::move(message)),
      path_(std::move(path)) {}

Config loadConfigFile(const std::string& path, const KnownNames& known) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, 0, 0, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path, 0, 0, std::string("cannot read: ") + std::strerror(errno));
  return parseConfig(text.str(), path, known);
}

Config parseConfig(std::string_view yaml, const std::string& file, const KnownNames& known) {
  ParserPtr parser = makeParser(yaml);
  DocumentPtr document = loadDocument(*parser, yaml, file);
  DocumentPtr next = loadDocument(*parser, yaml, file);
  if (yaml_node_t* extra = yaml_document_get_root_node(next.get())) {
    throw ConfigError(file, static_cast<int>(extra->start_mark.line) + 1,
                      static_cast<int>(extra->start_mark.column) + 1,
                      "only one YAML document is allowed");
  }
  Config config;
  config.file = file;
  Reader reader(*document, file, config.marks);
  if (Node root = reader.root()) readTop(reader, root, config);
  validateConfig(config, known);
  return config;
}

void validateConfig(const Config& config, const KnownNames& known) {
  if (config.routes.empty()) {
    // At an empty `routing:` when there is one, else nowhere in particular.
    failAt(config, markOf(config, "routing"), "routing",
           "at least one route is required in 'routing'");
  }
  validateBackends(config);
  for (const RouteConfig& route : config.routes) validateRoute(config, route, known);
  validateRouteUniqueness(config);
  validateSsl(config);
  validateAdmin(config);
}

ConfigError configErrorAt(const Config& config, const std::string& path,
                          const std::string& message) {
  // "backends.default[0].ca_file" -> "backends.default[0]" -> "backends.default" -> "backends"
  Mark mark;
  for (std::string at = path; !at.empty() && mark.line == 0;) {
    mark = markOf(config, at);
    const size_t cut = at.find_last_of(".[");
    at = cut == std::string::npos ? "" : at.substr(0, cut);
  }
  return ConfigError(config.file, mark.line, mark.column, quoted(path) + ": " + message, path);
}

int effectiveWorkers(const ServerConfig& server) {
  if (server.workers > 0) return server.workers;
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<int>(std::min<long>(cpus, kMaxWorkers)) : 1;
}

}  // namespace speedmimi::core
