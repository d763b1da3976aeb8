// A slab allocator over a shared-memory region (DESIGN §3). Small blocks come from size classes
// (powers of two from 32 bytes to half a page) carved out of pages; larger blocks take whole
// pages. A process-shared robust mutex guards allocation and freeing only: nothing on the request
// path allocates from the zone.
//
// The region is mapped before the master forks, at the same address in every process, so blocks
// are referred to by plain pointers.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace speedmimi::core {

class Slab {
 public:
  static constexpr size_t kPageSize = 4096;
  static constexpr size_t kMinBlock = 32;
  static constexpr int kClasses = 7;  // 32, 64, ..., 2048

  // Lays out an allocator over [memory, memory + size), which must be page-aligned and zeroed.
  // The returned object lives at the start of the region. nullptr with `error` set when the
  // region is too small or its lock cannot be initialized.
  static Slab* create(void* memory, size_t size, std::string& error);

  // A block of at least `bytes` bytes, zeroed, or nullptr when the region is exhausted or the
  // lock cannot be taken (logged). Blocks of a size class are aligned to the class size, larger
  // ones to a page.
  void* allocate(size_t bytes);
  // Returns a block from allocate(); nullptr is ignored. When the lock cannot be taken (logged),
  // the block is leaked rather than freed unlocked.
  void free(void* block);

  size_t freePages() const;  // for statistics and tests (takes the lock; 0 when it cannot)

  // The allocator laid out over `memory` by create(), as mapped by another process or binary.
  static Slab* at(void* memory) { return static_cast<Slab*>(memory); }
  // One block the region's owner finds everything else from (the zone's header).
  void setRoot(void* root) { root_ = root; }
  void* root() const { return root_; }
  size_t totalPages() const { return page_count_; }

 private:
  struct FreeBlock {
    FreeBlock* next;
  };
  // Per page: which class it serves (-1 free, -2 the head of a run of large pages, -3 inside a
  // run) and, for a run head, how many pages the run spans.
  struct PageInfo {
    int16_t kind;
    uint32_t run_pages;
  };

  friend class SlabTestAccess;  // t/unit/core/slab_test.cc: to leave the lock unrecoverable

  Slab() = default;
  // False (logged) when the lock cannot be taken; the slab must not be touched then.
  [[nodiscard]] bool lock() const;
  void unlock() const;
  void* allocatePages(size_t count);
  void freePages(size_t first, size_t count);
  size_t pageIndex(const void* p) const;

  mutable pthread_mutex_t mutex_;
  char* pages_ = nullptr;      // first usable page
  size_t page_count_ = 0;
  PageInfo* page_info_ = nullptr;
  FreeBlock* free_lists_[kClasses] = {};
  void* root_ = nullptr;
};

}  // namespace speedmimi::core
