"""Our clients (every binding) against a real NestJS server (10, 11, 12).

Direction "py→nest": ``binding.connect`` talks to ``js/server.js`` (nest.NestServer).
One NestJS server per major for the module (plus TLS ones); one client per
major × binding.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import nest
import pytest
from capture import CaptureServer
from conftest import Certs
from facade import Binding, Client

import sansio_tcpmsg as st

NO_HANDLER = "There is no matching message handler defined in the remote service."
UNICODE = "é中😀\u2028"
TRICKY = 'é 中 😀 \u2028 \u2029 "q" \\ / \n\r\t \x00 \x1f \u00ff \ufeff end'


def _ids(m: int) -> str:
    return f"nest{m}"


@pytest.fixture(scope="module", params=nest.MAJORS, ids=_ids)
def nest_server(request: pytest.FixtureRequest, node_ready: None) -> Iterator[nest.NestServer]:
    with nest.NestServer(request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(nest_server: nest.NestServer, binding: Binding) -> Iterator[Client]:
    with binding.connect(nest_server.port, timeout=30.0) as c:
        yield c


# ---------------------------------------------------------------- patterns, replies


@pytest.mark.parametrize(
    "pattern,data,expected",
    [
        ("echo", {"a": [1, UNICODE]}, {"a": [1, UNICODE]}),
        ({"cmd": "sum"}, [1, 2, 3], 6),
        ('{"cmd":"sum"}', [4, 5], 9),  # the pattern as a JSON string
        ({"a": {"b": 1}, "z": "x"}, 0, "nested"),
        ({"z": "x", "a": {"b": 1}}, 0, "nested"),  # keys in another order
        (42, 0, "forty-two"),
        ("42", 0, "forty-two"),  # the number's route
        (42.0, 0, "forty-two"),  # Python float written as JS writes 42
        (UNICODE, "ü", "ü"),
        ("slow", {"ms": 30}, {"ms": 30}),
    ],
    ids=["string", "object", "object-as-json", "nested", "nested-reordered", "number",
         "number-as-string", "float-42", "unicode-pattern", "async-handler"],
)
def test_send(client: Client, pattern: Any, data: Any, expected: Any) -> None:
    assert client.send(pattern, data) == expected


def test_undefined_reply(client: Client) -> None:
    assert client.send("undefined", 1) is None
    assert list(client.stream("undefined", 1)) == []


def test_stream_with_gaps(client: Client) -> None:
    assert list(client.stream("stream", {"count": 3, "gap_ms": 40})) == [0, 1, 2]


def test_stream_sync(client: Client) -> None:
    assert list(client.stream("stream", {"count": 4})) == [0, 1, 2, 3]


def test_stream_empty(client: Client) -> None:
    assert list(client.stream("stream.empty", 0)) == []
    assert list(client.stream("stream", {"count": 0})) == []
    assert client.send("stream.empty", 0) is None


def test_send_on_stream_gives_last_value(client: Client) -> None:
    assert client.send("stream", {"count": 3, "gap_ms": 10}) == 2


def test_stream_single_value(client: Client) -> None:
    assert list(client.stream("echo", "one")) == ["one"]


def test_many_frames_in_one_read(client: Client) -> None:
    # a synchronous from([...]) is written in one tick: the frames arrive back to back
    assert list(client.stream("stream", {"count": 500})) == list(range(500))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "pattern,err",
    [
        ("error.object", {"code": 42, "reason": "bad"}),
        ("error.string", {"status": "error", "message": "text error"}),
        ("error.plain", {"status": "error", "message": "Internal server error"}),
    ],
    ids=["object", "string", "plain"],
)
def test_remote_errors(client: Client, pattern: str, err: Any) -> None:
    with pytest.raises(st.RemoteError) as info:
        client.send(pattern, 1)
    assert not isinstance(info.value, st.NoHandlerError)
    assert info.value.error == err
    with pytest.raises(st.RemoteError) as info2:
        list(client.stream(pattern, 1))
    assert info2.value.error == err
    assert client.send("echo", "still up") == "still up"


def test_no_handler(client: Client) -> None:
    with pytest.raises(st.NoHandlerError) as info:
        client.send("no.such.pattern", 1)
    assert info.value.error == NO_HANDLER
    with pytest.raises(st.NoHandlerError):
        client.send({"cmd": "nope"}, 1)
    assert client.send("echo", 1) == 1


def test_request_timeout_keeps_client_usable(client: Client) -> None:
    with pytest.raises(st.RequestTimeout):
        client.send("slow", {"ms": 600}, timeout=0.1)
    assert client.send("echo", "after timeout") == "after timeout"
    time.sleep(0.6)  # the late reply arrives and is dropped
    assert client.send("echo", "after late reply") == "after late reply"


# ---------------------------------------------------------------- events


def _wait_events(client: Client, before: int, n: int) -> list[Any]:
    deadline = time.monotonic() + 5
    while True:
        after = client.send("events.get", 0)
        if len(after) >= before + n or time.monotonic() > deadline:
            return after[before:]
        time.sleep(0.02)


def test_events_several_handlers(client: Client) -> None:
    before = len(client.send("events.get", 0))
    tag = f"{client.binding.name}-{time.monotonic()}"
    client.emit("note", {"n": tag})
    client.emit({"k": 1, "evt": "obj"}, UNICODE)  # keys in another order
    assert _wait_events(client, before, 3) == [
        ["noteA", {"n": tag}], ["noteB", {"n": tag}], ["objEvent", UNICODE]
    ]


# ---------------------------------------------------------------- unicode, sizes


@pytest.mark.parametrize(
    "data",
    [UNICODE, TRICKY, {"é": "中", "😀": ["\u2028", "\u2029"], "k\"ey": "\\"}, ["😀" * 1000]],
    ids=["mix", "escapes", "keys", "astral-run"],
)
def test_unicode_data(client: Client, data: Any) -> None:
    assert client.send("echo", data) == data
    assert client.send(UNICODE, data) == data


def test_lone_surrogate(client: Client) -> None:
    # JSON.stringify writes lone surrogates as \udXXX escapes; both ends must agree
    data = "a\ud800b\udfffc"
    assert client.send("echo", data) == data


@pytest.mark.timeout(120)
def test_big_reply(client: Client) -> None:
    size = 11 * 1024 * 1024
    value = client.send("big", {"size": size}, timeout=60)
    assert len(value) == size and value == "x" * size


@pytest.mark.timeout(120)
def test_big_request_non_ascii(client: Client) -> None:
    data = UNICODE * 1_000_000  # 12 MB of UTF-8, 5,000,000 UTF-16 units
    assert client.send("echo", data, timeout=60) == data


# ---------------------------------------------------------------- concurrency


@pytest.mark.timeout(120)
def test_1000_in_flight(client: Client) -> None:
    calls: list[tuple[Any, Any]] = []
    for i in range(1000):
        if i % 2:
            calls.append(("slow", {"ms": (i * 7) % 60, "i": i}))
        else:
            calls.append(("echo", {"i": i, "s": UNICODE * (i % 5)}))
    results = client.send_many(calls, timeout=60)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} failed, first: {errors[0]!r}"
    assert results == [d for _, d in calls]


# ---------------------------------------------------------------- metadata


def test_metadata(client: Client, nest_server: nest.NestServer) -> None:
    meta = {"trace": "abc", "n": 1, "u": UNICODE}
    got = client.send("metadata", 1, metadata=meta)
    if nest_server.major >= 12:
        assert got == meta
    else:
        assert got is None  # 10/11 ignore the key (server.js answers null)
    assert client.send("metadata", 1) is None
    client.emit("note", {"with": "meta"}, metadata=meta)  # accepted by every major


# ---------------------------------------------------------------- on the wire


_nest_frames: dict[int, list[str]] = {}
WIRE_PATTERN = {"z": 1, "a": {"y": "é", "b": [1, "😀"]}, "m": "x"}
WIRE_DATA = {"d": [1, 2.5, None, True], "s": UNICODE}
WIRE_META = {"trace": "t-1", "é": [1]}


def _strip_id(text: str) -> str:
    obj = json.loads(text)
    if "id" in obj:
        return text.replace(json.dumps(obj["id"]), '"<ID>"')
    return text


def _nest_client_frames(major: int) -> list[str]:
    if major not in _nest_frames:
        with CaptureServer() as cap, nest.NestClient(major, cap.port) as cli:
            assert cli.request("send", WIRE_PATTERN, WIRE_DATA)["values"] == ["ok"]
            assert cli.request("emit", WIRE_PATTERN, WIRE_DATA)["done"] is True
            meta = cli.request("send", "m", 1, metadata=WIRE_META)["values"]
            assert meta == ["ok"]
            _nest_frames[major] = cap.wait_frames(3)
    return _nest_frames[major]


def test_wire_send_and_emit_like_nest(binding: Binding, nest_server: nest.NestServer) -> None:
    """A request carries the pattern as given, an event the normalized route string;
    our frames equal a NestJS client's frames byte for byte (apart from the id)."""
    expected = [_strip_id(f) for f in _nest_client_frames(nest_server.major)]
    with CaptureServer() as cap, binding.connect(cap.port, timeout=10) as c:
        assert c.send(WIRE_PATTERN, WIRE_DATA) == "ok"
        c.emit(WIRE_PATTERN, WIRE_DATA)
        assert c.send("m", 1, metadata=WIRE_META) == "ok"
        ours = cap.wait_frames(3)
    request, event, with_meta = (json.loads(f) for f in ours)
    assert request["pattern"] == WIRE_PATTERN and isinstance(request["pattern"], dict)
    assert event["pattern"] == '{"a":{"b":{"0":1,"1":"😀"},"y":"é"},"m":"x","z":1}'
    assert "id" not in event
    assert list(with_meta) == ["pattern", "data", "metadata", "id"]
    assert [_strip_id(f) for f in ours[:2]] == expected[:2]
    if nest_server.major >= 12:
        assert _strip_id(ours[2]) == expected[2]
    else:  # 10/11 clients have no dispatch hook: no metadata key at all
        assert "metadata" not in json.loads(expected[2])


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def nest_tls_server(nest_server: nest.NestServer, certs: Certs) -> Iterator[nest.NestServer]:
    with nest.NestServer(nest_server.major, tls=certs.nest_server_tls()) as srv:
        yield srv


