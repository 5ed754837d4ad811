"""The client connection: correlation, streams, errors, deadlines, cancel, close."""

from __future__ import annotations

from typing import Any

import pytest

from sansio_tcpmsg import ClientConnection
from sansio_tcpmsg.errors import (
    ConnectionClosedError,
    FrameError,
    IncompleteFrameTimeout,
    PatternError,
    UnserializableError,
)
from sansio_tcpmsg.events import (
    ConnectionClosed,
    PacketDropped,
    ProtocolErrorOccurred,
    RemoteErrorReceived,
    RequestTimedOut,
    ResponseReceived,
    StreamEnded,
    StreamItemReceived,
)
from sansio_tcpmsg.framing import encode_frame
from sansio_tcpmsg.limits import Limits


def reply(conn: ClientConnection, text: str, now: float = 0.0) -> list[Any]:
    conn.receive_data(encode_frame(text), now)
    return conn.events_received()


def test_ids_are_unique_and_replies_are_matched() -> None:
    conn = ClientConnection()
    ids = [conn.send_request("echo", i) for i in range(3)]
    assert len(set(ids)) == 3 and conn.pending == 3
    assert reply(conn, f'{{"response":"b","isDisposed":true,"id":"{ids[1]}"}}') == [ResponseReceived(ids[1], "b")]
    assert conn.pending == 2


def test_single_request_takes_the_last_value() -> None:
    conn = ClientConnection()
    rid = conn.send_request("s", 1)
    assert reply(conn, f'{{"response":1,"id":"{rid}"}}') == []
    assert reply(conn, f'{{"response":2,"id":"{rid}"}}') == []
    assert reply(conn, f'{{"isDisposed":true,"id":"{rid}"}}') == [ResponseReceived(rid, 2)]


def test_undefined_reply_is_none() -> None:
    conn = ClientConnection()
    rid = conn.send_request("s", 1)
    assert reply(conn, f'{{"isDisposed":true,"id":"{rid}"}}') == [ResponseReceived(rid, None)]


def test_stream_items_then_end() -> None:
    conn = ClientConnection()
    rid = conn.send_request("s", 1, stream=True)
    assert reply(conn, f'{{"response":1,"id":"{rid}"}}') == [StreamItemReceived(rid, 1)]
    assert reply(conn, f'{{"response":2,"isDisposed":true,"id":"{rid}"}}') == [
        StreamItemReceived(rid, 2),
        StreamEnded(rid),
    ]
    rid = conn.send_request("s", 1, stream=True)
    assert reply(conn, f'{{"isDisposed":true,"id":"{rid}"}}') == [StreamEnded(rid)]


def test_remote_errors_carry_the_raw_payload() -> None:
    conn = ClientConnection()
    rid = conn.send_request("s", 1)
    assert reply(conn, f'{{"err":{{"code":1}},"isDisposed":true,"id":"{rid}"}}') == [
        RemoteErrorReceived(rid, {"code": 1}, False)
    ]
    rid = conn.send_request("s", 1)
    text = f'{{"id":"{rid}","status":"error","err":"There is no matching message handler defined in the remote service."}}'
    assert reply(conn, text) == [
        RemoteErrorReceived(rid, "There is no matching message handler defined in the remote service.", True)
    ]


def test_falsy_err_is_ignored_as_nestjs_does() -> None:
    conn = ClientConnection()
    rid = conn.send_request("s", 1)
    assert reply(conn, f'{{"err":null,"response":5,"isDisposed":true,"id":"{rid}"}}') == [ResponseReceived(rid, 5)]
    rid = conn.send_request("s", 1)
    assert reply(conn, f'{{"err":[],"id":"{rid}"}}') == [RemoteErrorReceived(rid, [], False)]


def test_foreign_payload_becomes_the_response() -> None:
    conn = ClientConnection()
    rid = conn.send_request("s", 1)
    assert reply(conn, f'{{"id":"{rid}","other":1}}') == [ResponseReceived(rid, {"id": rid, "other": 1})]


@pytest.mark.parametrize("text", ["[]", "{}", "5", "null"])
def test_non_replies_are_dropped(text: str) -> None:
    conn = ClientConnection()
    conn.send_request("s", 1)
    events = reply(conn, text)
    assert len(events) == 1 and isinstance(events[0], PacketDropped)
    assert conn.pending == 1


