// TaskCache: a worker's free lists of Task control blocks (Go's per-P gfree list, marl's
// per-worker allocator), so that a spawn+join on a worker reuses the block of the last one
// instead of a malloc and a free.
//
// Task's class-specific operator new/delete (task.cpp) come here when the calling thread runs
// a worker. Blocks are grouped by size class (kClassBytes steps up to kMaxBytes; a TaskImpl's
// size depends on its function object): a cacheable size is always allocated as its class's
// full size, from the cache or from ::operator new, so any worker may keep any block of that
// class, whoever allocated it. A block freed on worker B goes to B's list (bounded by
// kPerClass; past that, and off a worker, and for larger or over-aligned tasks, straight to
// ::operator delete): no cross-thread traffic, and nothing is kept longer than a worker's
// life: teardown releases every cached block and closes the cache, so later frees on that
// thread go to ::operator delete.
//
// Owner thread only. The callers hold a RuntimeEntry, so a hand-off (machine.cpp) never takes
// the worker away from a fiber in the middle of a take or put. Under ASan the cached blocks
// are poisoned: a use after the task's delete still faults.
// Rejected: a return stack per allocating worker (a Treiber stack as Worker::returned_): a
// malloc'd block belongs to no worker, so sending it home buys nothing but an atomic per free.
#pragma once

#include <cstddef>
#include <new>

#include "sanitizer.hpp"

namespace green::detail {

class TaskCache {
 public:
  static constexpr std::size_t kClassBytes = 64;
  static constexpr std::size_t kMaxBytes = 512;
  static constexpr std::size_t kClasses = kMaxBytes / kClassBytes;
  static constexpr std::size_t kPerClass = 64;

  TaskCache() = default;
  TaskCache(const TaskCache&) = delete;
  TaskCache& operator=(const TaskCache&) = delete;
  ~TaskCache() { close(); }

  // The size a block for an object of n bytes is allocated with (n itself if uncacheable).
  static constexpr std::size_t block_size(std::size_t n) noexcept {
    return n <= kMaxBytes ? (n + kClassBytes - 1) / kClassBytes * kClassBytes : n;
  }
  static constexpr bool cacheable(std::size_t n) noexcept { return n <= kMaxBytes; }

  // A cached block for n bytes (n cacheable), or nullptr.
  void* take(std::size_t n) noexcept {
    List& l = lists_[index(n)];
    Node* b = l.head;
    if (!b) return nullptr;
    sanitizer_unpoison(b, block_size(n));
    l.head = b->next;
    --l.count;
    return b;
  }
  // Keeps block p of n bytes (n cacheable) for reuse; false if this list is full or closed.
  bool put(void* p, std::size_t n) noexcept {
    List& l = lists_[index(n)];
    if (l.count >= kPerClass || closed_) return false;
    auto* b = ::new (p) Node{l.head};
    l.head = b;
    ++l.count;
    sanitizer_poison(b, block_size(n));
    return true;
  }
  // Releases every cached block and refuses new ones (Worker::teardown).
  void close() noexcept {
    closed_ = true;
    for (std::size_t i = 0; i < kClasses; ++i) {
      List& l = lists_[i];
      while (Node* b = l.head) {
        sanitizer_unpoison(b, (i + 1) * kClassBytes);
        l.head = b->next;
        ::operator delete(b);
      }
      l.count = 0;
    }
  }
  // Blocks cached in all (green::debug::cached_tasks).
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const List& l : lists_) n += l.count;
    return n;
  }

 private:
  struct Node {
    Node* next;
  };
  struct List {
    Node* head = nullptr;
    std::size_t count = 0;
  };
  static std::size_t index(std::size_t n) noexcept {
    return (n + kClassBytes - 1) / kClassBytes - 1;  // n >= sizeof(Task) > 0
  }
  List lists_[kClasses];
  bool closed_ = false;
};

}  // namespace green::detail
