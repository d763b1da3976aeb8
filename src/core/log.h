// The error log (DESIGN §7 error_log/log_level): one line per message,
// "YYYY/MM/DD HH:MM:SS [level] PID: message", written with one write(2) to a file opened with
// O_APPEND (shared by the master and all children) or to stderr.
#pragma once

#include <string>

#include "core/config_types.h"

namespace speedmimi::core {

// Opens `path` ("stderr" or a file) for the process and its future children. Returns false with
// `error` set when the file cannot be opened; the previous log stays in use then.
bool openErrorLog(const std::string& path, LogLevel level, std::string& error);

// Reopens the current log file (USR1, log rotation).
bool reopenErrorLog(std::string& error);

bool logEnabled(LogLevel level);
void logWrite(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

const char* logLevelName(LogLevel level);

}  // namespace speedmimi::core

// The level check happens before the arguments are evaluated.
#define SM_LOG(level, ...)                                           \
  do {                                                               \
    if (::speedmimi::core::logEnabled(level))                        \
      ::speedmimi::core::logWrite(level, __VA_ARGS__);               \
  } while (0)
#define SM_DEBUG(...) SM_LOG(::speedmimi::core::LogLevel::kDebug, __VA_ARGS__)
#define SM_INFO(...) SM_LOG(::speedmimi::core::LogLevel::kInfo, __VA_ARGS__)
#define SM_NOTICE(...) SM_LOG(::speedmimi::core::LogLevel::kNotice, __VA_ARGS__)
#define SM_WARN(...) SM_LOG(::speedmimi::core::LogLevel::kWarn, __VA_ARGS__)
#define SM_ERROR(...) SM_LOG(::speedmimi::core::LogLevel::kError, __VA_ARGS__)
#define SM_CRIT(...) SM_LOG(::speedmimi::core::LogLevel::kCrit, __VA_ARGS__)
#define SM_ALERT(...) SM_LOG(::speedmimi::core::LogLevel::kAlert, __VA_ARGS__)
