"""What only the sync implementation (tcpmsg_sync) has, on both its backends: its own TLS
layer (``ssl.MemoryBIO`` + ``SSLObject``, ``tcpmsg_sync/_tls.py``).

The TLS contract (round trips, hostnames, mutual TLS, stalled handshakes, 32 callers at
once) is the conformance suite's, on every binding; here is what this layer promises
beyond it: a close_notify on both sides, and a refused client certificate named in the
call's error.
"""

from __future__ import annotations

import importlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sansio_tcpmsg import Router

pytestmark = pytest.mark.timeout(30)


def make_router() -> Router:
    router = Router()

    @router.message("echo")
    def echo(data: Any) -> Any:
        return data

    @router.event("ev")
    def ev(data: Any) -> None:
        pass

    return router


class Kit:
    """The backend under test: its module and its way of waiting."""

    def __init__(self, name: str) -> None:
        self.mod = importlib.import_module(f"tcpmsg_{name}")
        if name == "gevent":
            import gevent

            self.sleep: Callable[[float], None] = gevent.sleep
        else:
            self.sleep = time.sleep


@pytest.fixture(params=["threads", "gevent"])
def kit(request: pytest.FixtureRequest) -> Kit:
    return Kit(request.param)


def client(kit: Kit, port: int, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", 5.0)
    return kit.mod.connect("127.0.0.1", port, **kwargs)


def test_refused_client_certificate_is_named(kit: Kit, certs: dict[str, str]) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs["server"])
    server_ctx.load_verify_locations(certs["ca"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    with kit.mod.serve(make_router(), "127.0.0.1", 0, tls=server_ctx) as srv:
        anonymous = ssl.create_default_context(cafile=certs["ca"])
        # TLS 1.3: refused after the client's handshake; the call names why
        with pytest.raises(OSError, match="(?i)certificate"):
            with client(kit, srv.port, tls=anonymous, timeout=2) as c:
                c.send("echo", 1)


def _in_thread(kit: Kit, fn: Callable[[], Any]) -> Any:
    """Run blocking stdlib code in an OS thread, waiting the binding's way (gevent's hub
    keeps serving meanwhile); its result, or its exception raised."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001
            out.append(("err", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not out and time.monotonic() < deadline:
        kit.sleep(0.01)
    assert out, "the blocking side did not finish in 10 s"
    kind, value = out[0]
    if kind == "err":
        raise value
    return value


def test_tls_close_sends_close_notify(kit: Kit, certs: dict[str, str]) -> None:
    """Both sides end TLS with a close_notify (a stdlib peer that refuses ragged EOFs reads
    a clean end of stream), and the server answers a request sent with the handshake."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs["server"])
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    with kit.mod.serve(make_router(), "127.0.0.1", 0, tls=server_ctx) as srv:
        raw = _in_thread(kit, lambda: client_ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", srv.port), timeout=5),
            server_hostname="localhost", suppress_ragged_eofs=False))
        try:
            raw.sendall(b'39#{"pattern":"echo","data":"hi","id":"1"}')

            def read_reply() -> bytes:
                got = b""
                while b'"hi"' not in got:
                    got += raw.recv(4096)
                return got

            assert b'"response":"hi"' in _in_thread(kit, read_reply)
            srv.close(grace=0.5)
            assert _in_thread(kit, lambda: raw.recv(4096)) == b""  # not SSLEOFError
        finally:
            raw.close()

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> bytes:
        conn, _ = listener.accept()
        conn.settimeout(5)
        tls = server_ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        got = b""
        while chunk := tls.recv(4096):  # SSLEOFError on a ragged end
            got += chunk
        tls.close()
        return got

    try:
        accepted = threading.Thread(target=lambda: results.append(serve_one()), daemon=True)
        results: list[bytes] = []
        accepted.start()
        c = client(kit, port, tls=client_ctx, server_hostname="localhost")
        c.connect()
        c.emit("ev", 1)
        c.close()
        deadline = time.monotonic() + 10
        while accepted.is_alive() and time.monotonic() < deadline:
            kit.sleep(0.01)
        assert results and b'"pattern":"ev"' in results[0]
    finally:
        listener.close()


def test_thread_pool_says_when_a_call_waits_for_a_busy_worker() -> None:
    """The server relies on it: when ``submit`` says a runner waits for a busy worker, the
    replies already made are written before the next handler starts."""
    from tcpmsg_sync._backends.threads import ThreadBackend

    pool = ThreadBackend().pool(1)
    release = threading.Event()
    ran: list[str] = []
    try:
        assert pool.submit(lambda: (release.wait(5), ran.append("first"))) is True
        assert pool.submit(ran.append, "second") is False  # the one worker is busy
        release.set()
        deadline = time.monotonic() + 5
        while len(ran) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran == ["first", "second"]  # it ran once the worker was free
    finally:
        release.set()
        pool.shutdown(2.0)
