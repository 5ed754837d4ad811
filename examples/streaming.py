"""Streamed replies: a handler yields values, the client reads them as they arrive.

    python examples/streaming.py

On the wire each value is one frame ``{"response":V,"id":ID}`` and the end is
``{"isDisposed":true,"id":ID}``, exactly what a NestJS Observable handler sends, so a
NestJS client can subscribe to this service and a Python client can read NestJS streams.
Shown on anyio (asyncio); the threads and gevent bindings use a plain ``for`` loop.
"""

from __future__ import annotations

import time

import anyio
import tcpmsg_anyio

from sansio_tcpmsg import Router

router = Router()


@router.message("ticks")
async def ticks(data):
    """Yield ``count`` ticks, ``every`` seconds apart (NestJS: interval(...).pipe(take(n)))."""
    for i in range(data["count"]):
        await anyio.sleep(data["every"])
        yield {"tick": i}


@router.message("progress")
async def progress(total):
    for done in range(0, total + 1, total // 4):
        yield f"{100 * done // total}%"


async def main() -> None:
    async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
        async with tcpmsg_anyio.connect("127.0.0.1", server.port, timeout=10) as client:
            start = time.monotonic()
            async for value in client.stream("ticks", {"count": 4, "every": 0.1}):
                print(f"{time.monotonic() - start:5.2f}s  {value}")   # as each arrives

            print("progress:", [p async for p in client.stream("progress", 100)])

            # send() on a streaming handler returns the last value, as NestJS's
            # lastValueFrom(client.send(...)) does.
            print("send() gives the last value:", await client.send("progress", 100))

            # Leaving the loop early cancels the request locally; the connection stays usable.
            async for value in client.stream("ticks", {"count": 100, "every": 0.01}):
                if value["tick"] == 2:
                    print("stopped early at", value)
                    break
            print("still usable:", await client.send("progress", 4))

            # Several streams at once on one connection, multiplexed by id.
            results: dict[str, list[object]] = {}

            async def collect(name: str, count: int) -> None:
                results[name] = [v async for v in client.stream("ticks", {"count": count, "every": 0.02})]

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect, "a", 3)
                tg.start_soon(collect, "b", 5)
            print("concurrent:", {k: len(v) for k, v in sorted(results.items())})


if __name__ == "__main__":
    anyio.run(main)
