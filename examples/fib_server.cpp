// fib_server: a TCP server answering fib(n) per line, for CPU-bound vs I/O-bound work.
//
// What it demonstrates: fibers are cooperative. A fiber computing fib(40) never blocks, so it
// never yields: with --mode inline every other fiber on its worker waits until it is done
// (the same effect as Python's GIL or a busy Node.js callback). More workers (M:N) help only
// the connections whose fibers live on other workers, since a started fiber stays on its
// worker. --mode offload runs the computation through green::offload on libuv's thread pool:
// the requesting fiber parks and its worker keeps serving short requests. The demo measures
// all three with fib_client.
//
// Protocol: each request line is a decimal n (0..50); the reply line is fib(n) in decimal,
// or "error: ..." for anything else. Computed with the naive exponential recursion on
// purpose (fib(40) takes about half a second). Replies to pipelined requests are batched.
// Flags: --port N (0 picks), --host ADDR, --mode inline|offload, --workers N.
// First stdout line: "listening on PORT".
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>

#include "example_util.hpp"
#include "green/green.hpp"

namespace {

[[gnu::noinline]] std::uint64_t fib(int n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

bool parse_n(const std::string& s, int* n) {
  if (s.empty() || s.size() > 2) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *n = std::atoi(s.c_str());
  return *n <= 50;
}

}  // namespace

int main(int argc, char** argv) {
  example::Flags flags(argc, argv,
                       "[--port N] [--host 127.0.0.1] [--mode inline|offload] [--workers N]");
  const std::string host = flags.str("host", "127.0.0.1");
  const long port = flags.num("port", 0);
  const std::string mode = flags.str("mode", "inline");
  green::Options opts;
  opts.workers = static_cast<std::size_t>(flags.num("workers", 1));
  flags.done();
  if (mode != "inline" && mode != "offload") flags.fail("--mode must be inline or offload");
  const bool offload = mode == "offload";
  std::signal(SIGPIPE, SIG_IGN);

  return green::run(
      [&] {
        auto listener = green::net::TcpListener::bind(host, static_cast<std::uint16_t>(port));
        std::printf("listening on %u\n", listener.port());
        std::fflush(stdout);
        for (;;) {
          green::net::TcpStream conn;
          try {
            conn = listener.accept();
          } catch (const std::system_error& e) {
            std::fprintf(stderr, "accept: %s\n", e.what());
            green::this_fiber::sleep_for(std::chrono::milliseconds(1));
            continue;
          }
          green::spawn([c = std::move(conn), offload]() mutable {
            try {
              c.set_nodelay(true);
              example::LineReader<green::net::TcpStream> in(c);
              std::string line, out;
              while (in.read_line(line)) {
                int n = 0;
                if (!parse_n(line, &n)) {
                  out += "error: expected an integer 0..50\n";
                } else if (offload) {
                  out += std::to_string(green::offload([n] { return fib(n); })) + "\n";
                } else {
                  out += std::to_string(fib(n)) + "\n";
                }
                if (!in.has_line()) {  // flush once the pipelined batch is answered
                  c.write_all(out);
                  out.clear();
                }
              }
            } catch (const std::system_error&) {
            }
          }).detach();
        }
        return 0;
      },
      opts);
}
