// The runtime's per-OS-thread state, accessed inline inside libgreen (initial-exec TLS: one
// %fs-relative load). Code outside the library uses the exported detail::thread_state().
#pragma once

#include "green/detail/hooks.hpp"

#define GREEN_TLS_IE __attribute__((tls_model("initial-exec")))

namespace green::detail {

extern GREEN_TLS_IE constinit thread_local ThreadState g_thread_state;

inline ThreadState& tls() noexcept { return g_thread_state; }

}  // namespace green::detail
