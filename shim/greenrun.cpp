// greenrun: runs an unmodified program with libgreen_preload.so, so its main() and every
// thread it creates run as green fibers.
//
//   greenrun [--workers N] [--stack-size SIZE] [--threads fibers|os] [--stats]
//            [--dump-on SIGNAL] [--deadlock exit|warn|off] [--blocked-ms N] [--max-threads N]
//            -- PROGRAM ARGS...
//
// It validates the flags (a bad flag or value: one line on stderr, exit status 2), exports the
// GREEN_* settings, prepends the preload library to LD_PRELOAD (keeping existing entries), and
// execs PROGRAM (PATH is searched). The library is found, in order: $GREEN_PRELOAD; next to
// this executable; in GREENRUN_RELATIVE_LIBDIR relative to it (the installed layout); in
// ../lib. Exit status 127 if PROGRAM cannot be executed (as env(1) does).
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// The runtime's own parsers and limits (header-only: greenrun does not link libgreen), so a
// flag value greenrun accepts is one the preload library accepts.
#include "../runtime/src/option_parse.hpp"

#ifndef GREENRUN_RELATIVE_LIBDIR
#define GREENRUN_RELATIVE_LIBDIR "../lib"
#endif

namespace {

constexpr const char* kLib = "libgreen_preload.so";

const char* kHelp =
    "usage: greenrun [OPTIONS] -- PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM with libgreen_preload.so: main() runs on a green fiber, every\n"
    "pthread_create makes a fiber, and blocking calls made on fibers (sockets, pipes,\n"
    "poll/select/epoll_wait, sleeps, pthread mutexes/condvars/rwlocks, semaphores,\n"
    "getaddrinfo) park the fiber instead of the OS thread. See docs/shim.md.\n"
    "\n"
    "Options (each sets the environment variable shown; the variable may also be set\n"
    "directly):\n"
    "  --workers N         GREEN_WORKERS     worker OS threads, 1..1024\n"
    "                                        (default: number of CPUs)\n"
    "  --stack-size SIZE   GREEN_STACK_SIZE  fiber stack size in bytes, suffix K/M/G,\n"
    "                                        16K..1G (default 256K; a stack size set with\n"
    "                                        pthread_attr_setstacksize wins)\n"
    "  --threads MODE      GREEN_THREADS     fibers: pthread_create makes fibers (default)\n"
    "                                        os: pthread_create makes real OS threads; only\n"
    "                                        main() runs on a fiber\n"
    "  --stats             GREEN_STATS=1     print a one-line summary on stderr at exit\n"
    "  --dump-on SIGNAL    GREEN_DUMP_SIGNAL dump every fiber (id, name, state, what it waits\n"
    "                                        on) to stderr on SIGNAL, e.g. SIGQUIT (default off)\n"
    "  --deadlock MODE     GREEN_DEADLOCK    exit|warn|off: when every fiber is blocked and\n"
    "                                        nothing can wake one, print a report and a dump\n"
    "                                        and exit with status 2 (default exit)\n"
    "  --blocked-ms N      GREEN_BLOCKED_MS  report a worker stuck in one fiber for N ms\n"
    "                                        (0 = off; default 1000)\n"
    "  --max-threads N     GREEN_MAX_THREADS OS threads that may run fibers, workers\n"
    "                                        included, 1..100000 (default 256): a worker\n"
    "                                        stuck in one thread's code goes to a spare\n"
    "  -h, --help          show this help\n"
    "\n"
    "Other settings read from the environment:\n"
    "  GREEN_STACK_GUARD   auto|always|never guard page under each fiber stack (default auto)\n"
    "  GREEN_THREAD_TLS    auto|shared|wrfsbase|arch_prctl: TLS and thread identity of each\n"
    "                      fiber-thread its own (auto, default) or its worker's (shared)\n"
    "  GREEN_PRELOAD       path of libgreen_preload.so (default: found next to greenrun,\n"
    "                      or in ../lib)\n"
    "\n"
    "Exit status: PROGRAM's; 2 for a bad option or GREEN_* value; 127 if PROGRAM cannot\n"
    "be run.\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "greenrun: %s (see greenrun --help)\n", msg.c_str());
  std::exit(2);
}

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string p(buf);
  auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

