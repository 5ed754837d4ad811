"""Running behind a balancer, on every binding: the PROXY protocol (plain and before TLS),
the built-in health route and draining, SO_REUSEPORT and TCP keepalive."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import struct
import threading
import time

import pytest
from conftest import client_ctx, server_ctx
from facade import HOST

from sansio_tcpmsg.framing import FrameDecoder, encode_frame
from sansio_tcpmsg.health import CHECK_EXPECT, CHECK_REQUEST
from sansio_tcpmsg.proxy import V2_SIGNATURE

CTX_REQUEST = encode_frame('{"pattern":{"cmd":"ctx"},"data":null,"id":"c1"}')


def v2_header(src: str, sport: int, *, local: bool = False) -> bytes:
    if local:
        return V2_SIGNATURE + b"\x20\x00\x00\x00"
    body = ipaddress.ip_address(src).packed + ipaddress.ip_address(HOST).packed + struct.pack("!HH", sport, 3000)
    body += b"\x04\x00\x03abc"  # a NOOP TLV, skipped
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


def read_reply(sock: socket.socket, timeout: float = 10.0) -> dict | None:
    """The first reply frame, or None if the server closed without one."""
    sock.settimeout(timeout)
    decoder = FrameDecoder()
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        frames = decoder.feed(data)
        if frames:
            return json.loads(frames[0])


def raw(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=10)


@pytest.fixture
def proxied(binding):
    with binding.serve(proxy_protocol=True, grace=1.0) as srv:
        yield srv


def test_v1_header_and_first_frame_in_one_write(proxied):
    with raw(proxied.port) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 4567 3000\r\n" + CTX_REQUEST)
        reply = read_reply(sock)
    assert reply["response"]["peer"] == ["203.0.113.7", 4567]


def test_v2_header_split_across_writes(proxied):
    header = v2_header("198.51.100.9", 61000)
    with raw(proxied.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (header[:5], header[5:14], header[14:20], header[20:] + CTX_REQUEST[:7], CTX_REQUEST[7:]):
            sock.sendall(piece)
            time.sleep(0.01)
        reply = read_reply(sock)
    assert reply["response"]["peer"] == ["198.51.100.9", 61000]


def test_v6_header(proxied):
    with raw(proxied.port) as sock:
        sock.sendall(b"PROXY TCP6 2001:db8::5 ::1 1234 3000\r\n" + CTX_REQUEST)
        assert read_reply(sock)["response"]["peer"] == ["2001:db8::5", 1234]


def test_local_header_keeps_the_socket_address(proxied):
    with raw(proxied.port) as sock:
        sock.sendall(v2_header("", 0, local=True) + CTX_REQUEST)
        reply = read_reply(sock)
        assert reply["response"]["peer"] == [HOST, sock.getsockname()[1]]


def test_a_connection_without_a_header_is_refused(proxied, binding):
    with raw(proxied.port) as sock:
        sock.sendall(CTX_REQUEST)
        assert read_reply(sock) is None  # closed, nothing answered
    with raw(proxied.port) as sock:  # the server goes on serving
        sock.sendall(b"PROXY UNKNOWN\r\n" + CTX_REQUEST)
        assert read_reply(sock)["response"]["peer"][0] == HOST


def test_proxy_header_before_tls(binding, certs):
    with binding.serve(proxy_protocol=True, tls=server_ctx(certs), grace=1.0) as srv:
        for header, peer in [
            (v2_header("192.0.2.44", 5050), ["192.0.2.44", 5050]),
            (b"PROXY TCP4 192.0.2.45 127.0.0.1 5151 3000\r\n", ["192.0.2.45", 5151]),
        ]:
            with raw(srv.port) as plain:
                plain.sendall(header)  # the ClientHello follows at once, maybe in one segment
                with client_ctx(certs).wrap_socket(plain, server_hostname="localhost") as sock:
                    sock.sendall(CTX_REQUEST)
                    assert read_reply(sock)["response"]["peer"] == peer
        with raw(srv.port) as plain:  # TLS without the header: refused before the handshake
            with pytest.raises((ssl.SSLError, OSError)):
                with client_ctx(certs).wrap_socket(plain, server_hostname="localhost") as sock:
                    sock.sendall(CTX_REQUEST)
                    assert read_reply(sock) is None
                    raise ConnectionError("closed without a reply")


def health(port: int, header: bytes = b"") -> bytes:
    with raw(port) as sock:
        sock.sendall(header + CHECK_REQUEST)
        sock.settimeout(10)
        data = b""
        while b"}" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_health_route_answers_without_user_code(binding, server, proxied):
    assert CHECK_EXPECT.encode() in health(server.port)
    assert CHECK_EXPECT.encode() in health(proxied.port, v2_header("", 0, local=True))


def test_a_draining_server_fails_its_health_check_first(binding):
    with binding.serve(drain_delay=1.5, grace=1.0) as srv:
        with binding.connect(srv.port, timeout=10) as client:
            assert client.send("echo", 1) == 1
            closing = binding.spawn(srv.close, None)
            deadline = time.monotonic() + 5
            binding.sleep(0.05)  # lets the close start (gevent: a greenlet of this thread)
            reply = health(srv.port)
            while CHECK_EXPECT.encode() in reply and time.monotonic() < deadline:
                binding.sleep(0.05)
                reply = health(srv.port)
            assert b'"message":"draining"' in reply
            assert client.send("echo", 2) == 2  # meanwhile served as usual
            closing.result(15)
        with pytest.raises(OSError):
            health(srv.port)


def test_reuse_port_lets_two_servers_share_a_port(binding):
    with binding.serve(reuse_port=True) as first:
        with binding.serve(reuse_port=True, port=first.port) as second:
            assert second.port == first.port
            for _ in range(4):
                assert CHECK_EXPECT.encode() in health(first.port)
        with pytest.raises(OSError):
            with binding.serve(port=first.port):
                pass


def _keepalive_timer(port: int) -> set[str]:
    """The timer column of our server's established sockets (``02``: keepalive)."""
    timers = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, state, timer = fields[1], fields[3], fields[5].split(":")[0]
        if state == "01" and int(local.split(":")[1], 16) == port:
            timers.add(timer)
    return timers


