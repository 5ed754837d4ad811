"""Smoke tests for the anyio binding, on asyncio, asyncio+uvloop and trio."""

from __future__ import annotations

import datetime
import importlib.metadata
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import tcpmsg_anyio

from sansio_tcpmsg import (
    ConnectionClosedError,
    ConnectionStatus,
    NoHandlerError,
    RemoteError,
    RequestTimeout,
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


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param(
            "trio", id="trio", marks=pytest.mark.skipif(_TRIO_SKIP is not None, reason=str(_TRIO_SKIP))
        ),
    ]
)
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


async def test_timeout_cancel_and_early_break_keep_client_usable() -> None:
    router, _, _ = make_router()
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                with pytest.raises(RequestTimeout):
                    await client.send("slow", 0.5, timeout=0.05)
                assert await client.send("echo", "after timeout") == "after timeout"

                with anyio.move_on_after(0.05):
                    await client.send("slow", 0.3, timeout=None)
                assert await client.send("echo", "after cancel") == "after cancel"

                async for value in client.stream("count", 100):
                    if value == 2:
                        break
                assert await client.send("echo", "after break") == "after break"
                with pytest.raises(RequestTimeout):
                    async for _ in client.stream("slow", 0.5, timeout=0.05):
                        pass


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


async def test_aclose_fails_pending_calls_at_once() -> None:
    router, _, _ = make_router()
    errors: list[BaseException] = []
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0, grace=0.1) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:

                async def waiting() -> None:
                    try:
                        await client.send("slow", 5)
                    except ConnectionClosedError as exc:
                        errors.append(exc)

                async with anyio.create_task_group() as tg:
                    for _ in range(3):
                        tg.start_soon(waiting)
                    await anyio.sleep(0.1)
                    with anyio.fail_after(1):
                        await client.aclose()
                with pytest.raises(ConnectionClosedError):
                    await client.send("echo", 1)
    assert len(errors) == 3


async def test_server_close_fails_pending_calls() -> None:
    router, _, _ = make_router()
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            async with tcpmsg_anyio.connect("127.0.0.1", server.port) as client:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(server.aclose, 0.1)
                    with pytest.raises(ConnectionClosedError):
                        await client.send("slow", 5)
                    assert client.status is ConnectionStatus.DISCONNECTED


async def test_statuses_iterator() -> None:
    router, _, _ = make_router()
    seen: list[ConnectionStatus] = []
    with anyio.fail_after(LIMIT):
        async with tcpmsg_anyio.serve(router, "127.0.0.1", 0) as server:
            client = tcpmsg_anyio.connect("127.0.0.1", server.port)
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    async for status in client.statuses():
                        seen.append(status)

                tg.start_soon(watch)
                await anyio.sleep(0.01)
                await client.connect()
                await client.send("echo", 1)
                await client.aclose()
    assert seen == [ConnectionStatus.CONNECTED, ConnectionStatus.DISCONNECTED]


# -- TLS ------------------------------------------------------------------------------


def _certs(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", ca_key, "test CA", ca_key, True)
    files = {"ca": tmp / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build(who, key, "test CA", ca_key, False)
        path = tmp / f"{who}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files[who] = path
    return files


async def test_mutual_tls(tmp_path: Path) -> None:
    files = _certs(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files["server"])
    server_ctx.load_verify_locations(files["ca"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(files["ca"]))
    client_ctx.load_cert_chain(files["client"])
    anonymous_ctx = ssl.create_default_context(cafile=str(files["ca"]))

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
