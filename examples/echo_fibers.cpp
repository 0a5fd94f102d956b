// echo_fibers: the echo server on green fibers, with green::net.
//
// What it demonstrates: the code of echo_threads.c (one straight-line blocking loop per
// connection) with the cost profile of echo_libuv.c (one event loop per worker, no kernel
// thread per connection). accept() and read() park only the calling fiber; each worker's
// libuv loop wakes it when its socket is ready. A connection costs one fiber stack (256 KiB
// virtual by default, only touched pages resident) instead of one OS thread.
//
// Protocol: every byte received is sent back. Flags: --port N (0 picks a free port),
// --host ADDR (default 127.0.0.1), --workers N (default: GREEN_WORKERS or the core count).
// The first line on stdout is "listening on PORT".
#include <csignal>
#include <cstdio>
#include <system_error>

#include "example_util.hpp"
#include "green/green.hpp"

int main(int argc, char** argv) {
  example::Flags flags(argc, argv, "[--port N] [--host 127.0.0.1] [--workers N]");
  const std::string host = flags.str("host", "127.0.0.1");
  const long port = flags.num("port", 0);
  green::Options opts;
  opts.workers = static_cast<std::size_t>(flags.num("workers", 0));
  flags.done();
  std::signal(SIGPIPE, SIG_IGN);
  example::raise_nofile(1 << 20);

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
            // EMFILE and friends: report, back off briefly, keep serving.
            std::fprintf(stderr, "accept: %s\n", e.what());
            green::this_fiber::sleep_for(std::chrono::milliseconds(1));
            continue;
          }
          green::spawn([c = std::move(conn)]() mutable {
            try {
              c.set_nodelay(true);
              char buf[16384];
              while (std::size_t n = c.read(buf, sizeof buf)) c.write_all(buf, n);
            } catch (const std::system_error&) {
              // peer reset: just drop the connection
            }
          }).detach();
        }
        return 0;
      },
      opts);
}
