"""Smoke tests of the two sync bindings (threads, gevent): one body, both backends."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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

pytestmark = pytest.mark.timeout(30) if hasattr(pytest.mark, "timeout") else []


def make_router(log: list[Any], gate: Any) -> Router:
    router = Router()

    @router.message("echo")
    def echo(data: Any) -> Any:
        return data

    @router.message("count")
    def count(n: int) -> Iterator[int]:
        yield from range(n)

    @router.message("boom")
    def boom(data: Any) -> Any:
        raise RpcError({"code": 42, "why": data})

    @router.message("crash")
    def crash(data: Any) -> Any:
        raise ValueError("hidden")

    @router.message("sleep")
    def sleep(seconds: float, ctx: Any) -> str:
        gate.sleep(seconds)
        return "slept"

    @router.message("log")
    def get_log(data: Any) -> list[Any]:
        return list(log)

    @router.event("ev")
    def ev1(data: Any) -> None:
        gate.sleep(0.001)
        log.append(("a", data))

    @router.event("ev")
    def ev2(data: Any) -> None:
        log.append(("b", data))

    return router


class Kit:
    """What differs between the two bindings in these tests."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mod = importlib.import_module(f"tcpmsg_{name}")
        if name == "gevent":
            import gevent

            self.sleep: Callable[[float], None] = gevent.sleep
        else:
            self.sleep = time.sleep

    def run_many(self, fns: list[Callable[[], None]]) -> None:
        if self.name == "gevent":
            import gevent

            greenlets = [gevent.spawn(fn) for fn in fns]
            gevent.joinall(greenlets, timeout=20, raise_error=True)
            assert all(g.ready() for g in greenlets)
        else:
            errors: list[BaseException] = []

            def wrap(fn: Callable[[], None]) -> None:
                try:
                    fn()
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            assert not any(t.is_alive() for t in threads)
            if errors:
                raise errors[0]

    def spawn(self, fn: Callable[[], None]) -> Callable[[float], None]:
        """Start ``fn`` in the background; returns a bounded join."""
        if self.name == "gevent":
            import gevent

            g = gevent.spawn(fn)
            return lambda timeout: g.join(timeout)
        t = threading.Thread(target=fn)
        t.start()
        return t.join


@pytest.fixture(params=["threads", "gevent"])
def kit(request: pytest.FixtureRequest) -> Kit:
    return Kit(request.param)


@pytest.fixture
def log() -> list[Any]:
    return []


@pytest.fixture
def server(kit: Kit, log: list[Any]) -> Iterator[Any]:
    with kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, grace=1.0) as srv:
        yield srv


def client(kit: Kit, port: int, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", 5.0)
    return kit.mod.connect("127.0.0.1", port, **kwargs)


def test_echo_stream_and_errors(kit: Kit, server: Any) -> None:
    with client(kit, server.port) as c:
        assert c.send("echo", {"a": [1, "é😀"]}) == {"a": [1, "é😀"]}
        assert c.send("echo", None) is None
        assert list(c.stream("count", 5)) == [0, 1, 2, 3, 4]
        assert c.send("count", 3) == 2  # a non-stream call gets the last value
        with pytest.raises(RemoteError) as info:
            c.send("boom", "x")
        assert info.value.error == {"code": 42, "why": "x"}
        with pytest.raises(RemoteError) as info:
            c.send("crash", 1)
        assert info.value.error == {"status": "error", "message": "Internal server error"}
        with pytest.raises(NoHandlerError):
            c.send("nope", 1)
        with pytest.raises(UnserializableError):
            c.send("echo", float("nan"))
        assert c.status is ConnectionStatus.CONNECTED
        assert c.send("echo", 7) == 7


def test_stream_break_cancels(kit: Kit, server: Any) -> None:
    with client(kit, server.port) as c:
        for value in c.stream("count", 1000):
            if value == 3:
                break
        assert c.send("echo", "after") == "after"


def test_timeout_then_reuse(kit: Kit, server: Any) -> None:
    with client(kit, server.port) as c:
        start = time.monotonic()
        with pytest.raises(RequestTimeout):
            c.send("sleep", 1.0, timeout=0.2)
        assert time.monotonic() - start < 0.9
        assert c.send("echo", 1) == 1
        assert c.send("sleep", 0.01) == "slept"


def test_many_concurrent_sends(kit: Kit, server: Any) -> None:
    results: list[int] = []
    with client(kit, server.port) as c:

        def worker(base: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(10):
                    results.append(c.send("echo", base * 10 + i))
            return run

        kit.run_many([worker(w) for w in range(20)])
    assert sorted(results) == list(range(200))


def test_emit_event_order(kit: Kit, server: Any, log: list[Any]) -> None:
    with client(kit, server.port) as c:
        for i in range(20):
            c.emit("ev", i)
        deadline = time.monotonic() + 5
        while len(log) < 40 and time.monotonic() < deadline:
            kit.sleep(0.01)
    assert log == [(tag, i) for i in range(20) for tag in ("a", "b")]


def test_server_restart_reconnects(kit: Kit, log: list[Any]) -> None:
    statuses: list[ConnectionStatus] = []
    srv = kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, grace=0.5)
    with srv:
        port = srv.port
        c = client(kit, port, on_status=statuses.append, retries=3, retry_delay=0.05)
        c.connect()
        assert c.send("echo", 1) == 1
    deadline = time.monotonic() + 5
    while c.status is not ConnectionStatus.DISCONNECTED and time.monotonic() < deadline:
        kit.sleep(0.01)
    assert c.status is ConnectionStatus.DISCONNECTED
    with kit.mod.serve(make_router(log, kit), "127.0.0.1", port):
        assert c.send("echo", 2) == 2
    c.close()
    assert statuses[:4] == [ConnectionStatus.CONNECTED, ConnectionStatus.DISCONNECTED,
                            ConnectionStatus.RECONNECTING, ConnectionStatus.CONNECTED]


def test_close_fails_pending(kit: Kit, server: Any) -> None:
    outcome: list[BaseException] = []
    c = client(kit, server.port, timeout=10)
    c.connect()

    def call() -> None:
        try:
            c.send("sleep", 3.0)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    join = kit.spawn(call)
    kit.sleep(0.2)
    start = time.monotonic()
    c.close()
    join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionClosedError)
    assert time.monotonic() - start < 2


