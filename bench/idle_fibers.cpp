// idle_fibers: memory cost of N parked fibers (plain main, not Google Benchmark).
//
//   idle_fibers [N] [--workers W]        N defaults to 100000; 10000 / 100000 / 1000000
//
// Spawns N detached fibers that each bump a counter and park on one green::Event, waits until
// all of them are parked, then reads /proc/self/status: VmRSS minus the baseline taken just
// before spawning, divided by N, is the RSS per idle fiber (stack pages touched, the Task
// control block, the runtime's per-fiber bookkeeping). VmPTE (page tables, kernel memory not
// in VmRSS) is reported separately, as are the process's mappings against
// vm.max_map_count, since every guarded stack costs VMAs. Then sets the Event and waits for
// all fibers to finish (WaitGroup), timing the wake-up of all of them.
//
// Guards: the runtime's policy comes from GREEN_STACK_GUARD (auto by default: guard pages
// while the vm.max_map_count budget lasts, then unguarded stacks after one warning). The
// report says how many of this process's mappings exist and the limit; run with
// GREEN_STACK_GUARD=always / never to compare. If fibers stop starting (with `always`, stack
// allocation fails once the kernel's map limit is reached), it reports how many started and
// exits with status 1.
//
// Output: human-readable lines and one machine-readable line
//   idle_fibers n=... workers=... rss_per_fiber_kib=... pte_per_fiber_b=... spawn_ns=...
//   wake_ns=... maps=... max_map_count=... guard=...
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "green/green.hpp"

namespace {

long status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  std::size_t klen = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, klen, key) == 0 && line.size() > klen && line[klen] == ':')
      return std::atol(line.c_str() + klen + 1);
  }
  return -1;
}

long count_maps() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  long n = 0;
  while (std::getline(f, line)) ++n;
  return n;
}

long read_long(const char* path) {
  std::ifstream f(path);
  long v = -1;
  f >> v;
  return v;
}

double secs(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  long n = 100000;
  green::Options opts;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--workers") && i + 1 < argc) {
      opts.workers = static_cast<std::size_t>(std::atol(argv[++i]));
    } else if (argv[i][0] != '-') {
      n = std::atol(argv[i]);
    } else {
      std::fprintf(stderr, "usage: %s [N] [--workers W]\n", argv[0]);
      return 2;
    }
  }
  if (n <= 0) return 2;
  const char* guard_env = std::getenv("GREEN_STACK_GUARD");
  const std::string guard = guard_env ? guard_env : "auto (default)";

  return green::run(
      [&] {
        green::Event go;
        green::WaitGroup done(n);
        std::atomic<long> parked{0};
        // Warm the runtime up (stack pool chunk, libuv timers) before the baseline.
        green::spawn([] {}).join();
        const long rss0 = status_kib("VmRSS"), pte0 = status_kib("VmPTE");
        const long maps0 = count_maps();
        auto t0 = std::chrono::steady_clock::now();
        for (long i = 0; i < n; ++i) {
          green::spawn([&] {
            parked.fetch_add(1, std::memory_order_relaxed);
            go.wait();
            done.done();
          }).detach();
        }
        // A fiber whose stack cannot be allocated (GREEN_STACK_GUARD=always past
        // vm.max_map_count) fails without running: stop waiting once progress stalls.
        long last = -1;
        auto last_change = std::chrono::steady_clock::now();
        while (parked.load(std::memory_order_relaxed) < n) {
          green::this_fiber::sleep_for(std::chrono::microseconds(200));
          long p = parked.load(std::memory_order_relaxed);
          auto now = std::chrono::steady_clock::now();
          if (p != last) {
            last = p;
            last_change = now;
          } else if (now - last_change > std::chrono::seconds(3)) {
            std::printf(
                "stalled: only %ld of %ld fibers started (stack allocation failed? "
                "see stderr); vm.max_map_count=%ld, mappings=%ld\n",
                p, n, read_long("/proc/sys/vm/max_map_count"), count_maps());
            std::printf("idle_fibers n=%ld started=%ld result=stalled guard=%s\n", n, p,
                        guard_env ? guard_env : "auto");
            std::fflush(stdout);
            std::_Exit(1);  // the parked fibers cannot be released cleanly: just exit
          }
        }
        auto t1 = std::chrono::steady_clock::now();
        const long rss1 = status_kib("VmRSS"), pte1 = status_kib("VmPTE");
        const long maps1 = count_maps();
        const long max_maps = read_long("/proc/sys/vm/max_map_count");
        go.set();
        done.wait();
        auto t2 = std::chrono::steady_clock::now();

        const double per_kib = double(rss1 - rss0) / double(n);
        const double pte_b = double(pte1 - pte0) * 1024.0 / double(n);
        std::printf("fibers:            %ld on %zu worker(s), stack guard policy %s\n", n,
                    green::worker_count(), guard.c_str());
        std::printf("RSS per fiber:     %.2f KiB (VmRSS %ld -> %ld KiB)\n", per_kib, rss0, rss1);
        std::printf("page tables:       %.0f B per fiber (VmPTE %ld -> %ld KiB, not in VmRSS)\n",
                    pte_b, pte0, pte1);
        std::printf("spawn until parked: %.0f ns per fiber (%.3f s)\n",
                    secs(t1 - t0) * 1e9 / double(n), secs(t1 - t0));
        std::printf("wake + finish all: %.0f ns per fiber\n", secs(t2 - t1) * 1e9 / double(n));
        std::printf("mappings:          %ld -> %ld of vm.max_map_count %ld\n", maps0, maps1,
                    max_maps);
        std::printf(
            "idle_fibers n=%ld workers=%zu rss_per_fiber_kib=%.2f pte_per_fiber_b=%.0f "
            "spawn_ns=%.0f wake_ns=%.0f maps=%ld max_map_count=%ld guard=%s\n",
            n, green::worker_count(), per_kib, pte_b, secs(t1 - t0) * 1e9 / double(n),
            secs(t2 - t1) * 1e9 / double(n), maps1, max_maps, guard_env ? guard_env : "auto");
        return 0;
      },
      opts);
}
