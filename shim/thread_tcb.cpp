// Thread identities for fiber-threads (design note in thread_tcb.hpp).
#include "thread_tcb.hpp"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <locale.h>
#include <netdb.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cxxabi.h>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common.hpp"
#include "green/detail/hooks.hpp"
#include "green/detail/task.hpp"

namespace green::shim::tcb {

namespace {

inline char* read_tp() noexcept {
  char* p;
  asm volatile("mov %%fs:0, %0" : "=r"(p));
  return p;
}
enum class Write { kOff = 0, kWrfsbase = 1, kArchPrctl = 2 };  // enable_thread_pointers

// struct pthread of Debian's glibc 2.36 (x86-64); used only when the fingerprint matches
// (check_layout). The offsets the libthread_db descriptors publish are checked against them;
// the rest (stackblock*, rseq_area, res, cleanup_jmp_buf) are not published and come from
// this build's debug info (docs: /work/shared/notes/glibc-threads.md, section 1).
constexpr long kTcbSize = 2368;
constexpr long kTcbSelf = 0x00, kDtv = 0x08, kSelf = 0x10, kMultipleThreads = 0x18;
constexpr long kStackGuard = 0x28, kPointerGuard = 0x30, kFeature1 = 0x48;
constexpr long kList = 704, kTid = 720, kRobustPrev = 728, kRobustHead = 736;
constexpr long kRobustFutexOffset = 744, kCleanupJmpBuf = 768, kCancelHandling = 776;
constexpr long kSpecific1st = 784, kSpecific = 1296, kUserStack = 1554;
constexpr long kSchedParam = 1584, kSchedPolicy = 1588, kStartRoutine = 1592, kArg = 1600;
constexpr long kStackblock = 1680, kStackblockSize = 1688, kGuardsize = 1696;
constexpr long kReportedGuardsize = 1704, kRes = 1720, kTlsState = 2304, kRseqCpuId = 2340;

// Our bookkeeping, right after the TCB inside the same allocation.
struct Meta {
  std::atomic<int> refs;
  char* mem;        // what aligned_alloc returned
  char* next_free;  // pool link (TP of the next pooled identity)
};
constexpr std::size_t kMetaSize = 64;
static_assert(sizeof(Meta) <= kMetaSize);

using AllocateTls = void* (*)(void*);
using AllocateTlsInit = void* (*)(void*, bool);
using DeallocateTls = void (*)(void*, bool);
using GetTlsStaticInfo = void (*)(std::size_t*, std::size_t*);

AllocateTls g_allocate_tls = nullptr;
AllocateTlsInit g_allocate_tls_init = nullptr;
DeallocateTls g_deallocate_tls = nullptr;
void (*g_call_tls_dtors)() = nullptr;

bool g_enabled = false;
Write g_write = Write::kOff;
std::size_t g_static_size = 0, g_static_align = 64;
long g_libc_off = 0;          // TP - libc's TLS block
std::size_t g_libc_size = 0;  // its PT_TLS memsz
long g_resp_off = 0;          // TP-relative offset of libc's __resp slot (0: unknown)
char* g_main_tp = nullptr;
char* g_sched0_tp = nullptr;
void* g_main_saved[6] = {};  // the main descriptor's stack fields while the main fiber runs

detail::SpinLock g_pool_lock;
char* g_pool = nullptr;  // pooled identities (g_pool_lock)
std::size_t g_pooled = 0;
constexpr std::size_t kMaxPooled = 1024;

void* marker(void*) {
  return nullptr;
}  // start_routine of every fiber-thread identity

template <class T>
T& at(char* tp, long off) {
  return *reinterpret_cast<T*>(tp + off);
}
Meta* meta(char* tp) {
  return reinterpret_cast<Meta*>(tp + kTcbSize);
}

const std::uint32_t* db(const char* name) {
  void* p = dlvsym(RTLD_DEFAULT, name, "GLIBC_PRIVATE");
  if (!p) p = dlsym(RTLD_DEFAULT, name);
  return static_cast<const std::uint32_t*>(p);
}
bool db_offset_is(const char* name, long off) {
  const std::uint32_t* d = db(name);
  return d && d[2] == std::uint32_t(off);
}
template <class F>
F private_fn(const char* name) {
  void* p = dlvsym(RTLD_DEFAULT, name, "GLIBC_PRIVATE");
  if (!p) p = dlsym(RTLD_DEFAULT, name);
  return reinterpret_cast<F>(p);
}

bool check_layout() {
  if (std::strcmp(gnu_get_libc_version(), "2.36") != 0) return false;
  const std::uint32_t* size = db("_thread_db_sizeof_pthread");
  if (!size || *size != kTcbSize) return false;
  if (!db_offset_is("_thread_db_pthread_dtvp", kDtv) ||
      !db_offset_is("_thread_db_pthread_list", kList) ||
      !db_offset_is("_thread_db_pthread_tid", kTid) ||
      !db_offset_is("_thread_db_pthread_specific", kSpecific) ||
      !db_offset_is("_thread_db_pthread_schedpolicy", kSchedPolicy) ||
      !db_offset_is("_thread_db_pthread_start_routine", kStartRoutine) ||
      !db_offset_is("_thread_db_pthread_cancelhandling", 776))
    return false;
  auto* rseq_off = static_cast<const std::ptrdiff_t*>(dlsym(RTLD_DEFAULT, "__rseq_offset"));
  if (!rseq_off || *rseq_off != 2336) return false;
  return true;
}

struct LibcTls {
  void* data = nullptr;
  std::size_t size = 0;
};
int find_libc_tls(dl_phdr_info* info, std::size_t, void* out) {
  if (!info->dlpi_name || !std::strstr(info->dlpi_name, "/libc.so.6")) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_TLS) {
      auto* r = static_cast<LibcTls*>(out);
      r->data = info->dlpi_tls_data;
      r->size = info->dlpi_phdr[i].p_memsz;
      return 1;
    }
  }
  return 0;
}

