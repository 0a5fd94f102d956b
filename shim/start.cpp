// Auto-start of the preload library: runs the program's main() on a green fiber.
//
// glibc calls main through __libc_start_main, which every dynamically linked program imports;
// the shim interposes it (both symbol versions: GLIBC_2.34 for programs linked against glibc
// >= 2.34, GLIBC_2.2.5 for older ones, each forwarding to the matching real version), and
// passes the real one a replacement main that
//   1. reads GREEN_THREADS (fibers|os), GREEN_THREAD_TLS (auto|shared|wrfsbase|arch_prctl:
//      fiber-threads with thread identities of their own, thread_tcb.hpp) and GREEN_STATS
//      (0|1) and resolves the runtime options
//      from GREEN_WORKERS/GREEN_STACK_SIZE/GREEN_STACK_GUARD; a malformed value prints one line
//      naming the variable and what it accepts, and exits with status 2;
//   2. calls green::run with the program's main as the main fiber (identity: the main
//      ShimThread, so pthread_self/keys work there too);
//   3. returns main's value, so glibc runs exit() -- atexit handlers, stdio flushing -- on the
//      original thread after the runtime stopped.
// pthread_exit() from main waits for every fiber-thread to finish and then exits with status
// 0, as it does with real threads. GREEN_STATS=1 prints one summary line on stderr at exit.
//
// Threads: all of this runs on the process's main thread; the counters are relaxed atomics.
#include <dlfcn.h>
#include <malloc.h>
#include <sys/sysinfo.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "common.hpp"
#include "fd_table.hpp"
#include "green/runtime.hpp"
#include "thread.hpp"
#include "thread_tcb.hpp"

using namespace green::shim;

namespace {

using MainFn = int (*)(int, char**, char**);
using StartFn = int (*)(MainFn, int, char**, void (*)(void), void (*)(void), void (*)(void), void*);

MainFn g_main = nullptr;
std::size_t g_workers = 0;
pid_t g_pid = 0;

[[noreturn]] void bad_setting(const char* var, const char* value, const char* expected) {
  std::fprintf(stderr, "green: invalid %s=\"%s\": expected %s\n", var, value, expected);
  std::exit(2);
}

int os_threads() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int n = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "Threads:", 8) == 0) n = std::atoi(line + 8);
  std::fclose(f);
  return n;
}

void print_stats() {
  if (getpid() != g_pid) return;  // a forked child exiting
  Stats s = stats_snapshot();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr,
               "green: stats: workers=%zu fiber-threads=%llu (peak live %llu) io-waits=%llu "
               "poll-waits=%llu sleeps=%llu lock-waits=%llu cond-waits=%llu offloads=%llu "
               "os-threads-at-exit=%d max-rss=%ldKiB\n",
               g_workers, (unsigned long long)s.threads_created, (unsigned long long)s.threads_peak,
               (unsigned long long)s.io_waits, (unsigned long long)s.polls,
               (unsigned long long)s.sleeps, (unsigned long long)s.lock_waits,
               (unsigned long long)s.cond_waits, (unsigned long long)s.offloads, os_threads(),
               ru.ru_maxrss);
}

std::size_t main_stack_size(std::size_t fiber_default) {
  rlimit rl{};
  std::size_t size = 8u << 20;
  if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) size = rl.rlim_cur;
  if (size > (1u << 30)) size = 1u << 30;
  return size < fiber_default ? fiber_default : size;
}

// glibc's malloc gives a thread its own arena at the thread's first allocation, and when it
// makes its 9th arena it reads /sys/devices/system/cpu/online (get_nprocs) to cap them at 8
// per CPU: an fd of glibc's that takes the lowest free number for a moment, at a time no
// program thread chose. Under the shim every fiber-thread identity is a new thread to malloc
// (the runtime's own allocations on a fiber-thread make its arena), so that read came in the
// middle of the program (tests/shim/fdreuse.c: a number the program had just closed was not
// the one its next socketpair got). Set the same cap here, from the same count, unless the
// user chose one: glibc then never asks again.
void settle_malloc_arena_limit() {
  if (std::getenv("MALLOC_ARENA_MAX")) return;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.arena_max")) return;
  int n = get_nprocs();
  if (n < 1) n = 2;                                       // glibc's own fallback
  mallopt(M_ARENA_MAX, n * (sizeof(long) == 4 ? 2 : 8));  // glibc's NARENAS_FROM_NCORES
}

