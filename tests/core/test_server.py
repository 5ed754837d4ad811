"""The server connection: requests and events routed, replies by NestJS's rules."""

from __future__ import annotations

from typing import Any

import pytest

from sansio_tcpmsg import Limits, Router, RpcError, ServerConnection
from sansio_tcpmsg.errors import LocalProtocolError, UnserializableError
from sansio_tcpmsg.events import (
    ConnectionClosed,
    EventReceived,
    PacketDropped,
    ProtocolErrorOccurred,
    RequestReceived,
)
from sansio_tcpmsg.framing import encode_frame


def make_router() -> Router:
    router = Router()

    @router.message("echo")
    def echo(data: Any, ctx: Any) -> Any:
        return data

    @router.event("note")
    def first(data: Any) -> None:
        pass

    @router.event("note")
    def second(data: Any, ctx: Any) -> None:
        pass

    return router


def request(conn: ServerConnection, text: str) -> list[Any]:
    conn.receive_data(encode_frame(text), 0.0)
    return conn.events_received()


def test_request_event_carries_handler_and_context() -> None:
    conn = ServerConnection(make_router(), peer=("127.0.0.1", 5))
    [event] = request(conn, '{"pattern":"\\"echo\\"","data":1,"metadata":{"t":1},"id":"x"}')
    assert isinstance(event, RequestReceived)
    assert event.context.route == "echo" and event.context.metadata == {"t": 1}
    assert event.context.peer == ("127.0.0.1", 5) and event.context.pattern == '"echo"'
    assert event.context.is_event is False
    assert conn.in_flight == 1
    conn.respond(event.request_id, event.handler(event.data, event.context))
    assert conn.data_to_send() == encode_frame('{"response":1,"isDisposed":true,"id":"x"}')
    assert conn.in_flight == 0


def test_events_get_every_handler_in_order() -> None:
    router = make_router()
    conn = ServerConnection(router)
    [event] = request(conn, '{"pattern":"note","data":1}')
    assert isinstance(event, EventReceived) and len(event.handlers) == 2
    assert event.context.is_event is True
    [event] = request(conn, '{"pattern":"other","data":1}')
    assert isinstance(event, EventReceived) and event.handlers == ()
    assert conn.data_to_send() == b""


def test_no_handler_is_answered_by_the_core() -> None:
    conn = ServerConnection(make_router())
    assert request(conn, '{"pattern":"nope","data":1,"id":null}') == []
    assert conn.data_to_send() == encode_frame(
        '{"id":null,"status":"error","err":"There is no matching message handler defined in the remote service."}'
    )


@pytest.mark.parametrize("text", ['{"id":"x"}', "[1]", "5", '"s"'])
def test_non_packets_are_dropped(text: str) -> None:
    conn = ServerConnection(make_router())
    [event] = request(conn, text)
    assert isinstance(event, PacketDropped)


def test_streams_and_errors() -> None:
    conn = ServerConnection(make_router())
    ids = [e.request_id for e in request(conn, '{"pattern":"echo","data":1,"id":"a"}{"x":0}'[:36])]
    ids += [e.request_id for e in request(conn, '{"pattern":"echo","data":1,"id":"b"}')]
    ids += [e.request_id for e in request(conn, '{"pattern":"echo","data":1,"id":"c"}')]
    a, b, c = ids
    conn.send_item(a, 1)
    conn.end_stream(a)
    conn.fail(b, RpcError("text"))
    conn.fail(c, KeyError("secret"))
    assert conn.data_to_send() == b"".join(
        encode_frame(t)
        for t in (
            '{"response":1,"id":"a"}',
            '{"isDisposed":true,"id":"a"}',
            '{"err":{"status":"error","message":"text"},"isDisposed":true,"id":"b"}',
            '{"err":{"status":"error","message":"Internal server error"},"isDisposed":true,"id":"c"}',
        )
    )
    with pytest.raises(LocalProtocolError):
        conn.respond(a, 1)


