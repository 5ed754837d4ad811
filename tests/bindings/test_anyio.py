"""What only the anyio binding has: uvloop's transports, and cancellation by a cancel scope.

The contract itself (replies, streams, errors, timeouts, closing, TLS, limits, statuses)
is the conformance suite's, run on anyio-asyncio and anyio-trio (with its request tasks in
a trio nursery). uvloop is not a binding of its own there, so the tests here that move
bytes (round trips, concurrency, TLS, faults, closing) run on uvloop's transports, which
differ from asyncio's (TLS, write buffers, pausing). A call cancelled by its caller's
cancel scope is anyio's alone and runs on every anyio loop.
"""

from __future__ import annotations

import importlib.metadata
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import tcpmsg_anyio

from sansio_tcpmsg import (
    ConnectionClosedError,
    ConnectionStatus,
    NoHandlerError,
    RemoteError,
    Router,
    RpcError,
    UnserializableError,
)

pytestmark = pytest.mark.anyio

LIMIT = 10  # seconds any single test may wait for anything


def _trio_unusable() -> str | None:
    """Why anyio cannot drive the installed trio, if it cannot (anyio 4.16 needs trio>=0.32)."""
    try:
        have = importlib.metadata.version("trio")
    except importlib.metadata.PackageNotFoundError:
        return "trio is not installed"
    for req in importlib.metadata.requires("anyio") or ():
        match = re.match(r"trio\s*>=\s*([\d.]+)", req)
        if match:
            need = match.group(1)
            if [int(x) for x in have.split(".")[:2]] < [int(x) for x in need.split(".")[:2]]:
                return f"anyio needs trio>={need}, trio {have} is installed"
    return None


_TRIO_SKIP = _trio_unusable()


UVLOOP = pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")
EVERY_LOOP = [
    pytest.param("asyncio", id="asyncio"),
    UVLOOP,
    pytest.param("trio", id="trio", marks=pytest.mark.skipif(_TRIO_SKIP is not None, reason=str(_TRIO_SKIP))),
]


@pytest.fixture(params=[UVLOOP])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


def make_router() -> tuple[Router, list[Any], anyio.Event]:
    router = Router()
    seen: list[Any] = []
    done = anyio.Event()

    @router.message("echo")
    async def echo(data: Any) -> Any:
        return data

    @router.message("sync_echo")
    def sync_echo(data: Any, ctx: Any) -> Any:
        return {"data": data, "route": ctx.route}

    @router.message("count")
    async def count(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i
            await anyio.sleep(0)

    @router.message("sync_count")
    def sync_count(n: int) -> Iterator[int]:
        yield from range(n)

    @router.message("slow")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "late"

    @router.message("rpc_obj")
    async def rpc_obj(data: Any) -> None:
        raise RpcError({"code": 42, "why": data})

    @router.message("rpc_text")
    async def rpc_text(data: Any) -> None:
        raise RpcError("nope")

    @router.message("boom")
    async def boom(data: Any) -> None:
        raise KeyError("secret")

    @router.event("tick")
    async def tick(data: Any) -> None:
        await anyio.sleep(0)  # a suspension between events must not reorder them
        seen.append(data)
        if data == "last":
            done.set()

    return router, seen, done


async def test_round_trips_errors_and_streams() -> None:
    router, _, _ = make_router()
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                assert client.status is ConnectionStatus.CONNECTED
                assert await client.send("echo", {"a": [1, "é😀"]}) == {"a": [1, "é😀"]}
                assert await client.send("sync_echo", 5) == {"data": 5, "route": "sync_echo"}
                assert [v async for v in client.stream("count", 4)] == [0, 1, 2, 3]
                assert [v async for v in client.stream("sync_count", 3)] == [0, 1, 2]
                assert await client.send("count", 3) == 2  # last value of a stream

                with pytest.raises(RemoteError) as info:
                    await client.send("rpc_obj", "x")
                assert info.value.error == {"code": 42, "why": "x"}
                with pytest.raises(RemoteError) as info:
                    await client.send("rpc_text", None)
                assert info.value.error == {"status": "error", "message": "nope"}
                with pytest.raises(RemoteError) as info:
                    await client.send("boom", 1)
                assert info.value.error == {"status": "error", "message": "Internal server error"}
                with pytest.raises(NoHandlerError):
                    await client.send("missing", 1)

                with pytest.raises(UnserializableError):
                    await client.send("echo", float("nan"))
                assert await client.send("echo", 1) == 1  # still connected


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP)
async def test_cancelled_calls_keep_client_usable() -> None:
    router, _, _ = make_router()
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                with anyio.move_on_after(0.05) as scope:
                    await client.send("slow", 0.3, timeout=None)
                assert scope.cancelled_caught
                assert await client.send("echo", "after cancel") == "after cancel"

                with anyio.move_on_after(0.05) as scope:
                    async for _ in client.stream("slow", 0.3, timeout=None):
                        pass
                assert scope.cancelled_caught
                assert await client.send("echo", "after a cancelled stream") == "after a cancelled stream"
                await anyio.sleep(0.4)  # the late replies arrive and are dropped
                assert await client.send("echo", "later") == "later"


