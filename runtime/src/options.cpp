// Options: turns Options + GREEN_* environment variables into the effective configuration.
// Every malformed value is rejected with a one-line message that names the variable and
// what it accepts; nothing is silently clamped.
#include "green/options.hpp"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

namespace green {

namespace {

constexpr std::size_t kMinStack = 16 * 1024;
constexpr std::size_t kMaxStack = std::size_t(1) << 30;
constexpr std::size_t kDefaultStack = 256 * 1024;
constexpr std::size_t kMaxWorkers = 1024;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

[[noreturn]] void bad(const std::string& var, const std::string& value, const char* accepted) {
  throw std::invalid_argument("green: invalid " + var + "=\"" + value + "\": expected " +
                              accepted);
}

std::size_t round_to_page(std::size_t n) {
  std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

}  // namespace

bool parse_size(const std::string& text, std::size_t* out) {
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return false;
  std::size_t i = 0;
  unsigned long long v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    unsigned d = static_cast<unsigned>(text[i] - '0');
    if (v > (~0ull - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  unsigned shift = 0;
  if (i < text.size()) {
    switch (std::toupper(static_cast<unsigned char>(text[i]))) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      default: return false;
    }
    ++i;
    if (i < text.size() && (text[i] == 'i' || text[i] == 'I')) ++i;  // "KiB" style
    if (i < text.size() && (text[i] == 'b' || text[i] == 'B')) ++i;
  }
  if (i != text.size()) return false;
  if (shift && v > (~0ull >> shift)) return false;
  *out = static_cast<std::size_t>(v << shift);
  return true;
}

Options resolve_options(Options o) {
  if (o.workers == 0) {
    if (const char* v = env("GREEN_WORKERS")) {
      std::string s(v);
      char* end = nullptr;
      errno = 0;
      unsigned long n = std::strtoul(v, &end, 10);
      if (!std::isdigit(static_cast<unsigned char>(s[0])) || *end != '\0' || errno != 0 ||
          n < 1 || n > kMaxWorkers)
        bad("GREEN_WORKERS", s, "an integer from 1 to 1024");
      o.workers = n;
    } else {
      unsigned hc = std::thread::hardware_concurrency();
      o.workers = hc ? hc : 1;
    }
  } else if (o.workers > kMaxWorkers) {
    throw std::invalid_argument("green: Options::workers=" + std::to_string(o.workers) +
                                ": expected 1 to 1024");
  }

  if (o.stack_size == 0) {
    if (const char* v = env("GREEN_STACK_SIZE")) {
      std::size_t n = 0;
      if (!parse_size(v, &n) || n < kMinStack || n > kMaxStack)
        bad("GREEN_STACK_SIZE", v, "a size from 16K to 1G (bytes, or with suffix K, M, G)");
      o.stack_size = n;
    } else {
      o.stack_size = kDefaultStack;
    }
  } else if (o.stack_size < kMinStack || o.stack_size > kMaxStack) {
    throw std::invalid_argument("green: Options::stack_size=" + std::to_string(o.stack_size) +
                                ": expected 16K to 1G");
  }
  o.stack_size = round_to_page(o.stack_size);

  if (o.stack_guard == StackGuard::kDefault) {
    o.stack_guard = StackGuard::kAuto;
    if (const char* v = env("GREEN_STACK_GUARD")) {
      std::string s(v);
      if (s == "auto") o.stack_guard = StackGuard::kAuto;
      else if (s == "always") o.stack_guard = StackGuard::kAlways;
      else if (s == "never") o.stack_guard = StackGuard::kNever;
      else bad("GREEN_STACK_GUARD", s, "one of auto, always, never");
    }
  }
  if (o.dump_signal < 0) {
    o.dump_signal = 0;
    if (const char* v = env("GREEN_DUMP_SIGNAL")) {
      std::string s(v);
      int sig = 0;
      if (s == "off" || s == "0") {
        sig = 0;
      } else if (std::isdigit(static_cast<unsigned char>(s[0]))) {
        char* end = nullptr;
        long n = std::strtol(v, &end, 10);
        sig = (*end == '\0' && n > 0 && n < NSIG) ? int(n) : -1;
      } else {
        std::string name = s.rfind("SIG", 0) == 0 ? s.substr(3) : s;
        static const struct { const char* n; int s; } kSignals[] = {
            {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
            {"INT", SIGINT},   {"TERM", SIGTERM}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR}};
        sig = -1;
        for (auto& e : kSignals) {
          if (name == e.n) sig = e.s;
        }
      }
      if (sig < 0) {
        bad("GREEN_DUMP_SIGNAL", s,
            "off, a signal number, or one of SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP, SIGINT, SIGTERM, "
            "SIGWINCH, SIGPWR");
      }
      o.dump_signal = sig;
    }
  }
  if (o.deadlock == DeadlockPolicy::kDefault) {
    o.deadlock = DeadlockPolicy::kExit;
    if (const char* v = env("GREEN_DEADLOCK")) {
      std::string s(v);
      if (s == "exit") o.deadlock = DeadlockPolicy::kExit;
      else if (s == "warn") o.deadlock = DeadlockPolicy::kWarn;
      else if (s == "off") o.deadlock = DeadlockPolicy::kOff;
      else bad("GREEN_DEADLOCK", s, "one of exit, warn, off");
    }
  }
  if (o.blocked_ms < 0) {
    o.blocked_ms = 1000;
    if (const char* v = env("GREEN_BLOCKED_MS")) {
      std::string s(v);
      char* end = nullptr;
      errno = 0;
      long n = std::strtol(v, &end, 10);
      if (!std::isdigit(static_cast<unsigned char>(s[0])) || *end != '\0' || errno != 0 ||
          n > 3600000)
        bad("GREEN_BLOCKED_MS", s, "milliseconds from 0 (off) to 3600000");
      o.blocked_ms = n;
    }
  }
  return o;
}

}  // namespace green
