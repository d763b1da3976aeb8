#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace speedmimi::core {
namespace {

std::string failure(const std::string& path, const char* what, int err) {
  return path + ": " + what + ": " + std::strerror(err);
}

std::string directoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

bool writeFileAtomically(const std::string& path, std::string_view contents, std::string& error,
                         const std::string& backup, unsigned mode) {
  struct stat old;
  bool existed = stat(path.c_str(), &old) == 0;
  if (existed) mode = old.st_mode & 07777;
  std::string temp = path + ".tmp." + std::to_string(getpid());
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    error = failure(temp, "cannot create", errno);
    return false;
  }
  if (existed) fchmod(fd, mode);  // not narrowed by the umask: the file keeps its mode
  bool written = writeAll(fd, contents) && fsync(fd) == 0;
  int err = errno;
  if (close(fd) != 0 && written) {
    written = false;
    err = errno;
  }
  if (!written) {
    unlink(temp.c_str());
    error = failure(temp, "cannot write", err);
    return false;
  }
  if (!backup.empty() && existed) {
    unlink(backup.c_str());
    if (link(path.c_str(), backup.c_str()) != 0) {
      err = errno;
      unlink(temp.c_str());
      error = failure(backup, "cannot keep the previous file", err);
      return false;
    }
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    err = errno;
    unlink(temp.c_str());
    error = failure(path, "cannot replace", err);
    return false;
  }
  std::string dir = directoryOf(path);
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    err = errno;
    if (dfd >= 0) close(dfd);
    error = failure(dir, "cannot sync the directory", err);
    return false;  // renamed, but not known to survive a crash
  }
  close(dfd);
  return true;
}

bool readWholeFile(const std::string& path, std::string& contents, std::string& error,
                   bool* missing) {
  if (missing) *missing = false;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && missing) {
      *missing = true;
      return false;
    }
    error = failure(path, "cannot open", errno);
    return false;
  }
  contents.clear();
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = failure(path, "cannot read", errno);
      close(fd);
      return false;
    }
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

}  // namespace speedmimi::core
