"""What went wrong, in words a user can act on.

A peer that does not speak the NestJS TCP transport (a TLS server reached without TLS,
an HTTP server, a load balancer sending a PROXY header) breaks the framing on its first
bytes. :func:`recognize` names the protocol those bytes belong to and
:func:`foreign_protocol_error` says what arrived and what to do. :func:`connect_error`
gives every binding the same wording for a connection that could not be made, naming
the host and port and keeping the exception type (``ConnectionRefusedError``,
``TimeoutError``, ``ssl.SSLError``, ...) that callers catch.

Pure functions: no sockets are touched here, only exceptions and bytes are read. The
core imports neither ``ssl`` nor ``socket``: their exception types are recognized by
name (:func:`_is_a`).
"""

from __future__ import annotations

import errno as errnos
import re
from typing import Any

from .errors import ForeignProtocolError
from .patterns import normalize_pattern

__all__ = [
    "HEAD_SIZE",
    "SILENT_CLOSE_HINT",
    "TLS_CLIENT_HINT",
    "connect_error",
    "foreign_protocol_error",
    "handshake_failure",
    "host_port",
    "listen_error",
    "recognize",
    "show_bytes",
    "show_pattern",
    "starts_like_frames",
]

#: How many of a peer's first bytes a connection keeps to say what arrived.
HEAD_SIZE = 64
_SHOWN = 48  # how many of them a message shows

_TLS_RECORD_TYPES = {0x14: "change-cipher-spec", 0x15: "alert", 0x16: "handshake", 0x17: "application-data"}
_FRAME_START = re.compile(rb"[0-9]{1,16}#")
_HTTP_METHOD = re.compile(rb"(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PRI) ")
_PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

#: What a client without TLS should do about a TLS server.
TLS_CLIENT_HINT = "connect with tls=ssl.create_default_context(), or a context that trusts its certificate"


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets: ``[::1]:3000``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def show_bytes(data: bytes, limit: int = _SHOWN) -> str:
    """``data`` as an escaped bytes literal, cut after ``limit`` bytes.

    >>> show_bytes(b"HTTP/1.1 400 Bad Request\\r\\n", 12)
    "b'HTTP/1.1 400' (and more)"
    """
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r} (and more)"


def recognize(head: bytes) -> str | None:
    """The protocol a peer's first bytes belong to, or None.

    One of ``"TLS <kind> record"``, ``"HTTP response"``, ``"HTTP request"``,
    ``"PROXY protocol header"`` or ``"SSH banner"``.

    >>> recognize(b"\\x16\\x03\\x01\\x02\\x00"), recognize(b"HTTP/1.1 400 Bad Request")
    ('TLS handshake record', 'HTTP response')
    """
    kind = _TLS_RECORD_TYPES.get(head[0]) if head else None
    if kind is not None and (len(head) == 1 or head[1] == 0x03):
        return f"TLS {kind} record"
    if head.startswith(b"HTTP/"):
        return "HTTP response"
    if _HTTP_METHOD.match(head):
        return "HTTP request"
    if head.startswith((b"PROXY ", _PROXY_V2_SIGNATURE)):
        return "PROXY protocol header"
    if head.startswith(b"SSH-"):
        return "SSH banner"
    return None


def starts_like_frames(head: bytes) -> bool:
    """Whether a peer's first bytes start as a frame does: then the peer speaks the
    framing (and broke it later), it is not another protocol."""
    return _FRAME_START.match(head) is not None


def foreign_protocol_error(head: bytes, peer: str, reason: object) -> ForeignProtocolError:
    """The error for a ``peer`` (``"server"`` or ``"client"``) whose first bytes,
    ``head``, broke the framing with ``reason``: what arrived, and what to do.

    >>> print(foreign_protocol_error(b"\\x15\\x03\\x03\\x00\\x02\\x02\\x46", "server", "bad prefix"))
    the server speaks TLS: its first bytes are a TLS alert record, b'\\x15\\x03\\x03\\x00\\x02\\x02F'; \
connect with tls=ssl.create_default_context(), or a context that trusts its certificate
    """
    protocol = recognize(head)
    return ForeignProtocolError(_foreign_message(head, peer, protocol, reason), head, protocol)


