"""An ``echo`` server that answers in fixed batches: the clients' counterpart of ``--driver burst``.

    python bench/burst_server.py --batch C [--port P]

Replies are held until C requests are waiting (or 5 ms pass with fewer), then all go in
one write. A client keeping C calls in flight then reads every batch of C replies in one
read, however busy the machine is, so the CPU a client spends per call
(``bench/cpu_cost.py --side client --server burst``) no longer moves with how a real
server's replies happen to trickle in. asyncio (uvloop when installed), framing and JSON
of ``bench/_raw.py``; prints ``LISTENING <port>``, runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import _raw

#: How long replies short of a batch wait (the end of a cell, when callers stop).
IDLE_FLUSH = 0.005


class BurstProtocol(asyncio.Protocol):
    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.cutter = _raw.Cutter()
        self.out: list[bytes] = []
        self.pending = 0  # replies in ``out``
        self.timer: asyncio.TimerHandle | None = None
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reply = _raw.echo_replies(self.cutter, data)
        if reply:
            self.out.append(reply)
            self.pending += reply.count(b'"isDisposed"')
        if self.pending >= self.batch:
            self.flush()
        elif self.out and self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(IDLE_FLUSH, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out = []
            self.pending = 0


async def serve(batch: int, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: BurstProtocol(batch), "127.0.0.1", port)
    sys.stdout.write(f"LISTENING {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.batch, args.port))


if __name__ == "__main__":
    main()
