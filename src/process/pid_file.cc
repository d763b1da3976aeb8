#include "process/pid_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace speedmimi::process {

bool writePidFile(const std::string& path, pid_t pid, std::string& error) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot write pid file " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string text = std::to_string(pid) + "\n";
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int saved = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write pid file " + path + ": " + std::strerror(ok ? errno : saved);
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

pid_t readPidFile(const std::string& path, std::string& error) {
  FILE* f = fopen(path.c_str(), "re");
  if (!f) {
    error = "cannot read a pid from " + path + ": " + std::strerror(errno);
    return 0;
  }
  long pid = 0;
  int n = fscanf(f, "%ld", &pid);
  fclose(f);
  if (n != 1 || pid <= 0) {
    error = "cannot read a pid from " + path + ": it holds no process id";
    return 0;
  }
  return static_cast<pid_t>(pid);
}

std::string oldbinPath(const std::string& path) { return path + ".oldbin"; }

void removePidFileIfOurs(const std::string& path, pid_t pid) {
  std::string ignored;
  if (readPidFile(path, ignored) == pid) unlink(path.c_str());
}

}  // namespace speedmimi::process
