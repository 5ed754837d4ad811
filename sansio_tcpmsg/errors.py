"""One hierarchy for everything that can go wrong.

Three kinds of failure, kept apart because the caller reacts to each differently::

    TcpMsgError                       base of everything raised by this package
    ├── LocalProtocolError            our own code misused the API; raised at once by the
    │   │                             command that was called, nothing is queued
    │   ├── UnserializableError       a value JSON (as JavaScript reads it) cannot carry
    │   └── PatternError              a pattern that cannot be routed
    ├── RemoteProtocolError           the peer broke the wire protocol; the connection is
    │   │                             closed and reports it with a ProtocolErrorOccurred event
    │   ├── FrameError                bad length prefix, invalid JSON, split character
    │   │   └── ForeignProtocolError  the peer speaks another protocol (TLS, HTTP, ...)
    │   ├── FrameTooLarge             over Limits.max_buffer_size
    │   ├── IncompleteFrameTimeout    the peer went silent mid-frame
    │   ├── SendBufferExceeded        the peer does not read what we send
    │   └── ProxyHeaderError          a missing or invalid PROXY protocol header
    ├── RemoteError                   application error carried back in a reply's ``err``
    │   └── NoHandlerError            the server has no handler for the pattern
    ├── RequestTimeout                a request's deadline passed (also a TimeoutError)
    └── ConnectionClosedError         the connection ended with requests pending

``RpcError`` stands apart: it is what a handler raises to send an application error
(NestJS's ``RpcException``), not something this package raises.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NO_HANDLER_MESSAGE",
    "ConnectionClosedError",
    "FrameError",
    "ForeignProtocolError",
    "FrameTooLarge",
    "IncompleteFrameTimeout",
    "LocalProtocolError",
    "NoHandlerError",
    "PatternError",
    "ProxyHeaderError",
    "RemoteError",
    "RemoteProtocolError",
    "RequestTimeout",
    "RpcError",
    "SendBufferExceeded",
    "TcpMsgError",
    "UnserializableError",
]

#: The exact text a NestJS server sends when no message handler matches.
NO_HANDLER_MESSAGE = "There is no matching message handler defined in the remote service."


class TcpMsgError(Exception):
    """Base class of every exception this package raises."""


class LocalProtocolError(TcpMsgError, ValueError):
    """The local program used the API wrongly; nothing was sent."""


class UnserializableError(LocalProtocolError):
    """A value that JSON, as JavaScript reads it, cannot carry (NaN, Infinity, objects).

    The message names the value and where it sits (``data["x"] is nan, ...``).
    """


class PatternError(LocalProtocolError):
    """A pattern that NestJS cannot route (``None``, a boolean, an unsupported type)."""


class RemoteProtocolError(TcpMsgError):
    """The peer broke the wire protocol; the connection cannot go on."""


class FrameError(RemoteProtocolError):
    """A frame that cannot be read: bad length prefix or invalid JSON text."""


class ForeignProtocolError(FrameError):
    """The peer's first bytes are not a frame: it speaks another protocol.

    ``head`` holds those bytes (at most 64); ``protocol`` names what they look like
    (``"TLS handshake record"``, ``"HTTP response"``, ...) or is None. The message says
    what arrived and what to do.
    """

    def __init__(self, message: str, head: bytes = b"", protocol: str | None = None) -> None:
        super().__init__(message)
        self.head = head
        self.protocol = protocol


class FrameTooLarge(RemoteProtocolError):
    """A frame, or the data buffered for it, is over ``Limits.max_buffer_size``."""


class IncompleteFrameTimeout(RemoteProtocolError):
    """The peer stopped sending in the middle of a frame for too long."""


class SendBufferExceeded(RemoteProtocolError):
    """More bytes are queued for the peer than ``Limits.max_send_buffer_size``."""


class ProxyHeaderError(RemoteProtocolError):
    """A connection that must begin with a PROXY protocol header did not (or sent a bad one)."""


class RemoteError(TcpMsgError):
    """The server answered a request with an error; ``error`` is the raw ``err`` payload."""

    def __init__(self, error: Any) -> None:
        super().__init__(error)
        self.error = error

    def __str__(self) -> str:
        return f"remote error: {self.error!r}"


class NoHandlerError(RemoteError):
    """The server has no message handler for the request's pattern."""


class RequestTimeout(TcpMsgError, TimeoutError):
    """A request got no final reply before its deadline; the connection stays usable."""


class ConnectionClosedError(TcpMsgError, ConnectionError):
    """The connection closed while a request was waiting for its reply."""


class RpcError(Exception):
    """Raise in a handler to reply with an application error (NestJS ``RpcException``).

    A dict or list payload travels as is; anything else travels as
    ``{"status": "error", "message": payload}``, as NestJS does.
    """

    def __init__(self, payload: Any) -> None:
        super().__init__(payload)
        self.payload = payload