@pytest.fixture(scope="module")
def nest_mtls_server(nest_server: nest.NestServer, certs: Certs) -> Iterator[nest.NestServer]:
    with nest.NestServer(nest_server.major, tls=certs.nest_server_tls(mutual=True)) as srv:
        yield srv


def test_tls(binding: Binding, nest_tls_server: nest.NestServer, certs: Certs) -> None:
    with binding.connect(nest_tls_server.port, tls=certs.client_context(), timeout=10) as c:
        assert c.send("echo", UNICODE) == UNICODE
        assert list(c.stream("stream", {"count": 3, "gap_ms": 5})) == [0, 1, 2]


def test_mutual_tls(binding: Binding, nest_mtls_server: nest.NestServer, certs: Certs) -> None:
    ctx = certs.client_context(with_cert=True)
    with binding.connect(nest_mtls_server.port, tls=ctx, timeout=10) as c:
        assert c.send("echo", "mtls") == "mtls"
        assert c.send({"cmd": "sum"}, [1, 2]) == 3


def test_mutual_tls_refuses_client_without_cert(
    binding: Binding, nest_mtls_server: nest.NestServer, certs: Certs
) -> None:
    with pytest.raises((OSError, st.TcpMsgError)):
        with binding.connect(nest_mtls_server.port, tls=certs.client_context(), timeout=5) as c:
            c.send("echo", "no cert")


