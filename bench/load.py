"""Load driver: our client keeping C requests in flight on one connection for D seconds.

    python bench/load.py --binding anyio-asyncio|anyio-trio|gevent|threads --port P

anyio: C tasks sharing one client; threads / gevent: C threads / greenlets sharing one
client; threads-futures / gevent-futures: ONE thread (greenlet) keeping C calls in flight
with ``client.submit``, each reply's future awaited in order and replaced at once. Prints ``READY`` once connected; then, for every JSON line on stdin
``{"concurrency": C, "payload": "small"|"1k"|"64k", "duration": D, "warmup": W}``,
one JSON line ``{"count", "rps", "p50_ms", "p99_ms", "errors"}`` (the requests completed
inside the D-second window that follows W seconds of warm-up). Exits when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from typing import Any

import _common

perf = time.perf_counter


class Cell:
    """Shared state of one measurement: the window flags and the latencies."""

    def __init__(self, cmd: dict[str, Any]) -> None:
        self.data = _common.payload(cmd["payload"])
        self.concurrency = int(cmd["concurrency"])
        self.duration = float(cmd["duration"])
        self.warmup = float(cmd["warmup"])
        self.recording = False
        self.stopping = False
        self.lat: list[float] = []
        self.errors = 0

    def result(self) -> dict[str, Any]:
        return {**_common.summarize(self.lat, self.duration), "errors": self.errors}


def commands() -> Any:
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def run_anyio(backend: str, host: str, port: int, uvloop: bool) -> None:
    import anyio
    import tcpmsg_anyio

    async def worker(client: Any, cell: Cell) -> None:
        data = cell.data
        lat = cell.lat
        while not cell.stopping:
            t0 = perf()
            try:
                await client.send("echo", data)
            except Exception:
                cell.errors += 1
                continue
            if cell.recording:
                lat.append(perf() - t0)

    async def main() -> None:
        async with tcpmsg_anyio.connect(host, port, timeout=30.0) as client:
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    return
                if not line.strip():
                    continue
                cell = Cell(json.loads(line))
                async with anyio.create_task_group() as tg:
                    for _ in range(cell.concurrency):
                        tg.start_soon(worker, client, cell)
                    await anyio.sleep(cell.warmup)
                    cell.recording = True
                    await anyio.sleep(cell.duration)
                    cell.recording = False
                    cell.stopping = True
                _common.emit(cell.result())

    options: dict[str, Any] = {}
    if backend == "asyncio" and uvloop:
        try:
            import uvloop as _uvloop  # noqa: F401

            options = {"use_uvloop": True}
        except ImportError:
            pass
    anyio.run(main, backend=backend, backend_options=options)


def run_sync(binding: str, host: str, port: int) -> None:
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

    def worker(client: Any, cell: Cell) -> None:
        data = cell.data
        lat = cell.lat
        while not cell.stopping:
            t0 = perf()
            try:
                client.send("echo", data)
            except Exception:
                cell.errors += 1
                continue
            if cell.recording:
                lat.append(perf() - t0)

    with mod.connect(host, port, timeout=30.0) as client:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        for cmd in commands():
            cell = Cell(cmd)
            tasks = [spawn(worker, client, cell) for _ in range(cell.concurrency)]
            sleep(cell.warmup)
            cell.recording = True
            sleep(cell.duration)
            cell.recording = False
            cell.stopping = True
            join(tasks)
            _common.emit(cell.result())


def run_futures(binding: str, host: str, port: int) -> None:
    if binding == "gevent-futures":
        import tcpmsg_gevent as mod
    else:
        import tcpmsg_threads as mod  # type: ignore[no-redef]

    with mod.connect(host, port, timeout=30.0) as client:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        for cmd in commands():
            cell = Cell(cmd)
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
    args = ap.parse_args()
    if args.binding in _common.FUTURES:
        run_futures(args.binding, args.host, args.port)
    elif args.binding.startswith("anyio"):
        run_anyio(args.binding.split("-", 1)[1], args.host, args.port, not args.no_uvloop)
    else:
        run_sync(args.binding, args.host, args.port)


if __name__ == "__main__":
    main()