// The pthread_create-equivalent fields (thread_tcb.hpp); `me` is the creating thread's TP.
void init_fields(char* tp, char* me, ShimThread* owner) {
  at<char*>(tp, kTcbSelf) = tp;
  at<char*>(tp, kSelf) = tp;
  at<int>(tp, kMultipleThreads) = 1;
  std::memcpy(tp + kStackGuard, me + kStackGuard, 16);  // stack_guard, pointer_guard
  std::memcpy(tp + kFeature1, me + kFeature1, 4);
  at<char*>(tp, kList) = tp + kList;
  at<char*>(tp, kList + 8) = tp + kList;
  at<int>(tp, kTid) = at<int>(me, kTid);
  at<char*>(tp, kRobustPrev) = tp + kRobustHead;
  at<char*>(tp, kRobustHead) = tp + kRobustHead;
  std::memcpy(tp + kRobustFutexOffset, me + kRobustFutexOffset, 8);
  at<char*>(tp, kSpecific) = tp + kSpecific1st;
  at<char>(tp, kUserStack) = 1;
  std::memcpy(tp + kSchedParam, me + kSchedParam, 8);  // schedparam, schedpolicy
  at<int>(tp, kRseqCpuId) = -2;  // RSEQ_CPU_ID_REGISTRATION_FAILED: sched_getcpu uses the vDSO
  if (owner) {
    at<void*>(tp, kStartRoutine) = reinterpret_cast<void*>(&marker);
    at<ShimThread*>(tp, kArg) = owner;
  }
}

char* fresh() {
  std::size_t bytes =
      (g_static_size + kMetaSize + g_static_align - 1) / g_static_align * g_static_align;
  auto* mem = static_cast<char*>(std::aligned_alloc(g_static_align, bytes));
  if (!mem) return nullptr;
  std::memset(mem, 0, bytes);
  char* tp = mem + g_static_size - kTcbSize;
  if (!g_allocate_tls(tp)) {  // the DTV and every start-up module's TLS image
    std::free(mem);
    return nullptr;
  }
  meta(tp)->mem = mem;
  return tp;
}

struct DtvEntry {
  void* val;
  void* to_free;
};

// A pooled identity made like new, except libc's own TLS block (tcache, arena), which is
// restored over the fresh image; on_start then resets errno, h_errno, locale and __resp.
void reinit(char* tp) {
  alignas(16) char saved[512];
  bool keep_libc = g_libc_size <= sizeof saved;
  if (keep_libc) std::memcpy(saved, tp - g_libc_off, g_libc_size);
  auto* dtv = at<DtvEntry*>(tp, kDtv);
  auto len = reinterpret_cast<std::size_t>(dtv[-1].val);
  for (std::size_t i = 1; i <= len; ++i) std::free(dtv[i].to_free);
  std::memset(dtv, 0, (len + 1) * sizeof(DtvEntry));
  for (int i = 1; i < 32; ++i) std::free(at<void*>(tp, kSpecific + 8 * i));
  std::free(at<void*>(tp, kTlsState));
  std::free(at<void*>(tp, kTlsState + 8));
  std::memset(tp, 0, kTcbSize);  // (Meta lies above the TCB and survives)
  at<DtvEntry*>(tp, kDtv) = dtv;
  g_allocate_tls_init(tp, false);
  if (keep_libc) std::memcpy(tp - g_libc_off, saved, g_libc_size);
}

