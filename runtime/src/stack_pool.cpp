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

std::size_t Stack::usable() const { return guarded ? size - StackPool::page_size() : size; }

// One mapping of kStacksPerChunk slots (see the header for the rules).
struct StackChunk {
  char* base = nullptr;
  std::size_t bytes = 0;
  std::uint32_t free_mask = 0;   // bit i: slot i is free
  std::uint32_t init_mask = 0;   // bit i: slot i was handed out before (its guard is decided)
  std::uint32_t guard_mask = 0;  // bit i: slot i has a guard page
  std::vector<StackChunk*>* list = nullptr;  // partial_, empty_ or none (all slots used)
  std::size_t pos = 0;                       // index in *list
  StackChunk* next = nullptr;                // StackPool::all_
  StackChunk* prev = nullptr;
};

namespace {

static_assert(sizeof(std::uint32_t) * 8 >= 32, "one mask bit per slot");
constexpr std::uint32_t kAllFree = 0xffffffffu;

void list_add(std::vector<StackChunk*>& v, StackChunk* c) {
  c->list = &v;
  c->pos = v.size();
  v.push_back(c);
}

void list_remove(StackChunk* c) {
  if (!c->list) return;
  std::vector<StackChunk*>& v = *c->list;
  v[c->pos] = v.back();
  v[c->pos]->pos = c->pos;
  v.pop_back();
  c->list = nullptr;
}

}  // namespace

StackPool::StackPool(std::size_t default_size, StackGuard guard)
    : default_size_(default_size), guard_policy_(guard) {
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
  list_add(empty_, c);
  ++chunks_;
  free_slots_ += kStacksPerChunk;
  return c;
}

void StackPool::free_chunk(StackChunk* c) noexcept {
  list_remove(c);
  if (c->prev)
    c->prev->next = c->next;
  else
    all_ = c->next;
  if (c->next) c->next->prev = c->prev;
  if (guard_policy_ == StackGuard::kAuto) {  // only kAuto guards count against the budget
    long g = __builtin_popcount(c->guard_mask);
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
  while (!empty_.empty() && free_slots_ - kStacksPerChunk >= keep) free_chunk(empty_.back());
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

Stack StackPool::allocate(std::size_t size) {
  if (size == 0 || size == default_size_) {
    // Partly used chunks first, so that wholly free ones stay free (and can be unmapped).
    StackChunk* c = !partial_.empty() ? partial_.back()
                    : !empty_.empty() ? empty_.back()
                                      : new_chunk();
    int i = __builtin_ctz(c->free_mask);
    std::uint32_t bit = 1u << i;
    Stack s;
    s.size = default_size_ + page_size();
    s.base = c->base + static_cast<std::size_t>(i) * s.size;
    s.pooled = true;
    s.chunk = c;
    if (c->init_mask & bit) {
      s.guarded = (c->guard_mask & bit) != 0;
    } else {
      set_guard(s);  // may throw (kAlways): the slot stays free
      c->init_mask |= bit;
      if (s.guarded) c->guard_mask |= bit;
    }
    bool was_empty = c->free_mask == kAllFree;
    c->free_mask &= ~bit;
    --free_slots_;
    ++in_use_;
    if (was_empty) {
      list_remove(c);
      if (c->free_mask != 0) list_add(partial_, c);
    } else if (c->free_mask == 0) {
      list_remove(c);
    }
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
    // give the memory back at once, keep the slot (and its guard) for the next allocation.
    StackChunk* c = s.chunk;
    std::size_t g = s.guarded ? page_size() : 0;
    sanitizer_forget_stack(s.base + g, s.size - g);
    madvise(s.base + g, s.size - g, MADV_DONTNEED);
    std::uint32_t bit = 1u << ((s.base - c->base) / s.size);
    bool was_full = c->free_mask == 0;
    c->free_mask |= bit;
    ++free_slots_;
    --in_use_;
    if (c->free_mask == kAllFree) {
      list_remove(c);
      list_add(empty_, c);
    } else if (was_full) {
      list_add(partial_, c);
    }
    if (!empty_.empty()) trim();  // in_use_ dropped: an earlier empty chunk may go now
  } else {
    sanitizer_forget_stack(s.base, s.size);
    munmap(s.base, s.size);
  }
}

}  // namespace green::detail