def test_unknown_and_non_string_ids_are_dropped_quietly() -> None:
    conn = ClientConnection()
    conn.send_request("s", 1)
    assert reply(conn, '{"response":1,"isDisposed":true,"id":"nope"}') == []
    assert reply(conn, '{"response":1,"isDisposed":true,"id":{"x":1}}') == []
    assert conn.pending == 1


def test_deadlines_and_timer() -> None:
    conn = ClientConnection()
    assert conn.get_timer() is None
    late = conn.send_request("s", 1, deadline=20.0)
    early = conn.send_request("s", 1, deadline=10.0)
    conn.send_request("s", 1)
    assert conn.get_timer() == 10.0
    conn.handle_timer(9.0)
    assert conn.events_received() == []
    conn.handle_timer(10.0)
    assert conn.events_received() == [RequestTimedOut(early)]
    assert reply(conn, f'{{"response":1,"isDisposed":true,"id":"{early}"}}') == []  # late reply dropped
    conn.cancel(late)
    assert conn.get_timer() is None  # the cancelled request's deadline is forgotten
    conn.handle_timer(30.0)
    assert conn.events_received() == []


def test_answered_requests_do_not_time_out() -> None:
    conn = ClientConnection()
    rid = conn.send_request("s", 1, deadline=5.0)
    reply(conn, f'{{"isDisposed":true,"id":"{rid}"}}')
    conn.handle_timer(6.0)
    assert conn.events_received() == []


def test_remote_error_text() -> None:
    from sansio_tcpmsg import RemoteError

    assert str(RemoteError({"a": 1})) == "remote error: {'a': 1}"


def test_frame_deadline_and_request_deadline_together() -> None:
    conn = ClientConnection(limits=Limits(incomplete_frame_timeout=5.0))
    conn.send_request("s", 1, deadline=100.0)
    conn.receive_data(b"10#{", now=1.0)
    assert conn.get_timer() == 6.0
    conn.receive_data(b'"a"', now=2.0)  # every read refreshes it
    assert conn.get_timer() == 7.0
    conn.handle_timer(7.0)
    events = conn.events_received()
    assert isinstance(events[0], ProtocolErrorOccurred)
    assert isinstance(events[0].error, IncompleteFrameTimeout)
    assert isinstance(events[1], ConnectionClosed) and events[1].failed == ("1",)
    assert conn.closed and conn.get_timer() is None


def test_frame_timer_disabled() -> None:
    conn = ClientConnection(limits=Limits(incomplete_frame_timeout=0))
    conn.receive_data(b"10#{", now=1.0)
    assert conn.get_timer() is None


def test_eof_fails_every_pending_request() -> None:
    conn = ClientConnection()
    ids = (conn.send_request("a", 1), conn.send_request("b", 2))
    conn.receive_eof()
    assert conn.events_received() == [ConnectionClosed(None, ids)]
    conn.receive_eof()
    conn.close()
    assert conn.events_received() == []
    conn.receive_data(b"garbage", 0.0)  # ignored once closed
    with pytest.raises(ConnectionClosedError):
        conn.send_request("a", 1)
    with pytest.raises(ConnectionClosedError):
        conn.emit("a", 1)


def test_protocol_error_closes() -> None:
    conn = ClientConnection()
    conn.send_request("a", 1)
    conn.receive_data(b"xx#", 0.0)
    error, closed = conn.events_received()
    assert isinstance(error, ProtocolErrorOccurred) and isinstance(error.error, FrameError)
    assert isinstance(closed, ConnectionClosed) and closed.failed == ("1",)


def test_invalid_json_is_a_frame_error() -> None:
    conn = ClientConnection()
    conn.receive_data(b"5#{abc}", 0.0)
    error, closed = conn.events_received()
    assert isinstance(error, ProtocolErrorOccurred) and isinstance(closed, ConnectionClosed)
    assert conn.events_received() == []


def test_frames_after_close_in_the_same_read_are_ignored() -> None:
    conn = ClientConnection(limits=Limits(send_high_water=1, max_send_buffer_size=50))
    rid = conn.send_request("a", 1)
    conn.data_to_send()
    conn.note_send_buffer(5)
    assert conn.reading_paused
    conn.note_send_buffer(51)
    assert conn.closed
    conn.note_send_buffer(52)  # once closed, nothing more happens
    events = conn.events_received()
    assert [type(e) for e in events] == [ProtocolErrorOccurred, ConnectionClosed]
    assert events[1].failed == (rid,)


