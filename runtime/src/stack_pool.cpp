// StackPool implementation (design note in stack_pool.hpp).
#include "stack_pool.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "green/errors.hpp"
#include "sanitizer.hpp"

namespace green::detail {

namespace {

// Process-wide budget of guarded stacks under StackGuard::kAuto: each guard costs two VMAs;
// keep a quarter of vm.max_map_count for everything else the process maps.
std::atomic<long> g_guards_used{0};
std::atomic<bool> g_warned{false};

long max_map_count() {
  // O_CLOEXEC (a fork+exec meanwhile must not inherit it); read once per process, when the
  // first pool is made (StackPool's constructor), not while the program runs: an fd of ours
  // that comes and goes would take the lowest free number a program thread expects.
  int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 65530;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 65530;
  buf[n] = 0;
  long v = std::strtol(buf, nullptr, 10);
  return v > 0 ? v : 65530;
}

long guard_budget() {
  static const long budget = [] {
    long m = max_map_count();
    return (m - m / 4) / 2;
  }();
  return budget;
}

// `alternative`: what else the user can do under the current policy.
std::string map_limit_hint(const char* alternative) {
  return "vm.max_map_count=" + std::to_string(max_map_count()) + " allows about " +
         std::to_string(max_map_count() / 2) +
         " guarded stacks; raise it (sysctl -w vm.max_map_count=2097152) or " + alternative;
}

constexpr const char* kUseAuto = "set GREEN_STACK_GUARD=auto (guards while the limit allows)";
constexpr const char* kSilence = "set GREEN_STACK_GUARD=never to silence this";

}  // namespace

std::size_t StackPool::page_size() {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

std::size_t Stack::usable() const {
  return guarded ? size - StackPool::page_size() : size;
}

// One mapping of kStacksPerChunk slots (see the header for the rules).
struct StackChunk {
  char* base = nullptr;
  std::size_t bytes = 0;
  std::uint32_t free_mask = 0;   // bit i: slot i is free
  std::uint32_t init_mask = 0;   // bit i: slot i's guard is decided (set when handed out)
  std::uint32_t guard_mask = 0;  // bit i: slot i has a guard page (implies init_mask)
  std::vector<StackChunk*>* list = nullptr;  // the by_free_ bucket holding it
  std::size_t pos = 0;                       // index in *list
  StackChunk* next = nullptr;                // StackPool::all_
  StackChunk* prev = nullptr;
};

namespace {

static_assert(sizeof(std::uint32_t) * 8 >= 32, "one mask bit per slot");
constexpr std::uint32_t kAllFree = 0xffffffffu;

}  // namespace

void StackPool::file(StackChunk* c) {
  if (c->list) {  // out of its old bucket
    std::vector<StackChunk*>& v = *c->list;
    v[c->pos] = v.back();
    v[c->pos]->pos = c->pos;
    v.pop_back();
    if (v.empty()) nonempty_ &= ~(std::uint64_t{1} << (c->list - by_free_.get()));
  }
  int k = __builtin_popcount(c->free_mask);
  std::vector<StackChunk*>& v = by_free_[k];
  c->list = &v;
  c->pos = v.size();
  v.push_back(c);
  nonempty_ |= std::uint64_t{1} << k;
}

StackPool::StackPool(std::size_t default_size, StackGuard guard)
    : default_size_(default_size),
      guard_policy_(guard),
      by_free_(new std::vector<StackChunk*>[kStacksPerChunk + 1]) {
  static_assert(kStacksPerChunk == 32, "the masks of StackChunk have 32 bits");
  if (guard == StackGuard::kAuto) (void)guard_budget();  // now, not on a fiber's first stack
}

StackPool::~StackPool() {
  while (StackChunk* c = all_) {
    all_ = c->next;
    sanitizer_forget_stack(c->base, c->bytes);
    munmap(c->base, c->bytes);
    delete c;
  }
  g_guards_used.fetch_sub(budget_taken_, std::memory_order_relaxed);  // VMAs are gone
}

StackChunk* StackPool::new_chunk() {
  std::size_t slot = default_size_ + page_size();
  std::size_t bytes = slot * kStacksPerChunk;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    throw StackError(std::string("green: cannot allocate fiber stacks: mmap(") +
                     std::to_string(bytes) + " bytes) failed: " + std::strerror(e) +
                     (e == ENOMEM ? " (address space or vm.max_map_count exhausted; " +
                                        map_limit_hint(kUseAuto) + ")"
                                  : ""));
  }
  auto* c = new StackChunk;
  c->base = static_cast<char*>(p);
  c->bytes = bytes;
  c->free_mask = kAllFree;
  c->next = all_;
  if (all_) all_->prev = c;
  all_ = c;
  file(c);
  ++chunks_;
  free_slots_ += kStacksPerChunk;
  return c;
}

void StackPool::free_chunk(StackChunk* c) noexcept {
  std::vector<StackChunk*>& v = *c->list;
  v[c->pos] = v.back();
  v[c->pos]->pos = c->pos;
  v.pop_back();
  if (v.empty()) nonempty_ &= ~(std::uint64_t{1} << (c->list - by_free_.get()));
  if (c->prev)
    c->prev->next = c->next;
  else
    all_ = c->next;
  if (c->next) c->next->prev = c->prev;
  long g = __builtin_popcount(c->guard_mask);  // all free: every guard is a free slot's
  guarded_free_ -= static_cast<std::size_t>(g);
  if (guard_policy_ == StackGuard::kAuto) {  // only kAuto guards count against the budget
    g_guards_used.fetch_sub(g, std::memory_order_relaxed);
    budget_taken_ -= g;
  }
  sanitizer_forget_stack(c->base, c->bytes);
  munmap(c->base, c->bytes);
  free_slots_ -= kStacksPerChunk;
  --chunks_;
  delete c;
}

void StackPool::trim() noexcept {
  std::size_t keep = in_use_ > kMinFree ? in_use_ : kMinFree;
  std::vector<StackChunk*>& empty = by_free_[kStacksPerChunk];
  while (!empty.empty() && free_slots_ - kStacksPerChunk >= keep) free_chunk(empty.back());
}

void StackPool::tidy() noexcept {
  // Keeps the first kKeepGuarded guarded free slots met going from the fullest chunk (where
  // allocation looks first) to the emptiest; every other free slot's guard page becomes
  // read-write like the usable pages around it, so the kernel merges the slot with its
  // neighbours (the chunk was one mapping). One mprotect per run of such free slots: it also
  // covers the usable pages between their guards, which are read-write already. If a call
  // fails the guards stay: harmless, they are only counted.
  std::size_t keep = kKeepGuarded;
  std::size_t slot = default_size_ + page_size();
  for (std::size_t k = 1; k <= kStacksPerChunk; ++k) {
    for (StackChunk* c : by_free_[k]) {
      std::uint32_t m = c->free_mask & c->guard_mask;
      for (; m && keep; --keep) m &= m - 1;  // keep the lowest ones
      while (m) {
        int i = __builtin_ctz(m);
        std::uint32_t rest = m >> i;
        int n = ~rest == 0 ? 32 - i : __builtin_ctz(~rest);
        std::uint32_t run = n == 32 ? kAllFree : ((1u << n) - 1) << i;
        m &= ~run;
        if (mprotect(c->base + static_cast<std::size_t>(i) * slot,
                     static_cast<std::size_t>(n - 1) * slot + page_size(),
                     PROT_READ | PROT_WRITE) != 0)
          continue;
        c->guard_mask &= ~run;
        c->init_mask &= ~run;  // decided again (and counted again) when handed out
        guarded_free_ -= static_cast<std::size_t>(n);
        if (guard_policy_ == StackGuard::kAuto) {
          g_guards_used.fetch_sub(n, std::memory_order_relaxed);
          budget_taken_ -= n;
        }
      }
    }
  }
}

bool StackPool::guard(Stack& s, bool required) {
  if (mprotect(s.base, page_size(), PROT_NONE) == 0) {
    s.guarded = true;
    return true;
  }
  int e = errno;
  if (required) {
    throw StackError(std::string("green: cannot add a guard page to a fiber stack: mprotect "
                                 "failed: ") +
                     std::strerror(e) + (e == ENOMEM ? "; " + map_limit_hint(kUseAuto) : ""));
  }
  return false;
}

void StackPool::set_guard(Stack& s) {
  switch (guard_policy_) {
    case StackGuard::kNever:
      break;
    case StackGuard::kAlways:
      guard(s, true);
      break;
    default: {  // kAuto
      if (g_guards_used.fetch_add(1, std::memory_order_relaxed) < guard_budget() &&
          guard(s, false)) {
        ++budget_taken_;
        break;
      }
      g_guards_used.fetch_sub(1, std::memory_order_relaxed);
      if (!g_warned.exchange(true)) {  // once per process; seq_cst by default, order unneeded
        std::fprintf(stderr, "green: warning: fiber stacks from now on have no guard page (%s)\n",
                     map_limit_hint(kSilence).c_str());
      }
    }
  }
}

StackChunk* StackPool::pick_chunk() {
  // The fullest chunk that has a free slot (buckets 1..kStacksPerChunk - 1), else a wholly
  // free one, else a new one.
  constexpr std::uint64_t kPartial =
      ((std::uint64_t{1} << kStacksPerChunk) - 1) & ~std::uint64_t{1};
  if (std::uint64_t m = nonempty_ & kPartial) return by_free_[__builtin_ctzll(m)].back();
  if (!by_free_[kStacksPerChunk].empty()) return by_free_[kStacksPerChunk].back();
  return new_chunk();
}

Stack StackPool::allocate(std::size_t size) {
  if (size == 0 || size == default_size_) {
    StackChunk* c = pick_chunk();
    std::uint32_t guarded = c->free_mask & c->guard_mask;  // no mprotect for these
    int i = __builtin_ctz(guarded ? guarded : c->free_mask);
    std::uint32_t bit = 1u << i;
    Stack s;
    s.size = default_size_ + page_size();
    s.base = c->base + static_cast<std::size_t>(i) * s.size;
    s.pooled = true;
    s.chunk = c;
    if (c->init_mask & bit) {
      s.guarded = (c->guard_mask & bit) != 0;
      if (s.guarded) --guarded_free_;
    } else {
      set_guard(s);  // may throw (kAlways): the slot stays free
      c->init_mask |= bit;
      if (s.guarded) c->guard_mask |= bit;
    }
    c->free_mask &= ~bit;
    --free_slots_;
    ++in_use_;
    file(c);
    return s;
  }
  // Odd size: a mapping of its own, unmapped on release.
  std::size_t usable = (size + page_size() - 1) / page_size() * page_size();
  std::size_t bytes = usable + page_size();
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    throw StackError(std::string("green: cannot allocate a fiber stack of ") +
                     std::to_string(bytes) + " bytes: " + std::strerror(e));
  }
  Stack s;
  s.base = static_cast<char*>(p);
  s.size = bytes;
  s.pooled = false;
  if (guard_policy_ != StackGuard::kNever) guard(s, guard_policy_ == StackGuard::kAlways);
  return s;
}

