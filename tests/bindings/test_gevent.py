"""What only the gevent binding has: server, client and callers in ONE hub.

The contract itself is the conformance suite's, run on gevent too, where the facade serves
from an OS thread with a hub of its own so that a blocking test body never starves the
server. Applications run everything in one hub; here the server, its handlers, the client
and the test share the test thread's hub, so any call that blocks the hub instead of
yielding (a read, a write to a peer that does not read, a TLS handshake, a handler's
sleep, a close waiting for its reader) stalls the whole test and fails it on time.
"""

from __future__ import annotations

import contextvars
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest
import tcpmsg_gevent

from sansio_tcpmsg import (
    ConnectionClosedError,
    Limits,
    NoHandlerError,
    RemoteError,
    RequestTimeout,
    Router,
    RpcError,
)

pytestmark = pytest.mark.timeout(30)


def make_router(log: list[Any]) -> Router:
    router = Router()

    @router.message("echo")
    def echo(data: Any) -> Any:
        return data

    @router.message("count")
    def count(n: int) -> Iterator[int]:
        for i in range(n):
            gevent.sleep(0.001)
            yield i

    @router.message("boom")
    def boom(data: Any) -> Any:
        raise RpcError({"code": 42, "why": data})

    @router.message("sleep")
    def sleep(seconds: float) -> str:
        gevent.sleep(seconds)
        return "slept"

    @router.event("ev")
    def ev1(data: Any) -> None:
        gevent.sleep(0.001)
        log.append(("a", data))

    @router.event("ev")
    def ev2(data: Any) -> None:
        log.append(("b", data))

    return router


@pytest.fixture
def log() -> list[Any]:
    return []


@pytest.fixture
def server(log: list[Any]) -> Iterator[Any]:
    with tcpmsg_gevent.serve(make_router(log), "127.0.0.1", 0, grace=1.0) as srv:
        yield srv