int green_main(int argc, char** argv, char** envp) {
  const char* threads = std::getenv("GREEN_THREADS");
  if (threads && *threads) {
    if (std::strcmp(threads, "os") == 0) {
      g_threads_os = true;
    } else if (std::strcmp(threads, "fibers") != 0) {
      bad_setting("GREEN_THREADS", threads, "fibers or os");
    }
  }
  const char* tls = std::getenv("GREEN_THREAD_TLS");
  tcb::Setting tls_setting = tcb::Setting::kAuto;
  if (tls && *tls) {
    if (std::strcmp(tls, "shared") == 0) {
      tls_setting = tcb::Setting::kShared;
    } else if (std::strcmp(tls, "wrfsbase") == 0) {
      tls_setting = tcb::Setting::kWrfsbase;
    } else if (std::strcmp(tls, "arch_prctl") == 0) {
      tls_setting = tcb::Setting::kArchPrctl;
    } else if (std::strcmp(tls, "auto") != 0) {
      bad_setting("GREEN_THREAD_TLS", tls, "auto, shared, wrfsbase or arch_prctl");
    }
  }
  const char* stats = std::getenv("GREEN_STATS");
  bool want_stats = false;
  if (stats && *stats) {
    if (std::strcmp(stats, "1") == 0) {
      want_stats = true;
    } else if (std::strcmp(stats, "0") != 0) {
      bad_setting("GREEN_STATS", stats, "0 or 1");
    }
  }
  green::Options opts;
  try {
    opts = green::resolve_options({});
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::exit(2);
  }
  g_workers = opts.workers;
  g_pid = getpid();
  settle_malloc_arena_limit();
  // Thread identities (thread_tcb.hpp): from here on worker 0's scheduler gets its own, and
  // this thread's (the process's main thread) goes to the main fiber.
  bool own_tls = tcb::init(tls_setting);
  // Fiber-threads that carry their own identity may continue on any OS thread: a worker
  // stuck in one of them can be handed to a spare thread (runtime/src/machine.hpp).
  if (own_tls) signals::enable_handoff();
  if (want_stats) {
    g_stats_on = true;  // before any fiber runs: every counted event is counted
    std::atexit(print_stats);
  }
  // green::run's body (runtime.hpp), with one change: the main fiber gets the stack a real
  // main thread has (RLIMIT_STACK, 8 MiB if unlimited; at least GREEN_STACK_SIZE), since
  // programs size their recursion for it; other fibers use GREEN_STACK_SIZE.
  auto body = [&]() -> int {
    adopt_main_thread();
    struct Done {
      ~Done() { tcb::main_fiber_done(); }
    } done;
    try {
      green::detail::RuntimeExit program;  // the program's code: the worker may be handed off
      return g_main(argc, argv, envp);
    } catch (const ThreadExit&) {
      // pthread_exit from main: the process lives until the last thread is done.
      wait_all_threads();
      return 0;
    }
  };
  try {
    auto* t = new green::detail::TaskImpl<int, decltype(body)>(std::move(body));
    t->name_ = "main";
    t->stack_size_ = main_stack_size(opts.stack_size);
    if (own_tls) t->tp_ = tcb::main_tp();
    t->ref();
    struct Drop {
      green::detail::Task* t;
      ~Drop() { t->unref(); }
    } drop{t};
    // If green::run cannot return here (this thread runs a fiber-thread that spins forever
    // when main returns: runtime/src/machine.hpp), the runtime's last thread exits for us.
    static decltype(t) s_main = t;
    green::detail::set_initial_stuck_exit([] {
      int status = 70;
      try {
        status = s_main->take();
      } catch (...) {
      }
      std::exit(status);
    });
    green::detail::run_main(t, opts);
    return t->take();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "green: fatal: %s\n", e.what());
    return 70;
  }
}

template <int V>
int start(StartFn real_start, MainFn main, int argc, char** argv, void (*init)(void),
          void (*fini)(void), void (*rtld_fini)(void), void* stack_end) {
  fds::init();
  g_main = main;
  return real_start(green_main, argc, argv, init, fini, rtld_fini, stack_end);
}

StartFn resolve_start(const char* version) {
  void* p = dlvsym(RTLD_NEXT, "__libc_start_main", version);
  if (!p) {
    std::fprintf(stderr, "green: fatal: cannot find the real __libc_start_main@%s\n", version);
    std::_Exit(127);
  }
  return reinterpret_cast<StartFn>(p);
}

}  // namespace

GREEN_HOOK(__libc_start_main) {
  return start<234>(resolve_start("GLIBC_2.34"), main, argc, argv, init, fini, rtld_fini,
                    stack_end);
}

GREEN_HOOK(__libc_start_main_225) {
  return start<225>(resolve_start("GLIBC_2.2.5"), main, argc, argv, init, fini, rtld_fini,
                    stack_end);
}
