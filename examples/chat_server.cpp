// chat_server: a line-based chat room; every line a client sends is broadcast to everyone.
//
// What it demonstrates: sharing by communicating. One hub fiber owns the set of clients and
// is the only code that touches it; connections talk to it through a Channel (join, leave,
// say). Each client has a reader fiber (socket -> hub) and a writer fiber (its own bounded
// outbox channel -> socket), so a slow client never blocks the hub: when its outbox is full
// the hub drops that client instead of waiting. Ctrl-C (SIGINT/SIGTERM) is handled by a fiber:
// the signal handler only writes a byte to a self-pipe, which the fiber waits on with
// green::io::wait_readable; it then closes the listener and the hub, the hub closes every
// outbox, writers say goodbye and shut their sockets, readers see end of stream, and main
// returns 0 once every connection fiber has finished.
//
// Protocol: the server sends "* welcome, you are client ID" on connect, then lines "ID: text"
// for every message (the sender's own included) and "* ..." notices. Flags: --port N
// (0 picks), --host ADDR, --workers N, --outbox N (per-client queue, default 4096 lines).
// First stdout line: "listening on PORT".
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "example_util.hpp"
#include "green/green.hpp"

namespace {

using Outbox = green::Channel<std::string>;

struct HubMsg {
  enum Kind { kJoin, kLeave, kSay } kind;
  std::uint64_t id;
  std::string text;
  std::shared_ptr<Outbox> outbox;  // kJoin only
};

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int) {
  int saved = errno;
  char b = 1;
  if (::write(g_signal_pipe[1], &b, 1) < 0) {
  }  // full pipe: a wake-up is already pending
  errno = saved;
}

// The only owner of the client set.
void hub(green::Channel<HubMsg>& in) {
  std::map<std::uint64_t, std::shared_ptr<Outbox>> clients;
  auto drop = [&](std::uint64_t id) {
    auto it = clients.find(id);
    if (it == clients.end()) return false;
    it->second->close();  // the writer drains what is queued, then shuts the socket
    clients.erase(it);
    return true;
  };
  auto broadcast = [&](const std::string& line) {
    std::vector<std::uint64_t> slow;
    for (auto& [id, box] : clients) {
      std::string copy = line;
      if (box->try_send(copy) == green::ChannelStatus::kFull) slow.push_back(id);
    }
    for (auto id : slow) {
      drop(id);
      std::fprintf(stderr, "chat: client %llu too slow, dropped\n",
                   static_cast<unsigned long long>(id));
    }
  };
  for (auto& m : in) {
    switch (m.kind) {
      case HubMsg::kJoin:
        m.outbox->try_send("* welcome, you are client " + std::to_string(m.id) + "\n");
        broadcast("* client " + std::to_string(m.id) + " joined\n");
        clients.emplace(m.id, std::move(m.outbox));
        break;
      case HubMsg::kLeave:
        if (drop(m.id)) broadcast("* client " + std::to_string(m.id) + " left\n");
        break;
      case HubMsg::kSay:
        broadcast(std::to_string(m.id) + ": " + m.text + "\n");
        break;
    }
  }
  // The hub channel was closed: shutdown.
  for (auto& [id, box] : clients) {
    box->try_send("* server shutting down\n");
    box->close();
  }
}

void client(green::net::TcpStream c, std::uint64_t id, green::Channel<HubMsg>& hub_in,
            std::size_t outbox_cap) {
  auto outbox = std::make_shared<Outbox>(outbox_cap);
  auto writer = green::spawn([&c, outbox] {
    try {
      for (auto& line : *outbox) c.write_all(line);
    } catch (const std::system_error&) {
    }
    try {
      c.shutdown(SHUT_RDWR);  // wakes our reader with end of stream
    } catch (const std::system_error&) {
    }
  });
  try {
    c.set_nodelay(true);
    hub_in.send({HubMsg::kJoin, id, {}, outbox});
    example::LineReader<green::net::TcpStream> in(c);
    std::string line;
    while (in.read_line(line)) hub_in.send({HubMsg::kSay, id, line, nullptr});
    hub_in.send({HubMsg::kLeave, id, {}, nullptr});
  } catch (const green::ChannelClosed&) {  // shutting down: the hub is gone
  } catch (const std::system_error&) {
    try {
      hub_in.send({HubMsg::kLeave, id, {}, nullptr});
    } catch (const green::ChannelClosed&) {
    }
  }
  outbox->close();  // in case the hub never saw us
  writer.join();    // the writer uses `c`: wait before it is destroyed
}

}  // namespace

int main(int argc, char** argv) {
  example::Flags flags(argc, argv, "[--port N] [--host 127.0.0.1] [--workers N] [--outbox N]");
  const std::string host = flags.str("host", "127.0.0.1");
  const long port = flags.num("port", 0);
  const auto outbox_cap = static_cast<std::size_t>(flags.num("outbox", 4096));
  green::Options opts;
  opts.workers = static_cast<std::size_t>(flags.num("workers", 0));
  flags.done();

  std::signal(SIGPIPE, SIG_IGN);
  if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("pipe2");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  return green::run(
      [&] {
        auto listener = green::net::TcpListener::bind(host, static_cast<std::uint16_t>(port));
        std::printf("listening on %u\n", listener.port());
        std::fflush(stdout);

        green::Channel<HubMsg> hub_in(1024);
        green::WaitGroup conns;
        std::atomic<bool> stopping{false};
        auto hub_fiber = green::spawn([&] { hub(hub_in); });
        auto signal_fiber = green::spawn([&] {
          green::io::wait_readable(g_signal_pipe[0]);
          std::fprintf(stderr, "chat: signal received, shutting down\n");
          stopping = true;
          listener.close();  // wakes the accept loop
          hub_in.close();    // the hub closes every outbox
        });

        std::uint64_t next_id = 1;
        while (!stopping) {
          green::net::TcpStream conn;
          try {
            conn = listener.accept();
          } catch (const std::system_error& e) {
            if (stopping) break;
            std::fprintf(stderr, "accept: %s\n", e.what());
            green::this_fiber::sleep_for(std::chrono::milliseconds(1));
            continue;
          }
          conns.add(1);
          green::spawn([&, c = std::move(conn), id = next_id++]() mutable {
            client(std::move(c), id, hub_in, outbox_cap);
            conns.done();
          }).detach();
        }
        signal_fiber.join();
        hub_fiber.join();
        if (!conns.wait_for(std::chrono::seconds(5))) {
          std::fprintf(stderr, "chat: %lld connections did not finish in 5 s\n",
                       static_cast<long long>(conns.count()));
          return 1;
        }
        std::printf("chat: shut down cleanly\n");
        return 0;
      },
      opts);
}
