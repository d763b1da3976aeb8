// An anonymous shared mapping created by the master before it forks, so the master and every
// child see the same bytes. Lives as long as the master (children inherit the mapping).
#pragma once

#include <cstddef>
#include <new>
#include <string>

namespace speedmimi::core {

class SharedMemory {
 public:
  SharedMemory() = default;
  ~SharedMemory();
  SharedMemory(SharedMemory&& o) noexcept;
  SharedMemory& operator=(SharedMemory&& o) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  // Maps `size` zeroed bytes. False with `error` set on failure.
  bool map(size_t size, std::string& error);

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void unmap();
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace speedmimi::core
