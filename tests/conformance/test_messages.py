"""Requests, replies, streams, errors, events, metadata, context, serialization, timeouts."""

from __future__ import annotations

import random
import time
import uuid

import pytest

import sansio_tcpmsg as st
from sansio_tcpmsg.errors import NO_HANDLER_MESSAGE

# --- send / reply -----------------------------------------------------------------------


def test_send_reply(client):
    assert client.send("echo", 1) == 1
    value = {"s": "é中😀\u2028", "n": [1, 2.5, True, None], "big": 2**40}
    assert client.send("echo", value) == value


def test_send_none_reply(client):
    assert client.send("none", {"x": 1}) is None


def test_send_none_data(client):
    assert client.send("echo", None) is None


def test_patterns_object_number(client):
    assert client.send({"cmd": "sum", "v": 2}, [1, 2, 3]) == 6
    assert client.send({"v": 2, "cmd": "sum"}, [4]) == 4  # key order does not matter
    assert client.send(42, None) == "forty-two"


def test_plain_function_handler(client):
    """Registered untouched: a plain function (anyio runs it in a worker thread)."""
    assert client.send("echo_sync", 5) == {"sync": 5}


def test_send_to_streaming_handler_gives_last_value(client):
    assert client.send("count", {"n": 3, "gap": 0.01}) == 2


# --- streams ----------------------------------------------------------------------------


def test_stream_values_with_gaps(client):
    t0 = time.monotonic()
    assert list(client.stream("count", {"n": 5, "gap": 0.05})) == [0, 1, 2, 3, 4]
    assert time.monotonic() - t0 >= 0.2


def test_stream_items_arrive_as_produced(client):
    times = []
    t0 = time.monotonic()
    for _ in client.stream("count", {"n": 3, "gap": 0.2}):
        times.append(time.monotonic() - t0)
    assert len(times) == 3
    assert times[0] < 0.45, f"first item held back until {times[0]:.2f} s: items are not streamed"


def test_stream_empty(client):
    assert list(client.stream("count", {"n": 0})) == []


def test_stream_plain_generator(client):
    assert list(client.stream("count_sync", 4)) == [0, 1, 2, 3]


def test_stream_of_single_reply_handler(client):
    assert list(client.stream("echo", "x")) == ["x"]
    assert list(client.stream("none", "x")) == []


def test_stream_error_mid_stream(client):
    got = []
    with pytest.raises(st.RemoteError) as e:
        for v in client.stream("stream_fail", None):
            got.append(v)
    assert got == [1]
    assert e.value.error == {"status": "error", "message": "mid-stream"}
    assert client.send("echo", 1) == 1


def test_stream_early_break_cancels(client, binding):
    it = client.stream("count", {"n": 40, "gap": 0.02})
    got = []
    for v in it:
        got.append(v)
        if len(got) == 2:
            break
    if hasattr(it, "close"):
        it.close()
    assert got == [0, 1]
    # The items still coming for the abandoned request are dropped; the client goes on.
    assert client.send("echo", "after") == "after"
    binding.sleep(0.3)
    assert list(client.stream("count", {"n": 3})) == [0, 1, 2]
    assert client.send("echo", "again") == "again"


def test_stream_timeout_bounds_whole_stream(client):
    got = []
    t0 = time.monotonic()
    with pytest.raises(st.RequestTimeout):
        for v in client.stream("count", {"n": 20, "gap": 0.1}, timeout=0.45):
            got.append(v)
    assert time.monotonic() - t0 < 1.5
    assert 1 <= len(got) < 20
    assert client.send("echo", 2) == 2


# --- errors -----------------------------------------------------------------------------


def test_rpc_error_dict(client):
    with pytest.raises(st.RemoteError) as e:
        client.send("boom_dict", None)
    assert not isinstance(e.value, st.NoHandlerError)
    assert e.value.error == {"code": 42, "why": "dict payload"}


