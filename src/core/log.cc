#include "core/log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace speedmimi::core {
namespace {

int g_fd = STDERR_FILENO;
bool g_owned = false;
LogLevel g_level = LogLevel::kInfo;
std::string g_path = "stderr";

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

}  // namespace

const char* logLevelName(LogLevel level) {
  static const char* const kNames[] = {"debug", "info", "notice", "warn",
                                       "error", "crit", "alert", "emerg"};
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

bool logEnabled(LogLevel level) { return level >= g_level; }

void logWrite(LogLevel level, const char* format, ...) {
  char line[2048];
  time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  int n = static_cast<int>(strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm));
  n += snprintf(line + n, sizeof(line) - n, " [%s] %d: ", logLevelName(level),
                static_cast<int>(getpid()));
  va_list ap;
  va_start(ap, format);
  int m = vsnprintf(line + n, sizeof(line) - n - 1, format, ap);
  va_end(ap);
  n = m < 0 ? n : std::min<int>(n + m, sizeof(line) - 2);
  line[n++] = '\n';
  // One write per line keeps lines from several processes whole (O_APPEND).
  ssize_t ignored = ::write(g_fd, line, n);
  (void)ignored;
}

}  // namespace speedmimi::core