def test_server_close_is_bounded(kit: Kit, log: list[Any]) -> None:
    srv = kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, grace=0.3)
    srv.start()
    with client(kit, srv.port) as c:
        assert c.send("echo", 1) == 1
        start = time.monotonic()
        srv.close()
        assert time.monotonic() - start < 3
        with pytest.raises(OSError):
            c.send("echo", 2)


# -- faults, limits, TLS -----------------------------------------------------------------

import socket  # noqa: E402
import ssl  # noqa: E402

from sansio_tcpmsg import Limits  # noqa: E402


def raw_socket(kit: Kit, port: int) -> Any:
    if kit.name == "gevent":
        import gevent.socket

        return gevent.socket.create_connection(("127.0.0.1", port), timeout=5)
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def wait_closed(sock: Any, timeout: float = 5.0) -> bool:
    """True once the peer closed ``sock`` (bounded)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_bad_peer_loses_only_its_connection(kit: Kit, server: Any) -> None:
    with client(kit, server.port) as c:
        bad = raw_socket(kit, server.port)
        bad.sendall(b"ab#{}")
        assert wait_closed(bad)
        bad.close()
        assert c.send("echo", "still") == "still"


def test_incomplete_frame_timeout(kit: Kit, log: list[Any]) -> None:
    limits = Limits(incomplete_frame_timeout=0.2)
    with kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, limits=limits) as srv:
        bad = raw_socket(kit, srv.port)
        bad.sendall(b'40#{"pattern"')
        start = time.monotonic()
        assert wait_closed(bad)
        assert 0.1 < time.monotonic() - start < 3
        bad.close()


def test_max_connections(kit: Kit, log: list[Any]) -> None:
    with kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, limits=Limits(max_connections=1)) as srv:
        with client(kit, srv.port) as c:
            assert c.send("echo", 1) == 1
            extra = raw_socket(kit, srv.port)
            assert wait_closed(extra)
            extra.close()
            assert c.send("echo", 2) == 2


def test_peer_that_never_reads(kit: Kit, log: list[Any]) -> None:
    limits = Limits(max_send_buffer_size=256 * 1024, send_high_water=16 * 1024)
    srv = kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, limits=limits)
    srv.start()
    hog = raw_socket(kit, srv.port)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frame = '{"pattern":"echo","data":"%s","id":"1"}' % ("x" * 100_000)
    packet = f"{len(frame)}#{frame}".encode()
    hog.settimeout(0.5)
    with client(kit, srv.port) as c:
        for _ in range(100):  # the server stops reading from the hog, never blocks
            try:
                hog.sendall(packet)
            except (TimeoutError, OSError):
                break
            assert c.send("echo", "alive") == "alive"
        assert c.send("echo", "alive") == "alive"
        # a reply over max_send_buffer_size gets the hog dropped
        huge = '{"pattern":"echo","data":"%s","id":"2"}' % ("y" * 300_000)
        hog2 = raw_socket(kit, srv.port)
        hog2.sendall(f"{len(huge)}#{huge}".encode())
        kit.sleep(0.3)
        assert wait_closed(hog2)
        assert c.send("echo", "alive") == "alive"
        start = time.monotonic()
        srv.close(grace=0.2)
        assert time.monotonic() - start < 4
    hog.close()
    hog2.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pytest.importorskip("cryptography")
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out = tmp_path_factory.mktemp("certs")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smoke CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": str(out / "ca.pem")}
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, serial in (("server", 2), ("client", 3)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(serial)
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False)
                .sign(ca_key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        (out / f"{name}.pem").write_bytes(pem)
        paths[name] = str(out / f"{name}.pem")
    return paths


def test_mutual_tls(kit: Kit, log: list[Any], certs: dict[str, str]) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs["server"])
    server_ctx.load_verify_locations(certs["ca"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    client_ctx.load_cert_chain(certs["client"])
    with kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, tls=server_ctx) as srv:
        with client(kit, srv.port, tls=client_ctx) as c:
            assert c.send("echo", "secure") == "secure"
            assert list(c.stream("count", 3)) == [0, 1, 2]
            kit.run_many([lambda: None if c.send("echo", 1) == 1 else None for _ in range(20)])
        with pytest.raises(OSError):
            client(kit, srv.port, tls=client_ctx, server_hostname="wrong.example").connect()
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


def test_tls_close_sends_close_notify(kit: Kit, log: list[Any], certs: dict[str, str]) -> None:
    """Both sides end TLS with a close_notify (a stdlib peer that refuses ragged EOFs reads
    a clean end of stream), and the server answers a request sent with the handshake."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs["server"])
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    with kit.mod.serve(make_router(log, kit), "127.0.0.1", 0, tls=server_ctx) as srv:
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