def test_rpc_error_payload_shapes() -> None:
    conn = ServerConnection(make_router())
    for payload, err in [({"c": 1}, '{"c":1}'), ([1], "[1]"), (7, '{"status":"error","message":7}')]:
        [event] = request(conn, '{"pattern":"echo","data":1,"id":"a"}')
        conn.fail(event.request_id, RpcError(payload))
        assert conn.data_to_send() == encode_frame(f'{{"err":{err},"isDisposed":true,"id":"a"}}')


def test_unserializable_reply_raises_and_fail_answers() -> None:
    conn = ServerConnection(make_router())
    [event] = request(conn, '{"pattern":"echo","data":1,"id":"a"}')
    with pytest.raises(UnserializableError):
        conn.respond(event.request_id, {"x": float("inf")})
    with pytest.raises(UnserializableError):
        conn.send_item(event.request_id, object())
    assert conn.in_flight == 1 and conn.data_to_send() == b""
    conn.fail(event.request_id, RpcError({"x": float("nan")}))  # even the error cannot travel
    assert conn.data_to_send() == encode_frame(
        '{"err":{"status":"error","message":"Internal server error"},"isDisposed":true,"id":"a"}'
    )


def test_replies_after_close_are_dropped() -> None:
    conn = ServerConnection(make_router())
    [event] = request(conn, '{"pattern":"echo","data":1,"id":"a"}')
    conn.receive_eof()
    assert conn.events_received() == [ConnectionClosed(None, ())]
    conn.respond(event.request_id, 1)
    assert conn.data_to_send() == b"" and conn.in_flight == 0


def test_null_json_is_an_empty_object() -> None:
    conn = ServerConnection(make_router())
    [event] = request(conn, "null")
    assert isinstance(event, PacketDropped) and event.packet == {}


def test_replies_past_the_send_cap_drop_the_peer_and_are_not_queued() -> None:
    """However many replies come before the binding writes, the core holds at most the
    cap: the one that would pass it fails the connection and everything queued goes."""
    from sansio_tcpmsg import Limits
    from sansio_tcpmsg.errors import SendBufferExceeded
    from sansio_tcpmsg.events import ProtocolErrorOccurred

    conn = ServerConnection(make_router(), limits=Limits(max_send_buffer_size=300))
    conn.receive_data(encode_frame('{"pattern":"echo","data":1,"id":1}') * 3, 0.0)
    events = conn.events_received()
    assert len(events) == 3 and conn.in_flight == 3
    conn.note_send_buffer(100)  # what the socket still holds
    conn.respond(events[0].request_id, "x" * 100)  # 100 + 144 bytes: under the cap
    assert not conn.closed and conn.bytes_to_send == 144
    conn.respond(events[1].request_id, "y" * 100)  # would pass it
    assert conn.closed and conn.in_flight == 0
    error, closed = conn.events_received()
    assert isinstance(error, ProtocolErrorOccurred) and isinstance(error.error, SendBufferExceeded)
    assert "388 bytes" in str(error.error) and isinstance(closed, ConnectionClosed)
    conn.respond(events[2].request_id, "z")  # the peer is gone: dropped quietly
    assert conn.data_to_send() == b""


def test_no_handler_replies_past_the_send_cap_stop_the_read() -> None:
    from sansio_tcpmsg import Limits

    conn = ServerConnection(make_router(), limits=Limits(max_send_buffer_size=200))
    conn.receive_data(encode_frame('{"pattern":"nope","data":0,"id":0}') * 3
                      + encode_frame('{"pattern":"echo","data":0,"id":0}'), 0.0)
    assert conn.closed and conn.data_to_send() == b""
    assert [type(e).__name__ for e in conn.events_received()] == ["ProtocolErrorOccurred", "ConnectionClosed"]


def test_shared_defaults_are_valid_log_lines_and_timings() -> None:
    import logging

    from sansio_tcpmsg import defaults

    lines = {k: v for k, v in vars(defaults.LOG).items() if k.isupper()}
    assert len(lines) >= 10
    for name, (level, text) in lines.items():
        assert logging.getLevelName(level) in ("DEBUG", "INFO", "WARNING"), name
        assert "%" in text, name
    assert 0 < defaults.CLOSE_TIMEOUT <= defaults.FLUSH_TIMEOUT < defaults.HANDSHAKE_TIMEOUT
    assert defaults.RETRY_DELAY_CAP > 0


