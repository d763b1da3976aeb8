#include "core/shm.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace speedmimi::core {

int initRobustMutex(pthread_mutex_t& mutex) {
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc != 0) return rc;
  rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(&mutex, &attr);
  pthread_mutexattr_destroy(&attr);  // no failure defined for an initialized attribute object
  return rc;
}

int lockRobust(pthread_mutex_t& mutex) {
  int rc = pthread_mutex_lock(&mutex);
  if (rc == EOWNERDEAD) {
    rc = pthread_mutex_consistent(&mutex);
    // Held but not consistent: releasing it makes it ENOTRECOVERABLE for everyone, which is the
    // truth, rather than carrying on under a lock nobody can trust.
    if (rc != 0) pthread_mutex_unlock(&mutex);
  }
  return rc;
}

SharedMemory::~SharedMemory() { unmap(); }

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      fd_(std::exchange(o.fd_, -1)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    unmap();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

bool SharedMemory::map(size_t size, std::string& error) {
  unmap();
  int fd = memfd_create("speedmimi-zone", MFD_CLOEXEC);
  if (fd < 0) {
    error = std::string("memfd_create() failed: ") + std::strerror(errno);
    return false;
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    error = "ftruncate(" + std::to_string(size) + ") of the zone failed: " + std::strerror(errno);
    close(fd);
    return false;
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    error = "mmap(" + std::to_string(size) + ") failed: " + std::strerror(errno);
    close(fd);
    return false;
  }
  data_ = p;
  size_ = size;
  fd_ = fd;
  return true;
}

bool SharedMemory::attach(int fd, uintptr_t address, std::string& error) {
  unmap();
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    error = "the inherited zone (fd " + std::to_string(fd) + ") cannot be used: " +
            std::strerror(errno ? errno : EINVAL);
    close(fd);
    return false;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* want = reinterpret_cast<void*>(address);
  void* p = mmap(want, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
  if (p == MAP_FAILED || p != want) {
    error = "the inherited zone cannot be mapped at its address: " +
            std::string(p == MAP_FAILED ? std::strerror(errno) : "the kernel chose another");
    if (p != MAP_FAILED) munmap(p, size);
    close(fd);
    return false;
  }
  data_ = p;
  size_ = size;
  fd_ = fd;
  return true;
}

void SharedMemory::unmap() {
  if (data_) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

}  // namespace speedmimi::core
