"""The client side: requests out, replies matched to them by id."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from .codec import Codec
from .connection import Connection
from .errors import ConnectionClosedError, PatternError
from .events import (
    PacketDropped,
    RemoteErrorReceived,
    RequestTimedOut,
    ResponseReceived,
    StreamEnded,
    StreamItemReceived,
)
from .limits import Limits
from .packets import ReplyKind, event_packet, parse_reply, request_packet
from .patterns import normalize_pattern

__all__ = ["ClientConnection", "DispatchHook"]

_SEND_CAP_PASSED = "the connection closed: more than max_send_buffer_size queued for a server that does not read"

DispatchHook = Callable[[dict[str, Any]], object]
"""``hook(packet)``, called with every request and event before it is written, as NestJS
12's ``ClientProxy#setOnDispatchHook``: ``packet`` is ``{"pattern": ..., "data": ...}``
(and ``"metadata"`` when the call gave one); the hook may set ``packet["metadata"]``."""


# A pending request: [stream, pattern, timeout, the last item], a list made at C speed
# (once per request); pattern and timeout only name it in a RequestTimeout's message.
_STREAM, _PATTERN, _TIMEOUT, _LAST = range(4)


def _dispatched(hook: DispatchHook, pattern: Any, data: Any, metadata: Any) -> Any:
    """The metadata ``hook`` leaves on the packet (pattern and data are not its to change)."""
    packet = {"pattern": pattern, "data": data}
    if metadata is not None:
        packet["metadata"] = metadata
    hook(packet)
    return packet.get("metadata")


class ClientConnection(Connection):
    """One client connection: send requests and events, read replies as events.

    >>> conn = ClientConnection()
    >>> rid = conn.send_request("echo", "hi")
    >>> conn.data_to_send()
    b'39#{"pattern":"echo","data":"hi","id":"1"}'

    ``on_dispatch`` (a :data:`DispatchHook`) sees every request and event first, and may
    give it ``metadata`` (auth tokens, trace context); an exception it raises fails the
    call, with nothing queued.
    """

    _peer_role = "server"

    def __init__(
        self, *, limits: Limits | None = None, codec: Codec | None = None, on_dispatch: DispatchHook | None = None
    ) -> None:
        super().__init__(limits=limits, codec=codec)
        self.on_dispatch = on_dispatch
        self._pending: dict[str, list[Any]] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._next_id = 0

    @property
    def pending(self) -> int:
        """How many requests wait for their reply."""
        return len(self._pending)

    def send_request(
        self,
        pattern: Any,
        data: Any,
        deadline: float | None = None,
        timeout: float | None = None,
        metadata: Any = None,
        stream: bool = False,
    ) -> str:
        """Queue a request and return its id.

        The pattern travels as given, as a NestJS client sends it. With ``stream`` each
        value arrives as a :class:`StreamItemReceived` and the end as :class:`StreamEnded`;
        without, the last value arrives as one :class:`ResponseReceived`. ``deadline`` is
        an absolute time on the clock given to ``handle_timer``; ``timeout``, the number
        of seconds it was computed from, is named in the timeout's message. Raises
        :class:`UnserializableError` (nothing queued) for values JSON cannot carry.
        """
        if self.closed:
            raise ConnectionClosedError("the connection is closed")
        if pattern.__class__ is not str:
            normalize_pattern(pattern)  # refuses what no server could route
        if self.on_dispatch is not None:
            metadata = _dispatched(self.on_dispatch, pattern, data, metadata)
        self._next_id += 1
        request_id = str(self._next_id)
        self._queue(request_packet(pattern, data, request_id, metadata))
        if self.closed:  # the request passed the send cap
            raise ConnectionClosedError(_SEND_CAP_PASSED)
        self._pending[request_id] = [stream, pattern, timeout, None]
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, request_id))
        return request_id

    def emit(self, pattern: Any, data: Any, *, metadata: Any = None) -> None:
        """Queue an event; its pattern travels normalized, as a NestJS client sends it."""
        if self.closed:
            raise ConnectionClosedError("the connection is closed")
        if pattern is None:
            raise PatternError("None is not a pattern")
        if self.on_dispatch is not None:
            metadata = _dispatched(self.on_dispatch, pattern, data, metadata)
        self._queue(event_packet(normalize_pattern(pattern), data, metadata))
        if self.closed:
            raise ConnectionClosedError(_SEND_CAP_PASSED)

    def cancel(self, request_id: str) -> None:
        """Stop waiting for a request locally; replies that still come are dropped."""
        self._pending.pop(request_id, None)

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must be called next, or None."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._pending:
            heapq.heappop(deadlines)
        frame = Connection.get_timer(self)  # not super(): once per write
        if not deadlines:
            return frame
        return deadlines[0][0] if frame is None else min(frame, deadlines[0][0])

    def handle_timer(self, now: float) -> None:
        """Expire requests whose deadline has passed, and a silent peer."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, request_id = heapq.heappop(deadlines)
            pending = self._pending.pop(request_id, None)
            if pending is not None:
                self._events.append(RequestTimedOut(
                    request_id, pending[_PATTERN], pending[_TIMEOUT], pending[_STREAM], self.nothing_received
                ))
        super().handle_timer(now)

    def _handle_packet(self, obj: Any) -> None:
        reply = parse_reply(obj)
        if reply is None:
            self._events.append(PacketDropped(obj, "not a reply"))
            return
        request_id, kind, value, no_handler = reply
        pending = self._pending.get(request_id) if isinstance(request_id, str) else None
        if pending is None:
            return  # a late reply to a cancelled or timed-out request, as NestJS drops it
        if kind is ReplyKind.ITEM:
            if pending[_STREAM]:
                self._events.append(StreamItemReceived(request_id, value))
            else:
                pending[_LAST] = value
            return
        del self._pending[request_id]
        if kind is ReplyKind.ERROR:
            self._events.append(RemoteErrorReceived(request_id, value, no_handler))
        elif not pending[_STREAM]:
            self._events.append(ResponseReceived(request_id, value if kind is ReplyKind.LAST else pending[_LAST]))
        else:
            if kind is ReplyKind.LAST:
                self._events.append(StreamItemReceived(request_id, value))
            self._events.append(StreamEnded(request_id))

    def _abandon(self) -> tuple[str, ...]:
        failed = tuple(self._pending)
        self._pending.clear()
        self._deadlines.clear()
        return failed
