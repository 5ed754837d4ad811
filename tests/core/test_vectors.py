"""Golden vectors: frames written by real NestJS (recorded by tests/vectors/record.py)."""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

import pytest

from sansio_tcpmsg import ClientConnection, Router, RpcError, ServerConnection
from sansio_tcpmsg.errors import PatternError
from sansio_tcpmsg.events import ConnectionClosed, RequestReceived
from sansio_tcpmsg.framing import encode_frame
from sansio_tcpmsg.testing import run_handler

VECTORS = pathlib.Path(__file__).parent.parent / "vectors"
MAJORS = {major: json.loads((VECTORS / f"nest{major}.json").read_text(encoding="utf-8")) for major in (10, 11, 12)}
CLIENT_CASES = [c for c in MAJORS[12]["client_frames"] if "frame_b64" in c]
SERVER_CASES = MAJORS[12]["server_frames"]

# Where we are stricter than NestJS, on purpose: NestJS's parseInt reads " +37" and
# "46abc" as lengths; we refuse any prefix that is not plain digits.
LENIENT_PREFIXES = {"length_with_trailing_garbage", "length_with_leading_space_and_plus"}
# Python has one None where JavaScript has null and undefined: a handler returning None
# replies as NestJS does for undefined (no "response" key), so echoing null differs.
NULL_REPLY = "null_return"


def with_our_ids(frame_text: str, nest_ids: list[str]) -> bytes:
    """NestJS's frame with its random ids replaced by ours ("1", "2", ...)."""
    out = b""
    rest = frame_text
    for number, nest_id in enumerate(nest_ids, start=1):
        length, _, rest = rest.partition("#")
        body, rest = rest[: int(length)], rest[int(length) :]
        out += encode_frame(body.replace(f'"id":"{nest_id}"', f'"id":"{number}"'))
    return out


@pytest.mark.parametrize("case", CLIENT_CASES, ids=lambda c: c["case"])
def test_our_client_writes_what_nestjs_writes(case: dict[str, Any]) -> None:
    call = case["call"]
    conn = ClientConnection()
    frame_text = base64.b64decode(case["frame_b64"]).decode("utf-8", "surrogatepass")
    if call["op"] == "emit":
        conn.emit(call["pattern"], call["data"], metadata=call.get("metadata"))
        assert conn.data_to_send() == base64.b64decode(case["frame_b64"])
        return
    if call["pattern"] is True:
        with pytest.raises(PatternError):  # we refuse locally what no server can route
            conn.send_request(call["pattern"], call["data"])
        return
    packets = case.get("packets") or [case["packet"]]
    datas = call["data"] if call["op"] == "send x3" else [call["data"]]
    for data in datas:
        conn.send_request(call["pattern"], data, metadata=call.get("metadata"))
    assert conn.data_to_send() == with_our_ids(frame_text, [p["id"] for p in packets])


def nest_like_router() -> Router:
    """The handlers of tests/interop/js/server.js that the recorded cases use."""
    router = Router()

    @router.message("echo")
    def echo(data: Any) -> Any:
        return data

    @router.message("undefined")
    def undefined(data: Any) -> None:
        return None

    @router.message("stream")
    def stream(data: Any) -> Any:
        yield from range(data["count"])

    @router.message("stream.empty")
    def empty(data: Any) -> Any:
        yield from ()

    @router.message("error.object")
    def error_object(data: Any) -> Any:
        raise RpcError({"code": 42, "reason": "bad"})

    @router.message("error.string")
    def error_string(data: Any) -> Any:
        raise RpcError("text error")

    @router.message("error.plain")
    def error_plain(data: Any) -> Any:
        raise ValueError("secret detail")

    @router.message({"cmd": "sum"})
    def add(data: Any) -> Any:
        return sum(data)

    @router.message({"z": "x", "a": {"b": 1}})
    def nested(data: Any) -> Any:
        return "nested"

    @router.message(42)
    def forty_two(data: Any) -> Any:
        return "forty-two"

    @router.message("é中😀\u2028")
    def unicode(data: Any) -> Any:
        return data

    @router.message("metadata")
    def metadata(data: Any, ctx: Any) -> Any:
        return ctx.metadata

    @router.event("note")
    def note(data: Any) -> None:
        pass

    return router


