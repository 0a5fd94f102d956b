// Options: turns Options + GREEN_* environment variables into the effective configuration.
// Every malformed value is rejected with a one-line message that names the variable and
// what it accepts; nothing is silently clamped. The parsers and limits live in
// option_parse.hpp, shared with greenrun's flags.
#include "green/options.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "option_parse.hpp"

namespace green {

namespace {

using detail::kMaxStackSize;
using detail::kMaxWorkers;
using detail::kMinStackSize;

constexpr std::size_t kDefaultStack = 256 * 1024;
constexpr long kDefaultBlockedMs = 1000;
constexpr long kDefaultSliceMs = 10;
// OS threads that may run fibers, the workers' own included. A hand-off keeps the stuck fiber
// on its own thread until it next enters the runtime, so this bounds how many fibers may be
// stuck at once without holding the others: 256 covers the thread pools of the programs we
// run (CPython, redis, node, memcached use well under 64), and costs nothing until used (one
// OS thread per hand-off in flight, ~20 KiB RSS and an 8 MiB virtual stack each).
constexpr std::size_t kDefaultMaxThreads = 256;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

[[noreturn]] void bad(const std::string& var, const std::string& value, const char* accepted) {
  throw std::invalid_argument("green: invalid " + var + "=\"" + value + "\": expected " + accepted);
}

std::size_t round_to_page(std::size_t n) {
  std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

// An enum-valued variable: one of the names in `choices`; `fallback` if unset.
template <class E>
E env_choice(const char* var, E fallback, std::initializer_list<std::pair<const char*, E>> choices,
             const char* accepted) {
  const char* v = env(var);
  if (!v) return fallback;
  for (const auto& [name, value] : choices) {
    if (std::string_view(v) == name) return value;
  }
  bad(var, v, accepted);
}

std::size_t resolve_workers(std::size_t requested) {
  if (requested > kMaxWorkers) {
    throw std::invalid_argument("green: Options::workers=" + std::to_string(requested) +
                                ": expected 1 to 1024");
  }
  if (requested != 0) return requested;
  if (const char* v = env("GREEN_WORKERS")) {
    unsigned long n = 0;
    if (!detail::parse_uint(v, 1, kMaxWorkers, &n))
      bad("GREEN_WORKERS", v, "an integer from 1 to 1024");
    return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? hc : 1;
}

std::size_t resolve_stack_size(std::size_t requested) {
  std::size_t n = requested;
  if (n == 0) {
    n = kDefaultStack;
    if (const char* v = env("GREEN_STACK_SIZE"); v && !detail::parse_stack_size(v, &n))
      bad("GREEN_STACK_SIZE", v, "a size from 16K to 1G (bytes, or with suffix K, M, G)");
  } else if (n < kMinStackSize || n > kMaxStackSize) {
    throw std::invalid_argument("green: Options::stack_size=" + std::to_string(n) +
                                ": expected 16K to 1G");
  }
  return round_to_page(n);
}

// GREEN_DUMP_SIGNAL: "off"/"0", a number 1..NSIG-1, or a name with or without "SIG".
int resolve_dump_signal() {
  const char* v = env("GREEN_DUMP_SIGNAL");
  if (!v) return 0;
  std::string_view s(v);
  if (s == "off") return 0;
  unsigned long n = 0;
  if (s == "0") return 0;
  if (detail::parse_uint(s, 1, NSIG - 1, &n)) return int(n);
  if (s.substr(0, 3) == "SIG") s.remove_prefix(3);
  static const struct {
    const char* n;
    int s;
  } kSignals[] = {{"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},   {"HUP", SIGHUP},
                  {"INT", SIGINT},   {"TERM", SIGTERM}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR}};
  for (const auto& e : kSignals) {
    if (s == e.n) return e.s;
  }
  bad("GREEN_DUMP_SIGNAL", v,
      "off, a signal number, or one of SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP, SIGINT, SIGTERM, "
      "SIGWINCH, SIGPWR");
}

long resolve_blocked_ms() {
  const char* v = env("GREEN_BLOCKED_MS");
  if (!v) return kDefaultBlockedMs;
  unsigned long n = 0;
  if (!detail::parse_uint(v, 0, detail::kMaxBlockedMs, &n))
    bad("GREEN_BLOCKED_MS", v, "milliseconds from 0 (off) to 3600000");
  return long(n);
}

long resolve_slice_ms(long requested) {
  if (requested > long(detail::kMaxSliceMs)) {
    throw std::invalid_argument("green: Options::slice_ms=" + std::to_string(requested) +
                                ": expected 0 (off) to 60000");
  }
  if (requested >= 0) return requested;
  const char* v = env("GREEN_SLICE_MS");
  if (!v) return kDefaultSliceMs;
  unsigned long n = 0;
  if (!detail::parse_uint(v, 0, detail::kMaxSliceMs, &n))
    bad("GREEN_SLICE_MS", v, "milliseconds from 0 (off) to 60000");
  return long(n);
}

std::size_t resolve_max_threads(std::size_t requested) {
  if (requested > detail::kMaxThreads) {
    throw std::invalid_argument("green: Options::max_threads=" + std::to_string(requested) +
                                ": expected 1 to 100000");
  }
  if (requested != 0) return requested;
  const char* v = env("GREEN_MAX_THREADS");
  if (!v) return kDefaultMaxThreads;
  unsigned long n = 0;
  if (!detail::parse_uint(v, 1, detail::kMaxThreads, &n))
    bad("GREEN_MAX_THREADS", v, "an integer from 1 to 100000");
  return n;
}

}  // namespace

bool parse_size(const std::string& text, std::size_t* out) {
  return detail::parse_size(text, out);
}

Options resolve_options(Options o) {
  o.workers = resolve_workers(o.workers);
  o.stack_size = resolve_stack_size(o.stack_size);
  if (o.stack_guard == StackGuard::kDefault) {
    o.stack_guard = env_choice("GREEN_STACK_GUARD", StackGuard::kAuto,
                               {{"auto", StackGuard::kAuto},
                                {"always", StackGuard::kAlways},
                                {"never", StackGuard::kNever}},
                               "one of auto, always, never");
  }
  if (o.dump_signal < 0) o.dump_signal = resolve_dump_signal();
  if (o.deadlock == DeadlockPolicy::kDefault) {
    o.deadlock = env_choice("GREEN_DEADLOCK", DeadlockPolicy::kExit,
                            {{"exit", DeadlockPolicy::kExit},
                             {"warn", DeadlockPolicy::kWarn},
                             {"off", DeadlockPolicy::kOff}},
                            "one of exit, warn, off");
  }
  if (o.blocked_ms < 0) o.blocked_ms = resolve_blocked_ms();
  o.slice_ms = resolve_slice_ms(o.slice_ms);
  o.max_threads = resolve_max_threads(o.max_threads);
  return o;
}

}  // namespace green