def test_rpc_error_text(client):
    with pytest.raises(st.RemoteError) as e:
        client.send("boom_text", None)
    assert e.value.error == {"status": "error", "message": "text payload"}


def test_other_exception_is_internal_error(client):
    with pytest.raises(st.RemoteError) as e:
        client.send("boom_other", None)
    assert e.value.error == {"status": "error", "message": "Internal server error"}
    assert "secret" not in repr(e.value.error)


def test_no_handler(client):
    with pytest.raises(st.NoHandlerError) as e:
        client.send("no-such-route", 1)
    assert isinstance(e.value, st.RemoteError)
    assert e.value.error == NO_HANDLER_MESSAGE
    assert client.send("echo", 1) == 1


def test_handler_returns_unserializable(client):
    """The core answers NestJS's internal error; the binding must not lose the request."""
    with pytest.raises(st.RemoteError) as e:
        client.send("bad_reply", None, timeout=5)
    assert e.value.error == {"status": "error", "message": "Internal server error"}
    assert client.send("echo", 1) == 1


def test_stream_yields_unserializable(client):
    got = []
    with pytest.raises(st.RemoteError) as e:
        for v in client.stream("bad_item", None, timeout=5):
            got.append(v)
    assert got == [1]
    assert e.value.error == {"status": "error", "message": "Internal server error"}
    assert client.send("echo", 1) == 1


def test_errors_are_reusable_client(client):
    for route in ("boom_dict", "boom_text", "boom_other", "nope"):
        with pytest.raises(st.RemoteError):
            client.send(route, None)
    assert client.send("echo", "still") == "still"


# --- unserializable values (local) ------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object(), {"k": {1, 2}}], ids=["nan", "inf", "object", "set"])
def test_unserializable_send_raises_at_once(client, bad):
    t0 = time.monotonic()
    with pytest.raises(st.UnserializableError):
        client.send("echo", bad, timeout=5)
    assert time.monotonic() - t0 < 0.5
    assert client.send("echo", 1) == 1  # the connection stays up


def test_unserializable_emit_and_stream(client):
    with pytest.raises(st.UnserializableError):
        client.emit("evt", float("nan"))
    with pytest.raises(st.UnserializableError):
        list(client.stream("count", {"n": float("nan")}, timeout=5))
    with pytest.raises(st.UnserializableError):
        client.send("echo", 1, metadata={"x": object()}, timeout=5)
    assert client.send("echo", 2) == 2


def test_bad_pattern_raises_locally(client):
    with pytest.raises(st.PatternError):
        client.send(None, 1, timeout=5)
    assert client.send("echo", 3) == 3


# --- timeouts ---------------------------------------------------------------------------


def test_timeout_then_client_still_works(client):
    t0 = time.monotonic()
    with pytest.raises(st.RequestTimeout) as e:
        client.send("slow", 1.0, timeout=0.2)
    elapsed = time.monotonic() - t0
    assert isinstance(e.value, TimeoutError)
    assert 0.15 <= elapsed < 0.8
    assert client.send("echo", "ok") == "ok"


def test_default_timeout_from_connect(binding, server):
    with binding.connect(server.port, timeout=0.2) as c:
        with pytest.raises(st.RequestTimeout):
            c.send("slow", 1.0)
        assert c.send("slow", 0.5, timeout=2) == 0.5
        assert c.send("slow", 0.3, timeout=None) == 0.3  # None waits forever


def test_timeout_none_waits(binding, server):
    with binding.connect(server.port, timeout=None) as c:
        assert c.send("slow", 0.4) == 0.4


def test_late_reply_after_timeout_is_dropped(client, binding):
    with pytest.raises(st.RequestTimeout):
        client.send("slow", {"sleep": 0.3, "value": "late"}, timeout=0.1)
    binding.sleep(0.4)  # the late reply arrives now and must not be mistaken for another
    assert client.send("echo", "fresh") == "fresh"


