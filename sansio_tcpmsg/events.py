"""What a connection reports: one small immutable event per state change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .diagnose import SILENT_CLOSE_HINT, show_pattern
from .errors import (
    ConnectionClosedError,
    NoHandlerError,
    RemoteError,
    RemoteProtocolError,
    RequestTimeout,
)
from .frozen import fast_init

if TYPE_CHECKING:
    from .routing import Context, Handler

__all__ = [
    "ConnectionClosed",
    "Event",
    "EventReceived",
    "PacketDropped",
    "ProtocolErrorOccurred",
    "RemoteErrorReceived",
    "RequestReceived",
    "RequestTimedOut",
    "ResponseReceived",
    "StreamEnded",
    "StreamItemReceived",
]


class Event:
    """Base class of every event."""

    __slots__ = ()


# Client side ------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """The final value of a request sent with ``stream=False``."""

    request_id: str
    value: Any


@fast_init
@dataclass(frozen=True, slots=True)
class StreamItemReceived(Event):
    """One value of a streamed reply (request sent with ``stream=True``)."""

    request_id: str
    value: Any


@fast_init
@dataclass(frozen=True, slots=True)
class StreamEnded(Event):
    """A streamed reply is complete."""

    request_id: str


@dataclass(frozen=True, slots=True)
class RemoteErrorReceived(Event):
    """The server answered with ``err``; ``error`` is the raw payload."""

    request_id: str
    error: Any
    no_handler: bool

    def exception(self) -> RemoteError:
        """What a client raises for this reply: ``NoHandlerError`` or ``RemoteError``."""
        return (NoHandlerError if self.no_handler else RemoteError)(self.error)


@dataclass(frozen=True, slots=True)
class RequestTimedOut(Event):
    """A request's deadline passed; replies that still come for it are dropped.

    The other fields only describe it, for the message (they take no part in ``==``).
    """

    request_id: str
    #: The request's pattern, as sent.
    pattern: Any = field(default=None, compare=False)
    #: The timeout, in seconds, the deadline was computed from (None if not given).
    timeout: float | None = field(default=None, compare=False)
    #: True for a streamed request.
    stream: bool = field(default=False, compare=False)
    #: True when the server had sent no byte at all on this connection.
    nothing_received: bool = field(default=False, compare=False)

    def exception(self) -> RequestTimeout:
        """What a client raises for this request: names its pattern and timeout."""
        within = f"within {self.timeout:g} s" if self.timeout is not None else "before its deadline"
        of = "" if self.pattern is None else f" {show_pattern(self.pattern)}"
        if self.stream:
            message = f"the stream{' of' + of if of else ''} did not end {within}"
        else:
            message = f"no reply{' to' + of if of else ''} {within}"
        message += f" (request {self.request_id})"
        if self.nothing_received:
            message += ("; the server has not sent a single byte on this connection: "
                        "if every call times out, check that it is a NestJS TCP microservice")
        return RequestTimeout(message)


# Server side ------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """A request with a handler to run; answer it with the connection's reply commands."""

    request_id: int
    data: Any
    context: Context
    handler: Handler


@fast_init
@dataclass(frozen=True, slots=True)
class EventReceived(Event):
    """An event (no reply); ``handlers`` are to run in order, and may be empty."""

    data: Any
    context: Context
    handlers: tuple[Handler, ...]


# Both sides -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PacketDropped(Event):
    """Valid JSON that is not a packet this side expects; NestJS ignores it too."""

    packet: Any
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolErrorOccurred(Event):
    """The peer broke the protocol; a ConnectionClosed event follows."""

    error: RemoteProtocolError


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The connection is over; ``failed`` lists the client requests left unanswered."""

    error: RemoteProtocolError | None = None
    failed: tuple[str, ...] = ()
    #: True when the peer closed (or reset) the connection without sending a byte.
    nothing_received: bool = field(default=False, compare=False)

    def exception(self) -> ConnectionClosedError:
        """What a client raises for each request in ``failed``."""
        reason = ""
        if self.error is not None:
            reason = f": {self.error}"
        elif self.nothing_received:
            reason = f": {SILENT_CLOSE_HINT}"
        return ConnectionClosedError(f"the connection closed before the reply{reason}")