@pytest.mark.parametrize("case", SERVER_CASES, ids=lambda c: c["case"])
def test_our_server_answers_what_nestjs_answers(case: dict[str, Any]) -> None:
    conn = ServerConnection(nest_like_router())
    request = base64.b64decode(case["request_b64"])
    conn.receive_data(request, 0.0)
    events = conn.events_received()
    for event in events:
        if isinstance(event, RequestReceived):
            run_handler(conn, event)
    closed = any(isinstance(e, ConnectionClosed) for e in events)
    if case["case"] in LENIENT_PREFIXES:
        assert closed
        return
    if case["case"] == NULL_REPLY:
        assert conn.data_to_send() == b'29#{"isDisposed":true,"id":"r1"}'
        return
    assert closed == case["connection_closed_by_server"]
    expected = [json.loads(base64.b64decode(f["frame_b64"]).split(b"#", 1)[1]) for f in case["reply_frames"]]
    ours = [json.loads(body) for body in split_frames(conn.data_to_send())]
    if case["case"].startswith("stream") and expected:
        # NestJS merges the stream's end into its last item; we send the end apart.
        last = dict(expected[-1])
        if "response" in last:
            del last["isDisposed"]
            expected[-1:] = [last, {"isDisposed": True, "id": last["id"]}]
    assert ours == expected
    if not case["case"].startswith("stream"):
        assert conn.data_to_send() == b""


def split_frames(data: bytes) -> list[str]:
    from sansio_tcpmsg.framing import FrameDecoder

    return FrameDecoder().feed(data)


def test_server_reply_bytes_are_identical() -> None:
    conn = ServerConnection(nest_like_router())
    for case in SERVER_CASES:
        if case["case"] in {"single", "single_unicode", "single_lone_surrogate", "error_object", "error_string",
                            "error_plain", "no_handler", "undefined_return", "object_id"}:
            conn.receive_data(base64.b64decode(case["request_b64"]), 0.0)
            for event in conn.events_received():
                assert isinstance(event, RequestReceived)
                run_handler(conn, event)
            assert conn.data_to_send() == base64.b64decode(case["reply_b64"]), case["case"]


# 10.x escapes nothing in routes, so an event pattern with `"` or `\\` in it differs.
OLDER_DIFFERENCES = {10: {"emit.escape_pattern"}, 11: set()}


@pytest.mark.parametrize("major", [10, 11])
def test_older_majors_write_the_same_frames(major: int) -> None:
    """10.x and 11.x write what 12.x writes, apart from random ids and 12's metadata."""
    older = {c["case"]: c for c in MAJORS[major]["client_frames"] if "frame_b64" in c}
    compared = 0
    for case in CLIENT_CASES:
        theirs = older.get(case["case"])
        if theirs is None or "metadata" in case["call"] or case["case"] in OLDER_DIFFERENCES[major]:
            continue
        if case["call"]["op"] == "emit":
            assert theirs["frame_text"] == case["frame_text"], case["case"]
        else:
            mine_all = case.get("packets") or [case["packet"]]
            for mine, other in zip(mine_all, theirs.get("packets") or [theirs["packet"]], strict=True):
                assert (other["pattern"], other["data"]) == (mine["pattern"], mine["data"]), case["case"]
        compared += 1
    assert compared >= 20
    replies = {c["case"]: c["reply_b64"] for c in MAJORS[major]["server_frames"]}
    for case in SERVER_CASES:
        if case["case"] in replies and case["case"] not in {"metadata", "stream_async"}:
            assert replies[case["case"]] == case["reply_b64"], case["case"]
