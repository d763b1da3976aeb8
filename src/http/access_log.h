// The access log (DESIGN §7 access_log / access_log_format): one line per request in nginx's
// combined format plus upstream fields, the route and, over TLS, protocol and cipher, or one
// JSON object per line. Lines are buffered per
// worker and written with one write(2) when the buffer fills or on flush() (every second and at
// exit), so logging costs no syscall per request.
#pragma once

#include <time.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/config_types.h"
#include "event/handles.h"

namespace speedmimi::http {

struct AccessLogEntry {
  std::string_view client_ip;  // the real client IP
  std::string_view method;
  std::string_view target;
  int minor_version = 1;
  int status = 0;
  uint64_t body_bytes = 0;  // response body bytes sent to the client
  std::string_view referer;
  std::string_view user_agent;
  // Every backend tried, in order, ", " between them, as nginx's $upstream_addr; "-" when none.
  std::string_view upstream_addr;
  // Each attempt's outcome, in the same order, as nginx's $upstream_status: the status of its
  // response head, 502 or 504 for an attempt that failed without one, 0 for one cut short
  // without either (written "-"). Empty when no backend was tried.
  std::span<const int> upstream_status;
  double request_time = 0;         // seconds, from the first byte of the request
  double upstream_time = -1;       // seconds, from connect to the response's end; < 0: none
  // Seconds from the start of the attempt that answered (connect, or a pooled connection taken)
  // to its response head, as nginx's $upstream_header_time; < 0: no backend answered.
  double upstream_header_time = -1;
  std::string_view route;  // the route's name; empty when no route matched
  // The client connection's TLS protocol ("TLSv1.3") and cipher (OpenSSL's name), as nginx's
  // $ssl_protocol and $ssl_cipher; both empty for plain HTTP, whose lines have neither field.
  std::string_view ssl_protocol;
  std::string_view ssl_cipher;
};

class AccessLog {
 public:
  static constexpr size_t kBufferSize = 64 * 1024;

  // `clock` gives the time of each line (tests inject one).
  explicit AccessLog(time_t (*clock)(time_t*) = ::time) : clock_(clock) {}
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // `path` is a file or "off". False with `error` set when the file cannot be opened.
  bool open(const std::string& path, core::AccessLogFormat format, std::string& error);
  bool enabled() const { return fd_.valid(); }

  void write(const AccessLogEntry& entry);
  void flush();

  // For tests: the formatted line of an entry at time `now` (without the newline).
  static std::string format(const AccessLogEntry& entry, core::AccessLogFormat format, time_t now);
  // For tests: how many times the time has been formatted (once per second with lines).
  uint64_t timeFormats() const { return time_formats_; }

 private:
  static void append(std::string& out, const AccessLogEntry& e, core::AccessLogFormat format,
                     std::string_view when);
  // The time as the format writes it, formatted again only when the second changes (as nginx
  // caches its log times): localtime_r and strftime cost more than the rest of a line.
  std::string_view when();

  time_t (*clock_)(time_t*);
  event::Fd fd_;
  core::AccessLogFormat format_ = core::AccessLogFormat::kCombined;
  std::string buffer_;
  time_t when_second_ = -1;  // the second when_text_ holds; -1: none yet
  char when_text_[64] = {};
  size_t when_length_ = 0;
  uint64_t time_formats_ = 0;
};

}  // namespace speedmimi::http
