// StackPool: fiber stacks for one worker.
//
// Stacks are carved from chunks of kStacksPerChunk slots reserved with one mmap
// (MAP_NORESERVE: only touched pages cost memory). Each slot is [guard page][usable]; the
// guard page is made PROT_NONE the first time the slot is handed out, if the guard policy
// allows. Stacks of other sizes than the default are mmapped one by one and unmapped on
// release.
//
// Free slots are a bit mask per chunk. A released stack's pages are given back at once
// (madvise(DONTNEED)); its slot stays mapped for reuse. Memory return must not depend on which
// slots happen to stay in use (with migration that is placement: which worker a thread ran and
// finished on), so it works per slot, not only per chunk:
//   * Guards: at most 2 * kKeepGuarded + (stacks in use) / 4 free slots keep their guards.
//     A release that finds more calls tidy(), which makes the guard page of every free slot beyond
//     the first kKeepGuarded (fullest chunks first) read-write again, so the slot merges with its
//     neighbours into one VMA: a chunk then costs about one VMA plus two per guarded slot, whatever
//     mix of used and free slots it holds. (A guarded slot is 2 VMAs; the kernel caps VMAs per
//     process: vm.max_map_count.) The slot gets its guard back, and its guard budget (kAuto), when
//     it is handed out again. Not on every release: a chunk that drains wholly is unmapped anyway,
//     and unguarding its slots one by one first cost 10% more CPU in a 100,000-fiber spawn/exit
//     round; the trigger is geometric (a tidy each time use fell by about a fifth).
//   * Allocation takes the fullest partly used chunk first (chunks are bucketed by free
//     count), then a wholly free one, then maps a new chunk: live stacks gather in few chunks
//     and the emptier chunks drain. Within a chunk a still-guarded free slot goes first (no
//     mprotect).
//   * A chunk whose slots are all free is unmapped as soon as the pool would still hold at
//     least max(kMinFree, stacks in use) free slots without it (checked on every release, so
//     at most about twice the current use stays mapped, plus kMinFree): that returns the
//     address space.
// "In use" includes the stacks of contexts parked in the worker's context pool (Worker::pool_),
// which keep their guards. Tests: StackPool.ScatteredSurvivorsDoNotKeepMappings
// (tests/fiber_test.cpp: every 20th of 20,000 stacks stays in use) and tests/shim/thread_churn.c
// (mappings after a 20,000-thread burst).
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
#include <memory>
#include <vector>

#include "green/options.hpp"

namespace green::detail {

struct StackChunk;

struct Stack {
  char* base = nullptr;  // lowest address of the slot (the guard page, if any)
  std::size_t size = 0;  // whole slot, guard included
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
  static constexpr std::size_t kMinFree = 256;      // free slots always kept (trimming rule)
  static constexpr std::size_t kKeepGuarded = 256;  // guarded free slots kept (see above)
  StackChunk* new_chunk();
  void free_chunk(StackChunk* c) noexcept;
  void trim() noexcept;
  bool guard(Stack& s, bool required);
  void set_guard(Stack& s);
  void tidy() noexcept;      // unguards free slots beyond kKeepGuarded
  void file(StackChunk* c);  // into the bucket of its free count
  StackChunk* pick_chunk();

  std::size_t default_size_;  // usable bytes, page multiple
  StackGuard guard_policy_;
  // by_free_[k]: the chunks with k free slots (k = 0: full, kStacksPerChunk: wholly free).
  // Out of line: a StackPool is a member of Worker, whose later fields other threads touch;
  // 33 vectors in place would move them by 800 bytes.
  std::unique_ptr<std::vector<StackChunk*>[]> by_free_;
  std::uint64_t nonempty_ = 0;    // bit k: by_free_[k] is not empty
  std::size_t chunks_ = 0;        // chunks mapped
  std::size_t in_use_ = 0;        // pooled stacks handed out
  std::size_t free_slots_ = 0;    // free slots over all chunks
  std::size_t guarded_free_ = 0;  // free slots that still have their guard page
  StackChunk* all_ = nullptr;     // every chunk (intrusive list), for the destructor
  long budget_taken_ = 0;         // guards counted against the process-wide kAuto budget
};

}  // namespace green::detail
