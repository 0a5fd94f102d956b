// RunQueue: a worker's queue of tasks that have not started yet (Go's runq).
//
// Bounded ring, single producer (the owning worker), multiple consumers (the owner and
// thieves). The owner publishes a slot with a store-release of tail_; consumers claim
// slots with a CAS on head_. steal_half() moves half of a victim's tasks in one CAS, so an
// idle worker takes a useful batch and the victim keeps the rest. Only unstarted tasks are
// here; started fibers that may migrate are stolen from Worker's shared ready queue.
#pragma once

#include <atomic>
#include <cstdint>

#include "green/detail/task.hpp"

namespace green::detail {

class RunQueue {
 public:
  static constexpr std::uint32_t kSize = 256;

  // Owner only. Returns false when full (the caller spills to the global queue).
  bool push(Task* t) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);  // pairs with consumers' CAS
    std::uint32_t tl = tail_.load(std::memory_order_relaxed);
    if (tl - h >= kSize) return false;
    slots_[tl % kSize].store(t, std::memory_order_relaxed);
    tail_.store(tl + 1, std::memory_order_release);  // publishes the slot to consumers
    return true;
  }

  // Owner only. Orderings as in steal_half: the acquire load of head_ pairs with other
  // consumers' release CAS; our release CAS hands slot h back to push (its acquire load).
  Task* pop() noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t tl = tail_.load(std::memory_order_relaxed);
      if (h == tl) return nullptr;
      Task* t = slots_[h % kSize].load(std::memory_order_relaxed);
      // release: slot h is free for push once head_ moves past it (see above)
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release,
                                      std::memory_order_relaxed))
        return t;
    }
  }

  // Any thread: moves up to half of this queue into `out` (capacity >= kSize / 2).
  // Returns the number taken.
  std::uint32_t steal_half(Task** out) noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);   // pairs with consumers' CAS
      std::uint32_t tl = tail_.load(std::memory_order_acquire);  // pairs with push's release
      std::uint32_t n = tl - h;
      n = n - n / 2;
      if (n == 0) return 0;
      if (n > kSize / 2) continue;  // read an inconsistent head/tail pair; retry
      for (std::uint32_t i = 0; i < n; ++i)
        out[i] = slots_[(h + i) % kSize].load(std::memory_order_relaxed);
      // acquire: ordered after the claims of other consumers; release: frees the slots for
      // push (its acquire load of head_).
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
        return n;
    }
  }

  // Hints for any thread (acquire: a push seen here has its slot visible).
  bool empty() const noexcept {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
  }
  std::uint32_t size() const noexcept {  // a hint, as empty()
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::atomic<Task*> slots_[kSize] = {};
};

}  // namespace green::detail
