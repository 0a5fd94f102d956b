// green::shim::real: pointers to the libc functions the hooks stand in for.
//
// Owns: one function pointer per line of symbols.inc, written once by resolve_all() and
// read-only afterwards (so any thread may read them without synchronization once the process
// is past its constructors).
//
// Invariants: after resolve_all() returned, every pointer is non-null (a missing symbol is a
// fatal error at start-up, naming it). Before that, a hook that runs early (another library's
// constructor, an allocator's initialization re-entering us from inside dlsym) calls
// ensure_resolved(), which resolves on demand except while this very thread is already inside
// dlsym: then it returns false and the hook uses its recursion-safe fallback (a raw syscall, or
// "succeed without doing anything" for lock operations, which is safe because only one thread
// exists that early). See real.cpp.
#pragma once

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace green::shim::real {

#define GREEN_SHIM_FN(ret, name, params) extern ret(*name) params;
#define GREEN_SHIM_VFN(ret, field, name, ver, params) extern ret(*field) params;
#include "symbols.inc"
#undef GREEN_SHIM_FN
#undef GREEN_SHIM_VFN

// Resolves every symbol once (idempotent, thread-safe). Fatal if one is missing.
void resolve_all() noexcept;

// True once every pointer is set. Otherwise resolves now, unless this thread is inside
// resolve_all() already (dlsym re-entering a hook): then returns false.
bool ensure_resolved() noexcept;

}  // namespace green::shim::real