# -- requests in flight: past max_in_flight the core pauses reading and holds frames ----


def frames(*ids: int, pattern: str = "echo") -> bytes:
    return b"".join(encode_frame(f'{{"pattern":"{pattern}","data":{i},"id":"{i}"}}') for i in ids)


def test_past_max_in_flight_reading_pauses_and_frames_wait_in_order() -> None:
    conn = ServerConnection(make_router(), limits=Limits(max_in_flight=2))
    conn.receive_data(frames(1, 2, 3) + encode_frame('{"pattern":"note","data":0}'), 0.0)
    first = conn.events_received()
    assert [e.data for e in first] == [1, 2]  # no handler starts for the held ones
    assert conn.reading_paused and conn.in_flight == 2
    conn.receive_data(frames(4), 0.0)  # read before the binding paused: it waits too
    assert conn.events_received() == []
    conn.respond(first[0].request_id, 1)  # one slot: the next request starts
    [third] = conn.events_received()
    assert third.data == 3 and conn.reading_paused
    conn.respond(first[1].request_id, 2)  # the event and request 4 follow, in order
    events = conn.events_received()
    assert [type(e) for e in events] == [EventReceived, RequestReceived] and events[1].data == 4
    assert conn.reading_paused  # two in flight again
    conn.respond(third.request_id, 3)
    assert not conn.reading_paused
    conn.receive_data(frames(5), 0.0)
    assert [e.data for e in conn.events_received()] == [5]


def test_a_peer_that_does_not_read_holds_its_requests_until_it_does() -> None:
    conn = ServerConnection(make_router(), limits=Limits(send_high_water=10))
    conn.note_send_buffer(11)
    assert conn.reading_paused
    conn.receive_data(frames(1, 2), 0.0)
    assert conn.events_received() == [] and conn.in_flight == 0
    conn.note_send_buffer(10)
    assert not conn.reading_paused
    assert [e.data for e in conn.events_received()] == [1, 2]


def test_max_in_flight_zero_is_no_cap() -> None:
    conn = ServerConnection(make_router(), limits=Limits(max_in_flight=0))
    conn.receive_data(frames(*range(3000)), 0.0)
    assert len(conn.events_received()) == 3000 and not conn.reading_paused


def test_a_bad_held_frame_fails_the_connection_when_its_turn_comes() -> None:
    conn = ServerConnection(make_router(), limits=Limits(max_in_flight=1))
    conn.receive_data(frames(1) + encode_frame("{oops") + frames(2), 0.0)
    [first] = conn.events_received()
    conn.respond(first.request_id, 1)
    assert conn.closed
    assert [type(e) for e in conn.events_received()] == [ProtocolErrorOccurred, ConnectionClosed]


def test_held_frames_are_forgotten_on_close_and_keep_a_draining_connection_open() -> None:
    conn = ServerConnection(make_router(), limits=Limits(send_high_water=10))
    conn.note_send_buffer(11)
    conn.receive_data(frames(1), 0.0)
    conn.close_when_idle(5.0, quiet=1.0)  # nothing in flight, but a request waits
    assert not conn.closed and conn.get_timer() is None
    conn.handle_timer(10.0)
    assert not conn.closed
    conn.note_send_buffer(0)
    [event] = conn.events_received()
    conn.respond(event.request_id, 1)  # the last reply: now it is idle
    assert conn.closed
    conn = ServerConnection(make_router(), limits=Limits(max_in_flight=1))
    conn.receive_data(frames(1, 2, 3), 0.0)
    [first] = conn.events_received()
    conn.note_send_buffer(11)  # paused by the peer and by the cap at once
    conn.close_when_idle(5.0, quiet=1.0)
    conn.respond(first.request_id, 1)  # a held request starts: still not idle
    assert not conn.closed
    conn.close()
    assert isinstance(conn.events_received()[-1], ConnectionClosed)
    conn.receive_data(frames(4), 0.0)  # the held frames were forgotten; nothing more comes
    assert conn.in_flight == 0 and conn.events_received() == []
