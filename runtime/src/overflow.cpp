// Stack overflow reporting. A fiber that runs off the bottom of its stack touches the
// PROT_NONE guard page below it and gets SIGSEGV. The handler runs on a per-worker alternate
// signal stack (the fiber's own stack is exhausted), recognises a fault inside the running
// fiber's guard page, prints which fiber overflowed and aborts; any other fault is handed to
// the handler that was installed before green's (or the default action). Only
// async-signal-safe calls are used: write(2) and abort(3).
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "context.hpp"
#include "sanitizer.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

constexpr std::size_t kAltStackSize = 64 * 1024;
struct sigaction g_prev_segv;
struct sigaction g_prev_bus;
std::atomic<int> g_installed{0};

void put(char*& p, const char* s) {
  while (*s) *p++ = *s++;
}

void put_num(char*& p, unsigned long long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = char('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
}

[[maybe_unused]] void chain(int sig, siginfo_t* info, void* uctx) {
  struct sigaction* prev = sig == SIGBUS ? &g_prev_bus : &g_prev_segv;
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction) {
      prev->sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
    prev->sa_handler(sig);
    return;
  }
  // Default action: restore it and return; the faulting instruction faults again.
  signal(sig, SIG_DFL);
}

[[maybe_unused]] void on_fault(int sig, siginfo_t* info, void* uctx) {
  Worker* w = Worker::current();
  Context* c = w ? w->running() : nullptr;
  if (c && !c->is_scheduler_ && c->stack_.guarded && info) {
    auto* addr = static_cast<char*>(info->si_addr);
    char* guard_lo = c->stack_.base;
    char* guard_hi = guard_lo + StackPool::page_size();
    if (addr >= guard_lo && addr < guard_hi) {
      char buf[512];
      char* p = buf;
      put(p, "green: fiber ");
      Task* t = c->task_;
      put_num(p, t ? t->id() : 0);
      if (t && !t->name_.empty() && t->name_.size() < 200) {
        put(p, " (");
        std::memcpy(p, t->name_.data(), t->name_.size());
        p += t->name_.size();
        put(p, ")");
      }
      put(p, " overflowed its ");
      put_num(p, c->stack_.usable());
      put(p, "-byte stack (raise GREEN_STACK_SIZE or SpawnOptions::stack_size)\n");
      ssize_t r = write(STDERR_FILENO, buf, static_cast<std::size_t>(p - buf));
      (void)r;
      abort();
    }
  }
  chain(sig, info, uctx);
}

}  // namespace

void Worker::install_overflow_handler_on_this_thread() {
  // The alternate stack: per thread, kept for the thread's life (leaked at thread exit by
  // design: a thread may still take a signal while exiting).
  void* mem = mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (mem != MAP_FAILED) {
    stack_t ss;
    ss.ss_sp = mem;
    ss.ss_size = kAltStackSize;
    ss.ss_flags = 0;
    stack_t old;
    if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE) && old.ss_size) {
      munmap(mem, kAltStackSize);  // the program already has one: use it
    } else if (sigaltstack(&ss, nullptr) != 0) {
      munmap(mem, kAltStackSize);
    }
  }
#if !defined(GREEN_ASAN) && !defined(GREEN_TSAN)
  // Under ASan/TSan the sanitizer's own SEGV handler reports overflows (with a stack trace).
  // Once per process (seq_cst by default; only atomicity matters: sigaction is process-wide).
  if (g_installed.exchange(1) == 0) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
    sigaction(SIGBUS, &sa, &g_prev_bus);
  }
#endif
}

}  // namespace green::detail
