// Diagnostics: fiber dumps (Go's SIGQUIT goroutine dump for green).
//
// dump_fibers() writes, for every worker, what it is doing and every fiber it owns: id,
// name, state (running, ready, parked), what a parked fiber waits on (mutex/channel/... at
// an address, an fd and direction, a sleep or timeout deadline, an offload), and the fibers
// not started yet. Each worker writes its own part on its own thread; a worker that does not
// answer within 500 ms (stuck in a fiber) is reported as such. Callable from a fiber or any
// thread while a runtime runs.
//
// The same dump is printed to stderr on the signal named by GREEN_DUMP_SIGNAL, with the
// deadlock report (GREEN_DEADLOCK) and the blocked-worker report (GREEN_BLOCKED_MS); see
// green/options.hpp. tools/green-gdb.py shows the same from gdb, with parked backtraces.
//
// cached_tasks() is a count for tests and tuning: the task control blocks the calling
// worker keeps for reuse by its next spawns (0 off a worker).
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include "green/export.hpp"

namespace green {

GREEN_API std::string fiber_dump();
GREEN_API void dump_fibers(std::ostream& out);
GREEN_API std::size_t cached_tasks() noexcept;

}  // namespace green