@pytest.mark.skipif(not __import__("os").path.exists("/proc/net/tcp"), reason="Linux /proc/net/tcp needed")
@pytest.mark.parametrize("keepalive", [True, False])
def test_keepalive_on_accepted_connections(binding, keepalive):
    with binding.serve(keepalive=keepalive) as srv:
        with binding.connect(srv.port, timeout=10) as client:
            assert client.send("echo", 1) == 1
            expected = {"02"} if keepalive else {"00"}
            deadline = time.monotonic() + 5  # until no retransmission timer is left
            while _keepalive_timer(srv.port) != expected and time.monotonic() < deadline:
                binding.sleep(0.05)
            assert _keepalive_timer(srv.port) == expected


def test_draining_under_paced_load_loses_no_call_that_was_sent(binding):
    """Each connection closes right after a reply (or once quiet), never under a call."""
    from sansio_tcpmsg import ConnectionClosedError

    outcomes: list[str] = []
    stop = threading.Event()

    def lane(port: int) -> None:
        with binding.connect(port, timeout=10) as client:
            while not stop.is_set():
                try:
                    client.send("echo", 1)
                    outcomes.append("ok")
                except ConnectionClosedError as exc:
                    outcomes.append(f"lost: {exc}")
                    return
                except OSError:  # cannot reconnect: the server is gone, nothing was sent
                    return
                binding.sleep(0.02)

    with binding.serve(grace=5.0) as srv:
        calls = [binding.spawn(lane, srv.port) for _ in range(4)]
        binding.sleep(0.5)
        srv.close(None)
        stop.set()
        for call in calls:
            call.result(20)
    assert outcomes.count("ok") > 20
    assert [o for o in outcomes if o != "ok"] == []
