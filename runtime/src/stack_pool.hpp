// StackPool: fiber stacks for one worker.
//
// Stacks are carved from chunks of kStacksPerChunk slots reserved with one mmap
// (MAP_NORESERVE: only touched pages cost memory). Each slot is [guard page][usable]; the
// guard page is made PROT_NONE the first time the slot is handed out, if the guard policy
// allows. Released stacks of the default size go back to this worker's free list; stacks of
// other sizes are mmapped one by one and unmapped on release. Chunks live until the worker
// is torn down.
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
#include <vector>

#include "green/options.hpp"

namespace green::detail {

struct Stack {
  char* base = nullptr;     // lowest address of the slot (the guard page, if any)
  std::size_t size = 0;     // whole slot, guard included
  bool guarded = false;
  bool pooled = false;      // carved from a chunk (returned to the free list)
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
  void new_chunk();
  bool guard(Stack& s, bool required);

  std::size_t default_size_;  // usable bytes, page multiple
  StackGuard guard_policy_;
  std::vector<Stack> free_;   // default-size stacks ready for reuse
  std::vector<std::pair<char*, std::size_t>> chunks_;
  char* carve_next_ = nullptr;   // next uncarved slot in the newest chunk
  std::size_t carve_left_ = 0;
  long budget_taken_ = 0;  // guards counted against the process-wide kAuto budget
};

}  // namespace green::detail