std::string find_library() {
  if (const char* env = std::getenv("GREEN_PRELOAD"); env && *env) {
    if (access(env, R_OK) != 0) usage_error(std::string("GREEN_PRELOAD=") + env + ": not readable");
    char real[PATH_MAX];
    return realpath(env, real) ? real : env;
  }
  std::string dir = self_dir();
  for (const std::string& cand :
       {dir + "/" + kLib, dir + "/" GREENRUN_RELATIVE_LIBDIR "/" + kLib, dir + "/../lib/" + kLib}) {
    char real[PATH_MAX];
    if (access(cand.c_str(), R_OK) == 0 && realpath(cand.c_str(), real)) return real;
  }
  std::fprintf(stderr, "greenrun: cannot find %s next to %s or in its ../lib; set GREEN_PRELOAD\n",
               kLib, dir.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int i = 1;
  std::vector<std::pair<const char*, std::string>> env;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "-h" || a == "--help") {
      std::fputs(kHelp, stdout);
      return 0;
    }
    if (a == "--stats") {
      env.emplace_back("GREEN_STATS", "1");
      continue;
    }
    std::string name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    if (name == "--workers" || name == "--stack-size" || name == "--threads" ||
        name == "--dump-on" || name == "--deadlock" || name == "--blocked-ms" ||
        name == "--max-threads") {
      if (!has_value) {
        if (i + 1 >= argc) usage_error("option " + name + " needs a value");
        value = argv[++i];
      }
      if (name == "--workers") {
        if (unsigned long n; !green::detail::parse_uint(value, 1, green::detail::kMaxWorkers, &n))
          usage_error("invalid --workers '" + value + "': expected an integer 1..1024");
        env.emplace_back("GREEN_WORKERS", value);
      } else if (name == "--stack-size") {
        if (std::size_t n; !green::detail::parse_stack_size(value, &n))
          usage_error("invalid --stack-size '" + value +
                      "': expected bytes with optional K/M/G suffix, 16K..1G");
        env.emplace_back("GREEN_STACK_SIZE", value);
      } else if (name == "--threads") {
        if (value != "fibers" && value != "os")
          usage_error("invalid --threads '" + value + "': expected fibers or os");
        env.emplace_back("GREEN_THREADS", value);
      } else if (name == "--deadlock") {
        if (value != "exit" && value != "warn" && value != "off")
          usage_error("invalid --deadlock '" + value + "': expected exit, warn or off");
        env.emplace_back("GREEN_DEADLOCK", value);
      } else if (name == "--blocked-ms") {
        if (unsigned long n; !green::detail::parse_uint(value, 0, green::detail::kMaxBlockedMs, &n))
          usage_error("invalid --blocked-ms '" + value + "': expected 0 (off) to 3600000");
        env.emplace_back("GREEN_BLOCKED_MS", value);
      } else if (name == "--max-threads") {
        if (unsigned long n; !green::detail::parse_uint(value, 1, green::detail::kMaxThreads, &n))
          usage_error("invalid --max-threads '" + value + "': expected an integer 1..100000");
        env.emplace_back("GREEN_MAX_THREADS", value);
      } else {  // --dump-on: the preload library validates the name and exits 2 if bad
        if (value.empty()) usage_error("--dump-on needs a signal, e.g. SIGQUIT");
        env.emplace_back("GREEN_DUMP_SIGNAL", value);
      }
      continue;
    }
    if (a.rfind("-", 0) == 0) usage_error("unknown option '" + a + "'");
    break;  // first non-option: the program (the "--" is optional)
  }
  if (i >= argc) usage_error("no program given");
  std::string lib = find_library();
  for (auto& [k, v] : env) setenv(k, v.c_str(), 1);
  std::string preload = lib;
  if (const char* old = std::getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  int e = errno;
  std::fprintf(stderr, "greenrun: cannot execute '%s': %s\n", argv[i], std::strerror(e));
  return e == ENOENT ? 127 : 126;
}
