"""The NestJS TCP microservice transport for async Python, over anyio (asyncio or trio).

A thin binding around the Sans-IO core :mod:`sansio_tcpmsg`::

    async with tcpmsg_anyio.connect("127.0.0.1", 3000) as client:
        print(await client.send({"cmd": "sum"}, [1, 2, 3]))
        async for value in client.stream("count", 3):
            print(value)

    router = Router()

    @router.message({"cmd": "sum"})
    async def add(data, ctx):
        return sum(data)

    async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
        print(server.port)
        await server.serve_forever()
"""

from sansio_tcpmsg import (
    ConnectionClosedError,
    ConnectionStatus,
    Context,
    Limits,
    NoHandlerError,
    RemoteError,
    RequestTimeout,
    Router,
    RpcError,
    UnserializableError,
)

from ._client import Client, PooledClient, connect
from ._server import Server, run, serve

__all__ = [
    "Client",
    "ConnectionClosedError",
    "ConnectionStatus",
    "Context",
    "Limits",
    "NoHandlerError",
    "PooledClient",
    "RemoteError",
    "RequestTimeout",
    "Router",
    "RpcError",
    "Server",
    "UnserializableError",
    "connect",
    "run",
    "serve",
]