def test_bad_values_raise_before_anything_is_queued() -> None:
    conn = ClientConnection()
    with pytest.raises(UnserializableError):
        conn.send_request("a", float("nan"))
    with pytest.raises(UnserializableError):
        conn.emit("a", object())
    with pytest.raises(PatternError):
        conn.send_request(None, 1)
    with pytest.raises(PatternError):
        conn.emit(None, 1)
    assert conn.data_to_send() == b"" and conn.pending == 0


def test_requests_and_events_as_nestjs_writes_them() -> None:
    conn = ClientConnection()
    conn.send_request({"v": 1, "cmd": "x"}, [1], metadata={"trace": "t"})
    conn.emit({"v": 1, "cmd": "x"}, None, metadata={"trace": "t"})
    assert conn.data_to_send() == encode_frame(
        '{"pattern":{"v":1,"cmd":"x"},"data":[1],"metadata":{"trace":"t"},"id":"1"}'
    ) + encode_frame('{"pattern":"{\\"cmd\\":\\"x\\",\\"v\\":1}","data":null,"metadata":{"trace":"t"}}')


def test_events_say_what_a_client_raises() -> None:
    from sansio_tcpmsg import ConnectionClosedError, NoHandlerError, RemoteError, RequestTimeout
    from sansio_tcpmsg.errors import FrameError

    assert type(RemoteErrorReceived("1", {"a": 1}, False).exception()) is RemoteError
    assert RemoteErrorReceived("1", "x", True).exception().error == "x"
    assert isinstance(RemoteErrorReceived("1", "x", True).exception(), NoHandlerError)
    assert isinstance(RequestTimedOut("7").exception(), RequestTimeout)
    assert "7" in str(RequestTimedOut("7").exception())
    assert isinstance(ConnectionClosed().exception(), ConnectionClosedError)
    assert "bad prefix" in str(ConnectionClosed(FrameError("bad prefix")).exception())


def test_dispatch_hook_sets_metadata_on_requests_and_events() -> None:
    seen: list[dict[str, Any]] = []

    def hook(packet: dict[str, Any]) -> None:
        seen.append(dict(packet))
        packet["metadata"] = {"traceparent": "00-abc-01", **(packet.get("metadata") or {})}

    conn = ClientConnection(on_dispatch=hook)
    conn.send_request({"cmd": "sum"}, [1], metadata={"user": 7})
    conn.emit("note", 2)
    assert seen == [
        {"pattern": {"cmd": "sum"}, "data": [1], "metadata": {"user": 7}},
        {"pattern": "note", "data": 2},
    ]
    from sansio_tcpmsg.framing import encode_frame

    assert conn.data_to_send() == encode_frame(
        '{"pattern":{"cmd":"sum"},"data":[1],"metadata":{"traceparent":"00-abc-01","user":7},"id":"1"}'
    ) + encode_frame('{"pattern":"note","data":2,"metadata":{"traceparent":"00-abc-01"}}')


def test_a_failing_dispatch_hook_fails_the_call_with_nothing_queued() -> None:
    def hook(packet: dict[str, Any]) -> None:
        raise PermissionError("no token")

    conn = ClientConnection(on_dispatch=hook)
    with pytest.raises(PermissionError):
        conn.send_request("x", 1)
    assert conn.data_to_send() == b"" and conn.pending == 0


def test_a_request_past_the_send_cap_raises_and_fails_the_others() -> None:
    conn = ClientConnection(limits=Limits(max_send_buffer_size=100))
    first = conn.send_request("a", 1)
    conn.emit("e", 1)
    with pytest.raises(ConnectionClosedError, match="max_send_buffer_size"):
        conn.send_request("a", "x" * 100)
    assert conn.closed and conn.pending == 0 and conn.data_to_send() == b""
    _, closed = conn.events_received()
    assert closed.failed == (first,)


def test_an_event_past_the_send_cap_raises() -> None:
    conn = ClientConnection(limits=Limits(max_send_buffer_size=50))
    with pytest.raises(ConnectionClosedError, match="max_send_buffer_size"):
        conn.emit("e", "x" * 100)
