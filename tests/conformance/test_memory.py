"""What one abusive connection may cost: a server's memory stays within a small multiple
of its limits, whatever the binding and however many requests one read held.

The server runs in its own process (``serve_router.py``) so that its peak resident size
(``VmHWM`` in ``/proc/PID/status``) is its own.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CAP = 1_000_000  # max_send_buffer_size
REPLY = 64 * 1024  # bytes per reply
IN_FLIGHT = 256  # max_in_flight: past it the core holds the frames read
# Interpreter noise, and what waits to run: allocator arenas and stacks of the worker
# threads running plain-function handlers (anyio: up to max_workers=64), and a task per
# request in flight (a few KiB each, at most IN_FLIGHT of them): none of it grows with
# the number of requests the peer sent.
MARGIN = 32 << 20
_TCP_CLOSE, _TCP_CLOSE_WAIT = 7, 8


def frame(obj: object) -> bytes:
    text = json.dumps(obj, separators=(",", ":"))
    return f"{len(text)}#{text}".encode()


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def dropped(sock: socket.socket) -> bool:
    """Whether the server ended this connection, read from TCP_INFO (nothing is read)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return struct.unpack("B", info[:1])[0] in (_TCP_CLOSE, _TCP_CLOSE_WAIT)


def echo_once(port: int) -> object:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(frame({"pattern": "echo", "data": "alive", "id": "1"}))
        buf = b""
        while b"#" not in buf or len(buf.split(b"#", 1)[1]) < int(buf.split(b"#", 1)[0]):
            chunk = s.recv(65536)
            assert chunk, "the server closed a well-behaved connection"
            buf += chunk
        head, rest = buf.split(b"#", 1)
        return json.loads(rest[: int(head)])["response"]


# 2,000 requests ask for 128 times the cap; 8,000 for 512 times: the bound is the same.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("REQUESTS", [2_000, 8_000])
def test_peer_that_never_reads_costs_only_its_limits(server_process, capsys, REQUESTS):
    limits = {"max_send_buffer_size": CAP, "max_in_flight": IN_FLIGHT}
    srv = server_process(extra=["--limits", json.dumps(limits)])
    pid = srv.proc.pid
    assert echo_once(srv.port) == "alive"  # lazy imports and pools exist before measuring
    before = status_kib(pid, "VmRSS") << 10
    requests = b"".join(frame({"pattern": "blob", "data": REPLY, "id": str(i)}) for i in range(REQUESTS))
    hog = socket.socket()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        hog.connect(("127.0.0.1", srv.port))
        hog.settimeout(5)  # a server that stops reading from us may leave some unsent
        try:
            hog.sendall(requests)
        except TimeoutError:
            pass
        # Until the server drops us, or its memory has not grown for a second (it
        # stopped working for us), within a bounded time.
        deadline = time.monotonic() + 15
        last, still = status_kib(pid, "VmHWM"), time.monotonic()
        while time.monotonic() < deadline and not dropped(hog) and time.monotonic() - still < 1.5:
            time.sleep(0.1)
            peak = status_kib(pid, "VmHWM")
            if peak != last:
                last, still = peak, time.monotonic()
        was_dropped = dropped(hog)
        growth = (status_kib(pid, "VmHWM") << 10) - before
        assert echo_once(srv.port) == "alive"  # the others are still served
    finally:
        hog.close()
    with capsys.disabled():
        print(f"\n[{srv.name}] peak growth {growth / 2**20:.1f} MiB for {REQUESTS} x {REPLY} B "
              f"asked, cap {CAP / 2**20:.2f} MiB, {IN_FLIGHT} in flight, peer dropped: {was_dropped}")
    assert growth < 8 * CAP + MARGIN, f"grew {growth / 2**20:.1f} MiB with a {CAP} B send cap"
