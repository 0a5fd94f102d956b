// Tells ASan, TSan and Valgrind about fiber stacks and switches.
//
// ASan keeps shadow state per stack and must be told before and after every switch
// (__sanitizer_start/finish_switch_fiber), or it reports false stack-buffer errors and
// misses real ones. TSan models each fiber as its own logical thread
// (__tsan_create_fiber/__tsan_switch_to_fiber). Valgrind must know where stacks are so it
// does not mistake a switch for a huge stack-pointer change. All of it compiles away in a
// normal build (GCC and Clang define __SANITIZE_ADDRESS__/__SANITIZE_THREAD__ with -fsanitize;
// the Valgrind client requests are a few no-op instructions outside Valgrind).
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define GREEN_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define GREEN_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif
#if __has_include(<valgrind/valgrind.h>)
#define GREEN_VALGRIND 1
#include <valgrind/valgrind.h>
#endif

namespace green::detail {

// Per-context bookkeeping; embedded in Context.
struct SanitizerState {
  const void* stack_lo = nullptr;  // lowest usable address of the stack
  std::size_t stack_len = 0;
  void* tsan_fiber = nullptr;
  unsigned valgrind_id = 0;
};

inline void sanitizer_register_stack(SanitizerState& s, const void* lo, std::size_t len,
                                     bool own_thread_stack) {
  s.stack_lo = lo;
  s.stack_len = len;
#if GREEN_TSAN
  s.tsan_fiber = own_thread_stack ? __tsan_get_current_fiber() : __tsan_create_fiber(0);
#endif
#if GREEN_VALGRIND
  if (!own_thread_stack) {
    const char* l = static_cast<const char*>(lo);
    s.valgrind_id = VALGRIND_STACK_REGISTER(l, l + len);
  }
#endif
  (void)own_thread_stack;
}

inline void sanitizer_unregister_stack(SanitizerState& s) {
#if GREEN_TSAN
  if (s.tsan_fiber) __tsan_destroy_fiber(s.tsan_fiber);
#endif
#if GREEN_VALGRIND
  if (s.valgrind_id) VALGRIND_STACK_DEREGISTER(s.valgrind_id);
#endif
  (void)s;
}

// Called before stack memory is unmapped or handed to a new fiber: frames of fibers that
// never returned (abandoned, or suspended in a pool) leave ASan redzones marked in the
// shadow, which a later mapping at the same address would inherit.
inline void sanitizer_forget_stack(void* lo, std::size_t len) {
#if GREEN_ASAN
  __asan_unpoison_memory_region(lo, len);
#endif
  (void)lo;
  (void)len;
}

// Heap memory kept for reuse (TaskCache): poisoned while cached, so that a use after its
// owner's delete still faults under ASan.
inline void sanitizer_poison(void* p, std::size_t len) {
#if GREEN_ASAN
  __asan_poison_memory_region(p, len);
#endif
  (void)p;
  (void)len;
}
inline void sanitizer_unpoison(void* p, std::size_t len) {
#if GREEN_ASAN
  __asan_unpoison_memory_region(p, len);
#endif
  (void)p;
  (void)len;
}

// Called right before jumping to `to`. `fake_stack` must live in the caller's frame.
inline void sanitizer_before_switch(const SanitizerState& to, void** fake_stack) {
#if GREEN_ASAN
  __sanitizer_start_switch_fiber(fake_stack, to.stack_lo, to.stack_len);
#endif
#if GREEN_TSAN
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
  (void)to;
  (void)fake_stack;
}

// Called first thing after a jump lands (fake_stack: the value saved before this context
// last switched away; nullptr when a context runs for the first time).
inline void sanitizer_after_switch(void* fake_stack) {
#if GREEN_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  (void)fake_stack;
}

}  // namespace green::detail
