#include "core/slab.h"

#include <cerrno>
#include <cstring>
#include <new>

#include "core/log.h"
#include "core/shm.h"

namespace speedmimi::core {
namespace {

constexpr int16_t kFreePage = -1;
constexpr int16_t kRunHead = -2;
constexpr int16_t kRunBody = -3;

size_t roundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

int classFor(size_t bytes) {
  size_t size = Slab::kMinBlock;
  for (int c = 0; c < Slab::kClasses; ++c, size *= 2) {
    if (bytes <= size) return c;
  }
  return -1;  // whole pages
}

size_t classSize(int c) { return Slab::kMinBlock << c; }

}  // namespace

Slab* Slab::create(void* memory, size_t size, std::string& error) {
  if (size < 4 * kPageSize) {
    error = "server.shm_size (" + std::to_string(size) + " bytes) is too small for the shared zone";
    return nullptr;
  }
  auto* slab = new (memory) Slab();
  // Robust: a process killed while holding it must not wedge the rest.
  if (int rc = initRobustMutex(slab->mutex_); rc != 0) {
    error =
        std::string("the shared zone's allocator lock cannot be initialized: ") + std::strerror(rc);
    return nullptr;
  }

  char* base = static_cast<char*>(memory);
  size_t header = roundUp(sizeof(Slab), alignof(PageInfo));
  // Each page costs kPageSize plus its PageInfo entry.
  size_t pages = (size - header - kPageSize) / (kPageSize + sizeof(PageInfo));
  slab->page_info_ = reinterpret_cast<PageInfo*>(base + header);
  size_t first = roundUp(header + pages * sizeof(PageInfo), kPageSize);
  slab->pages_ = base + first;
  slab->page_count_ = (size - first) / kPageSize;
  if (slab->page_count_ > pages) slab->page_count_ = pages;
  for (size_t i = 0; i < slab->page_count_; ++i) slab->page_info_[i] = {kFreePage, 0};
  return slab;
}

bool Slab::lock() const {
  int rc = lockRobust(mutex_);
  if (rc != 0) SM_ALERT("the shared zone's allocator lock cannot be taken: %s", std::strerror(rc));
  return rc == 0;
}

void Slab::unlock() const {
  int rc = pthread_mutex_unlock(&mutex_);
  if (rc != 0) {
    SM_ALERT("the shared zone's allocator lock cannot be released: %s", std::strerror(rc));
  }
}

size_t Slab::pageIndex(const void* p) const {
  return static_cast<size_t>(static_cast<const char*>(p) - pages_) / kPageSize;
}

// First fit over the page map. Caller holds the lock.
void* Slab::allocatePages(size_t count) {
  size_t run = 0;
  for (size_t i = 0; i < page_count_; ++i) {
    run = page_info_[i].kind == kFreePage ? run + 1 : 0;
    if (run == count) {
      size_t first = i + 1 - count;
      page_info_[first] = {kRunHead, static_cast<uint32_t>(count)};
      for (size_t j = first + 1; j <= i; ++j) page_info_[j] = {kRunBody, 0};
      return pages_ + first * kPageSize;
    }
  }
  return nullptr;
}

void Slab::freePages(size_t first, size_t count) {
  for (size_t j = first; j < first + count; ++j) page_info_[j] = {kFreePage, 0};
}

void* Slab::allocate(size_t bytes) {
  if (bytes == 0) bytes = 1;
  int c = classFor(bytes);
  if (!lock()) return nullptr;
  void* block = nullptr;
  if (c < 0) {
    size_t count = roundUp(bytes, kPageSize) / kPageSize;
    block = allocatePages(count);
    if (block) std::memset(block, 0, count * kPageSize);
  } else {
    if (!free_lists_[c]) {
      // Carve a fresh page into blocks of this class.
      char* page = static_cast<char*>(allocatePages(1));
      if (page) {
        page_info_[pageIndex(page)] = {static_cast<int16_t>(c), 1};
        size_t size = classSize(c);
        for (size_t off = kPageSize; off >= size; off -= size) {
          auto* b = reinterpret_cast<FreeBlock*>(page + off - size);
          b->next = free_lists_[c];
          free_lists_[c] = b;
        }
      }
    }
    if (free_lists_[c]) {
      FreeBlock* b = free_lists_[c];
      free_lists_[c] = b->next;
      block = b;
      std::memset(block, 0, classSize(c));
    }
  }
  unlock();
  return block;
}

void Slab::free(void* block) {
  if (!block) return;
  if (!lock()) return;
  size_t page = pageIndex(block);
  PageInfo info = page_info_[page];
  if (info.kind == kRunHead) {
    freePages(page, info.run_pages);
  } else if (info.kind >= 0) {
    // Blocks stay with their class; pages are not returned (classes are few and stable).
    auto* b = static_cast<FreeBlock*>(block);
    b->next = free_lists_[info.kind];
    free_lists_[info.kind] = b;
  }
  unlock();
}

size_t Slab::freePages() const {
  if (!lock()) return 0;
  size_t n = 0;
  for (size_t i = 0; i < page_count_; ++i) n += page_info_[i].kind == kFreePage;
  unlock();
  return n;
}

}  // namespace speedmimi::core
