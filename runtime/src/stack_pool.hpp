// StackPool: fiber stacks for one worker.
//
// Stacks are carved from chunks of kStacksPerChunk slots reserved with one mmap
// (MAP_NORESERVE: only touched pages cost memory). Each slot is [guard page][usable]; the
// guard page is made PROT_NONE the first time the slot is handed out, if the guard policy
// allows. Stacks of other sizes than the default are mmapped one by one and unmapped on
// release.
//
// Free slots are a bit mask per chunk. A released stack's pages are given back at once
// (madvise(DONTNEED)); its slot stays mapped for reuse. Allocation takes a slot from a
// partly used chunk first, then from a wholly free one, then maps a new chunk, so live stacks
// gather in few chunks. Trimming rule: a chunk whose slots are all free is unmapped as soon
// as the pool would still hold at least max(kMinFree, stacks in use) free slots without it
// (checked on every release, so at most about twice the current use stays mapped, plus
// kMinFree). That returns the mappings -- a guarded chunk is 2 VMAs per slot -- and the
// guard budget, so churning threads never exhausts vm.max_map_count.
//
// Guards and vm.max_map_count: every guard page splits a mapping, costing two VMAs per stack,
// and the kernel caps VMAs per process (vm.max_map_count, 65530 by default: ~32k guarded
// stacks). Policy (Options::stack_guard): kAlways fails with StackError naming the limit and
// the fix; kAuto guards while a process-wide budget derived from max_map_count lasts, then
// hands out unguarded stacks after one warning; kNever never guards.
//
// Threads: a StackPool is touched only by its worker's thread. The guard budget is a
// process-wide atomic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "green/options.hpp"

namespace green::detail {

struct StackChunk;

struct Stack {
  char* base = nullptr;     // lowest address of the slot (the guard page, if any)
  std::size_t size = 0;     // whole slot, guard included
  bool guarded = false;
  bool pooled = false;          // carved from a chunk (returned to it on release)
  StackChunk* chunk = nullptr;  // the chunk, if pooled
  char* top() const { return base + size; }
  std::size_t usable() const;
};

class StackPool {
 public:
  StackPool(std::size_t default_size, StackGuard guard);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // Returns a stack with at least `size` usable bytes (0: the default). Throws StackError.
  Stack allocate(std::size_t size);
  void release(Stack s) noexcept;

  std::size_t default_size() const { return default_size_; }
  static std::size_t page_size();

 private:
  static constexpr std::size_t kStacksPerChunk = 32;
  static constexpr std::size_t kMinFree = 256;  // free slots always kept (trimming rule)
  StackChunk* new_chunk();
  void free_chunk(StackChunk* c) noexcept;
  void trim() noexcept;
  bool guard(Stack& s, bool required);
  void set_guard(Stack& s);

  std::size_t default_size_;  // usable bytes, page multiple
  StackGuard guard_policy_;
  std::vector<StackChunk*> partial_;  // chunks with used and free slots
  std::vector<StackChunk*> empty_;    // chunks with every slot free
  std::size_t chunks_ = 0;            // chunks mapped
  std::size_t in_use_ = 0;            // pooled stacks handed out
  std::size_t free_slots_ = 0;        // free slots over all chunks
  StackChunk* all_ = nullptr;         // every chunk (intrusive list), for the destructor
  long budget_taken_ = 0;  // guards counted against the process-wide kAuto budget
};

}  // namespace green::detail
