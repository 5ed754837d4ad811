"""The framework-free client ceilings: minimal NestJS-framing clients, ``echo`` only.

    python bench/raw_client.py --mode asyncio|threads --port P [--no-uvloop]

What a Python client costs on this machine with no features at all (no core, no
timeouts, no reconnects, no error handling), to read our clients' figures against:

- ``asyncio``: an ``asyncio.Protocol`` (uvloop when installed); C tasks each write one
  frame with ``transport.write`` and await a future resolved by id in ``data_received``.
- ``threads``: a blocking socket shared by C threads; each writes its frame under a
  lock and blocks on its own lock, released by one reader thread that matches ids.

Frames are cut by character count (exact for the ASCII benchmark traffic). Speaks the
protocol of ``bench/load.py``: ``READY``, then one JSON result line per JSON command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
from typing import Any

import _common
from load import Cell, commands

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
perf = time.perf_counter


class Cutter:
    """Cuts ``<N>#<json>`` frames out of received bytes; returns the parsed packets."""

    def __init__(self) -> None:
        self.buf = ""
        self.need = -1

    def feed(self, data: bytes) -> list[Any]:
        buf = self.buf + data.decode("utf-8")
        pos, end, need = 0, len(buf), self.need
        packets = []
        while True:
            if need < 0:
                hash_at = buf.find("#", pos)
                if hash_at < 0:
                    break
                need = int(buf[pos:hash_at])
                pos = hash_at + 1
            if end - pos < need:
                break
            packets.append(json.loads(buf[pos : pos + need]))
            pos += need
            need = -1
        self.buf, self.need = buf[pos:], need
        return packets


def frame(data: Any, request_id: str) -> bytes:
    text = _dumps({"pattern": "echo", "data": data, "id": request_id})
    return f"{len(text)}#{text}".encode()


# -- asyncio ---------------------------------------------------------------------------


class ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.cutter = Cutter()
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


# -- threads ---------------------------------------------------------------------------


def run_threads(host: str, port: int) -> None:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    waiters: dict[str, tuple[threading.Lock, list[Any]]] = {}
    write_lock = threading.Lock()
    ids = iter(range(1, 1 << 62))

    def reader() -> None:
        cutter = Cutter()
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

    threading.Thread(target=reader, daemon=True).start()
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

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(cell.concurrency)]
        for t in threads:
            t.start()
        time.sleep(cell.warmup)
        cell.recording = True
        time.sleep(cell.duration)
        cell.recording = False
        cell.stopping = True
        for t in threads:
            t.join()
        _common.emit(cell.result())
    sock.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("asyncio", "threads"), required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    if args.mode == "threads":
        run_threads(args.host, args.port)
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
