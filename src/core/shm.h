// A shared mapping created by the master before it forks, so the master and every child see the
// same bytes. It is backed by a memfd: a new binary started by a binary upgrade inherits the
// descriptor and maps the same bytes at the same address (blocks are referred to by pointers).
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

namespace speedmimi::core {

// A mutex in shared memory: process-shared and robust, so a process killed while holding it does
// not wedge the others. Both functions return 0 or the error number of the pthread call that
// failed (they return it rather than set errno).
//
// initRobustMutex() initializes it; on an error it must not be used.
// lockRobust() takes it and, when its holder died (EOWNERDEAD), marks it consistent again
// (callers keep their structures valid between steps, so the holder's work is either done or
// not). On any error the mutex is NOT held and the caller must not touch what it guards:
// ENOTRECOVERABLE means a holder died and the next one released it without making it
// consistent, so nothing can ever take it again (a restart starts a clean zone).
[[nodiscard]] int initRobustMutex(pthread_mutex_t& mutex);
[[nodiscard]] int lockRobust(pthread_mutex_t& mutex);

class SharedMemory {
 public:
  SharedMemory() = default;
  ~SharedMemory();
  SharedMemory(SharedMemory&& o) noexcept;
  SharedMemory& operator=(SharedMemory&& o) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  // Maps `size` zeroed bytes of a new memfd (close-on-exec). False with `error` set on failure.
  bool map(size_t size, std::string& error);
  // Maps all of the memfd `fd` (taking ownership of it) at exactly `address`. False with `error`
  // set when it cannot (the address is taken in this process); `fd` is closed then.
  bool attach(int fd, uintptr_t address, std::string& error);

  void* data() const { return data_; }
  size_t size() const { return size_; }
  int fd() const { return fd_; }

 private:
  void unmap();
  void* data_ = nullptr;
  size_t size_ = 0;
  int fd_ = -1;
};

}  // namespace speedmimi::core
