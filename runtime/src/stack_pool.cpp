// StackPool implementation (design note in stack_pool.hpp).
#include "stack_pool.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
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
  std::ifstream f("/proc/sys/vm/max_map_count");
  long v = 0;
  if (f >> v && v > 0) return v;
  return 65530;
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

StackPool::StackPool(std::size_t default_size, StackGuard guard)
    : default_size_(default_size), guard_policy_(guard) {}

StackPool::~StackPool() {
  for (auto& [p, n] : chunks_) {
    sanitizer_forget_stack(p, n);
    munmap(p, n);
  }
  g_guards_used.fetch_sub(budget_taken_, std::memory_order_relaxed);  // VMAs are gone
}

void StackPool::new_chunk() {
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
  chunks_.emplace_back(static_cast<char*>(p), bytes);
  carve_next_ = static_cast<char*>(p);
  carve_left_ = kStacksPerChunk;
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

Stack StackPool::allocate(std::size_t size) {
  if (size == 0 || size == default_size_) {
    if (!free_.empty()) {
      Stack s = free_.back();
      free_.pop_back();
      return s;
    }
    if (carve_left_ == 0) new_chunk();
    Stack s;
    s.base = carve_next_;
    s.size = default_size_ + page_size();
    s.pooled = true;
    carve_next_ += s.size;
    --carve_left_;
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
          std::fprintf(stderr,
                       "green: warning: fiber stacks from now on have no guard page (%s)\n",
                       map_limit_hint(kSilence).c_str());
        }
      }
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
    // give the memory back, keep the address range and guard for the next carve.
    std::size_t g = s.guarded ? page_size() : 0;
    sanitizer_forget_stack(s.base + g, s.size - g);
    madvise(s.base + g, s.size - g, MADV_DONTNEED);
    free_.push_back(s);
  } else {
    sanitizer_forget_stack(s.base, s.size);
    munmap(s.base, s.size);
  }
}

}  // namespace green::detail