def client(port: int, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", 5.0)
    return tcpmsg_gevent.connect("127.0.0.1", port, **kwargs)


def test_calls_streams_and_errors_in_one_hub(server: Any) -> None:
    with client(server.port) as c:
        assert c.send("echo", {"a": [1, "é😀"]}) == {"a": [1, "é😀"]}
        assert list(c.stream("count", 5)) == [0, 1, 2, 3, 4]
        with pytest.raises(RemoteError) as info:
            c.send("boom", "x")
        assert info.value.error == {"code": 42, "why": "x"}
        with pytest.raises(NoHandlerError):
            c.send("nope", 1)
        assert c.send("echo", 7) == 7


def test_waiting_handlers_overlap_in_one_hub(server: Any) -> None:
    with client(server.port) as c:
        start = time.monotonic()
        calls = [gevent.spawn(c.send, "sleep", 0.3) for _ in range(50)]
        gevent.joinall(calls, timeout=10, raise_error=True)
        assert [g.value for g in calls] == ["slept"] * 50
        assert time.monotonic() - start < 3  # 50 x 0.3 s one after another would be 15 s
        with pytest.raises(RequestTimeout):
            c.send("sleep", 1.0, timeout=0.2)
        assert c.send("echo", 1) == 1


def test_events_in_order_in_one_hub(server: Any, log: list[Any]) -> None:
    with client(server.port) as c:
        for i in range(20):
            c.emit("ev", i)
        deadline = time.monotonic() + 5
        while len(log) < 40 and time.monotonic() < deadline:
            gevent.sleep(0.01)
    assert log == [(tag, i) for i in range(20) for tag in ("a", "b")]


def test_serve_forever_in_a_greenlet_returns_after_close(log: list[Any]) -> None:
    srv = tcpmsg_gevent.serve(make_router(log), "127.0.0.1", 0, grace=1.0)
    srv.start()
    forever = gevent.spawn(srv.serve_forever)
    with client(srv.port) as c:
        assert c.send("echo", 1) == 1
        assert not forever.ready()
    srv.close(grace=1)
    forever.join(5)
    assert forever.successful()


def test_close_fails_pending_in_one_hub(server: Any) -> None:
    c = client(server.port, timeout=10)
    c.connect()
    pending = gevent.spawn(c.send, "sleep", 3.0)
    gevent.sleep(0.2)
    start = time.monotonic()
    c.close()
    pending.join(5)
    assert isinstance(pending.exception, ConnectionClosedError)
    assert time.monotonic() - start < 2


def test_peer_that_never_reads_does_not_block_the_hub(log: list[Any]) -> None:
    limits = Limits(max_send_buffer_size=256 * 1024, send_high_water=16 * 1024)
    with tcpmsg_gevent.serve(make_router(log), "127.0.0.1", 0, limits=limits, grace=0.2) as srv:
        hog = gevent.socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frame = '{"pattern":"echo","data":"%s","id":"1"}' % ("x" * 100_000)
        packet = f"{len(frame)}#{frame}".encode()
        hog.settimeout(0.5)
        with client(srv.port) as c:
            for _ in range(100):  # the server stops reading from the hog, never blocks
                try:
                    hog.sendall(packet)
                except OSError:  # the hog's own buffers are full (a timeout is one)
                    break
                assert c.send("echo", "alive") == "alive"
            assert c.send("echo", "alive") == "alive"
        hog.close()


def test_mutual_tls_in_one_hub(log: list[Any], certs: dict[str, str]) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs["server"])
    server_ctx.load_verify_locations(certs["ca"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    client_ctx.load_cert_chain(certs["client"])
    with tcpmsg_gevent.serve(make_router(log), "127.0.0.1", 0, tls=server_ctx) as srv:
        with client(srv.port, tls=client_ctx) as c:
            assert c.send("echo", "secure") == "secure"
            assert list(c.stream("count", 3)) == [0, 1, 2]
            calls = [gevent.spawn(c.send, "echo", i) for i in range(20)]
            gevent.joinall(calls, timeout=10, raise_error=True)
            assert [g.value for g in calls] == list(range(20))
        anonymous = ssl.create_default_context(cafile=certs["ca"])
        with pytest.raises(OSError):
            with client(srv.port, tls=anonymous, timeout=2) as c:
                c.send("echo", 1)
        with client(srv.port, tls=client_ctx) as c:
            assert c.send("echo", "still") == "still"


def test_handler_greenlets_are_reused_and_never_queue_behind_a_waiting_one() -> None:
    """The server's pool keeps finished greenlets for the next call (a new greenlet costs a
    fresh Python frame stack), yet a call never waits for a busy one; shutdown ends them."""
    from tcpmsg_sync._backends.gevent import GeventBackend

    pool = GeventBackend().pool(2)
    ran: list[tuple[str, Any]] = []
    release = gevent.event.Event()

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="")

    def work(name: str, wait: bool) -> None:
        assert var.get() == ""  # nothing a previous call set on a reused greenlet
        var.set(name)
        if wait:
            release.wait(5)
        ran.append((name, gevent.getcurrent()))

    pool.submit(work, "a", False)
    gevent.sleep(0.01)
    pool.submit(work, "b", False)  # the idle greenlet of "a" runs it
    gevent.sleep(0.01)
    assert [n for n, _ in ran] == ["a", "b"] and ran[0][1] is ran[1][1]
    pool.submit(work, "slow", True)
    pool.submit(work, "fast", False)  # not behind "slow": a second greenlet starts
    gevent.sleep(0.05)
    assert [n for n, _ in ran] == ["a", "b", "fast"]
    release.set()
    gevent.sleep(0.01)
    assert [n for n, _ in ran] == ["a", "b", "fast", "slow"]
    idle = list(pool._idle)
    assert len(idle) == 2  # both kept, at most max_workers
    pool.shutdown(1.0)
    assert not pool._idle and not pool._running
    gevent.sleep(0.01)
    assert all(g.dead for _, g in ran)


class _LongYield(tcpmsg_gevent.GeventBackend):
    """gevent's backend yielding 50 ms before each write instead of once: the window
    in which a caller owning the connection's write can be interrupted, made wide."""

    def before_write(self) -> None:
        gevent.sleep(0.05)


class _LongYieldClient(tcpmsg_gevent.Client):
    backend = _LongYield()


def test_caller_interrupted_while_owning_the_write_loses_no_bytes(server: Any) -> None:
    """A greenlet interrupted (``gevent.Timeout``) before the write it owns hands it to
    the writer task: its request and those queued behind it still go out, and the
    connection goes on (before, every later call waited behind a write nobody made)."""
    with _LongYieldClient("127.0.0.1", server.port, timeout=5.0) as c:
        for i in range(3):
            with gevent.Timeout(0.01, False):
                c.send("echo", ["given up", i])
                pytest.fail("the timeout should have interrupted the call")
            behind = [gevent.spawn(c.send, "echo", [i, j]) for j in range(5)]
            assert [g.get(timeout=5) for g in behind] == [[i, j] for j in range(5)]
        assert c.send("echo", "after") == "after"


def test_caller_interrupted_mid_write_drops_the_connection() -> None:
    """Interrupted inside a write to a peer that does not read, part of a frame may be on
    the wire: the connection is dropped (its calls fail), never left mid-frame."""
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    peers: list[Any] = []
    acceptor = gevent.spawn(lambda: peers.append(listener.accept()[0]))
    try:
        with client(listener.getsockname()[1]) as c:
            pending = gevent.spawn(c.send, "echo", 0)
            with gevent.Timeout(0.3, False):
                c.send("echo", "x" * 32_000_000)
                pytest.fail("the timeout should have interrupted the write")
            with pytest.raises(ConnectionClosedError):
                pending.get(timeout=5)
            deadline = time.monotonic() + 5
            while c.status.value != "disconnected" and time.monotonic() < deadline:
                gevent.sleep(0.01)
            assert c.status.value == "disconnected"
    finally:
        acceptor.kill()
        for peer in peers:
            peer.close()
        listener.close()
