"""A math service on plain threads (tcpmsg_threads), callable from NestJS.

    python examples/math_threads.py            # serve on a free port, call it, exit
    python examples/math_threads.py --serve    # serve on 127.0.0.1:3000 until Ctrl-C

A NestJS client reaches it with ``client.send({ cmd: 'sum' }, [1, 2, 3])``.
"""

from __future__ import annotations

import sys

import tcpmsg_threads

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


def demo() -> None:
    with tcpmsg_threads.serve(router, "127.0.0.1", 0) as server:
        print(f"math service (threads) on 127.0.0.1:{server.port}")
        with tcpmsg_threads.connect("127.0.0.1", server.port, timeout=10) as client:
            print("sum [1, 2, 3] =", client.send({"cmd": "sum"}, [1, 2, 3]))
            print("multiply [2, 3, 7] =", client.send({"cmd": "multiply"}, [2, 3, 7]))
            print("divide [1, 4] =", client.send({"cmd": "divide"}, [1, 4]))
            print("fibonacci 10 =", list(client.stream({"cmd": "fibonacci"}, 10)))
            try:
                client.send({"cmd": "divide"}, [1, 0])
            except RemoteError as exc:
                print("divide [1, 0] failed:", exc.error)


if __name__ == "__main__":
    if "--serve" in sys.argv:
        print("serving on 127.0.0.1:3000, Ctrl-C to stop")
        tcpmsg_threads.run(router, "127.0.0.1", 3000)
    else:
        demo()