def test_plain_client_to_nest_tls_server_names_tls(binding: Binding, nest_tls_server: nest.NestServer) -> None:
    """What a NestJS TLS server does to a client without TLS (a reset, or an alert) is
    reported as TLS, with the fix."""
    with binding.connect(nest_tls_server.port, timeout=10) as c:
        with pytest.raises(st.ConnectionClosedError) as info:
            c.send("echo", 1)
    assert "TLS" in str(info.value) and "tls=ssl.create_default_context()" in str(info.value)


def test_tls_client_to_nest_plain_server_says_it_may_not_speak_tls(
    binding: Binding, nest_server: nest.NestServer, certs: Certs
) -> None:
    with pytest.raises(OSError) as info:
        with binding.connect(nest_server.port, tls=certs.client_context(), timeout=10) as c:
            c.send("echo", 1)
    assert f"TLS handshake with 127.0.0.1:{nest_server.port} failed" in str(info.value), info.value


# ---------------------------------------------------------------- restart


@pytest.mark.timeout(90)
def test_server_restart(binding: Binding, nest_server: nest.NestServer) -> None:
    """The NestJS server restarts under our client: the call in flight fails with
    ConnectionClosedError, the next call reconnects by itself and succeeds, and
    on_status reports the way."""
    seen: list[st.ConnectionStatus] = []
    with nest.NestServer(nest_server.major) as srv:
        with binding.connect(srv.port, timeout=20, on_status=seen.append) as c:
            assert c.send("echo", 1) == 1
            assert c.status == st.ConnectionStatus.CONNECTED
            pending = binding.spawn(c.send, "slow", {"ms": 5000})
            binding.sleep(0.3)  # on gevent: lets the call's greenlet send it
            srv.restart()
            with pytest.raises(st.ConnectionClosedError):
                pending.result(timeout=20)
            assert st.ConnectionStatus.DISCONNECTED in seen, seen
            assert c.send("echo", 2) == 2
            assert c.status == st.ConnectionStatus.CONNECTED
            assert list(c.stream("stream", {"count": 2})) == [0, 1]
    # on_status: connected, disconnected (maybe reconnecting), connected again
    assert seen[0] == st.ConnectionStatus.CONNECTED, seen
    i = seen.index(st.ConnectionStatus.DISCONNECTED)
    assert st.ConnectionStatus.CONNECTED in seen[i:], seen


