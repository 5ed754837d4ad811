"""A math service on anyio (asyncio here; pass --trio for trio), callable from NestJS.

    python examples/math_anyio.py            # serve on a free port, call it, exit
    python examples/math_anyio.py --serve    # serve on 127.0.0.1:3000 until Ctrl-C

A NestJS client reaches it with ``client.send({ cmd: 'sum' }, [1, 2, 3])``.
"""

from __future__ import annotations

import sys

import anyio
import tcpmsg_anyio

from sansio_tcpmsg import RemoteError, Router, RpcError

router = Router()


@router.message({"cmd": "sum"})
async def add(numbers):
    return sum(numbers)


@router.message({"cmd": "multiply"})
async def multiply(numbers):
    product = 1
    for n in numbers:
        product *= n
    return product


@router.message({"cmd": "divide"})
async def divide(pair):
    a, b = pair
    if b == 0:
        raise RpcError({"status": "error", "message": "division by zero"})
    return a / b


@router.message({"cmd": "fibonacci"})
async def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):  # an async generator: one frame per value
        yield a
        await anyio.sleep(0)
        a, b = b, a + b


async def demo() -> None:
    async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
        print(f"math service (anyio) on 127.0.0.1:{server.port}")
        async with tcpmsg_anyio.connect("127.0.0.1", server.port, timeout=10) as client:
            print("sum [1, 2, 3] =", await client.send({"cmd": "sum"}, [1, 2, 3]))
            print("multiply [2, 3, 7] =", await client.send({"cmd": "multiply"}, [2, 3, 7]))
            print("divide [1, 4] =", await client.send({"cmd": "divide"}, [1, 4]))
            print("fibonacci 10 =", [v async for v in client.stream({"cmd": "fibonacci"}, 10)])
            try:
                await client.send({"cmd": "divide"}, [1, 0])
            except RemoteError as exc:
                print("divide [1, 0] failed:", exc.error)


async def serve_forever() -> None:
    async with tcpmsg_anyio.serve(router, "127.0.0.1", 3000) as server:
        print("serving on 127.0.0.1:3000, Ctrl-C to stop")
        await server.serve_forever()


if __name__ == "__main__":
    backend = "trio" if "--trio" in sys.argv else "asyncio"
    try:
        anyio.run(serve_forever if "--serve" in sys.argv else demo, backend=backend)
    except KeyboardInterrupt:
        pass
