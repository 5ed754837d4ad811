"""The math service: one router of plain functions, served by any sync binding.

``math_threads.py`` and ``math_gevent.py`` run it on plain threads and on gevent; the
router does not change, only the import does. (``math_anyio.py`` has the async version.)
A NestJS client reaches it with ``client.send({ cmd: 'sum' }, [1, 2, 3])``.
"""

from __future__ import annotations

import sys
from types import ModuleType

from sansio_tcpmsg import RemoteError, Router, RpcError

router = Router()


@router.message({"cmd": "sum"})
def add(numbers):
    return sum(numbers)


@router.message({"cmd": "multiply"})
def multiply(numbers):
    product = 1
    for n in numbers:
        product *= n
    return product


@router.message({"cmd": "divide"})
def divide(pair):
    a, b = pair
    if b == 0:
        raise RpcError({"status": "error", "message": "division by zero"})
    return a / b


@router.message({"cmd": "fibonacci"})
def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):  # a generator: one frame per value
        yield a
        a, b = b, a + b


def main(binding: ModuleType) -> None:
    """Serve the math service with ``binding`` (tcpmsg_threads or tcpmsg_gevent)."""
    if "--serve" in sys.argv:
        print("serving on 127.0.0.1:3000, Ctrl-C to stop")
        binding.run(router, "127.0.0.1", 3000)
        return
    with binding.serve(router, "127.0.0.1", 0) as server:
        print(f"math service ({binding.__name__}) on 127.0.0.1:{server.port}")
        with binding.connect("127.0.0.1", server.port, timeout=10) as client:
            print("sum [1, 2, 3] =", client.send({"cmd": "sum"}, [1, 2, 3]))
            print("multiply [2, 3, 7] =", client.send({"cmd": "multiply"}, [2, 3, 7]))
            print("divide [1, 4] =", client.send({"cmd": "divide"}, [1, 4]))
            print("fibonacci 10 =", list(client.stream({"cmd": "fibonacci"}, 10)))
            try:
                client.send({"cmd": "divide"}, [1, 0])
            except RemoteError as exc:
                print("divide [1, 0] failed:", exc.error)