async def test_many_concurrent_sends() -> None:
    router, _, _ = make_router()
    results: dict[int, Any] = {}
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:

                async def one(i: int) -> None:
                    results[i] = await client.send("echo", i)

                async with anyio.create_task_group() as tg:
                    for i in range(500):
                        tg.start_soon(one, i)
    assert results == {i: i for i in range(500)}


async def test_events_run_in_order() -> None:
    router, seen, done = make_router()
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                for i in range(50):
                    await client.emit("tick", i)
                await client.emit("tick", "last")
                await done.wait()
    assert seen == [*range(50), "last"]


async def test_server_restart_then_next_call_reconnects() -> None:
    router, _, _ = make_router()
    statuses: list[ConnectionStatus] = []
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as first:
            port = first.port
            client = tcpmsg_anyio.connect("127.0.0.1", port, on_status=statuses.append, retries=3)
            async with client:
                assert await client.send("echo", 1) == 1
                await first.aclose()  # the server goes away under the client
                while client.status is not ConnectionStatus.DISCONNECTED:
                    await anyio.sleep(0.01)
                async with tcpmsg_anyio.serve(router, "127.0.0.1", port):
                    assert await client.send("echo", 2) == 2
    assert statuses == [
        ConnectionStatus.CONNECTED,
        ConnectionStatus.DISCONNECTED,
        ConnectionStatus.RECONNECTING,
        ConnectionStatus.CONNECTED,
        ConnectionStatus.DISCONNECTED,
    ]


# -- TLS ------------------------------------------------------------------------------


async def test_mutual_tls(certs: dict[str, str]) -> None:
    files = certs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files["server"])
    server_ctx.load_verify_locations(files["ca"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=files["ca"])
    client_ctx.load_cert_chain(files["client"])
    anonymous_ctx = ssl.create_default_context(cafile=files["ca"])

    router, _, _ = make_router()
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0, tls=server_ctx) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port, tls=client_ctx) as client:
                assert await client.send("echo", "secure") == "secure"
                assert [v async for v in client.stream("count", 3)] == [0, 1, 2]
            # Without a client certificate the handshake (or the first call) fails,
            # and the server keeps serving others.
            with pytest.raises((OSError, ConnectionClosedError)):
                async with tcpmsg_anyio.connect(
                    "127.0.0.1", server.port, tls=anonymous_ctx, timeout=2
                ) as bad:
                    await bad.send("echo", 1)
            async with tcpmsg_anyio.connect("127.0.0.1", server.port, tls=client_ctx) as client:
                assert await client.send("echo", "again") == "again"


# -- faults and limits ----------------------------------------------------------------


async def _expect_dropped(port: int, payload: bytes) -> None:
    """A raw peer sending ``payload`` is disconnected by the server."""
    async with await anyio.connect_tcp("127.0.0.1", port) as raw:
        await raw.send(payload)
        with anyio.fail_after(3):
            try:
                while True:
                    await raw.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass


async def test_bad_peers_lose_only_their_connection() -> None:
    router, _, _ = make_router()
    limits = tcpmsg_anyio.Limits(incomplete_frame_timeout=0.2, max_connections=2)
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0, limits=limits) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                await _expect_dropped(server.port, b"ab#{}")  # corrupted length
                await _expect_dropped(server.port, b"3#{x}")  # invalid JSON
                await _expect_dropped(server.port, b'100#{"pattern":')  # silent mid-frame
                async with await anyio.connect_tcp("127.0.0.1", server.port):
                    await _expect_dropped(server.port, b"")  # over max_connections
                assert await client.send("echo", "still here") == "still here"


async def test_peer_that_never_reads_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    router, _, _ = make_router()

    @router.message("big")
    async def big(n: int) -> str:
        return "x" * n

    limits = tcpmsg_anyio.Limits(max_send_buffer_size=1_000_000)
    frame = b'38#{"pattern":"big","data":200000,"id":1}'
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0, limits=limits) as server:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as raw:
                await raw.send(frame * 100)
                while "SendBufferExceeded" not in caplog.text and "does not read" not in caplog.text:
                    await anyio.sleep(0.05)
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                assert await client.send("echo", 1) == 1


async def test_graceful_close_lets_in_flight_requests_finish() -> None:
    router, _, _ = make_router()
    results: list[Any] = []
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        results.append(await client.send("slow", 0.2))

                    tg.start_soon(call)
                    await anyio.sleep(0.05)
                    await server.aclose(grace=2)
                    with pytest.raises(OSError):
                        await client.send("echo", 1)  # nobody listens any more
    assert results == ["late"]


@pytest.mark.parametrize("anyio_backend", EVERY_LOOP)
async def test_writes_larger_than_the_socket_takes_arrive_whole() -> None:
    """A lone call's bytes are written at once (eager); what the socket does not take
    goes to the writer, in order, while the callers that come next queue theirs behind."""
    router, _, _ = make_router()
    results: dict[int, Any] = {}
    values = {i: ("é" if i % 2 else "x") * (8_000_000 if i == 0 else 100_000 if i < 40 else 10) + str(i)
              for i in range(240)}
    with anyio.fail_after(LIMIT * 3):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:

                async def one(i: int) -> None:
                    results[i] = await client.send("echo", values[i])

                for _ in range(2):
                    results.clear()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(one, 0)  # alone: written at once, in part
                        for _ in range(3):
                            await anyio.sleep(0)
                        for i in values:
                            if i:
                                tg.start_soon(one, i)
                    assert results == values