void drop(char* tp) {
  // acq_rel: the last holder sees every other holder's writes to the block before reusing it.
  if (meta(tp)->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  g_pool_lock.lock();
  if (g_pooled < kMaxPooled) {
    meta(tp)->next_free = g_pool;
    g_pool = tp;
    ++g_pooled;
    g_pool_lock.unlock();
    return;
  }
  g_pool_lock.unlock();
  char* mem = meta(tp)->mem;
  g_deallocate_tls(tp, false);  // the DTV and dynamically allocated TLS blocks
  std::free(mem);
}

// The running fiber's stack as glibc describes a thread's: the block includes the guard area
// below the usable stack (pthread_getattr_np reports stackblock + size as the top, size minus
// guardsize as the size, reported_guardsize as the guard). An unguarded fiber stack still
// reports one page of guard: Rust's std refuses to start a thread whose guard size is 0.
void set_stack_fields(char* tp) {
  void* lo = nullptr;
  std::size_t size = 0, guard = 0;
  detail::current_fiber_stack(&lo, &size, &guard);
  at<char*>(tp, kStackblock) = static_cast<char*>(lo) - guard;
  at<std::size_t>(tp, kStackblockSize) = size + guard;
  at<std::size_t>(tp, kGuardsize) = guard;
  at<std::size_t>(tp, kReportedGuardsize) = guard ? guard : std::size_t(getpagesize());
}

// glibc's SIGSETXID handler (set*id broadcasts: nptl/nptl_setxid.c) clears the flag in
// THREAD_SELF's descriptor, and the caller re-signals until the *listed* descriptor of every
// task is clear. A worker running a fiber-thread identity would clear the identity's flag
// instead, for ever (a livelock, also when the caller itself is a fiber-thread: it signals
// its own task). The trampoline runs glibc's handler with the task's own descriptor as the
// thread pointer, and restores the fiber's afterwards.
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  unsigned long mask;
};
constexpr int kSigSetxid = 33;  // SIGSETXID: the second kernel RT signal, glibc-internal
void (*g_glibc_setxid)(int, siginfo_t*, void*) = nullptr;

void write_fs(char* tp) {
  if (g_write == Write::kWrfsbase) {
    asm volatile("wrfsbase %0" : : "r"(tp) : "memory");
  } else {
    long ret;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "0"(long(SYS_arch_prctl)), "D"(long(0x1002)), "S"(tp)
                 : "rcx", "r11", "memory");
    (void)ret;
  }
}

__attribute__((noinline)) void call_glibc_setxid(int sig, siginfo_t* si, void* ctx) {
  g_glibc_setxid(sig, si, ctx);
}

void setxid_trampoline(int sig, siginfo_t* si, void* ctx) {
  char* cur = read_tp();
  auto* own = static_cast<char*>(detail::own_thread_pointer(cur));
  if (!own || own == cur) {
    call_glibc_setxid(sig, si, ctx);
    return;
  }
  write_fs(own);
  call_glibc_setxid(sig, si, ctx);
  write_fs(cur);
}

long raw_rt_sigaction(int sig, const KernelSigaction* act, KernelSigaction* old) {
  long ret;
  register long r10 asm("r10") = 8;  // sizeof the kernel's sigset
  asm volatile("syscall"
               : "=a"(ret)
               : "0"(long(SYS_rt_sigaction)), "D"(long(sig)), "S"(act), "d"(old), "r"(r10)
               : "rcx", "r11", "memory");
  return ret;
}

// glibc's sigaction refuses SIGSETXID; the raw call keeps glibc's flags, mask and restorer.
// glibc installs its handler with the first pthread_create (late_init), so this runs on the
// main fiber, after the runtime's threads exist.
bool wrap_setxid_handler() {
  KernelSigaction old{};
  if (raw_rt_sigaction(kSigSetxid, nullptr, &old) != 0) return false;
  if (!(old.flags & SA_SIGINFO) || old.handler == reinterpret_cast<void*>(SIG_DFL) ||
      old.handler == reinterpret_cast<void*>(SIG_IGN))
    return false;
  if (old.handler == reinterpret_cast<void*>(&setxid_trampoline)) return true;
  g_glibc_setxid = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(old.handler);
  KernelSigaction act = old;
  act.handler = reinterpret_cast<void*>(&setxid_trampoline);
  return raw_rt_sigaction(kSigSetxid, &act, nullptr) == 0;
}

