// green::dump_fibers: every worker describes its own fibers on its own thread (no locks on
// the hot paths, no racy reads of another worker's queues); the caller collects the parts.
// A worker that does not answer in time is described from its diagnostic atomics.
#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "green/debug.hpp"
#include "green/fiber.hpp"
#include "runtime.hpp"
#include "task_state.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

const char* kind_name(WaitKind k) {
  switch (k) {
    case WaitKind::kSleep:
      return "sleep";
    case WaitKind::kJoin:
      return "join of fiber";
    case WaitKind::kMutex:
      return "green::Mutex";
    case WaitKind::kCondVar:
      return "green::CondVar";
    case WaitKind::kSemaphore:
      return "green::Semaphore";
    case WaitKind::kEvent:
      return "green::Event";
    case WaitKind::kWaitGroup:
      return "green::WaitGroup";
    case WaitKind::kChannelSend:
      return "channel send";
    case WaitKind::kChannelRecv:
      return "channel recv";
    case WaitKind::kIo:
      return "fd";
    case WaitKind::kOffload:
      return "offload (thread pool)";
    case WaitKind::kResolve:
      return "resolve (thread pool)";
    case WaitKind::kOther:
      break;
  }
  return "wait";
}

// Backtraces cost a visit to the fiber (a few microseconds): a dump takes them for the first
// kBacktraceFibers parked fibers of each worker and lists the rest without.
constexpr int kBacktraceFibers = 64;
constexpr int kMaxFrames = 24;
constexpr int kShownFrames = 12;

// A demangled name without its parameter list ("ns::Class<T>::fn(...)"): the types of a
// chrono-heavy signature would bury the names.
std::string short_name(const char* name) {
  std::string n = name;
  int angle = 0;
  for (std::size_t i = 0; i < n.size(); ++i) {
    if (n[i] == '<') ++angle;
    if (n[i] == '>') --angle;
    if (n[i] == '(' && angle == 0 && n.compare(i, 11, "(anonymous ") != 0) {
      return n.substr(0, i) + "(...)";
    }
  }
  return n;
}

// "#n 0xADDR function+0xOFF (module)" or, for a symbol the dynamic table does not name,
// "#n 0xADDR (module+0xOFFSET)": `addr2line -f -C -e module 0xOFFSET` resolves it.
void describe_frame(std::ostringstream& o, int n, void* pc) {
  o << "      #" << n << " " << pc;
  Dl_info info{};
  // A return address points after the call; look up the call itself.
  void* lookup = static_cast<char*>(pc) - 1;
  if (!dladdr(lookup, &info) || !info.dli_fname) {
    o << "\n";
    return;
  }
  const char* module = info.dli_fname;
  if (const char* slash = std::strrchr(module, '/')) module = slash + 1;
  if (info.dli_sname) {
    int status = -1;
    char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    o << " " << short_name(status == 0 && demangled ? demangled : info.dli_sname) << "+0x"
      << std::hex << (static_cast<char*>(pc) - static_cast<char*>(info.dli_saddr)) << std::dec
      << " (" << module << ")\n";
    std::free(demangled);
  } else {
    o << " (" << module << "+0x" << std::hex
      << (static_cast<char*>(pc) - static_cast<char*>(info.dli_fbase)) << std::dec << ")\n";
  }
}

void describe_task(std::ostringstream& o, const Task* t) {
  o << "fiber " << t->id();
  if (!t->name_.empty()) o << " \"" << t->name_ << "\"";
}

struct DumpRequest {
  explicit DumpRequest(std::size_t n) : parts(n), ready(new std::atomic<bool>[n]) {
    // Before the request is posted (post_call's lock publishes it to the workers).
    for (std::size_t i = 0; i < n; ++i) ready[i].store(false, std::memory_order_relaxed);
  }
  const Task* requester = nullptr;             // the fiber taking the dump, if any
  std::vector<std::string> parts;              // parts[i] written by worker i before ready[i]
  std::unique_ptr<std::atomic<bool>[]> ready;  // release by the worker, acquire by the caller
};

}  // namespace

