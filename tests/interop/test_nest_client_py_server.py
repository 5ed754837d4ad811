"""A real NestJS client (10, 11, 12) against our servers (every binding).

Direction "nest→py": ``js/client.js`` (nest.NestClient, a NestJS ``ClientTCP``) talks to
``binding.serve(mirror router)`` on port 0. One server per binding for the module (plus
TLS and limited ones), one NestJS client per major × binding.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import nest
import pytest
from conftest import Certs
from facade import Binding, Server

import sansio_tcpmsg as st

NO_HANDLER = "There is no matching message handler defined in the remote service."
UNICODE = "é中😀\u2028"
TRICKY = 'é 中 😀 \u2028 \u2029 "q" \\ / \n\r\t \x00 \x1f \u00ff \ufeff end'
CLOSED = {"$error": "Error", "message": "Connection closed"}


def _ids(m: int) -> str:
    return f"nest{m}"


@pytest.fixture(scope="module")
def py_server(binding: Binding) -> Iterator[Server]:
    with binding.serve() as srv:
        yield srv


@pytest.fixture(scope="module", params=nest.MAJORS, ids=_ids)
def major(request: pytest.FixtureRequest, node_ready: None) -> int:
    return int(request.param)


@pytest.fixture(scope="module")
def nest_client(py_server: Server, major: int) -> Iterator[nest.NestClient]:
    with nest.NestClient(major, py_server.port) as cli:
        yield cli


def ok(res: dict[str, Any]) -> list[Any]:
    assert "error" not in res, res
    values: list[Any] = res["values"]
    return values


# ---------------------------------------------------------------- patterns, replies


@pytest.mark.parametrize(
    "pattern,data,expected",
    [
        ("echo", {"a": [1, UNICODE]}, [{"a": [1, UNICODE]}]),
        ({"cmd": "sum"}, [1, 2, 3], [6]),
        ('{"cmd":"sum"}', [4, 5], [9]),
        ({"a": {"b": 1}, "z": "x"}, 0, ["nested"]),
        ({"z": "x", "a": {"b": 1}}, 0, ["nested"]),
        (42, 0, ["forty-two"]),
        ("42", 0, ["forty-two"]),
        (UNICODE, "ü", ["ü"]),
        ("slow", {"ms": 30}, [{"ms": 30}]),
        ("pattern", 0, ["pattern"]),
    ],
    ids=["string", "object", "object-as-json", "nested", "nested-reordered", "number",
         "number-as-string", "unicode-pattern", "slow-handler", "route"],
)
def test_send(nest_client: nest.NestClient, pattern: Any, data: Any, expected: Any) -> None:
    assert ok(nest_client.request("send", pattern, data)) == expected


def test_request_pattern_travels_as_given(nest_client: nest.NestClient) -> None:
    # a NestJS client sends a request's pattern object as is (JS key order)
    [seen] = ok(nest_client.request("send", {"k": 1, "cmd": "raw"}, 0))
    assert seen == {"k": 1, "cmd": "raw"} and list(seen) == ["k", "cmd"]


def test_undefined_reply(nest_client: nest.NestClient) -> None:
    assert ok(nest_client.request("send", "undefined", 1)) == []


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"count": 3, "gap_ms": 40}, [0, 1, 2]),
        ({"count": 4}, [0, 1, 2, 3]),
        ({"count": 300}, list(range(300))),
        ({"count": 0}, []),
    ],
    ids=["gaps", "sync", "many-frames", "empty-generator"],
)
def test_stream(nest_client: nest.NestClient, data: Any, expected: list[Any]) -> None:
    assert ok(nest_client.request("send", "stream", data)) == expected


def test_stream_empty(nest_client: nest.NestClient) -> None:
    assert ok(nest_client.request("send", "stream.empty", 0)) == []


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "pattern,err",
    [
        ("error.object", {"code": 42, "reason": "bad"}),
        ("error.string", {"status": "error", "message": "text error"}),
        ("error.plain", {"status": "error", "message": "Internal server error"}),
        ("no.such.pattern", NO_HANDLER),
        ({"cmd": "nope"}, NO_HANDLER),
    ],
    ids=["object", "string", "plain", "no-handler", "no-handler-object"],
)
def test_errors(nest_client: nest.NestClient, pattern: Any, err: Any) -> None:
    res = nest_client.request("send", pattern, 1)
    assert res["error"] == err
    assert res["values"] == []
    assert ok(nest_client.request("send", "echo", "still up")) == ["still up"]


# ---------------------------------------------------------------- events


def _wait_events(cli: nest.NestClient, route: str, before: int, n: int) -> list[Any]:
    deadline = time.monotonic() + 5
    while True:
        after = ok(cli.request("send", route, 0))[0]
        if len(after) >= before + n or time.monotonic() > deadline:
            return after[before:]
        time.sleep(0.02)


def test_events_several_handlers(nest_client: nest.NestClient) -> None:
    before = len(ok(nest_client.request("send", "events.get", 0))[0])
    raw_before = len(ok(nest_client.request("send", "events.raw", 0))[0])
    tag = f"{nest_client.major}-{time.monotonic()}"
    assert nest_client.request("emit", "note", {"n": tag})["done"] is True
    assert nest_client.request("emit", {"k": 1, "evt": "obj"}, UNICODE)["done"] is True
    assert _wait_events(nest_client, "events.get", before, 3) == [
        ["noteA", {"n": tag}], ["noteB", {"n": tag}], ["objEvent", UNICODE]
    ]
    # an event's pattern travels as the normalized route string
    assert _wait_events(nest_client, "events.raw", raw_before, 1) == ['{"evt":"obj","k":1}']


# ---------------------------------------------------------------- unicode, sizes


@pytest.mark.parametrize(
    "data",
    [UNICODE, TRICKY, {"é": "中", "😀": ["\u2028", "\u2029"], "k\"ey": "\\"}, ["😀" * 1000],
     "a\ud800b\udfffc"],
    ids=["mix", "escapes", "keys", "astral-run", "lone-surrogates"],
)
def test_unicode_data(nest_client: nest.NestClient, data: Any) -> None:
    assert ok(nest_client.request("send", "echo", data)) == [data]
    assert ok(nest_client.request("send", UNICODE, data)) == [data]


@pytest.mark.timeout(120)
def test_big_reply(nest_client: nest.NestClient) -> None:
    size = 11 * 1024 * 1024
    [value] = ok(nest_client.request("send", "big", {"size": size}, timeout=60))
    assert len(value) == size and value == "x" * size


@pytest.mark.timeout(120)
def test_big_request_non_ascii(nest_client: nest.NestClient) -> None:
    data = UNICODE * 1_000_000  # 12 MB of UTF-8, 5,000,000 UTF-16 units
    assert ok(nest_client.request("send", "echo", data, timeout=60)) == [data]


# ---------------------------------------------------------------- concurrency


@pytest.mark.timeout(120)
def test_1000_in_flight(nest_client: nest.NestClient) -> None:
    cmds: list[dict[str, Any]] = []
    for i in range(1000):
        if i % 2:
            cmds.append({"op": "send", "pattern": "slow", "data": {"ms": (i * 7) % 60, "i": i}})
        else:
            cmds.append({"op": "send", "pattern": "echo", "data": {"i": i, "s": UNICODE * (i % 5)}})
    results = nest_client.send_many(cmds, timeout=60)
    bad = [r for r in results if "error" in r]
    assert not bad, f"{len(bad)} failed, first: {bad[0]}"
    assert [r["values"] for r in results] == [[c["data"]] for c in cmds]


# ---------------------------------------------------------------- metadata


def test_metadata(nest_client: nest.NestClient) -> None:
    meta = {"trace": "abc", "n": 1, "u": UNICODE}
    got = ok(nest_client.request("send", "metadata", 1, metadata=meta))
    if nest_client.major >= 12:
        assert got == [meta]
    else:
        assert got == []  # 10/11 send no metadata; None replies like undefined
    assert ok(nest_client.request("send", "metadata", 1)) == []
    assert nest_client.request("emit", "note", {"m": 1}, metadata=meta)["done"] is True


# ---------------------------------------------------------------- raw: many frames per read


def _read_replies(sock: socket.socket, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    dec = st.FrameDecoder()
    out: list[dict[str, Any]] = []
    sock.settimeout(timeout)
    while len(out) < n:
        data = sock.recv(1 << 16)
        if not data:
            break
        out.extend(json.loads(t) for t in dec.feed(data))
    return out


def test_many_frames_in_one_write(py_server: Server) -> None:
    """300 requests (some in a non-ASCII, split-UTF-8 stream) in one sendall."""
    frames = []
    for i in range(300):
        pattern = "echo" if i % 3 else UNICODE
        text = json.dumps({"pattern": pattern, "data": {"i": i, "u": UNICODE}, "id": f"r{i}"},
                          ensure_ascii=False, separators=(",", ":"))
        frames.append(st.encode_frame(text))
    blob = b"".join(frames)
    with socket.create_connection(("127.0.0.1", py_server.port), timeout=10) as sock:
        sock.sendall(blob[:7])  # a partial length prefix first
        time.sleep(0.05)
        mid = blob.index("中".encode()) + 1  # split inside a UTF-8 character
        sock.sendall(blob[7:mid])
        time.sleep(0.05)
        sock.sendall(blob[mid:])
        replies = _read_replies(sock, 300)
    by_id = {r["id"]: r for r in replies}
    assert len(by_id) == 300
    for i in range(300):
        assert by_id[f"r{i}"] == {"response": {"i": i, "u": UNICODE}, "isDisposed": True,
                                  "id": f"r{i}"}


def test_reply_bytes_match_nest(py_server: Server) -> None:
    """Our replies are the bytes a NestJS server writes (key order included)."""
    reqs = [
        ({"pattern": "echo", "data": {"a": 1}, "id": "x1"},
         '{"response":{"a":1},"isDisposed":true,"id":"x1"}'),
        ({"pattern": "undefined", "data": 1, "id": 7},
         '{"isDisposed":true,"id":7}'),
        ({"pattern": "error.string", "data": 1, "id": None},
         '{"err":{"status":"error","message":"text error"},"isDisposed":true,"id":null}'),
        ({"pattern": "nope", "data": 1, "id": "x3"},
         '{"id":"x3","status":"error","err":"' + NO_HANDLER + '"}'),
    ]
    with socket.create_connection(("127.0.0.1", py_server.port), timeout=10) as sock:
        for packet, expected in reqs:
            sock.sendall(st.encode_frame(json.dumps(packet, separators=(",", ":"))))
            dec = st.FrameDecoder()
            texts: list[str] = []
            while not texts:
                texts = dec.feed(sock.recv(65536))
            assert texts == [expected]


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def py_tls_server(binding: Binding, certs: Certs) -> Iterator[Server]:
    with binding.serve(tls=certs.server_context()) as srv:
        yield srv


@pytest.fixture(scope="module")
def py_mtls_server(binding: Binding, certs: Certs) -> Iterator[Server]:
    with binding.serve(tls=certs.server_context(mutual=True)) as srv:
        yield srv


def test_tls(py_tls_server: Server, major: int, certs: Certs) -> None:
    with nest.NestClient(major, py_tls_server.port, tls=certs.nest_client_tls()) as cli:
        assert ok(cli.request("send", "echo", UNICODE)) == [UNICODE]
        assert ok(cli.request("send", "stream", {"count": 3, "gap_ms": 5})) == [0, 1, 2]


def test_mutual_tls(py_mtls_server: Server, major: int, certs: Certs) -> None:
    with nest.NestClient(major, py_mtls_server.port,
                         tls=certs.nest_client_tls(with_cert=True)) as cli:
        assert ok(cli.request("send", "echo", "mtls")) == ["mtls"]
        assert ok(cli.request("send", {"cmd": "sum"}, [1, 2])) == [3]


def test_mutual_tls_refuses_client_without_cert(
    py_mtls_server: Server, major: int, certs: Certs
) -> None:
    try:
        with nest.NestClient(major, py_mtls_server.port, tls=certs.nest_client_tls()) as cli:
            res = cli.request("send", "echo", "no cert", timeout=10)
    except (nest.NestError, TimeoutError):
        return  # refused during the handshake: client.js never got connected
    assert "error" in res, res


def test_nest_tls_client_to_plain_server_is_logged(
    py_server: Server, major: int, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    """A NestJS client with tlsOptions reaching a server without TLS: the server says so."""
    caplog.set_level(logging.WARNING, logger="tcpmsg")
    try:
        with nest.NestClient(major, py_server.port, tls=certs.nest_client_tls()) as cli:
            cli.request("send", "echo", 1, timeout=10)
    except (nest.NestError, TimeoutError):
        pass  # refused during the handshake
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logged = [r.getMessage() for r in caplog.records if "the client speaks TLS" in r.getMessage()]
        if logged:
            break
        time.sleep(0.05)
    assert logged, [r.getMessage() for r in caplog.records]
    assert "its first bytes are a TLS handshake record, b" in logged[0]
    assert "\\x16\\x03\\x01" in logged[0]  # the repr's quotes depend on the random bytes after


# ---------------------------------------------------------------- limits


@pytest.fixture(scope="module")
def py_limited_server(binding: Binding) -> Iterator[Server]:
    limits = st.Limits(max_buffer_size=4096)
    with binding.serve(limits=limits) as srv:
        yield srv


def test_limit_hit_by_nest_client(py_limited_server: Server, major: int) -> None:
    """A NestJS client's frame over our max_buffer_size: that connection is closed and
    its call fails with 'Connection closed'; other clients keep being served, and the
    NestJS client reconnects by itself on its next call."""
    port = py_limited_server.port
    with nest.NestClient(major, port) as good, nest.NestClient(major, port) as bad:
        assert ok(good.request("send", "echo", "a")) == ["a"]
        assert ok(bad.request("send", "echo", "b")) == ["b"]
        slow = good.submit({"op": "send", "pattern": "slow", "data": {"ms": 300}})
        res = bad.request("send", "echo", "x" * 10_000, timeout=15)
        assert res.get("error") == CLOSED, res
        assert good.wait([slow], timeout=15)[slow]["values"] == [{"ms": 300}]
        assert ok(good.request("send", "echo", "still served")) == ["still served"]
        assert ok(bad.request("send", "echo", "back")) == ["back"]  # reconnected


# ---------------------------------------------------------------- graceful close


def test_graceful_close_under_nest_client(binding: Binding, major: int) -> None:
    """Closing our server lets the NestJS client's call in flight finish (grace), then
    the connection is closed and the client's next call fails (nothing listens)."""
    server_cm = binding.serve()
    srv = server_cm.__enter__()
    try:
        with nest.NestClient(major, srv.port) as cli:
            assert ok(cli.request("send", "echo", 1)) == [1]
            tag = cli.submit({"op": "send", "pattern": "slow", "data": {"ms": 500}})
            time.sleep(0.15)
            started = time.monotonic()
            server_cm.__exit__(None, None, None)  # graceful close, default grace 5 s
            server_cm = None
            assert time.monotonic() - started < 4.5
            assert cli.wait([tag], timeout=10)[tag] == {"tag": tag, "values": [{"ms": 500}]}
            res = cli.request("send", "echo", 2, timeout=10)
            assert "error" in res, res
    finally:
        if server_cm is not None:
            server_cm.__exit__(None, None, None)


def test_nest_client_killed_mid_stream(py_server: Server, major: int) -> None:
    """A NestJS client killed while our server streams to it: the others are still served."""
    with nest.NestClient(major, py_server.port) as other:
        victim = nest.NestClient(major, py_server.port)
        with victim:
            victim.submit({"op": "send", "pattern": "stream", "data": {"count": 40, "gap_ms": 10}})
            victim.submit({"op": "send", "pattern": "big", "data": {"size": 4_000_000}})
            time.sleep(0.1)
            assert victim.proc is not None
            victim.proc.kill()  # our own child, by pid
            victim.proc.wait(5)
        time.sleep(0.3)
        assert ok(other.request("send", "echo", "alive")) == ["alive"]
        assert ok(other.request("send", "stream", {"count": 3, "gap_ms": 5})) == [0, 1, 2]
