"""The framework-free server ceilings: minimal NestJS-framing servers, ``echo`` only.

    python bench/raw_server.py [--model asyncio|trio|gevent|threads] [--port 0] [--no-uvloop]

What a Python server costs on this machine with no features at all (no routing, no
limits, no timers, no error handling beyond dropping a broken peer), one per concurrency
model we ship, to read our servers' figures against. Every model cuts ``<N>#<json>``
frames with ``bench/_raw.py`` and answers each request of one read with
``{"response": data, "isDisposed": true, "id": id}``, all replies of a read in one write:

- ``asyncio`` (default): an ``asyncio.Protocol``, uvloop when installed;
- ``trio``: ``trio.serve_tcp``, one task per connection (``receive_some``/``send_all``);
- ``gevent``: a ``gevent.server.StreamServer``, one greenlet per connection;
- ``threads``: one blocking socket and one thread per connection.

Prints ``LISTENING <port>``; serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import threading
from typing import Any

import _raw


def _listening(port: int) -> None:
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()


# -- asyncio ---------------------------------------------------------------------------


class EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.cutter = _raw.Cutter()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            out = _raw.echo_replies(self.cutter, data)
        except ValueError:
            self.transport.close()
            return
        if out:
            self.transport.write(out)


async def serve_asyncio(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port)
    _listening(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


# -- trio ------------------------------------------------------------------------------


def serve_trio(host: str, port: int) -> None:
    import trio

    async def handler(stream: Any) -> None:
        cutter = _raw.Cutter()
        try:
            async for data in stream:
                out = _raw.echo_replies(cutter, data)
                if out:
                    await stream.send_all(out)
        except (ValueError, trio.BrokenResourceError, OSError):
            pass
        finally:
            await stream.aclose()

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        _listening(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handler, listeners)

    trio.run(main)


# -- blocking sockets: gevent and threads ----------------------------------------------


def serve_connection(sock: Any, *_: Any) -> None:
    """One connection on a blocking socket (a thread's, or a gevent greenlet's)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cutter = _raw.Cutter()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out = _raw.echo_replies(cutter, data)
            if out:
                sock.sendall(out)
    except (ValueError, OSError):
        pass
    finally:
        sock.close()


def serve_gevent(host: str, port: int) -> None:
    from gevent.server import StreamServer

    server = StreamServer((host, port), serve_connection)
    server.start()
    _listening(server.address[1])
    server.serve_forever()


def serve_threads(host: str, port: int) -> None:
    listener = socket.create_server((host, port), backlog=1024)
    _listening(listener.getsockname()[1])
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(sock,), daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=("asyncio", "trio", "gevent", "threads"), default="asyncio")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    if args.model == "trio":
        serve_trio(args.host, args.port)
    elif args.model == "gevent":
        serve_gevent(args.host, args.port)
    elif args.model == "threads":
        serve_threads(args.host, args.port)
    else:
        if not args.no_uvloop:
            try:
                import uvloop

                uvloop.install()
            except ImportError:
                pass
        asyncio.run(serve_asyncio(args.host, args.port))


if __name__ == "__main__":
    main()