void Worker::dump(std::string& out, const Task* requester) {
  std::ostringstream o;
  auto now = Clock::now();
  o << "worker " << index_ << ": " << dispatches_.load(std::memory_order_relaxed)
    << " dispatches\n";
  {
    void* warm[1];
    (void)::backtrace(warm, 1);  // loads the unwinder here, not on a fiber's stack
  }
  int traced = 0;
  bool skipped_traces = false;
  // The fibers running here: contexts of every home whose worker is this one (a fiber-thread
  // may have migrated here). hold(): no thief takes one of ours while we look at it.
  // The lists are walked under their lock, the fibers visited without it (a backtrace visit
  // is a switch). The contexts found stay valid: one on this worker is destroyed only by
  // this thread, or by its home after this worker sent it back, which it cannot do meanwhile.
  hold(true);
  std::vector<Context*> here;
  for (std::size_t wi = 0; wi < rt_->worker_count(); ++wi) {
    Worker* home = rt_->worker(wi);
    SpinGuard all_lk(home->all_mu_);
    for (Context* c = home->all_contexts_; c; c = c->all_next_) {
      if (c->worker() == this) here.push_back(c);  // others: their worker lists them
    }
  }
  {
    for (Context* c : here) {
      Task* t = c->task_;
      if (!t) continue;  // pooled
      o << "  ";
      describe_task(o, t);
      if (t == requester) {
        o << ": running (taking this dump)\n";
        continue;
      }
      switch (c->state_) {
        case Context::State::kRunning:
          o << ": running";
          break;
        case Context::State::kReady:
          o << ": runnable";
          break;
        case Context::State::kIdle:
          o << ": idle";
          break;
        case Context::State::kParked: {
          o << ": parked on ";
          Waiter* w = task_state(t).waiter;
          if (!w) {
            o << "an uninterruptible wait";
          } else {
            o << kind_name(w->kind);
            if (w->kind == WaitKind::kJoin && w->object) {
              o << " " << static_cast<const Task*>(w->object)->id();
            } else if (w->kind == WaitKind::kIo) {
              o << " " << w->fd << ((w->events & POLLIN) ? " readable" : "")
                << ((w->events & POLLOUT) ? " writable" : "");
            } else if (w->object) {
              o << " " << w->object;
            }
          }
          if (TimePoint d = c->timer_deadline(); d != kNoDeadline) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d - now);
            o << ", " << (w && w->kind == WaitKind::kSleep ? "wakes" : "times out") << " in "
              << ms.count() << " ms";
          }
          o << "\n";
          if (traced >= kBacktraceFibers) {
            skipped_traces = true;
            continue;
          }
          ++traced;
          void* frames[kMaxFrames];
          int n = backtrace_of(c, frames, kMaxFrames);
          for (int i = 0; i < n && i < kShownFrames; ++i) describe_frame(o, i, frames[i]);
          if (n > kShownFrames) o << "      ...\n";
          continue;
        }
      }
      o << "\n";
    }
  }
  hold(false);
  if (skipped_traces)
    o << "  (backtraces of the first " << kBacktraceFibers << " parked fibers only)\n";
  std::uint32_t queued = runq_.size();
  if (queued) o << "  " << queued << " fiber(s) queued here, not started yet\n";
  out = o.str();
}

}  // namespace green::detail

namespace green {

std::string fiber_dump() {
  using namespace detail;
  Runtime* rt = Runtime::current();
  if (!rt || rt->stopping()) return "green: no runtime is running\n";
  std::size_t n = rt->worker_count();
  auto req = std::make_shared<DumpRequest>(n);
  req->requester = tls().task;
  for (std::size_t i = 0; i < n; ++i) {
    // Each worker holds a reference, so a late answer after we gave up is harmless.
    auto* hold = new std::shared_ptr<DumpRequest>(req);
    rt->worker(i)->post_call(
        [](Worker* w, void* p) {
          auto* r = static_cast<std::shared_ptr<DumpRequest>*>(p);
          auto i = static_cast<std::size_t>(w->index());
          w->dump((**r).parts[i], (**r).requester);
          (**r).ready[i].store(true, std::memory_order_release);  // publishes parts[i]
          delete r;
        },
        hold);
  }
  // Poll rather than block on a green primitive: this also runs on the monitor thread, which
  // must not count as a foreign user of green primitives (see Runtime::foreign_).
  auto give_up = Clock::now() + std::chrono::milliseconds(500);
  for (;;) {
    bool all = true;
    // Acquire: pairs with the worker's release store of ready[i] (parts[i] is complete).
    for (std::size_t i = 0; i < n; ++i) all = all && req->ready[i].load(std::memory_order_acquire);
    if (all || Clock::now() >= give_up) break;
    if (tls().task) {
      this_fiber::sleep_for(std::chrono::milliseconds(1));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  std::ostringstream o;
  o << "green: fiber dump (" << n << " workers";
  std::size_t global = rt->global_.size();
  if (global) o << ", " << global << " fiber(s) in the global queue";
  o << ")\n";
  for (std::size_t i = 0; i < n; ++i) {
    if (req->ready[i].load(std::memory_order_acquire)) {  // as above
      o << req->parts[i];
      continue;
    }
    Worker* w = rt->worker(i);
    o << "worker " << i << ": not answering: ";
    if (w->running_task_.load(std::memory_order_relaxed)) {
      o << "busy in one fiber (CPU-bound code or a blocking call green does not intercept)\n";
    } else {
      o << "busy\n";
    }
  }
  return o.str();
}

void dump_fibers(std::ostream& out) {
  out << fiber_dump() << std::flush;
}

}  // namespace green
