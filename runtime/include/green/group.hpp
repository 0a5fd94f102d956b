// green::Group: structured concurrency for a set of fibers (gevent's Pool/Group, Go's
// errgroup).
//
//   green::Group g(8);                       // at most 8 members run at once
//   for (auto& url : urls) g.spawn([&] { fetch(url); });   // parks while 8 are running
//   g.wait();                                // joins all; rethrows the first failure
//
// The first member to fail (throw anything but green::Cancelled) cancels every other member;
// wait() rethrows that first exception after all members finished. cancel() cancels all
// members. The destructor cancels members still running and waits for them, so a Group
// never outlives its fibers (their references into the enclosing scope stay valid).
#pragma once

#include <cstddef>
#include <exception>
#include <unordered_map>
#include <utility>

#include "green/detail/thread_annotations.hpp"
#include "green/errors.hpp"
#include "green/export.hpp"
#include "green/fiber.hpp"
#include "green/mutex.hpp"
#include "green/semaphore.hpp"
#include "green/wait_group.hpp"

namespace green {

class GREEN_API Group {
 public:
  // limit == 0: no limit on concurrently running members.
  explicit Group(std::size_t limit = 0) : limit_(limit), slots_(limit) {}
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Starts f(args...) as a member. With a limit, parks until a slot is free. Throws
  // green::Cancelled if the group was cancelled (then f is not started).
  template <class F, class... Args>
  void spawn(F&& f, Args&&... args) {
    if (limit_) slots_.acquire();
    wg_.add(1);
    detail::MutexGuard lk(mu_);
    if (cancelled_) {
      wg_.done();
      if (limit_) slots_.release();
      throw Cancelled();
    }
    auto fib = green::spawn([this, fn = std::forward<F>(f),
                             tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
      std::exception_ptr err;
      try {
        std::apply(std::move(fn), std::move(tup));
      } catch (const Cancelled&) {
      } catch (...) {
        err = std::current_exception();
      }
      member_done(this_fiber::id(), err);
    });
    members_.emplace(fib.id(), std::move(fib));
  }

  // Waits for every member; rethrows the first member failure, if any.
  void wait();
  // Cancels every running member; later spawn() calls throw Cancelled.
  void cancel();
  std::size_t running() const;

 private:
  void member_done(std::uint64_t id, std::exception_ptr err) noexcept;

  const std::size_t limit_;
  Semaphore slots_;
  WaitGroup wg_;
  mutable Mutex mu_;
  std::unordered_map<std::uint64_t, Fiber<void>> members_ GREEN_GUARDED_BY(mu_);
  std::exception_ptr first_error_ GREEN_GUARDED_BY(mu_);
  bool cancelled_ GREEN_GUARDED_BY(mu_) = false;
};

}  // namespace green
