// The machine switch under Context::jump: green_jump_fcontext on x86-64 ELF targets
// (switch_x86_64.cpp), Boost.Context's jump_fcontext everywhere else.
//
// Why our own on x86-64 (measured in bench/README.md): Boost's jump_fcontext is reached
// through the PLT, loads MXCSR and the x87 control word on every switch (ldmxcsr and fldcw
// are the slow part of it), and resumes with an indirect `jmp`, so the return-stack predictor
// is one entry off after every switch and the returns that follow it mispredict. Ours is a
// hidden symbol (a direct call), resumes with `ret` (a switch between two fibers parked at the
// same call site is then predicted), and keeps the floating-point environment per fiber as
// Boost does: it always stores MXCSR and the x87 control word into the suspended frame, and
// reloads each only when the resumed frame's saved value differs from the running one. Under
// greenrun a fiber is a pthread of the program, and each pthread has its own rounding mode,
// exception masks and flush-to-zero bits (tests/shim/fpenv.c checks that they stay its own).
//
// The frame is Boost's x86-64 SysV layout, so frames made by make_fcontext and frames saved
// by either switch are interchangeable (tools/green-gdb.py reads the same offsets):
//   fctx+0x00 MXCSR (4 bytes)  fctx+0x04 x87 control word (2 bytes)
//   fctx+0x08 r12  +0x10 r13  +0x18 r14  +0x20 r15  +0x28 rbx  +0x30 rbp  +0x38 return address
// Rejected: dropping the FPU words altogether (bench/proposals/02: a fiber's fesetround would
// leak into every fiber that runs after it on that thread, breaking the shim's contract);
// ucontext (a sigprocmask syscall per switch).
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <cstdint>

#if defined(__x86_64__) && defined(__ELF__)
#define GREEN_OWN_SWITCH 1
extern "C" boost::context::detail::transfer_t green_jump_fcontext(
    boost::context::detail::fcontext_t to, void* data) noexcept
    __attribute__((visibility("hidden")));
#else
#define GREEN_OWN_SWITCH 0
#endif

namespace green::detail {

// Suspends the running stack (its frame's address comes back to whoever resumes it, in the
// transfer_t) and resumes `to`, handing it `data`.
inline boost::context::detail::transfer_t machine_jump(boost::context::detail::fcontext_t to,
                                                       void* data) noexcept {
#if GREEN_OWN_SWITCH
  return green_jump_fcontext(to, data);
#else
  return boost::context::detail::jump_fcontext(to, data);
#endif
}

// The floating-point control state a new thread inherits from its creator (Linux copies the
// whole FPU state at clone): MXCSR (SSE rounding, FTZ/DAZ, exception masks and flags) and the
// x87 control word. A task records its creator's at spawn (Task::Task) and enters it when it
// starts (run_task): the context it starts on carries whatever the fiber that made or last
// ran that context had. Not kept: the x87 status word's sticky flags (nor does either switch).
struct FpControl {
  std::uint32_t mxcsr = 0;
  std::uint16_t x87cw = 0;
};

inline FpControl fp_control_save() noexcept {
  FpControl f;
#if GREEN_OWN_SWITCH
  asm volatile("stmxcsr %0" : "=m"(f.mxcsr));
  asm volatile("fnstcw %0" : "=m"(f.x87cw));
#endif
  return f;
}

// Makes f the running code's state; loads only what differs (the loads are the slow part).
inline void fp_control_enter(const FpControl& f) noexcept {
#if GREEN_OWN_SWITCH
  FpControl now = fp_control_save();
  if (__builtin_expect(now.mxcsr != f.mxcsr, 0)) asm volatile("ldmxcsr %0" : : "m"(f.mxcsr));
  if (__builtin_expect(now.x87cw != f.x87cw, 0)) asm volatile("fldcw %0" : : "m"(f.x87cw));
#else
  (void)f;
#endif
}

}  // namespace green::detail
