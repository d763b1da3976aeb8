#include "http/access_log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace speedmimi::http {
namespace {

// Escapes quotes, backslashes and control bytes as \xHH (combined) or JSON escapes (json).
void appendEscaped(std::string& out, std::string_view s, bool json) {
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      snprintf(buf, sizeof(buf), json ? "\\u%04x" : "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
}

void appendOr(std::string& out, std::string_view s, bool json) {
  if (s.empty() && !json) {
    out += '-';
  } else {
    appendEscaped(out, s, json);
  }
}

size_t formatTime(core::AccessLogFormat format, time_t now, char* out, size_t size) {
  struct tm tm;
  localtime_r(&now, &tm);
  bool json = format == core::AccessLogFormat::kJson;
  return strftime(out, size, json ? "%Y-%m-%dT%H:%M:%S%z" : "%d/%b/%Y:%H:%M:%S %z", &tm);
}

void appendSeconds(std::string& out, double s) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.3f", s);
  out += buf;
}

// `s` seconds, or `none` when it is negative (not measured).
void appendSecondsOr(std::string& out, double s, const char* none) {
  if (s < 0) {
    out += none;
  } else {
    appendSeconds(out, s);
  }
}

// "502, 200": each attempt's status, "-" for one without.
void appendStatuses(std::string& out, std::span<const int> statuses) {
  char num[16];
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (i > 0) out += ", ";
    if (statuses[i] == 0) {
      out += '-';
      continue;
    }
    snprintf(num, sizeof(num), "%d", statuses[i]);
    out += num;
  }
}

}  // namespace

AccessLog::~AccessLog() {
  flush();
}

bool AccessLog::open(const std::string& path, core::AccessLogFormat format, std::string& error) {
  format_ = format;
  when_second_ = -1;  // the format may have changed
  if (path == "off") {
    fd_.reset();
    return true;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot open access log " + path + ": " + std::strerror(errno);
    return false;
  }
  fd_.reset(fd);
  buffer_.reserve(kBufferSize);
  return true;
}

void AccessLog::write(const AccessLogEntry& entry) {
  if (!enabled()) return;
  append(buffer_, entry, format_, when());
  buffer_ += '\n';
  if (buffer_.size() >= kBufferSize) flush();
}

void AccessLog::flush() {
  if (!enabled() || buffer_.empty()) return;
  ssize_t n = ::write(fd_.get(), buffer_.data(), buffer_.size());
  (void)n;  // a full disk must not stop the proxy; the lines are dropped
  buffer_.clear();
}

std::string_view AccessLog::when() {
  time_t now = clock_(nullptr);
  if (now != when_second_) {
    when_length_ = formatTime(format_, now, when_text_, sizeof(when_text_));
    when_second_ = now;
    ++time_formats_;
  }
  return std::string_view(when_text_, when_length_);
}

std::string AccessLog::format(const AccessLogEntry& entry, core::AccessLogFormat format,
                              time_t now) {
  char when[64];
  size_t length = formatTime(format, now, when, sizeof(when));
  std::string out;
  append(out, entry, format, std::string_view(when, length));
  return out;
}

void AccessLog::append(std::string& out, const AccessLogEntry& e, core::AccessLogFormat format,
                       std::string_view when) {
  bool json = format == core::AccessLogFormat::kJson;
  char num[64];
  if (json) {
    out += "{\"time\":\"";
    out += when;
    out += "\",\"remote_addr\":\"";
    appendEscaped(out, e.client_ip, true);
    out += "\",\"method\":\"";
    appendEscaped(out, e.method, true);
    out += "\",\"uri\":\"";
    appendEscaped(out, e.target, true);
    snprintf(num, sizeof(num),
             "\",\"protocol\":\"HTTP/1.%d\",\"status\":%d,\"body_bytes_sent\":%llu",
             e.minor_version, e.status, static_cast<unsigned long long>(e.body_bytes));
    out += num;
    out += ",\"http_referer\":\"";
    appendEscaped(out, e.referer, true);
    out += "\",\"http_user_agent\":\"";
    appendEscaped(out, e.user_agent, true);
    out += "\",\"upstream_addr\":\"";
    appendEscaped(out, e.upstream_addr, true);
    out += "\",\"upstream_status\":";
    if (e.upstream_status.empty()) {
      out += "null";
    } else {
      out += '"';
      appendStatuses(out, e.upstream_status);
      out += '"';
    }
    out += ",\"request_time\":";
    appendSeconds(out, e.request_time);
    out += ",\"upstream_response_time\":";
    appendSecondsOr(out, e.upstream_time, "null");
    out += ",\"upstream_header_time\":";
    appendSecondsOr(out, e.upstream_header_time, "null");
    out += ",\"route\":";
    if (e.route.empty()) {
      out += "null";
    } else {
      out += '"';
      appendEscaped(out, e.route, true);
      out += '"';
    }
    if (!e.ssl_protocol.empty()) {
      out += ",\"ssl_protocol\":\"";
      appendEscaped(out, e.ssl_protocol, true);
      out += "\",\"ssl_cipher\":\"";
      appendEscaped(out, e.ssl_cipher, true);
      out += '"';
    }
    out += '}';
    return;
  }
  // nginx "combined" plus: "upstream_addr" upstream_status request_time upstream_response_time
  // upstream_header_time "route", then over TLS "ssl_protocol" "ssl_cipher"
  out.append(e.client_ip);
  out += " - - [";
  out += when;
  out += "] \"";
  appendEscaped(out, e.method, false);
  out += ' ';
  appendEscaped(out, e.target, false);
  snprintf(num, sizeof(num), " HTTP/1.%d\" %d %llu \"", e.minor_version, e.status,
           static_cast<unsigned long long>(e.body_bytes));
  out += num;
  appendOr(out, e.referer, false);
  out += "\" \"";
  appendOr(out, e.user_agent, false);
  out += "\" \"";
  appendOr(out, e.upstream_addr, false);
  out += "\" ";
  if (e.upstream_status.empty()) {
    out += '-';
  } else {
    appendStatuses(out, e.upstream_status);
  }
  out += ' ';
  appendSeconds(out, e.request_time);
  out += ' ';
  appendSecondsOr(out, e.upstream_time, "-");
  out += ' ';
  appendSecondsOr(out, e.upstream_header_time, "-");
  out += " \"";
  appendOr(out, e.route, false);
  out += '"';
  if (!e.ssl_protocol.empty()) {
    out += " \"";
    appendEscaped(out, e.ssl_protocol, false);
    out += "\" \"";
    appendEscaped(out, e.ssl_cipher, false);
    out += '"';
  }
}

}  // namespace speedmimi::http
