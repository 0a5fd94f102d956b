// C++ per-thread state: the exception-handling globals (__cxa_get_globals) and thread_local
// objects belong to each thread. 64 "holders" each catch an exception and block inside the
// catch block (under greenrun: park there, while other fibers of the same worker run) while
// 64 "throwers" throw and catch their own exceptions in a loop; each holder then still sees
// its own exception as the current one (std::current_exception, a rethrow caught again) and
// no exception is in flight. thread_local objects are constructed fresh in each thread that
// uses them and destroyed at its exit (pthread_exit too), with that thread's value.
// Plain C++ and POSIX: no green header.
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)

namespace {

constexpr int kPairs = 64;
std::atomic<int> g_constructed{0}, g_destroyed{0}, g_destroyed_sum{0}, g_in_catch{0};
std::atomic<bool> g_throwers_done{false};
int g_pipe[2];

struct PerThread {
  int value = -1;
  std::string text = "fresh";
  PerThread() { g_constructed++; }
  ~PerThread() {
    g_destroyed++;
    g_destroyed_sum += value;
  }
};
thread_local PerThread t_obj;

void* holder(void* arg) {
  int id = int(reinterpret_cast<long>(arg));
  CHECK(t_obj.value == -1 && t_obj.text == "fresh");
  t_obj.value = id;
  std::string mine = "holder " + std::to_string(id);
  try {
    throw std::runtime_error(mine);
  } catch (const std::runtime_error& e) {
    g_in_catch++;
    // Block inside the catch block until every thrower is done.
    for (int i = 0; i < 4000 && !g_throwers_done.load(); ++i) {
      pollfd p{g_pipe[0], POLLIN, 0};
      CHECK(poll(&p, 1, 1) == 0);
    }
    CHECK(g_throwers_done.load());
    CHECK(std::uncaught_exceptions() == 0);
    CHECK(mine == e.what());
    std::exception_ptr cur = std::current_exception();
    CHECK(cur != nullptr);
    try {
      std::rethrow_exception(cur);
    } catch (const std::runtime_error& again) {
      CHECK(mine == again.what());
    }
    try {
      throw;  // the handled exception is still this thread's
    } catch (const std::runtime_error& again) {
      CHECK(mine == again.what());
    }
  }
  CHECK(std::current_exception() == nullptr);
  if (id % 2) pthread_exit(nullptr);  // thread_local destructors run here too
  return nullptr;
}

void* thrower(void* arg) {
  int id = int(reinterpret_cast<long>(arg));
  t_obj.value = 1000 + id;
  while (g_in_catch.load() < kPairs) usleep(200);
  for (int i = 0; i < 200; ++i) {
    try {
      throw std::logic_error("thrower " + std::to_string(id));
    } catch (const std::logic_error& e) {
      CHECK(std::strncmp(e.what(), "thrower", 7) == 0);
      usleep(10);  // park with our exception caught, while holders sit in theirs
      CHECK(std::current_exception() != nullptr);
    }
    CHECK(std::current_exception() == nullptr);
  }
  return nullptr;
}

}  // namespace

int main() {
  alarm(120);
  CHECK(pipe(g_pipe) == 0);
  t_obj.value = 5;  // main's own object: not destroyed before exit
  pthread_t h[kPairs], t[kPairs];
  for (long i = 0; i < kPairs; ++i) CHECK(pthread_create(&h[i], nullptr, holder, (void*)i) == 0);
  for (long i = 0; i < kPairs; ++i) CHECK(pthread_create(&t[i], nullptr, thrower, (void*)i) == 0);
  for (int i = 0; i < kPairs; ++i) CHECK(pthread_join(t[i], nullptr) == 0);
  g_throwers_done = true;
  for (int i = 0; i < kPairs; ++i) CHECK(pthread_join(h[i], nullptr) == 0);
  CHECK(g_constructed.load() == 2 * kPairs + 1);
  CHECK(g_destroyed.load() == 2 * kPairs);
  int want = 0;
  for (int i = 0; i < kPairs; ++i) want += i + 1000 + i;
  CHECK(g_destroyed_sum.load() == want);
  CHECK(t_obj.value == 5 && t_obj.text == "fresh");
  std::puts("thread_exceptions: ok");
  return 0;
}
