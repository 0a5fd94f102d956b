// Runtime configuration. Every field left at its zero value is taken from the matching
// GREEN_* environment variable, or else from the default. A malformed variable makes
// green::run throw std::invalid_argument whose message names the variable and what it
// accepts (the shim prints that message and exits with status 2).
//
//   field        env                 accepted                             default
//   workers      GREEN_WORKERS       integer 1..1024                      number of cores
//   stack_size   GREEN_STACK_SIZE    bytes, suffix K/M/G, 16K..1G         256K (virtual)
//   stack_guard  GREEN_STACK_GUARD   auto | always | never                auto
//   dump_signal  GREEN_DUMP_SIGNAL   off | a signal name or number        off
//                                    (e.g. SIGQUIT, QUIT, 3): dump all fibers to stderr
//   deadlock     GREEN_DEADLOCK      exit | warn | off                    exit
//   blocked_ms   GREEN_BLOCKED_MS    0 (off) .. 3600000                   1000
//   slice_ms     GREEN_SLICE_MS      0 (off) .. 60000                     10
//   max_threads  GREEN_MAX_THREADS   1 .. 100000                          256
//
// deadlock: when every fiber is parked and no timer, fd wait or offload is pending, print
// the report and a fiber dump and exit with status 2 (`exit`), only print (`warn`), or do
// nothing (`off`). If a thread green did not create has used green primitives, the
// runtime cannot know whether it will wake a fiber later, so `exit` degrades to `warn`.
// blocked_ms: report a worker that has run one fiber for longer than this without
// switching (a CPU-bound loop or a blocking call green does not intercept).
// slice_ms: a fiber that has run this long without switching is asked to yield at its next
// interposed call (the shim's hooks; Go's forcePreemptNS is 10 ms), and idle workers are
// woken to take the runnable fiber-threads queued behind it. After two slices without a
// switch, the worker itself is handed to a spare OS thread (fiber-threads of the shim only:
// they carry their own thread identity), so its other fibers, timers and fd waits go on while
// the stuck fiber keeps its own OS thread until it next enters the runtime. 0 turns both off.
// max_threads: OS threads that may run fibers, the workers' included (spares are started for
// hand-offs, and retire after 10 s idle); at most `workers` turns hand-off off.
//
// stack_guard: `always` puts a PROT_NONE guard page under every stack and fails spawn with
// green::StackError when the kernel refuses (vm.max_map_count, ~32k guarded stacks at the
// default 65530); `auto` guards stacks while the map budget allows and then continues
// without guards (one warning on stderr), so a million fibers run out of the box;
// `never` omits guards.
#pragma once

#include <cstddef>
#include <string>

#include "green/export.hpp"

namespace green {

enum class StackGuard { kDefault = 0, kAuto, kAlways, kNever };
enum class DeadlockPolicy { kDefault = 0, kExit, kWarn, kOff };

struct Options {
  std::size_t workers = 0;
  std::size_t stack_size = 0;
  StackGuard stack_guard = StackGuard::kDefault;
  int dump_signal = -1;  // -1: from the environment; 0: off
  DeadlockPolicy deadlock = DeadlockPolicy::kDefault;
  long blocked_ms = -1;  // -1: from the environment; 0: off
  long slice_ms = -1;    // -1: from the environment; 0: off
  std::size_t max_threads = 0;
};

// Fills every defaulted field from the environment and the defaults. Throws
// std::invalid_argument naming the variable on a malformed GREEN_* value.
GREEN_API Options resolve_options(Options requested);

// Parses a size such as "65536", "256K", "1M" (binary units). Returns false if malformed.
GREEN_API bool parse_size(const std::string& text, std::size_t* out);

}  // namespace green
