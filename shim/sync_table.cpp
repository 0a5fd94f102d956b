// The address-keyed wait table (see sync_table.hpp for the protocol).
#include "sync_table.hpp"
#include "signals.hpp"

#include <pthread.h>

#include <atomic>

namespace green::shim::sync {

namespace {

using detail::SpinLock;
using detail::Waiter;
using detail::WaitList;
using detail::WakeReason;

struct alignas(64) Bucket {
  SpinLock lock;
  std::atomic<int> waiters{0};       // == number of Waiters in `list` (written under lock)
  std::atomic<bool> foreign{false};  // sticky, see header
  WaitList list;                     // guarded by lock
};

constexpr std::size_t kBuckets = 1024;
Bucket g_buckets[kBuckets];

Bucket& bucket(const void* addr) {
  auto x = reinterpret_cast<std::uintptr_t>(addr);
  x ^= x >> 17;
  x *= 0x9E3779B97F4A7C15ull;
  return g_buckets[(x >> 40) & (kBuckets - 1)];
}

thread_local int t_poll_ms = 1;

// A fork child has only the forking thread: the parent's waiters (on stacks of fibers that do
// not exist there) must not be woken by the child's unlocks and futex wakes. Bucket locks other
// threads held at the fork are released too.
void forget_waiters_in_child() {
  for (Bucket& b : g_buckets) {
    b.lock.unlock();
    b.waiters.store(0, std::memory_order_relaxed);
    b.list = WaitList{};
  }
}
__attribute__((constructor)) void register_fork_handler() {
  pthread_atfork(nullptr, nullptr, forget_waiters_in_child);
}

WaitResult wait_impl(const void* addr, TimePoint deadline, bool poll, bool (*retry)(void*),
                     void* arg, void (*published)(void*), void* parg, unsigned bitset) noexcept {
  ErrnoGuard g;  // other fibers of this worker run while we are parked
  struct Restore {
    ErrnoGuard& g;
    ~Restore() { g.restore(); }
  } restore{g};
  Bucket& b = bucket(addr);
  poll = poll || b.foreign.load(std::memory_order_relaxed);
  Waiter w;
  w.slot = const_cast<void*>(addr);
  w.events = bitset;
  b.lock.lock();
  b.list.push_back(&w);
  b.waiters.fetch_add(1, std::memory_order_seq_cst);  // pairs with the wakers' seq_cst load
  if (retry && retry(arg)) {
    b.list.remove(&w);
    b.waiters.fetch_sub(1, std::memory_order_relaxed);
    b.lock.unlock();
    return WaitResult::kReady;
  }
  TimePoint d = deadline;
  if (poll) {
    TimePoint p = detail::deadline_after(std::chrono::milliseconds(t_poll_ms));
    if (p < d) d = p;
  }
  struct Release {
    SpinLock* lock;
    void (*published)(void*);
    void* parg;
  } rel{&b.lock, published, parg};
  detail::Unlocker unlock{[](void* p) {
                            auto* x = static_cast<Release*>(p);
                            x->lock->unlock();
                            if (x->published) x->published(x->parg);
                          },
                          &rel};
  WakeReason r = detail::park(w, d, unlock);
  b.lock.lock();
  if (w.linked) {
    b.list.remove(&w);
    b.waiters.fetch_sub(1, std::memory_order_relaxed);
  }
  b.lock.unlock();
  switch (r) {
    case WakeReason::kNotified:
      t_poll_ms = 1;
      return WaitResult::kWoken;
    case WakeReason::kTimeout:
      if (deadline != kNoDeadline && Clock::now() >= deadline) return WaitResult::kTimedOut;
      if (t_poll_ms < 16) t_poll_ms *= 2;
      return WaitResult::kPolled;
    case WakeReason::kInterrupted:
      // A signal: its handlers run here, off the wait list. kWoken makes the caller look
      // again and wait on (SA_RESTART, or nothing delivered); kInterrupted lets calls that
      // can fail with EINTR (sem_wait) do so.
      return signals::interrupted() == signals::Intr::kEintr ? WaitResult::kInterrupted
                                                             : WaitResult::kWoken;
    default:
      return WaitResult::kInterrupted;
  }
}

}  // namespace

WaitResult wait_on(const void* addr, TimePoint deadline, bool poll, bool (*retry)(void*), void* arg,
                   void (*published)(void*), void* parg) noexcept {
  return wait_impl(addr, deadline, poll, retry, arg, published, parg, 0);
}

WaitResult wait_futex(const void* addr, TimePoint deadline, bool poll, bool (*retry)(void*),
                      void* arg, unsigned bitset) noexcept {
  return wait_impl(addr, deadline, poll, retry, arg, nullptr, nullptr, bitset);
}

int wake_futex(const void* addr, int n, unsigned bitset) noexcept {
  Bucket& b = bucket(addr);
  // The caller changed the futex word (any memory order) before calling us; the waiter
  // increments `waiters` and then re-reads the word. This fence orders our load after that
  // store (a store-load pair, which only a full fence orders), so one of us sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (n <= 0 || b.waiters.load(std::memory_order_seq_cst) == 0) return 0;
  int woken = 0;
  b.lock.lock();
  for (Waiter* w = b.list.front(); w && woken < n;) {
    Waiter* next = w->next;
    if (w->slot == addr && (w->events == 0 || (w->events & bitset) != 0)) {
      b.list.remove(w);
      b.waiters.fetch_sub(1, std::memory_order_relaxed);
      if (detail::wake(w, WakeReason::kNotified)) ++woken;  // a timed-out one does not count
    }
    w = next;
  }
  b.lock.unlock();
  return woken;
}

void wake_one(const void* addr) noexcept {
  Bucket& b = bucket(addr);
  // seq_cst: the waker's load of the Dekker pair with wait_on's seq_cst increment (the
  // waiter counts itself, then re-checks the word; the waker changed the word, then loads).
  if (b.waiters.load(std::memory_order_seq_cst) == 0) return;
  b.lock.lock();
  for (Waiter* w = b.list.front(); w;) {
    Waiter* next = w->next;  // remove() clears w->next
    if (w->slot == addr) {
      b.list.remove(w);
      b.waiters.fetch_sub(1, std::memory_order_relaxed);
      if (detail::wake(w, WakeReason::kNotified)) break;  // a timed-out one does not count
    }
    w = next;
  }
  b.lock.unlock();
}

void wake_all(const void* addr) noexcept {
  Bucket& b = bucket(addr);
  // seq_cst: the waker's load of the Dekker pair with wait_on's seq_cst increment (the
  // waiter counts itself, then re-checks the word; the waker changed the word, then loads).
  if (b.waiters.load(std::memory_order_seq_cst) == 0) return;
  b.lock.lock();
  for (Waiter* w = b.list.front(); w;) {
    Waiter* next = w->next;
    if (w->slot == addr) {
      b.list.remove(w);
      b.waiters.fetch_sub(1, std::memory_order_relaxed);
      detail::wake(w, WakeReason::kNotified);
    }
    w = next;
  }
  b.lock.unlock();
}

void mark_foreign(const void* addr) noexcept {
  Bucket& b = bucket(addr);
  if (!b.foreign.load(std::memory_order_relaxed)) b.foreign.store(true, std::memory_order_relaxed);
}

bool is_foreign(const void* addr) noexcept {
  return bucket(addr).foreign.load(std::memory_order_relaxed);
}

}  // namespace green::shim::sync
