"""The server side: requests and events in, routed to handlers; replies out."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from .codec import Codec
from .connection import Connection
from .defaults import LOG
from .errors import LocalProtocolError, ProxyHeaderError, RpcError, UnserializableError
from .events import EventReceived, PacketDropped, RequestReceived
from .handlers import _VALUES as _ONE_VALUE
from .handlers import Handlers, Stream, log, stream_of
from .health import HEALTH_ROUTE, health_reply
from .limits import Limits
from .packets import (
    INTERNAL_ERROR,
    error_packet,
    error_payload,
    item_packet,
    no_handler_packet,
    parse_incoming,
    reply_packet,
)
from .patterns import route_of_incoming
from .proxy import ProxyHeader, ProxyHeaderReader
from .routing import Context, Router

__all__ = ["ServerConnection"]

_DEBUG = logging.DEBUG


def _done(what: str, context: Context, outcome: str, started: float | None, now: float | None) -> None:
    """The one DEBUG line per request and per event, the same on every binding."""
    if started is None or now is None:
        log.debug("%s %r (route %s) from %s: %s", what, context.pattern, context.route, context.peer, outcome)
    else:
        log.debug(
            "%s %r (route %s) from %s: %s in %.2f ms",
            what, context.pattern, context.route, context.peer, outcome, (now - started) * 1000,
        )


class ServerConnection(Connection):
    """One accepted connection: packets become events; handlers' outcomes become replies.

    Requests with no message handler are answered at once with NestJS's no-handler
    error. For the others a :class:`RequestReceived` carries the handler and an integer
    ``request_id`` (the client's own id can be any JSON value); answer it with exactly
    one of ``respond``, ``fail``, or ``send_item`` calls closed by ``end_stream``.
    Replies to a closed connection are dropped quietly, as the peer is gone. A handler
    that fails, or whose value cannot be sent, is answered with ``fail``.

    With ``proxy_protocol=True`` the stream must begin with a PROXY protocol header (v1
    or v2, see :mod:`sansio_tcpmsg.proxy`); it is consumed before any frame and ``peer``
    becomes the original client's ``(host, port)`` (unless the header is ``LOCAL`` or
    ``UNKNOWN``). A stream without a valid header fails with ``ProxyHeaderError``.

    Requests on the reserved :data:`~sansio_tcpmsg.health.HEALTH_ROUTE` are answered by
    the connection itself: ``"serving"``, or an error once ``draining`` is set (and the
    connection then closes, unless calls are in flight on it).

    A binding hands what the handler returned to :meth:`handler_returned` and what it
    raised to :meth:`handler_raised` (events: :meth:`event_returned`,
    :meth:`event_raised`, :meth:`event_done`): what that means is decided here.
    ``router`` is a :class:`Router`, or the :class:`~sansio_tcpmsg.handlers.Handlers` a
    binding built from it (checked for that binding, middleware included).
    """

    _peer_role = "client"

    def __init__(
        self,
        router: Router | Handlers,
        *,
        peer: Any = None,
        proxy_protocol: bool = False,
        limits: Limits | None = None,
        codec: Codec | None = None,
    ) -> None:
        super().__init__(limits=limits, codec=codec)
        self.router = router
        self.family = router.family if isinstance(router, Handlers) else None
        self.peer = peer
        #: The PROXY header the connection began with, once read (None without one).
        self.proxy_header: ProxyHeader | None = None
        #: True once the server is shutting down: health requests are answered with an error.
        self.draining = False
        self._proxy = ProxyHeaderReader() if proxy_protocol else None
        self._idle_quiet: float | None = None  # set by close_when_idle
        self._last_received = -math.inf
        # our request id -> [the client's id, context, when received, items streamed]
        self._in_flight: dict[int, list[Any]] = {}
        self._next_id = 0
        self._event_failed = False
        self._max_in_flight = self.limits.max_in_flight or math.inf

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        return len(self._in_flight)

    @property
    def reading_paused(self) -> bool:
        """True while the peer is not reading fast enough, or ``Limits.max_in_flight``
        requests are in flight: stop reading from it. Meanwhile no request starts: the
        frames already read wait here, and are handled (their events come out of the
        call that resumed) once replies are written or complete."""
        return self._paused

    def note_send_buffer(self, size: int) -> None:
        """As :meth:`Connection.note_send_buffer`; requests held while the peer did not
        read may start again (take the events after this call too)."""
        Connection.note_send_buffer(self, size)  # not super(): this runs once per write
        self._paused = paused = size > self._high_water or len(self._in_flight) >= self._max_in_flight
        if not paused and self._held:
            self._release()

    @property
    def proxy_bytes_needed(self) -> int:
        """Bytes that may be read next without reading past the PROXY header; 0 once it
        is read (or none is expected). A binding that handshakes TLS after the header
        reads this many raw bytes at a time into ``receive_data`` until it is 0."""
        if self._proxy is None or self.closed:
            return 0
        return self._proxy.needed

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the socket (the PROXY header first, when expected)."""
        self._last_received = now
        if self._proxy is not None and not self.closed:
            try:
                done = self._proxy.feed(data)
            except ProxyHeaderError as exc:
                self._fail(exc)
                return
            if done is None:
                timeout = self.limits.incomplete_frame_timeout  # a silent half header expires too
                self._frame_deadline = now + timeout if timeout else None
                return
            self._proxy = None
            self.proxy_header, data = done
            self.peer = self.proxy_header.peer(self.peer)
            self._frame_deadline = None
            if not data:
                return
        Connection.receive_data(self, data, now)  # not super(): once per read, a super object less

    def receive_eof(self) -> None:
        """The peer closed its side (in the middle of a PROXY header, that is an error)."""
        if self._proxy is not None and self._proxy.received and not self.closed:
            self._fail(ProxyHeaderError(f"connection closed in the middle of a PROXY header: {self._proxy.received!r}"))
            return
        super().receive_eof()

    def close_when_idle(self, now: float, quiet: float = 1.0) -> None:
        """Close when the client is least likely to be writing: right after a final reply
        leaves no request in flight, or once nothing has arrived for ``quiet`` seconds
        (at once, if nothing has). How a draining server lets each connection finish its
        calls and go; requests that arrive meanwhile are served.

        A NestJS client fails the calls it wrote before it saw the close, so closing an
        idle connection blindly races with its next call; just after a reply, a client
        that waits for its replies is not writing.
        """
        self._idle_quiet = quiet
        if not self._in_flight and not self._held and now >= self._last_received + quiet:
            self.close()

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must be called next, or None."""
        frame = Connection.get_timer(self)  # not super(): once per write
        if self._idle_quiet is None or self._in_flight or self._held or self.closed:
            return frame
        quiet = self._last_received + self._idle_quiet
        return quiet if frame is None else min(frame, quiet)

    def handle_timer(self, now: float) -> None:
        """Expire a silent peer; close a draining connection that has gone quiet."""
        super().handle_timer(now)
        if self._idle_quiet is not None and not self._in_flight and not self._held and now >= self._last_received + self._idle_quiet:
            self.close()

    def _handle_packet(self, obj: Any) -> None:
        incoming = parse_incoming(obj)
        if incoming is None:
            self._events.append(PacketDropped(obj, "neither a request nor an event"))
            return
        is_request, client_id, pattern, data, metadata = incoming
        route = route_of_incoming(pattern)
        if not is_request:
            context = Context(pattern, route, metadata, self.peer, True)
            self._events.append(EventReceived(data, context, self.router.event_handlers(route)))
            return
        if route == HEALTH_ROUTE:
            self._queue(health_reply(client_id, self.draining))
            if self.draining and not self._in_flight:
                self.close()  # a check waiting for a string it will not get fails at once
            return
        context = Context(pattern, route, metadata, self.peer, False)
        handler = self.router.message_handler(route)
        if handler is None:
            self._queue(no_handler_packet(client_id))
            if log.isEnabledFor(_DEBUG):
                _done("request", context, "no handler", None, None)
            return
        self._next_id = request_id = self._next_id + 1
        in_flight = self._in_flight
        in_flight[request_id] = [client_id, context, self._last_received, 0]
        self._events.append(RequestReceived(request_id, data, context, handler))
        if len(in_flight) >= self._max_in_flight:
            self._paused = True  # the frames after this one wait for a reply

    def _reply(
        self,
        request_id: int,
        write: Callable[[Any, Any], dict[str, Any]],
        value: Any,
        final: bool,
        outcome: str,
        now: float | None,
    ) -> None:
        # Positional only, from the methods below: a keyword costs a call a little more.
        if self.closed:
            return  # the peer is gone; NestJS drops such replies too
        in_flight = self._in_flight
        record = in_flight.get(request_id)
        if record is None:
            raise LocalProtocolError(f"request {request_id} is not waiting for a reply")
        self._queue(write(record[0], value))  # raises UnserializableError first
        if self.closed:
            return  # it passed the send cap: the peer is dropped, its requests forgotten
        if not final:
            record[3] += 1
            return
        del in_flight[request_id]
        if log.isEnabledFor(_DEBUG):
            _done("request", record[1], outcome or f"streamed {record[3]}", record[2], now)
        if self._paused:
            self.note_send_buffer(self._send_buffered)  # the same bytes: the next held request may start
        if self._idle_quiet is not None and not in_flight and not self._held:
            self.close()

    def respond(self, request_id: int, value: Any, now: float | None = None) -> None:
        """Reply with a single value; ``None`` replies with no value, as ``undefined`` does.

        Raises :class:`UnserializableError` for a value JSON cannot carry, with nothing
        queued and the request still waiting: answer it with ``fail``. ``now`` (the
        binding's clock) dates the DEBUG line.
        """
        self._reply(request_id, reply_packet, value, True, "replied", now)

    def send_item(self, request_id: int, value: Any) -> None:
        """Send one value of a streamed reply (raises as ``respond`` does)."""
        self._reply(request_id, item_packet, value, False, "", None)

    def end_stream(self, request_id: int, now: float | None = None) -> None:
        """Complete a streamed reply."""
        self._reply(request_id, reply_packet, None, True, "", now)  # a reply with no value

    def fail(self, request_id: int, exc: BaseException, now: float | None = None) -> None:
        """Reply with the error NestJS sends for ``exc`` (see :func:`error_payload`)."""
        try:
            self._reply(request_id, error_packet, error_payload(exc), True, "failed", now)
        except UnserializableError:
            self._reply(request_id, error_packet, INTERNAL_ERROR, True, "failed", now)

    # -- what a handler's outcome means -------------------------------------------------

    def handler_returned(self, request_id: int, result: Any, now: float | None = None) -> Stream | None:
        """A request's handler returned ``result``: reply with it and return None, or
        return how it streams; the binding then sends each item with :meth:`send_item`
        and ends with :meth:`end_stream`.

        Raises :class:`TypeError` for a result this binding cannot use (a coroutine from
        a plain function), :class:`UnserializableError` for a value JSON cannot carry:
        pass either to :meth:`handler_raised`.
        """
        if type(result) not in _ONE_VALUE:  # else one value for sure, as stream_of says
            stream = stream_of(result, self.family)
            if stream is not None:
                return stream
        self._reply(request_id, reply_packet, result, True, "replied", now)
        return None

    def handler_raised(self, request_id: int, exc: Exception, now: float | None = None) -> None:
        """A request's handler (or its reply) failed with ``exc``: log it unless it is an
        :class:`RpcError` the handler meant to send, and answer with :meth:`fail`."""
        if not isinstance(exc, RpcError):
            record = self._in_flight.get(request_id)
            route = None if record is None else record[1].route
            log.error("handler for %r failed", route, exc_info=exc)
        self.fail(request_id, exc, now)

    def event_returned(self, result: Any) -> Stream | None:
        """An event handler returned ``result``: None, or how it streams (the binding
        drains it, ignoring the items). Raises as :meth:`handler_returned` does."""
        return stream_of(result, self.family)

    def event_raised(self, event: EventReceived, exc: Exception) -> None:
        """An event handler failed: log it (the other handlers still run)."""
        self._event_failed = True
        log.error("event handler for %r failed", event.context.route, exc_info=exc)

    def event_done(self, event: EventReceived, started: float | None = None, now: float | None = None) -> None:
        """Every handler of ``event`` has run, from ``started`` to ``now`` (the binding's
        clock); events of a connection run one at a time."""
        failed, self._event_failed = self._event_failed, False
        if not event.handlers:
            log.log(*LOG.NO_EVENT_HANDLER, event.context.route)
        if log.isEnabledFor(_DEBUG):
            outcome = "failed" if failed else f"handled by {len(event.handlers)}" if event.handlers else "no handler"
            _done("event", event.context, outcome, started, now)

    def _abandon(self) -> tuple[str, ...]:
        self._in_flight.clear()
        return ()
