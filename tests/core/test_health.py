"""The built-in health route and the draining connection, without sockets."""

from __future__ import annotations

import json

from sansio_tcpmsg import Router, ServerConnection
from sansio_tcpmsg.events import ConnectionClosed, EventReceived, RequestReceived
from sansio_tcpmsg.framing import FrameDecoder, encode_frame
from sansio_tcpmsg.health import CHECK_EXPECT, CHECK_REQUEST, DRAINING, HEALTH_ROUTE, SERVING


def make_router() -> Router:
    router = Router()

    @router.message("work")
    def work(data: object) -> object:
        return data

    @router.message(HEALTH_ROUTE)
    def never(data: object) -> object:  # the route is reserved: never called
        raise AssertionError

    @router.event(HEALTH_ROUTE)
    def seen(data: object) -> None:
        pass

    return router


def test_check_request_is_one_valid_frame() -> None:
    [text] = FrameDecoder().feed(CHECK_REQUEST)
    assert json.loads(text) == {"pattern": HEALTH_ROUTE, "data": None, "id": "health"}


def test_a_serving_connection_answers_serving_by_itself() -> None:
    conn = ServerConnection(make_router())
    conn.receive_data(CHECK_REQUEST, 0.0)
    assert conn.events_received() == [] and conn.in_flight == 0
    reply = conn.data_to_send()
    assert reply == encode_frame('{"response":"serving","isDisposed":true,"id":"health"}')
    assert CHECK_EXPECT.encode() in reply and SERVING == "serving"


def test_a_draining_connection_answers_an_error() -> None:
    conn = ServerConnection(make_router())
    conn.draining = True
    conn.receive_data(encode_frame('{"pattern":"tcpmsg.health","data":1,"id":7}'), 0.0)
    reply = conn.data_to_send()
    assert json.loads(FrameDecoder().feed(reply)[0]) == {"err": DRAINING, "isDisposed": True, "id": 7}
    assert CHECK_EXPECT.encode() not in reply
    assert conn.closed  # the check fails at once


def test_a_draining_connection_with_calls_in_flight_stays_open_for_them() -> None:
    conn = ServerConnection(make_router())
    conn.receive_data(encode_frame('{"pattern":"work","data":1,"id":"a"}'), 0.0)
    [work] = conn.events_received()
    conn.draining = True
    conn.receive_data(CHECK_REQUEST, 0.0)
    assert not conn.closed and b'"draining"' in conn.data_to_send()
    conn.respond(work.request_id, 1)
    assert not conn.closed


def test_health_events_go_to_event_handlers() -> None:
    conn = ServerConnection(make_router())
    conn.receive_data(encode_frame('{"pattern":"tcpmsg.health","data":1}'), 0.0)
    [event] = conn.events_received()
    assert isinstance(event, EventReceived) and len(event.handlers) == 1
    assert conn.data_to_send() == b""


def test_close_when_idle_waits_for_the_last_reply() -> None:
    conn = ServerConnection(make_router())
    conn.receive_data(encode_frame('{"pattern":"work","data":1,"id":"a"}')
                      + encode_frame('{"pattern":"work","data":2,"id":"b"}'), 0.0)
    first, second = conn.events_received()
    assert isinstance(first, RequestReceived) and isinstance(second, RequestReceived)
    conn.close_when_idle(10.0)
    assert not conn.closed and conn.get_timer() is None  # calls in flight: no quiet timer
    conn.respond(first.request_id, 1)
    assert not conn.closed
    conn.receive_data(encode_frame('{"pattern":"work","data":3,"id":"c"}'), 10.5)
    [third] = conn.events_received()  # still read: it is answered before the close
    conn.respond(second.request_id, 2)
    assert not conn.closed
    conn.respond(third.request_id, 3)
    assert conn.closed  # right after the last reply: the client is reading, not writing
    [closed] = conn.events_received()
    assert isinstance(closed, ConnectionClosed) and closed.error is None
    assert len(FrameDecoder().feed(conn.data_to_send())) == 3  # every reply is still written
    assert conn.get_timer() is None


def test_close_when_idle_on_a_long_silent_connection_closes_now() -> None:
    never = ServerConnection(make_router())
    never.close_when_idle(0.0)
    assert never.closed
    silent = ServerConnection(make_router())
    silent.receive_data(encode_frame('{"pattern":"tcpmsg.health","data":1}'), 1.0)
    silent.close_when_idle(2.5, quiet=1.0)
    assert silent.closed


def test_a_recently_active_connection_waits_until_it_goes_quiet() -> None:
    conn = ServerConnection(make_router())
    conn.receive_data(encode_frame('{"pattern":"tcpmsg.health","data":1}'), 5.0)
    conn.close_when_idle(5.2, quiet=1.0)
    assert not conn.closed and conn.get_timer() == 6.0
    conn.receive_data(b"1", 5.8)  # half a frame: the silent-peer deadline is later
    assert conn.get_timer() == 6.8
    conn.handle_timer(6.0)  # woken early (the timer moved): not yet
    assert not conn.closed
    conn.handle_timer(6.8)
    assert conn.closed


def test_the_quiet_timer_does_not_hide_the_frame_timer() -> None:
    from sansio_tcpmsg import Limits

    conn = ServerConnection(make_router(), limits=Limits(incomplete_frame_timeout=0.5))
    conn.receive_data(b"12#", 1.0)
    conn.close_when_idle(1.1, quiet=5.0)
    assert conn.get_timer() == 1.5
