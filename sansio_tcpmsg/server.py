"""The server side: requests and events in, routed to handlers; replies out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .codec import Codec
from .connection import Connection
from .errors import LocalProtocolError, UnserializableError
from .events import EventReceived, PacketDropped, RequestReceived
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
from .routing import Context, Router

__all__ = ["ServerConnection"]


class ServerConnection(Connection):
    """One accepted connection: packets become events; handlers' outcomes become replies.

    Requests with no message handler are answered at once with NestJS's no-handler
    error. For the others a :class:`RequestReceived` carries the handler and an integer
    ``request_id`` (the client's own id can be any JSON value); answer it with exactly
    one of ``respond``, ``fail``, or ``send_item`` calls closed by ``end_stream``.
    Replies to a closed connection are dropped quietly, as the peer is gone. A handler
    that fails, or whose value cannot be sent, is answered with ``fail``.
    """

    def __init__(
        self,
        router: Router,
        *,
        peer: Any = None,
        limits: Limits | None = None,
        codec: Codec | None = None,
    ) -> None:
        super().__init__(limits=limits, codec=codec)
        self.router = router
        self.peer = peer
        self._in_flight: dict[int, Any] = {}  # our request id -> the client's id
        self._next_id = 0

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        return len(self._in_flight)

    def _handle_packet(self, obj: Any) -> None:
        incoming = parse_incoming(obj)
        if incoming is None:
            self._events.append(PacketDropped(obj, "neither a request nor an event"))
            return
        route = route_of_incoming(incoming.pattern)
        context = Context(incoming.pattern, route, incoming.metadata, self.peer)
        if not incoming.is_request:
            self._events.append(EventReceived(incoming.data, context, self.router.event_handlers(route)))
            return
        handler = self.router.message_handler(route)
        if handler is None:
            self._queue(no_handler_packet(incoming.id))
            return
        self._next_id += 1
        self._in_flight[self._next_id] = incoming.id
        self._events.append(RequestReceived(self._next_id, incoming.data, context, handler))

    def _reply(
        self, request_id: int, write: Callable[[Any, Any], dict[str, Any]], value: Any, *, final: bool
    ) -> None:
        if self.closed:
            return  # the peer is gone; NestJS drops such replies too
        in_flight = self._in_flight
        if request_id not in in_flight:
            raise LocalProtocolError(f"request {request_id} is not waiting for a reply")
        self._queue(write(in_flight[request_id], value))  # raises UnserializableError first
        if final:
            del in_flight[request_id]

    def respond(self, request_id: int, value: Any) -> None:
        """Reply with a single value; ``None`` replies with no value, as ``undefined`` does.

        Raises :class:`UnserializableError` for a value JSON cannot carry, with nothing
        queued and the request still waiting: answer it with ``fail``.
        """
        self._reply(request_id, reply_packet, value, final=True)

    def send_item(self, request_id: int, value: Any) -> None:
        """Send one value of a streamed reply (raises as ``respond`` does)."""
        self._reply(request_id, item_packet, value, final=False)

    def end_stream(self, request_id: int) -> None:
        """Complete a streamed reply."""
        self._reply(request_id, reply_packet, None, final=True)  # a reply with no value

    def fail(self, request_id: int, exc: BaseException) -> None:
        """Reply with the error NestJS sends for ``exc`` (see :func:`error_payload`)."""
        try:
            self._reply(request_id, error_packet, error_payload(exc), final=True)
        except UnserializableError:
            self._reply(request_id, error_packet, INTERNAL_ERROR, final=True)

    def _abandon(self) -> tuple[str, ...]:
        self._in_flight.clear()
        return ()
