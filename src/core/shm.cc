#include "core/shm.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace speedmimi::core {

SharedMemory::~SharedMemory() { unmap(); }

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    unmap();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

bool SharedMemory::map(size_t size, std::string& error) {
  unmap();
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    error = "mmap(" + std::to_string(size) + ") failed: " + std::strerror(errno);
    return false;
  }
  data_ = p;
  size_ = size;
  return true;
}

void SharedMemory::unmap() {
  if (data_) munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace speedmimi::core