def test_stream_left_early(client: Client) -> None:
    """Leaving a stream early cancels it locally; the items still coming are dropped."""
    with contextlib.closing(client.stream("stream", {"count": 20, "gap_ms": 15})) as values:
        assert [next(values), next(values)] == [0, 1]  # then leave the loop
    assert client.send("echo", "next") == "next"
    time.sleep(0.4)  # the rest of the stream arrives and is dropped
    assert client.send("echo", "after") == "after"
    assert list(client.stream("stream", {"count": 2})) == [0, 1]


@pytest.fixture(scope="module")
def nest_limited_server(nest_server: nest.NestServer) -> Iterator[nest.NestServer]:
    with nest.NestServer(nest_server.major, env={"MAX_BUFFER_SIZE": "4096"}) as srv:
        yield srv


def test_nest_limit_hit_by_our_client(binding: Binding, nest_limited_server: nest.NestServer) -> None:
    """maxBufferSize=4096 on the NestJS server (11/12; 10.x has no limits): our big frame
    gets the connection ended, the call fails with ConnectionClosedError, and the next
    call reconnects by itself."""
    with binding.connect(nest_limited_server.port, timeout=15) as c:
        assert c.send("echo", "small") == "small"
        big = "x" * 10_000
        if nest_limited_server.major == 10:
            assert c.send("echo", big) == big
        else:
            with pytest.raises(st.ConnectionClosedError):
                c.send("echo", big)
        assert c.send("echo", "again") == "again"


@pytest.mark.timeout(60)
def test_server_gone_then_back(binding: Binding, nest_server: nest.NestServer) -> None:
    """The NestJS server is killed (SIGKILL) and stays away: a call raises OSError (or
    ConnectionClosedError); once a server listens again the next call succeeds."""
    with nest.NestServer(nest_server.major) as srv:
        port = srv.port
        with binding.connect(port, timeout=10) as c:
            assert c.send("echo", 1) == 1
            assert srv.proc is not None
            srv.proc.kill()  # our own child, by pid
            srv.proc.wait(5)
            srv.proc = None
            binding.sleep(0.3)  # on gevent: lets the client's reader see the end
            with pytest.raises((OSError, st.ConnectionClosedError)):
                c.send("echo", 2)
            srv.start(port)
            assert c.send("echo", 3) == 3
