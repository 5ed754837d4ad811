"""Load driver: our client keeping C calls in flight on one connection for D seconds.

    python bench/load.py --binding anyio-asyncio|anyio-trio|gevent|threads --port P [--tls-ca PEM]

anyio: C tasks sharing one client; threads / gevent: C threads / greenlets sharing one
client; threads-futures / gevent-futures (``echo`` only): ONE thread (greenlet) keeping C
calls in flight with ``client.submit``, each reply's future awaited in order and
replaced at once. Prints ``READY`` once connected; then, for every JSON line on stdin
``{"kind": K, "concurrency": C, "payload": "small"|"1k"|"64k", "duration": D, "warmup": W,
"items": N, "connections": M}``, one JSON line ``{"count", "rps", "p50_ms", "p99_ms",
"errors"}`` for the D-second window that follows W seconds of warm-up. Exits when
stdin closes. Kinds, as ``bench/js/load.js`` has them:

- ``echo`` (default): C callers of ``send("echo", data)``; count = replies.
- ``stream``: C callers of ``stream("items", {"n": N, "item": data})``; count = items
  received, latency per whole stream.
- ``emit``: C callers each emitting ``tick`` 100 times then calling ``ticks`` (the
  server's count of handled events); count and rate = events the server handled
  between the first and the last ``ticks`` reply of the window.
- ``conns``: M clients of their own, one ``echo`` caller each.

``--tls-ca``: connect with TLS, trusting that CA (server name ``localhost``).
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from collections import deque
from typing import Any

import _common

perf = time.perf_counter

#: Events each ``emit`` caller sends between two ``ticks`` calls.
EMIT_BATCH = 100


class Cell:
    """Shared state of one measurement: the window flags, the latencies and counts."""

    def __init__(self, cmd: dict[str, Any]) -> None:
        self.kind = cmd.get("kind", "echo")
        self.data = _common.payload(cmd["payload"])
        self.concurrency = int(cmd["concurrency"])
        self.duration = float(cmd["duration"])
        self.warmup = float(cmd["warmup"])
        self.items = int(cmd.get("items", 0))
        self.connections = int(cmd.get("connections", 1))
        self.recording = False
        self.stopping = False
        self.lat: list[float] = []
        self.received = 0  # stream items inside the window
        self.marks: list[tuple[float, int]] = []  # emit: (time, the server's count)
        self.errors = 0

    def result(self) -> dict[str, Any]:
        res: dict[str, Any] = {**_common.summarize(self.lat, self.duration), "errors": self.errors}
        if self.kind == "stream":
            res.update(count=self.received, rps=self.received / self.duration)
        elif self.kind == "emit":
            (t0, n0), (t1, n1) = (self.marks[0], self.marks[-1]) if len(self.marks) > 1 else ((0.0, 0), (1.0, 0))
            res.update(count=n1 - n0, rps=(n1 - n0) / (t1 - t0))
        return res


def commands() -> Any:
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def tls_context(ca: str | None) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=ca) if ca else None


def run_anyio(backend: str, host: str, port: int, uvloop: bool, tls: ssl.SSLContext | None) -> None:
    import contextlib

    import anyio
    import tcpmsg_anyio

    def connect() -> Any:
        return tcpmsg_anyio.connect(host, port, timeout=30.0, tls=tls, server_hostname="localhost",
                                    codec=_common.codec())

    async def call(client: Any, cell: Cell) -> None:
        kind = cell.kind
        if kind == "stream":
            async with client.stream("items", {"n": cell.items, "item": cell.data}) as values:
                async for _ in values:
                    if cell.recording:
                        cell.received += 1
        elif kind == "emit":
            for _ in range(EMIT_BATCH):
                await client.emit("tick", cell.data)
            n = await client.send("ticks", 0)
            if cell.recording:
                cell.marks.append((perf(), n))
        else:
            await client.send("echo", cell.data)

    async def worker(client: Any, cell: Cell) -> None:
        lat = cell.lat
        while not cell.stopping:
            t0 = perf()
            try:
                await call(client, cell)
            except Exception:
                cell.errors += 1
                continue
            if cell.recording:
                lat.append(perf() - t0)

    async def run_cell(client: Any, cell: Cell) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if cell.kind == "conns":
                clients = [await stack.enter_async_context(connect()) for _ in range(cell.connections)]
            else:
                clients = [client] * cell.concurrency
            async with anyio.create_task_group() as tg:
                for c in clients:
                    tg.start_soon(worker, c, cell)
                await anyio.sleep(cell.warmup)
                cell.recording = True
                await anyio.sleep(cell.duration)
                cell.recording = False
                cell.stopping = True

    async def main() -> None:
        async with connect() as client:
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    return
                if not line.strip():
                    continue
                cell = Cell(json.loads(line))
                await run_cell(client, cell)
                _common.emit(cell.result())

    options: dict[str, Any] = {}
    if backend == "asyncio" and uvloop:
        try:
            import uvloop as _uvloop  # noqa: F401

            options = {"use_uvloop": True}
        except ImportError:
            pass
    anyio.run(main, backend=backend, backend_options=options)


def run_sync(binding: str, host: str, port: int, tls: ssl.SSLContext | None) -> None:
    if binding == "gevent":
        import gevent
        import tcpmsg_gevent as mod

        spawn = gevent.spawn
        sleep = gevent.sleep

        def join(tasks: list[Any]) -> None:
            gevent.joinall(tasks)
    else:
        import threading

        import tcpmsg_threads as mod  # type: ignore[no-redef]

        def spawn(fn: Any, *args: Any) -> Any:  # type: ignore[misc]
            t = threading.Thread(target=fn, args=args, daemon=True)
            t.start()
            return t

        sleep = time.sleep

        def join(tasks: list[Any]) -> None:
            for t in tasks:
                t.join()

    def connect() -> Any:
        return mod.connect(host, port, timeout=30.0, tls=tls, server_hostname="localhost", codec=_common.codec())

    def call(client: Any, cell: Cell) -> None:
        kind = cell.kind
        if kind == "stream":
            for _ in client.stream("items", {"n": cell.items, "item": cell.data}):
                if cell.recording:
                    cell.received += 1
        elif kind == "emit":
            for _ in range(EMIT_BATCH):
                client.emit("tick", cell.data)
            n = client.send("ticks", 0)
            if cell.recording:
                cell.marks.append((perf(), n))
        else:
            client.send("echo", cell.data)

    def worker(client: Any, cell: Cell) -> None:
        lat = cell.lat
        while not cell.stopping:
            t0 = perf()
            try:
                call(client, cell)
            except Exception:
                cell.errors += 1
                continue
            if cell.recording:
                lat.append(perf() - t0)

    with connect() as client:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        for cmd in commands():
            cell = Cell(cmd)
            many = [connect() for _ in range(cell.connections)] if cell.kind == "conns" else []
            for c in many:
                c.connect()
            clients = many or [client] * cell.concurrency
            tasks = [spawn(worker, c, cell) for c in clients]
            sleep(cell.warmup)
            cell.recording = True
            sleep(cell.duration)
            cell.recording = False
            cell.stopping = True
            join(tasks)
            for c in many:
                c.close()
            _common.emit(cell.result())


def run_futures(binding: str, host: str, port: int, tls: ssl.SSLContext | None) -> None:
    if binding == "gevent-futures":
        import tcpmsg_gevent as mod
    else:
        import tcpmsg_threads as mod  # type: ignore[no-redef]

    with mod.connect(host, port, timeout=30.0, tls=tls, server_hostname="localhost", codec=_common.codec()) as client:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        for cmd in commands():
            cell = Cell(cmd)
            if cell.kind != "echo":
                raise SystemExit(f"load.py: {binding} runs echo cells only, not {cell.kind!r}")
            submit, data, lat = client.submit, cell.data, cell.lat
            begin = perf() + cell.warmup
            end = begin + cell.duration
            in_flight: deque[tuple[float, Any]] = deque(
                (perf(), submit("echo", data)) for _ in range(cell.concurrency))
            while in_flight:
                t0, future = in_flight.popleft()
                now = perf()
                try:
                    future.result()
                    now = perf()
                    if begin <= now <= end:
                        lat.append(now - t0)
                except Exception:
                    cell.errors += 1
                if now < end:
                    in_flight.append((now, submit("echo", data)))
            _common.emit(cell.result())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binding", required=True, choices=_common.BINDINGS + _common.FUTURES)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--tls-ca", default=None)
    args = ap.parse_args()
    tls = tls_context(args.tls_ca)
    if args.binding in _common.FUTURES:
        run_futures(args.binding, args.host, args.port, tls)
    elif args.binding.startswith("anyio"):
        run_anyio(args.binding.split("-", 1)[1], args.host, args.port, not args.no_uvloop, tls)
    else:
        run_sync(args.binding, args.host, args.port, tls)


if __name__ == "__main__":
    main()
