"""How requests of one connection are scheduled: a handler that waits never holds up
the requests read with it or after it, nor the replies already made, nor other
connections. Raw peers write several requests in one write, so that one read of the
server carries them all."""

from __future__ import annotations

import uuid

from test_limits import frame, raw_peer, read_frames


def request(pattern: str, data: object, rid: str) -> bytes:
    return frame({"pattern": pattern, "data": data, "id": rid})


def test_waiting_handler_does_not_hold_up_the_requests_read_with_it(server):
    token = uuid.uuid4().hex
    with raw_peer(server.port) as peer:
        peer.sendall(request("hold", token, "h") + request("echo", 1, "e") + request("release", token, "r"))
        replies = read_frames(peer, 3, timeout=8)
    by_id = {r["id"]: r["response"] for r in replies}
    assert by_id == {"h": True, "e": 1, "r": token}, "release ran only after hold gave up waiting"


def test_replies_made_are_not_held_behind_a_waiting_handler(binding, server):
    token = uuid.uuid4().hex
    with raw_peer(server.port) as peer, binding.connect(server.port, timeout=5) as other:
        peer.sendall(request("echo", "a", "a") + request("hold", token, "h") + request("echo", "b", "b"))
        # hold waits until release: the echoes before and after it are answered meanwhile
        assert sorted(r["id"] for r in read_frames(peer, 2, timeout=3)) == ["a", "b"]
        assert other.send("echo", "other") == "other"  # another connection is served too
        peer.sendall(request("release", token, "r"))
        replies = read_frames(peer, 2, timeout=5)
    assert sorted(r["id"] for r in replies) == ["h", "r"]
    assert next(r for r in replies if r["id"] == "h")["response"] is True


def test_many_waiting_handlers_on_one_connection(server):
    """Sixteen handlers wait at once on one connection; the request that releases them
    all comes last, in the same write."""
    tokens = [uuid.uuid4().hex for _ in range(16)]
    with raw_peer(server.port) as peer:
        peer.sendall(b"".join(request("hold", t, f"h{i}") for i, t in enumerate(tokens))
                     + b"".join(request("release", t, f"r{i}") for i, t in enumerate(tokens)))
        replies = read_frames(peer, 32, timeout=10)
    held = {r["id"]: r["response"] for r in replies if r["id"].startswith("h")}
    assert held == {f"h{i}": True for i in range(16)}


def test_each_request_starts_in_an_empty_context(server):
    """What a handler sets in a ``contextvars`` variable is not seen by the next request,
    whichever worker runs it."""
    with raw_peer(server.port) as peer:
        for round_ in range(3):
            peer.sendall(b"".join(request("var_set", f"{round_}-{i}", f"{round_}-{i}") for i in range(20)))
            replies = read_frames(peer, 20, timeout=5)
            assert [r.get("response") for r in replies] == [None] * 20  # None: no "response" key
