"""What a connection reports: one small immutable event per state change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    ConnectionClosedError,
    NoHandlerError,
    RemoteError,
    RemoteProtocolError,
    RequestTimeout,
)

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


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """The final value of a request sent with ``stream=False``."""

    request_id: str
    value: Any


@dataclass(frozen=True, slots=True)
class StreamItemReceived(Event):
    """One value of a streamed reply (request sent with ``stream=True``)."""

    request_id: str
    value: Any


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
    """A request's deadline passed; replies that still come for it are dropped."""

    request_id: str

    def exception(self) -> RequestTimeout:
        """What a client raises for this request."""
        return RequestTimeout(f"request {self.request_id} got no reply before its deadline")


# Server side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """A request with a handler to run; answer it with the connection's reply commands."""

    request_id: int
    data: Any
    context: Context
    handler: Handler


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

    def exception(self) -> ConnectionClosedError:
        """What a client raises for each request in ``failed``."""
        reason = f": {self.error}" if self.error is not None else ""
        return ConnectionClosedError(f"the connection closed before the reply{reason}")
