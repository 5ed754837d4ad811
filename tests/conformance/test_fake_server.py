"""The client against raw ``socket`` fake servers that misbehave."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

import sansio_tcpmsg as st
from sansio_tcpmsg import Limits


class FakeServer:
    """Accepts connections; ``script(conn)`` plays each one (in a plain thread)."""

    def __init__(self, script):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.stop = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        n = 0
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            self.conns.append(conn)
            n += 1
            threading.Thread(target=self._play, args=(conn, n), daemon=True).start()

    def _play(self, conn, n):
        try:
            self.script(conn, n)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
        for c in self.conns:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_request(conn) -> dict:
    buf = b""
    while b"#" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, rest = buf.split(b"#", 1)
    while len(rest) < int(head):
        rest += conn.recv(65536)
    return json.loads(rest[: int(head)])


def reply(obj) -> bytes:
    text = json.dumps(obj, separators=(",", ":"))
    return f"{len(text)}#{text}".encode()


def test_garbage_reply_fails_pending_then_reconnects(binding):
    def script(conn, n):
        req = read_request(conn)
        if n == 1:
            conn.sendall(b"ab#{}")
            time.sleep(1)
        else:
            conn.sendall(reply({"response": "fine", "isDisposed": True, "id": req["id"]}))
            time.sleep(1)

    with FakeServer(script) as fake, binding.connect(fake.port, timeout=5) as c:
        t0 = time.monotonic()
        with pytest.raises(st.ConnectionClosedError):
            c.send("x", 1)
        assert time.monotonic() - t0 < 2
        assert c.send("x", 2) == "fine"


def test_server_silent_mid_frame_hits_client_limit(binding):
    def script(conn, n):
        read_request(conn)
        conn.sendall(b'50#{"response":')
        time.sleep(3)

    with FakeServer(script) as fake, binding.connect(fake.port, timeout=None, limits=Limits(incomplete_frame_timeout=0.5)) as c:
        t0 = time.monotonic()
        with pytest.raises(st.ConnectionClosedError):
            c.send("x", 1)
        assert 0.35 <= time.monotonic() - t0 < 2.5


def test_unknown_ids_and_split_reply(binding):
    def script(conn, n):
        req = read_request(conn)
        data = reply({"response": "stray", "isDisposed": True, "id": "no-such-id"})
        data += reply({"response": "mine", "isDisposed": True, "id": req["id"]})
        for i in range(0, len(data), 3):  # frames split anywhere
            conn.sendall(data[i:i + 3])
            time.sleep(0.001)
        time.sleep(1)

    with FakeServer(script) as fake, binding.connect(fake.port, timeout=5) as c:
        assert c.send("x", 1) == "mine"


def test_server_closes_at_once(binding):
    def script(conn, n):
        conn.close()

    with FakeServer(script) as fake:
        with pytest.raises(OSError):  # ConnectionClosedError, or a refused (re)connect
            with binding.connect(fake.port, timeout=3) as c:
                binding.sleep(0.1)
                c.send("x", 1)
