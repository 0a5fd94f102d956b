#!/usr/bin/env python3
"""Echo server, one thread per connection, written the plain way: socketserver.ThreadingTCPServer.

The same file runs unmodified four ways (bench/echo_compare.sh --python):
  python3 echo_socketserver.py               OS threads (the GIL hands the CPU between them)
  greenrun python3 echo_socketserver.py      threads are green fibers (LD_PRELOAD shim)
  python3 -m gevent.monkey echo_socketserver.py   gevent's monkey-patched greenlets
  python3 echo_asyncio.py                    the explicit-async rewrite, for reference
Prints "listening on PORT" once it accepts connections (--port 0 picks a free port).
"""
import argparse
import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        while True:
            data = sock.recv(4096)
            if not data:
                return
            sock.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7000)
    args = ap.parse_args()
    with Server(("127.0.0.1", args.port), Echo) as srv:
        print("listening on", srv.server_address[1], flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
