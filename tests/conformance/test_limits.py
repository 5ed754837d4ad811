"""Server limits and bad peers, with raw ``socket`` peers: a bad peer loses only its own
connection while a well-behaved client keeps working."""

from __future__ import annotations

import json
import socket
import time

import pytest

from sansio_tcpmsg import Limits


def frame(obj) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    return f"{len(text)}#{text}".encode()


def raw_peer(port: int, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def wait_closed(sock: socket.socket, timeout: float) -> tuple[bool, int]:
    """Read until the server ends the connection; (closed?, bytes read)."""
    deadline = time.monotonic() + timeout
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, total
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            return False, total
        except OSError:  # reset
            return True, total
        if not chunk:
            return True, total
        total += len(chunk)


def read_frames(sock: socket.socket, n: int, timeout: float = 5) -> list:
    """Read ``n`` ASCII frames from a raw socket."""
    buf = b""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        while b"#" in buf:
            head, rest = buf.split(b"#", 1)
            size = int(head)
            if len(rest) < size:
                break
            out.append(json.loads(rest[:size]))
            buf = rest[size:]
            if len(out) == n:
                return out
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"got {len(out)} of {n} frames")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} frames")
        buf += chunk
    return out


@pytest.fixture
def limited(binding):
    def make(**kw):
        return binding.serve(limits=Limits(**kw))

    return make


def test_raw_peer_ids_split_and_packed_frames(server):
    """Any JSON id comes back unchanged; frames split at every byte or packed together."""
    with raw_peer(server.port) as s:
        s.sendall(frame({"pattern": "echo", "data": 1, "id": 7}) + frame({"pattern": "echo", "data": 2, "id": "b"}))
        one = frame({"pattern": "echo", "data": 3, "id": ["x"]})
        for i in range(len(one)):
            s.sendall(one[i:i + 1])
            if i % 10 == 0:
                time.sleep(0.001)
        s.sendall(frame({"pattern": "none", "data": 0, "id": None}))
        replies = read_frames(s, 4)
    by_data = sorted(replies, key=lambda r: json.dumps(r["id"]))
    assert {"response": 1, "isDisposed": True, "id": 7} in by_data
    assert {"response": 2, "isDisposed": True, "id": "b"} in by_data
    assert {"response": 3, "isDisposed": True, "id": ["x"]} in by_data
    assert {"isDisposed": True, "id": None} in by_data


def test_raw_peer_no_handler_reply_shape(server):
    with raw_peer(server.port) as s:
        s.sendall(frame({"pattern": "nope", "data": 1, "id": "z"}))
        (reply,) = read_frames(s, 1)
    assert reply == {
        "id": "z",
        "status": "error",
        "err": "There is no matching message handler defined in the remote service.",
    }


def test_frame_too_large_drops_only_that_peer(binding, limited):
    with limited(max_buffer_size=1000) as srv, binding.connect(srv.port, timeout=5) as good:
        assert good.send("echo", "x" * 900) == "x" * 900  # under the limit
        with raw_peer(srv.port) as bad:
            bad.sendall(b'5000#{"pattern":"echo","data":"' + b"y" * 2000)
            closed, _ = wait_closed(bad, 5)
        assert closed, "a peer over max_buffer_size was not disconnected"
        assert good.send("echo", "still") == "still"


def test_incomplete_frame_timeout(binding, limited):
    with limited(incomplete_frame_timeout=0.5) as srv, binding.connect(srv.port, timeout=5) as good:
        with raw_peer(srv.port) as idle, raw_peer(srv.port) as stalled:
            # a peer idle BETWEEN frames is fine
            idle.sendall(frame({"pattern": "echo", "data": "i", "id": "1"}))
            assert read_frames(idle, 1)[0]["response"] == "i"
            t0 = time.monotonic()
            stalled.sendall(b'60#{"pattern":"echo","da')
            closed, _ = wait_closed(stalled, 5)
            elapsed = time.monotonic() - t0
            assert closed, "a peer silent mid-frame was not disconnected"
            assert 0.35 <= elapsed < 3, elapsed
            time.sleep(max(0.0, 1.0 - elapsed))
            idle.sendall(frame({"pattern": "echo", "data": "j", "id": "2"}))
            assert read_frames(idle, 1)[0]["response"] == "j"
        assert good.send("echo", "ok") == "ok"


