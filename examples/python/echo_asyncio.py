#!/usr/bin/env python3
"""Echo server with asyncio streams: the explicit-async rewrite of echo_socketserver.py.

--uvloop runs it on uvloop (libuv) if that module is installed.
Prints "listening on PORT" once it accepts connections (--port 0 picks a free port).
"""
import argparse
import asyncio
import sys


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(port):
    srv = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print("listening on", srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop
        uvloop.install()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