def _foreign_message(head: bytes, peer: str, protocol: str | None, reason: object) -> str:
    # A TLS record's bytes after its header are random to a reader: a few say enough.
    shown = show_bytes(head, 16 if protocol is not None and protocol.startswith("TLS") else _SHOWN)
    if protocol is None:
        return (f"the {peer} does not speak the NestJS TCP transport ({reason}): "
                f"its first bytes are {shown}")
    what = f"its first bytes are a{'n' if protocol[0] in 'HS' else ''} {protocol}, {shown}"
    if protocol.startswith("TLS"):
        if peer == "server":
            return f"the server speaks TLS: {what}; {TLS_CLIENT_HINT}"
        return (f"the client speaks TLS: {what}; serve with tls=<a server ssl.SSLContext>, "
                "or have the client connect without TLS")
    if protocol == "HTTP response":
        return (f"the server speaks HTTP: {what}; it is an HTTP server, not a NestJS TCP "
                "microservice: check the port")
    if protocol == "HTTP request":
        return (f"the client speaks HTTP: {what}; this is a NestJS TCP microservice, "
                "not an HTTP server")
    if protocol == "PROXY protocol header":
        return (f"the {peer} sent a PROXY protocol header: {what}; a load balancer sends it "
                "(send-proxy): serve with proxy_protocol=True (tcpmsg serve --proxy-protocol), "
                "or turn it off on the balancer")
    return f"the {peer} is not a NestJS TCP peer: {what}"


#: What a server that closed (or reset) a connection without sending a byte may mean.
SILENT_CLOSE_HINT = (
    "the server closed the connection without sending a byte; a TLS server does that to a "
    f"client without TLS: if it speaks TLS, {TLS_CLIENT_HINT}; a server also does it when "
    "it refuses a connection (max_connections) or is stopping"
)


def show_pattern(pattern: Any) -> str:
    """A pattern as messages show it: a string quoted, anything else as its route.

    >>> show_pattern("sum"), show_pattern({"cmd": "sum"})
    ("'sum'", '{"cmd":"sum"}')
    """
    if isinstance(pattern, str):
        return repr(pattern)
    return normalize_pattern(pattern)


# -- connection errors ----------------------------------------------------------------

_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")
_EOF_LIKE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_TLS_EOF = ("SSLEOFError", "SSLZeroReturnError")
# OpenSSL's reasons when a peer's first bytes are no TLS record (3.2+ says RECORD_LAYER_FAILURE).
_NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                    "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL")


def _is_a(exc: BaseException, module: str, name: str) -> bool:
    """Whether ``exc`` is an instance of ``module.name`` (without importing it)."""
    return any(c.__name__ == name and c.__module__ == module for c in type(exc).__mro__)


def _ends_stream(exc: BaseException) -> bool:
    """Whether ``exc`` says the peer closed or reset the connection."""
    return isinstance(exc, _EOF_LIKE) or any(_is_a(exc, "ssl", name) for name in _TLS_EOF)


def connect_error(
    exc: BaseException,
    host: str,
    port: int,
    *,
    tls: bool = False,
    timeout: float | None = None,
) -> OSError:
    """The exception to raise when connecting to ``host:port`` failed with ``exc``.

    The message names the address and says what to check; the type is ``exc``'s (or,
    when ``exc`` gathers several attempts, as trio's and asyncio's "all attempts
    failed" errors do, the type the attempts share), so ``except
    ConnectionRefusedError`` still works. ``tls`` says a TLS handshake was part of
    connecting: an end of stream then most likely means a server without TLS. Raise it
    ``from exc``.
    """
    where = host_port(host, port)
    if _is_a(exc, "ssl", "SSLCertVerificationError"):
        detail = getattr(exc, "verify_message", None) or exc
        return _same_kind(exc, f"TLS handshake with {where} failed: the server's certificate "
                          f"was refused: {detail}")
    if _is_a(exc, "ssl", "SSLError") and not _ends_stream(exc):
        reason = getattr(exc, "reason", None)
        hint = ""
        if reason in _NOT_TLS_REASONS:
            hint = ": the server answered without TLS (connect without tls=...)"
        return _same_kind(exc, f"TLS handshake with {where} failed: {reason or exc}{hint}")
    if tls and (_ends_stream(exc) or not isinstance(exc, OSError)):
        # anyio on trio ends a handshake with EndOfStream / BrokenResourceError.
        message = (f"TLS handshake with {where} failed: the server closed the connection; "
                   "it may not speak TLS (connect without tls=...)")
        if isinstance(exc, OSError):
            return _same_kind(exc, message)
        return ConnectionResetError(errnos.ECONNRESET, message)
    number = _errno_of(exc)
    if isinstance(exc, TimeoutError) or number == errnos.ETIMEDOUT:
        within = f" within {timeout:g} s" if timeout is not None else ""
        said = str(exc) if str(exc) not in ("", "timed out") else ""  # the socket's own words
        detail = f"no answer{within}" + (f" ({said})" if said else "")
        return _same_kind(exc, f"cannot connect to {where}: {detail}", errnos.ETIMEDOUT)
    if number == errnos.ECONNREFUSED:
        detail = "connection refused: nothing listens on that port (is the server running?)"
    elif isinstance(exc, OSError) and _is_a(exc, "socket", "gaierror"):
        detail = f"unknown host ({exc.strerror or exc})"
    elif isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror
    else:
        causes = "; ".join(str(member) for member in _attempts(exc))
        detail = (str(exc) or type(exc).__name__) + (f" ({causes})" if causes else "")
    return _same_kind(exc, f"cannot connect to {where}: {detail}", number)


