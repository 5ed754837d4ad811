"""The framework-free client ceilings: minimal NestJS-framing clients, ``echo`` only.

    python bench/raw_client.py --mode asyncio|trio|gevent|threads --port P [--no-uvloop]

What a Python client costs on this machine with no features at all (no core, no
timeouts, no reconnects, no error handling), one per concurrency model we ship, to read
our clients' figures against. C callers share one connection; frames are cut with
``bench/_raw.py``:

- ``asyncio``: an ``asyncio.Protocol`` (uvloop when installed); C tasks each write one
  frame with ``transport.write`` and await a future resolved by id in ``data_received``.
- ``trio``: C tasks queue their frame for one writer task (one ``send_all`` per batch)
  and park with ``trio.lowlevel.wait_task_rescheduled``; one reader task reschedules
  each by id.
- ``gevent``: C greenlets write their frame under a semaphore and wait on a
  ``gevent.hub.Waiter``, switched by one reader greenlet through the hub.
- ``threads``: a blocking socket shared by C threads; each writes its frame under a
  lock and blocks on its own lock, released by one reader thread that matches ids.

Speaks the protocol of ``bench/load.py``: ``READY``, then one JSON result line per JSON
command line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import sys
import threading
import time
from typing import Any

import _common
import _raw
from load import Cell, commands

perf = time.perf_counter
frame = _raw.request


# -- asyncio ---------------------------------------------------------------------------


class ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.cutter = _raw.Cutter()
        self.futures: dict[str, asyncio.Future[Any]] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for packet in self.cutter.feed(data):
            future = self.futures.pop(packet["id"], None)
            if future is not None:
                future.set_result(packet.get("response"))


async def run_asyncio(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(ClientProtocol, host, port)
    next_id = 0

    async def send(data: Any) -> Any:
        nonlocal next_id
        next_id += 1
        request_id = str(next_id)
        future = proto.futures[request_id] = loop.create_future()
        transport.write(frame(data, request_id))
        return await future

    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if not line.strip():
            continue
        cell = Cell(json.loads(line))

        async def worker(cell: Cell = cell) -> None:
            while not cell.stopping:
                t0 = perf()
                await send(cell.data)
                if cell.recording:
                    cell.lat.append(perf() - t0)

        tasks = [asyncio.ensure_future(worker()) for _ in range(cell.concurrency)]
        await asyncio.sleep(cell.warmup)
        cell.recording = True
        await asyncio.sleep(cell.duration)
        cell.recording = False
        cell.stopping = True
        await asyncio.gather(*tasks)
        _common.emit(cell.result())
    transport.close()


# -- trio ------------------------------------------------------------------------------


def run_trio(host: str, port: int) -> None:
    import outcome
    import trio
    from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

    async def main() -> None:
        stream = await trio.open_tcp_stream(host, port)
        waiters: dict[str, Any] = {}
        outbound: list[bytes] = []
        wake = trio.Event()
        ids = itertools.count(1)

        async def writer() -> None:
            nonlocal wake
            while True:
                await wake.wait()
                wake = trio.Event()
                data = b"".join(outbound)
                outbound.clear()
                await stream.send_all(data)

        async def reader() -> None:
            cutter = _raw.Cutter()
            async for data in stream:
                for packet in cutter.feed(data):
                    reschedule(waiters.pop(packet["id"]), outcome.Value(packet.get("response")))

        async def send(data: Any) -> Any:
            request_id = str(next(ids))
            waiters[request_id] = current_task()
            outbound.append(frame(data, request_id))
            wake.set()
            return await wait_task_rescheduled(lambda _: Abort.FAILED)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            nursery.start_soon(reader)
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            while True:
                line = await trio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    break
                if not line.strip():
                    continue
                cell = Cell(json.loads(line))

                async def worker(cell: Cell = cell) -> None:
                    while not cell.stopping:
                        t0 = perf()
                        await send(cell.data)
                        if cell.recording:
                            cell.lat.append(perf() - t0)

                async with trio.open_nursery() as workers:
                    for _ in range(cell.concurrency):
                        workers.start_soon(worker)
                    await trio.sleep(cell.warmup)
                    cell.recording = True
                    await trio.sleep(cell.duration)
                    cell.recording = False
                    cell.stopping = True
                _common.emit(cell.result())
            nursery.cancel_scope.cancel()
        await stream.aclose()

    trio.run(main)


# -- blocking sockets: threads and gevent ----------------------------------------------


def drive_blocking(send: Any, spawn: Any, sleep: Any) -> None:
    """Run the cells with C callers of ``send`` (threads or greenlets); ``spawn`` returns joinables."""
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    for cmd in commands():
        cell = Cell(cmd)

        def worker(cell: Cell = cell) -> None:
            while not cell.stopping:
                t0 = perf()
                send(cell.data)
                if cell.recording:
                    cell.lat.append(perf() - t0)

        callers = [spawn(worker) for _ in range(cell.concurrency)]
        sleep(cell.warmup)
        cell.recording = True
        sleep(cell.duration)
        cell.recording = False
        cell.stopping = True
        for c in callers:
            c.join()
        _common.emit(cell.result())


def run_threads(host: str, port: int) -> None:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    waiters: dict[str, tuple[threading.Lock, list[Any]]] = {}
    write_lock = threading.Lock()
    ids = itertools.count(1)

    def reader() -> None:
        cutter = _raw.Cutter()
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for packet in cutter.feed(data):
                lock, slot = waiters.pop(packet["id"])
                slot.append(packet.get("response"))
                lock.release()

    def send(data: Any) -> Any:
        request_id = str(next(ids))
        lock, slot = threading.Lock(), []
        lock.acquire()
        waiters[request_id] = lock, slot
        out = frame(data, request_id)
        with write_lock:
            sock.sendall(out)
        lock.acquire()
        return slot[0]

    def spawn(fn: Any) -> threading.Thread:
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        return t

    threading.Thread(target=reader, daemon=True).start()
    drive_blocking(send, spawn, time.sleep)
    sock.close()


def run_gevent(host: str, port: int) -> None:
    import gevent
    import gevent.lock
    import gevent.socket
    from gevent.hub import Waiter, get_hub

    sock = gevent.socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    waiters: dict[str, Any] = {}
    write_lock = gevent.lock.Semaphore()
    run_callback = get_hub().loop.run_callback
    ids = itertools.count(1)

    def reader() -> None:
        cutter = _raw.Cutter()
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for packet in cutter.feed(data):
                run_callback(waiters.pop(packet["id"]).switch, packet.get("response"))

    def send(data: Any) -> Any:
        request_id = str(next(ids))
        waiter = waiters[request_id] = Waiter()
        out = frame(data, request_id)
        with write_lock:
            sock.sendall(out)
        return waiter.get()

    gevent.spawn(reader)
    drive_blocking(send, gevent.spawn, gevent.sleep)
    sock.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("asyncio", "trio", "gevent", "threads"), required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    if args.mode != "asyncio":
        {"trio": run_trio, "gevent": run_gevent, "threads": run_threads}[args.mode](args.host, args.port)
        return
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    asyncio.run(run_asyncio(args.host, args.port))


if __name__ == "__main__":
    main()
