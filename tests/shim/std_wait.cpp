// The C++20 standard library's blocking primitives, which libstdc++ builds on
// syscall(SYS_futex): std::atomic<T>::wait/notify, std::counting_semaphore, std::barrier,
// std::latch. While one thread waits ~300 ms in each, 200 threads sleeping 5 ms must stay on
// time (probe.h); and 2000 threads waiting at once on one atomic, one semaphore and one latch
// must all be released. No green header; same assertions with and without the shim.
#include <atomic>
#include <barrier>
#include <latch>
#include <semaphore>
#include <thread>
#include <vector>

#include "probe.h"

namespace {

constexpr int kHoldMs = 300;
constexpr int kMany = 2000;

template <class Wait, class Release>
void probe_case(const char* name, Wait wait, Release release) {
  probe_start();
  double t0 = now_ms();
  std::thread waiter(wait);
  usleep(kHoldMs * 1000);
  release();
  waiter.join();
  double took = now_ms() - t0;
  probe_check(name);
  CHECK(took >= kHoldMs - 20);
}

// Raw pthreads with a small stack: 2000 std::threads would each get 8 MiB of address space.
template <class F>
void run_many(F body) {
  static pthread_t t[kMany];
  static F* fn;
  fn = &body;
  pthread_attr_t at;
  CHECK(pthread_attr_init(&at) == 0);
  CHECK(pthread_attr_setstacksize(&at, 64 * 1024) == 0);
  for (auto& th : t)
    CHECK(pthread_create(
              &th, &at,
              [](void*) -> void* {
                (*fn)();
                return nullptr;
              },
              nullptr) == 0);
  CHECK(pthread_attr_destroy(&at) == 0);
  for (auto& th : t) CHECK(pthread_join(th, nullptr) == 0);
}

}  // namespace

int main() {
  time_limit(120);

  std::atomic<int> word{0};
  probe_case(
      "std::atomic::wait",
      [&] {
        while (word.load() == 0) word.wait(0);
      },
      [&] {
        word.store(1);
        word.notify_one();
      });

  std::counting_semaphore<> sem(0);
  probe_case(
      "std::counting_semaphore", [&] { sem.acquire(); }, [&] { sem.release(); });
  CHECK(!sem.try_acquire());
  double t0 = now_ms();
  CHECK(!sem.try_acquire_for(std::chrono::milliseconds(30)));
  CHECK(now_ms() - t0 >= 29);

  std::barrier<> bar(2);
  probe_case(
      "std::barrier", [&] { bar.arrive_and_wait(); }, [&] { bar.arrive_and_wait(); });

  std::latch once(1);
  probe_case(
      "std::latch", [&] { once.wait(); }, [&] { once.count_down(); });

  // 2000 waiters on each.
  std::atomic<int> gate{0};
  std::atomic<int> in{0};
  std::thread opener([&] {
    while (in.load() < kMany) usleep(1000);
    usleep(20000);
    gate.store(1);
    gate.notify_all();
  });
  run_many([&] {
    in.fetch_add(1);
    while (gate.load() == 0) gate.wait(0);
  });
  opener.join();

  std::counting_semaphore<kMany> many(0);
  std::atomic<int> acquired{0};
  std::thread poster([&] {
    usleep(50000);
    many.release(kMany);
  });
  run_many([&] {
    many.acquire();
    acquired.fetch_add(1);
  });
  poster.join();
  CHECK(acquired.load() == kMany);

  std::latch start(kMany + 1);
  std::atomic<int> through{0};
  std::thread last([&] {
    usleep(50000);
    start.arrive_and_wait();
  });
  run_many([&] {
    start.arrive_and_wait();
    through.fetch_add(1);
  });
  last.join();
  CHECK(through.load() == kMany);

  check_os_threads("std_wait");
  std::puts("std_wait: ok");
  return 0;
}