def handshake_failure(exc: BaseException) -> str:
    """What a TLS server logs after a client's handshake failed with ``exc``: for a
    client that does not speak TLS (its first bytes are no TLS record), OpenSSL's reason
    and what to do; for anything else, ``exc``'s repr.

    >>> import ssl
    >>> cause = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    >>> cause.reason = "WRONG_VERSION_NUMBER"
    >>> print(handshake_failure(cause))
    WRONG_VERSION_NUMBER: the client does not speak TLS (have it connect with tls=<a client ssl.SSLContext>, or serve without tls=)
    """
    reason = getattr(exc, "reason", None)
    if _is_a(exc, "ssl", "SSLError") and reason in _NOT_TLS_REASONS:
        return (f"{reason}: the client does not speak TLS (have it connect "
                "with tls=<a client ssl.SSLContext>, or serve without tls=)")
    return repr(exc)


def _attempts(exc: BaseException) -> tuple[BaseException, ...]:
    """The attempts an "all attempts failed" error gathers (anyio: its cause)."""
    cause = exc.__cause__
    members = getattr(cause, "exceptions", None)  # an exception group (3.11+ or backport)
    if isinstance(members, tuple):
        return members
    return () if cause is None else (cause,)


def _errno_of(exc: BaseException) -> int | None:
    """``exc``'s errno, or the one every attempt it gathers failed with."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = {m.errno for m in _attempts(exc) if isinstance(m, OSError) and m.errno is not None}
    # asyncio (3.11) joins the attempts' messages into one: "Multiple exceptions: ..."
    found.update(int(n) for n in _ERRNO_IN_TEXT.findall(str(exc)))
    return found.pop() if len(found) == 1 else None


def _same_kind(exc: BaseException, message: str, number: int | None = None) -> OSError:
    """An exception of ``exc``'s type (or the OSError subclass of ``number``) saying
    ``message``; TLS details (``reason``, ``verify_code``, ...) are kept."""
    number = number if number is not None else getattr(exc, "errno", None)
    cls = type(exc)
    if cls is OSError or not issubclass(cls, OSError):
        # A plain OSError gathering attempts: OSError(errno, ...) picks the subclass
        # (ConnectionRefusedError for ECONNREFUSED, ...).
        return OSError(number, message) if number is not None else OSError(message)
    try:
        new = cls(number, message) if number is not None else cls(message)
    except TypeError:  # an OSError subclass with another signature
        return OSError(number, message) if number is not None else OSError(message)
    new.__dict__.update(getattr(exc, "__dict__", {}))
    return new


def listen_error(exc: OSError, host: str, port: int) -> OSError:
    """The exception to raise when a server cannot listen on ``host:port``: ``exc``'s
    type, with a message naming the address and what to check. Raise it ``from exc``.
    """
    where = host_port(host, port)
    number = _errno_of(exc)
    if number == errnos.EADDRINUSE:
        detail = "address already in use: another server listens there (pick another port, or port=0)"
    elif number == errnos.EADDRNOTAVAIL:
        detail = "no such address on this machine (listen on 0.0.0.0, :: or localhost)"
    elif number == errnos.EACCES:
        detail = "permission denied (ports below 1024 need privileges)"
    elif _is_a(exc, "socket", "gaierror"):
        detail = f"unknown host ({exc.strerror or exc})"
    else:
        detail = exc.strerror or str(exc) or type(exc).__name__
    return _same_kind(exc, f"cannot listen on {where}: {detail}", number)
