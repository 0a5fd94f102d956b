// green::this_fiber: operations on the calling fiber. Off a fiber they fall back to the
// equivalent OS-thread operation, so code shared with plain threads keeps working.
#include <thread>

#include "green/detail/hooks.hpp"
#include "green/fiber.hpp"
#include "switch.hpp"
#include "task_state.hpp"
#include "tls.hpp"
#include "worker.hpp"

namespace green::this_fiber {

using detail::tls;

}  // namespace green::this_fiber

// yield() is green_yield_body() behind a trampoline on x86-64 ELF (below): the body returns into
// the trampoline, which returns to yield()'s caller with an indirect jump instead of `ret`.
// Why: a yield switches stacks, so the return-stack predictor holds the *other* fiber's
// return addresses when this one resumes, and the `ret` to yield()'s caller mispredicts
// whenever the two fibers called yield() from different places (the usual case: every
// fiber's own loop). The indirect jump is predicted from the branch history instead, which
// learns such patterns. The returns inside the runtime stay `ret`s: their call sites are the
// same in every fiber (switch.hpp). Measured on two fibers yielding from different loops
// (bench/README.md). Elsewhere yield() just calls green_yield_body().
extern "C" __attribute__((visibility("hidden"), used)) void green_yield_body() noexcept {
  green::detail::Worker* w = green::detail::Worker::current();
  if (w && green::detail::tls().task) {
    w->yield_current();
  } else {
    std::this_thread::yield();
  }
}

#if GREEN_OWN_SWITCH
#if defined(GREEN_BUILDING_LIBRARY) && !defined(GREEN_STATIC_ONLY)
#define GREEN_YIELD_VISIBILITY ""  // GREEN_API: default visibility
#else
#define GREEN_YIELD_VISIBILITY ".hidden _ZN5green10this_fiber5yieldEv\n"
#endif
// green::this_fiber::yield(): 8 bytes of padding keep the body's stack 16-byte aligned;
// after the body returns, the caller's return address is popped into rcx (caller-saved, not
// a result register of a void function) and jumped to. The CFI describes each step, so
// unwinders and debuggers walk through it.
// clang-format off
asm(".text\n"
    ".globl _ZN5green10this_fiber5yieldEv\n"
    GREEN_YIELD_VISIBILITY
    ".type _ZN5green10this_fiber5yieldEv,@function\n"
    ".p2align 4\n"
    "_ZN5green10this_fiber5yieldEv:\n"
    "  .cfi_startproc\n"
    "  subq $8, %rsp\n"
    "  .cfi_def_cfa_offset 16\n"
    "  call green_yield_body\n"
    "  addq $8, %rsp\n"
    "  .cfi_def_cfa_offset 8\n"
    "  popq %rcx\n"
    "  .cfi_def_cfa_offset 0\n"
    "  .cfi_register 16, 2\n"  // the return address (DWARF column 16) is in rcx (2)
    "  jmp *%rcx\n"
    "  .cfi_endproc\n"
    ".size _ZN5green10this_fiber5yieldEv,.-_ZN5green10this_fiber5yieldEv\n");
// clang-format on
#else
namespace green::this_fiber {
void yield() {
  green_yield_body();
}
}  // namespace green::this_fiber
#endif

namespace green::this_fiber {

void sleep_until(std::chrono::steady_clock::time_point t) {
  if (!tls().task) {
    std::this_thread::sleep_until(t);
    return;
  }
  for (;;) {
    detail::Waiter w(detail::WaitKind::kSleep, nullptr);
    detail::WakeReason r = detail::park(w, t, {});
    if (r == detail::WakeReason::kTimeout) return;
    detail::throw_if_interrupted(r);
  }
}

std::uint64_t id() noexcept {
  detail::Task* t = tls().task;
  return t ? t->id() : 0;
}

bool on_fiber() noexcept {
  return tls().task != nullptr;
}

void set_name(std::string name) {
  if (detail::Task* t = tls().task) t->name_ = std::move(name);
}

std::string name() {
  detail::Task* t = tls().task;
  return t ? t->name_ : std::string();
}

bool cancel_requested() noexcept {
  detail::Task* t = tls().task;
  return t && detail::task_state(t).cancel_requested.load(std::memory_order_relaxed);
}

}  // namespace green::this_fiber