# --- context and metadata ---------------------------------------------------------------


def test_metadata_reaches_handler(client):
    assert client.send("meta", None, metadata={"trace": "abc", "n": [1]}) == {"trace": "abc", "n": [1]}
    assert client.send("meta", None) is None


def test_context_pattern_route_peer(client):
    got = client.send({"cmd": "ctx"}, None)
    assert got["pattern"] == {"cmd": "ctx"}
    assert got["route"] == '{"cmd":"ctx"}'
    assert isinstance(got["peer"], list), got["peer"]
    assert got["peer"][0] == "127.0.0.1" and isinstance(got["peer"][1], int)


# --- events -----------------------------------------------------------------------------


def _wait_records(client, binding, token, want, timeout=5.0):
    got = binding.wait_until(lambda: (r := client.send("events_seen", token)) == want and r, timeout=timeout)
    return got or client.send("events_seen", token)


def test_emit_runs_every_event_handler_in_order(client, binding):
    token = uuid.uuid4().hex
    assert client.emit("evt", [token, 0]) is None
    assert _wait_records(client, binding, token, [["first", token, 0], ["second", token, 0]]) == [
        ["first", token, 0],
        ["second", token, 0],
    ]


def test_events_from_one_connection_in_arrival_order(client, binding):
    token = uuid.uuid4().hex
    for i in range(15):
        client.emit("evt", [token, i])
    want = [[kind, token, i] for i in range(15) for kind in ("first", "second")]
    assert _wait_records(client, binding, token, want) == want


def test_event_metadata_and_pattern(client, binding):
    token = uuid.uuid4().hex
    client.emit({"cmd": "evt_meta"}, token, metadata={"trace": "e-1"})
    want = [["meta", token, {"trace": "e-1"}, '{"cmd":"evt_meta"}']]
    assert _wait_records(client, binding, token, want) == want


def test_emit_without_handler_is_dropped(client):
    client.emit("no-such-event", 1)
    assert client.send("echo", 1) == 1


# --- many at once -----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_many_concurrent_requests(client):
    rng = random.Random(7)
    calls = []
    for i in range(240):
        if i % 3 == 0:
            calls.append(("slow", {"sleep": rng.uniform(0, 0.05), "value": i}, {"timeout": 20}))
        elif i % 3 == 1:
            calls.append(("echo", {"i": i}, {"timeout": 20}))
        else:
            calls.append(("count", {"n": 2}, {"timeout": 20}))  # send: last value
    t0 = time.monotonic()
    results = client.send_many(calls, timeout=40)
    errors = [(i, r) for i, r in enumerate(results) if isinstance(r, Exception)]
    assert not errors, f"{len(errors)} failed, first: {errors[:3]}"
    for i, value in enumerate(results):
        expected = i if i % 3 == 0 else ({"i": i} if i % 3 == 1 else 1)
        assert value == expected, (i, value)
    assert time.monotonic() - t0 < 30


def test_concurrent_slow_requests_overlap(client):
    """Requests on one connection run concurrently: 10 x 0.3 s well under 3 s."""
    t0 = time.monotonic()
    results = client.send_many([("slow", 0.3, {"timeout": 10})] * 10, timeout=10)
    assert results == [0.3] * 10
    assert time.monotonic() - t0 < 1.5


# --- explicit connect / close -----------------------------------------------------------


def test_explicit_connect_close(binding, server):
    c = binding.client(server.port)
    c.connect()
    try:
        assert c.send("echo", "explicit") == "explicit"
        assert c.status == st.ConnectionStatus.CONNECTED
    finally:
        c.close()
    assert c.status == st.ConnectionStatus.DISCONNECTED


def test_connect_refused_without_retries(binding):
    from conftest import free_port

    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(OSError):
        with binding.connect(port, retries=0):
            pass
    assert time.monotonic() - t0 < 2
