// The runtime's per-OS-thread state (design note in tls.hpp).
#include "tls.hpp"

namespace green::detail {

// initial-exec: a plain %fs-relative access instead of a __tls_get_addr call; libgreen and
// the preload library are loaded at program start, where static TLS is always available.
GREEN_TLS_IE constinit thread_local ThreadState g_thread_state;

ThreadState& thread_state() noexcept {
  return g_thread_state;
}

}  // namespace green::detail
