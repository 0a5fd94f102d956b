// The one sizing rule of green's per-fd tables (docs/hacking.md §6): the runtime's FdTable,
// each worker's Poller entries and the shim's fd table are arrays indexed by the fd number,
// sized once, when they are created, from RLIMIT_NOFILE's hard limit (at least 2^16, at most
// 2^20 entries), mapped MAP_NORESERVE so untouched pages cost nothing and are never grown.
// An fd at or beyond a table's size has no entry: its callers take the plain path (the shim
// passes the call through, green::io blocks in poll(2)), never an overflow or a reallocation
// under other threads' feet.
//
// Header-only because the shim uses it too: green::hooks links libgreen.so, which does not
// export the runtime's internals. Nothing here touches errno on success; callers that must
// keep errno (the shim's start-up) save it around the call.
#pragma once

#include <sys/mman.h>
#include <sys/resource.h>

#include <cstddef>

namespace green::detail {

inline constexpr int kMinFdTableSize = 1 << 16;
inline constexpr int kMaxFdTableSize = 1 << 20;

// The size every per-fd table gets: max(2^16, RLIMIT_NOFILE hard limit), at most 2^20.
inline int fd_table_size() noexcept {
  rlimit rl{};
  rlim_t n = kMinFdTableSize;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max > n)
    n = rl.rlim_max;
  if (n > static_cast<rlim_t>(kMaxFdTableSize)) n = kMaxFdTableSize;
  return static_cast<int>(n);
}

// `n` entries of T, all bytes zero (T must be valid as zero bytes: atomics, pointers, flags),
// or nullptr if the mapping failed. Pages cost memory only once written.
template <class T>
T* map_fd_table(int n) noexcept {
  void* p = mmap(nullptr, sizeof(T) * static_cast<std::size_t>(n), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<T*>(p);
}

template <class T>
void unmap_fd_table(T* table, int n) noexcept {
  if (table) munmap(table, sizeof(T) * static_cast<std::size_t>(n));
}

}  // namespace green::detail