void sched0_entered() {  // on worker 0's scheduler identity, before its loop
  errno = 0;
  uselocale(LC_GLOBAL_LOCALE);
}

void release_running(void* p) {
  auto* tp = static_cast<char*>(p);
  if (tp == g_main_tp) return;
  drop(tp);
}

}  // namespace

bool init(Setting s) noexcept {
  g_main_tp = read_tp();
  if (s == Setting::kShared) return false;
  bool fsgsbase = (getauxval(AT_HWCAP2) & 2) != 0;  // HWCAP2_FSGSBASE
  if (s == Setting::kWrfsbase && !fsgsbase) return false;
  g_write = (s == Setting::kArchPrctl || !fsgsbase) ? Write::kArchPrctl : Write::kWrfsbase;
  if (!check_layout()) return false;
  g_allocate_tls = private_fn<AllocateTls>("_dl_allocate_tls");
  g_allocate_tls_init = private_fn<AllocateTlsInit>("_dl_allocate_tls_init");
  g_deallocate_tls = private_fn<DeallocateTls>("_dl_deallocate_tls");
  g_call_tls_dtors = private_fn<void (*)()>("__call_tls_dtors");
  auto get_info = private_fn<GetTlsStaticInfo>("_dl_get_tls_static_info");
  if (!g_allocate_tls || !g_allocate_tls_init || !g_deallocate_tls || !get_info) return false;
  get_info(&g_static_size, &g_static_align);
  if (g_static_align < 64) g_static_align = 64;
  if (g_static_size < std::size_t(kTcbSize) || g_static_size % 64 != 0) return false;
  LibcTls libc;
  dl_iterate_phdr(find_libc_tls, &libc);
  if (!libc.data) return false;
  g_libc_off = g_main_tp - static_cast<char*>(libc.data);
  g_libc_size = libc.size;
  if (void* resp = dlvsym(RTLD_DEFAULT, "__resp", "GLIBC_PRIVATE"))
    g_resp_off = static_cast<char*>(resp) - g_main_tp;
  // Worker 0's scheduler context: an identity of its own with glibc's "main thread" stack
  // semantics (stackblock NULL: the scheduler does run on the process's initial stack).
  g_sched0_tp = fresh();
  if (!g_sched0_tp) return false;
  init_fields(g_sched0_tp, g_main_tp, nullptr);
  meta(g_sched0_tp)->refs.store(1, std::memory_order_relaxed);
  if (g_resp_off) at<void*>(g_sched0_tp, g_resp_off) = g_sched0_tp + kRes;
  if (!detail::enable_thread_pointers(int(g_write), kTid, &release_running)) return false;
  detail::set_scheduler0_tp(g_sched0_tp, &sched0_entered);
  g_enabled = true;
  return true;
}

bool enabled() noexcept {
  return g_enabled;
}

const char* mode_name() noexcept {
  if (!g_enabled) return "shared";
  return g_write == Write::kWrfsbase ? "wrfsbase" : "arch_prctl";
}

char* main_tp() noexcept {
  return g_main_tp;
}

void main_fiber_started(ShimThread* main) noexcept {
  if (!g_enabled) return;
  if (!wrap_setxid_handler())
    std::fprintf(stderr,
                 "green: warning: glibc's SIGSETXID handler not found: setuid() and "
                 "friends from fiber-threads may not return\n");
  char* tp = g_main_tp;
  for (int i = 0; i < 4; ++i) g_main_saved[i] = at<void*>(tp, kStackblock + 8 * i);
  g_main_saved[4] = at<void*>(tp, kStartRoutine);
  g_main_saved[5] = at<void*>(tp, kArg);
  set_stack_fields(tp);
  at<void*>(tp, kStartRoutine) = reinterpret_cast<void*>(&marker);
  at<ShimThread*>(tp, kArg) = main;
}

void main_fiber_done() noexcept {
  if (!g_enabled) return;
  char* tp = g_main_tp;
  for (int i = 0; i < 4; ++i) at<void*>(tp, kStackblock + 8 * i) = g_main_saved[i];
  at<void*>(tp, kStartRoutine) = g_main_saved[4];
  at<void*>(tp, kArg) = g_main_saved[5];
}