void StackPool::release(Stack s) noexcept {
  if (s.pooled) {
    // Stacks come back here only when their Context is retired (the context pool is full):
    // give the memory back at once, keep the slot for the next allocation.
    StackChunk* c = s.chunk;
    std::size_t g = s.guarded ? page_size() : 0;
    sanitizer_forget_stack(s.base + g, s.size - g);
    madvise(s.base + g, s.size - g, MADV_DONTNEED);
    int i = static_cast<int>((s.base - c->base) / s.size);
    c->free_mask |= 1u << i;
    ++free_slots_;
    --in_use_;
    if (s.guarded) ++guarded_free_;
    file(c);
    std::size_t keep = in_use_ > kMinFree ? in_use_ : kMinFree;
    if (c->free_mask == kAllFree && free_slots_ - kStacksPerChunk >= keep) {
      free_chunk(c);  // (trim() would take it first: it is the last wholly free chunk filed)
      return;
    }
    if (nonempty_ & (std::uint64_t{1} << kStacksPerChunk)) trim();  // in_use_ dropped
    // More guarded free slots than a quarter of the stacks in use (plus twice the allowance):
    // unguard the excess. Geometric: while use falls from N this runs about log_1.25(N) times
    // (each time use fell by a fifth), and a pool that only churns at a steady level never
    // gets here.
    if (guarded_free_ > 2 * kKeepGuarded + in_use_ / 4) tidy();
  } else {
    sanitizer_forget_stack(s.base, s.size);
    munmap(s.base, s.size);
  }
}

}  // namespace green::detail
