// The error log (DESIGN §7 error_log/log_level): one line per message,
// "YYYY/MM/DD HH:MM:SS [level] PID: message", written with one write(2) to a file opened with
// O_APPEND (shared by the master and all children) or to stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/config_types.h"

namespace speedmimi::core {

// What the rate limiter remembers of one SM_LOG call site (a static per expansion of the macro,
// so a format string costs one of these and the hot path no allocation).
struct LogSite {
  int64_t next_ms = 0;      // a line from this site may be written from then on (monotonic)
  uint32_t suppressed = 0;  // lines not written since the last one that was
};

// Opens `path` ("stderr" or a file) for the process and its future children. Returns false with
// `error` set when the file cannot be opened; the previous log stays in use then.
bool openErrorLog(const std::string& path, LogLevel level, std::string& error);

// Reopens the current log file (USR1, log rotation).
bool reopenErrorLog(std::string& error);

// Rate limiting of repeats, for the processes that serve traffic (the workers): one failing
// backend would otherwise cost a line per request. Within `interval` of a line, further lines
// from the same call site are counted, not written; the next line written from there ends with
// "(N similar messages suppressed)". crit and above are never held back. 0 (the default) turns
// it off: the master's and the control process's lines are rare and each one matters (a child's
// start and exit, a backend's health changes).
void setLogRateLimit(std::chrono::milliseconds interval);
// The limiter's clock, in milliseconds; tests set a fake one. nullptr: CLOCK_MONOTONIC_COARSE.
void setLogClock(int64_t (*now_ms)());

bool logEnabled(LogLevel level);
// True when a line from `site` is to be written now; else counts it in site.suppressed.
bool logAdmit(LogLevel level, LogSite& site);
// Writes one line; when lines from `site` were suppressed, it says how many (and resets that).
void logWriteAt(LogSite& site, LogLevel level, const char* format, ...)
    __attribute__((format(printf, 3, 4)));

const char* logLevelName(LogLevel level);

}  // namespace speedmimi::core

// The level check and the rate limiter come before the arguments are evaluated.
#define SM_LOG(level, ...)                                               \
  do {                                                                   \
    if (::speedmimi::core::logEnabled(level)) {                          \
      static ::speedmimi::core::LogSite sm_log_site_;                    \
      if (::speedmimi::core::logAdmit(level, sm_log_site_))              \
        ::speedmimi::core::logWriteAt(sm_log_site_, level, __VA_ARGS__); \
    }                                                                    \
  } while (0)
#define SM_DEBUG(...) SM_LOG(::speedmimi::core::LogLevel::kDebug, __VA_ARGS__)
#define SM_INFO(...) SM_LOG(::speedmimi::core::LogLevel::kInfo, __VA_ARGS__)
#define SM_NOTICE(...) SM_LOG(::speedmimi::core::LogLevel::kNotice, __VA_ARGS__)
#define SM_WARN(...) SM_LOG(::speedmimi::core::LogLevel::kWarn, __VA_ARGS__)
#define SM_ERROR(...) SM_LOG(::speedmimi::core::LogLevel::kError, __VA_ARGS__)
#define SM_CRIT(...) SM_LOG(::speedmimi::core::LogLevel::kCrit, __VA_ARGS__)
#define SM_ALERT(...) SM_LOG(::speedmimi::core::LogLevel::kAlert, __VA_ARGS__)