char* create(ShimThread* t) noexcept {
  g_pool_lock.lock();
  char* tp = g_pool;
  if (tp) {
    g_pool = meta(tp)->next_free;
    --g_pooled;
  }
  g_pool_lock.unlock();
  if (tp) {
    reinit(tp);
  } else if (!(tp = fresh())) {
    return nullptr;
  }
  init_fields(tp, read_tp(), t);
  meta(tp)->refs.store(2, std::memory_order_relaxed);  // running + pthread_t
  return tp;
}

void unref(char* tp) noexcept {
  if (tp && tp != g_main_tp) drop(tp);
}

ShimThread* owner(pthread_t pt) noexcept {
  if (!g_enabled || !pt) return nullptr;
  char* p = reinterpret_cast<char*>(pt);
  if (at<void*>(p, kStartRoutine) != reinterpret_cast<void*>(&marker)) return nullptr;
  return at<ShimThread*>(p, kArg);
}

void on_start(char* tp) noexcept {
  set_stack_fields(tp);
  if (g_resp_off) at<void*>(tp, g_resp_off) = tp + kRes;
  errno = 0;
  h_errno = 0;
  uselocale(LC_GLOBAL_LOCALE);  // also sets the ctype table pointers (NULL in the image)
}

void on_exit(char*) noexcept {
  if (g_call_tls_dtors) g_call_tls_dtors();  // C++ thread_local destructors, innermost first
  dlerror();  // the first marks a pending message delivered, the second frees it
  dlerror();
}

namespace {
// glibc's cancelhandling bits (nptl/descr.h).
constexpr int kCancelDisabled = 1, kCancelAsync = 2, kCanceling = 4, kCanceled = 8, kExiting = 16,
              kTerminated = 32;
std::atomic<int>& cancelhandling(char* tp) {
  return *reinterpret_cast<std::atomic<int>*>(tp + kCancelHandling);
}
bool is_fiber_identity(char* tp) {
  return tp != g_main_tp && at<void*>(tp, kStartRoutine) == reinterpret_cast<void*>(&marker);
}
}  // namespace

void cancel_point() {
  if (!g_enabled) return;
  char* tp = read_tp();
  if (!is_fiber_identity(tp)) return;
  int v = cancelhandling(tp).load(std::memory_order_relaxed);
  if ((v & (kCancelDisabled | kCanceled | kExiting | kTerminated)) == kCanceled)
    pthread_testcancel();  // glibc: result = PTHREAD_CANCELED, unwind
}

bool mark_cancel(char* tp) {
  auto& ch = cancelhandling(tp);
  // Relaxed, as glibc's pthread_cancel: the target reads the bits at its cancellation points;
  // the wake-up that follows (Task::cancel) orders them for a parked target.
  int old = ch.load(std::memory_order_relaxed);
  int nv;
  do {
    nv = old | kCanceling | kCanceled;
    if (nv == old) return false;  // already cancelled
  } while (!ch.compare_exchange_weak(old, nv, std::memory_order_relaxed));
  if (nv & (kExiting | kTerminated | kCancelDisabled)) return false;
  if (tp == read_tp()) {
    if (nv & kCancelAsync) pthread_testcancel();  // self, asynchronous: acts now
    return false;
  }
  return true;
}

void* run_with_unwind_buf(char* tp, void* (*fn)(void*), void* arg) noexcept {
  // What start_thread does: glibc's pthread_exit and acted-on cancellation unwind the stack
  // (running cleanup handlers and C++ destructors) and longjmp to the buffer in
  // cleanup_jmp_buf. The public __pthread_unwind_buf_t has that layout (pthread.h).
  __pthread_unwind_buf_t buf;
  std::memset(&buf, 0, sizeof buf);
  if (__sigsetjmp(reinterpret_cast<__jmp_buf_tag*>(static_cast<void*>(buf.__cancel_jmp_buf)), 0)) {
    char* self = read_tp();  // still this fiber's identity
    at<void*>(self, kCleanupJmpBuf) = nullptr;
    return at<void*>(self, kResult);
  }
  at<void*>(tp, kCleanupJmpBuf) = &buf;
  void* r = fn(arg);
  at<void*>(tp, kCleanupJmpBuf) = nullptr;
  return r;
}

}  // namespace green::shim::tcb
