#include "core/log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "core/clock.h"

namespace speedmimi::core {
namespace {

int g_fd = STDERR_FILENO;
bool g_owned = false;
LogLevel g_level = LogLevel::kInfo;
std::string g_path = "stderr";
int64_t g_rate_limit_ms = 0;

int64_t (*g_now_ms)() = monotonicMs;

int openPath(const std::string& path, std::string& error) {
  if (path == "stderr") return STDERR_FILENO;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) error = "cannot open error log " + path + ": " + std::strerror(errno);
  return fd;
}

void install(int fd, const std::string& path) {
  if (g_owned && g_fd != fd) ::close(g_fd);
  g_fd = fd;
  g_owned = fd != STDERR_FILENO;
  g_path = path;
}

// One line, with one write(2) so that lines from several processes stay whole (O_APPEND).
void writeLine(LogLevel level, const char* format, va_list ap, uint32_t suppressed) {
  char line[2048];
  time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  int n = static_cast<int>(strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm));
  n += snprintf(line + n, sizeof(line) - n, " [%s] %d: ", logLevelName(level),
                static_cast<int>(getpid()));
  int m = vsnprintf(line + n, sizeof(line) - n - 1, format, ap);
  n = m < 0 ? n : std::min<int>(n + m, sizeof(line) - 2);
  if (suppressed > 0) {
    m = snprintf(line + n, sizeof(line) - n - 1, " (%u similar messages suppressed)", suppressed);
    n = m < 0 ? n : std::min<int>(n + m, sizeof(line) - 2);
  }
  line[n++] = '\n';
  ssize_t ignored = ::write(g_fd, line, n);
  (void)ignored;
}

}  // namespace

const char* logLevelName(LogLevel level) {
  static const char* const kNames[] = {"debug", "info", "notice", "warn",
                                       "error", "crit", "alert",  "emerg"};
  return kNames[static_cast<int>(level)];
}

bool openErrorLog(const std::string& path, LogLevel level, std::string& error) {
  int fd = openPath(path, error);
  if (fd < 0) return false;
  install(fd, path);
  g_level = level;
  return true;
}

bool reopenErrorLog(std::string& error) {
  if (g_path == "stderr") return true;
  int fd = openPath(g_path, error);
  if (fd < 0) return false;
  install(fd, g_path);
  return true;
}

bool logEnabled(LogLevel level) {
  return level >= g_level;
}

void setLogRateLimit(std::chrono::milliseconds interval) {
  g_rate_limit_ms = interval.count();
}

void setLogClock(int64_t (*now_ms)()) {
  g_now_ms = now_ms ? now_ms : monotonicMs;
}

bool logAdmit(LogLevel level, LogSite& site) {
  if (g_rate_limit_ms <= 0 || level >= LogLevel::kCrit) return true;
  int64_t now = g_now_ms();
  if (now < site.next_ms) {
    ++site.suppressed;
    return false;
  }
  site.next_ms = now + g_rate_limit_ms;
  return true;
}

void logWriteAt(LogSite& site, LogLevel level, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  writeLine(level, format, ap, site.suppressed);
  va_end(ap);
  site.suppressed = 0;
}

}  // namespace speedmimi::core
