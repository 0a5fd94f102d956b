#!/usr/bin/env python3
"""fib server, one thread per connection (socketserver.ThreadingTCPServer), the plain way.

Same protocol as examples/fib_server.cpp: each request line is a decimal n (0..50), the reply
line is fib(n) by the naive recursion (CPU-bound on purpose), or "error: ..." otherwise.
It shows what a cooperative runtime does with a thread that computes: with OS threads the GIL
is handed over every 5 ms (sys.getswitchinterval) and short requests keep flowing; under gevent
the computing greenlet holds the hub until it finishes; under greenrun the answer depends on
whether a busy fiber-thread holds its worker (issue 12: hand-off and slice-expiry yield).
  python3 fib_server.py --port 0
  greenrun --workers 2 python3 fib_server.py --port 0
  python3 -m gevent.monkey fib_server.py --port 0
Drive it with build/examples/fib_client --port P --clients 4 --long 25 (scripts/demo.sh).
Prints "listening on PORT" once it accepts connections.
"""
import argparse
import socketserver
import sys


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Fib(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            s = line.strip()
            if s.isdigit() and len(s) <= 2 and int(s) <= 50:
                reply = b"%d\n" % fib(int(s))
            else:
                reply = b"error: expected a decimal n in 0..50\n"
            self.wfile.write(reply)
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7001)
    args = ap.parse_args()
    with Server(("127.0.0.1", args.port), Fib) as srv:
        print("listening on", srv.server_address[1], flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