@pytest.mark.parametrize(
    "garbage",
    [b"ab#{}", b"12x#" + b"{" * 20, b"3#{x}", b"9" * 40, b"-5#{}"],
    ids=["letters", "junk-after-digits", "invalid-json", "too-many-digits", "negative"],
)
def test_garbage_drops_only_that_peer(binding, server, garbage):
    with binding.connect(server.port, timeout=5) as good:
        assert good.send("echo", 0) == 0
        with raw_peer(server.port) as bad:
            bad.sendall(garbage)
            closed, _ = wait_closed(bad, 5)
        assert closed, f"peer sending {garbage!r} was not disconnected"
        assert good.send("echo", 1) == 1


def test_peer_that_never_reads_is_dropped(binding, limited):
    total_asked = 60 * 200_000
    with limited(max_send_buffer_size=256 * 1024, send_high_water=16 * 1024) as srv:
        with binding.connect(srv.port, timeout=5) as good:
            with raw_peer(srv.port, rcvbuf=4096) as hog:
                hog.sendall(b"".join(frame({"pattern": "blob", "data": 200_000, "id": str(i)}) for i in range(60)))
                t0 = time.monotonic()
                while time.monotonic() - t0 < 1.5:  # the others are served meanwhile
                    t1 = time.monotonic()
                    assert good.send("echo", "alive") == "alive"
                    assert time.monotonic() - t1 < 1.0
                    binding.sleep(0.1)
                closed, got = wait_closed(hog, 10)
            assert closed, f"a peer that never reads was not dropped ({got} bytes read)"
            assert got < total_asked, "every reply was delivered: the peer was never dropped"
            assert good.send("echo", "after") == "after"


def test_requests_past_max_in_flight_wait_for_a_reply(binding, limited):
    """Past ``max_in_flight`` no handler starts for what one connection sent: the echoes
    pipelined behind three slow requests are answered only after one of those, and every
    request is answered in the end (the held ones are released, none lost)."""
    slow = [frame({"pattern": "slow", "data": 0.2, "id": f"s{i}"}) for i in range(3)]
    echoes = [frame({"pattern": "echo", "data": i, "id": i}) for i in range(300)]
    with limited(max_in_flight=3) as srv, raw_peer(srv.port) as peer:
        peer.sendall(b"".join(slow + echoes))
        replies = read_frames(peer, 303, timeout=20)
        assert isinstance(replies[0]["id"], str), f"an echo ran before any slow reply: {replies[0]}"
        assert {r["id"] for r in replies} == {"s0", "s1", "s2", *range(300)}
        assert all(r["response"] == (0.2 if isinstance(r["id"], str) else r["id"]) for r in replies)
        peer.sendall(frame({"pattern": "echo", "data": "after", "id": "a"}))  # reading resumed
        assert read_frames(peer, 1) == [{"response": "after", "isDisposed": True, "id": "a"}]


def test_max_connections(binding, limited):
    with limited(max_connections=2) as srv:
        with binding.connect(srv.port, timeout=5) as a, binding.connect(srv.port, timeout=5) as b:
            assert a.send("echo", "a") == "a" and b.send("echo", "b") == "b"
            with raw_peer(srv.port) as extra:
                extra.sendall(frame({"pattern": "echo", "data": 1, "id": "1"}))
                closed, got = wait_closed(extra, 5)
            assert closed and got == 0, "a connection over max_connections was served"
            with pytest.raises(OSError):  # ConnectionClosedError is an OSError too
                with binding.connect(srv.port, timeout=2) as third:
                    third.send("echo", 3)
            assert a.send("echo", "a2") == "a2"
        # both closed: room again
        def try_once():
            try:
                with binding.connect(srv.port, timeout=2) as c:
                    return c.send("echo", "room") == "room"
            except OSError:
                return False

        assert binding.wait_until(try_once, timeout=5, step=0.1)
