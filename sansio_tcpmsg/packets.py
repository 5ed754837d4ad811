"""The JSON objects that travel in frames, read and written by NestJS's rules.

The readers (``parse_incoming``, ``parse_reply``) and the writers (``request_packet``,
``event_packet``, ``reply_packet``, ``item_packet``, ``error_packet``,
``no_handler_packet``) sit side by side, as h11 keeps ``_readers`` and ``_writers``.
Reading follows NestJS 12's deserializers: a server treats any object with a
``pattern`` or ``data`` key as a packet (with an ``id`` key, even ``null``, it is a
request; without, an event); a client treats a reply with a key outside
``id, err, response, isDisposed, status`` as a foreign payload, which becomes the final
response as a whole. Writing follows the key order NestJS writes, so that our frames are
byte-identical to its frames.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from .errors import NO_HANDLER_MESSAGE, RpcError

__all__ = [
    "INTERNAL_ERROR",
    "Incoming",
    "Reply",
    "ReplyKind",
    "error_packet",
    "error_payload",
    "event_packet",
    "item_packet",
    "js_truthy",
    "no_handler_packet",
    "parse_incoming",
    "parse_reply",
    "reply_packet",
    "request_packet",
]

_ENVELOPE_KEYS = frozenset(("id", "err", "response", "isDisposed", "status"))

#: What NestJS sends for an exception that is not an ``RpcException``.
INTERNAL_ERROR = {"status": "error", "message": "Internal server error"}


def js_truthy(value: Any) -> bool:
    """Truthiness as JavaScript sees a parsed JSON value (``[]`` and ``{}`` are true)."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float, str)):
        return bool(value)
    return True


class Incoming(NamedTuple):
    """A packet received by a server: a request when ``is_request``, else an event."""

    is_request: bool
    id: Any
    pattern: Any
    data: Any
    metadata: Any


# The named tuples read per packet are made by tuple.__new__ itself: their generated
# ``__new__`` is one Python call more per packet.
_tuple = tuple.__new__


def parse_incoming(obj: Any) -> Incoming | None:
    """Read what a client sent; None for JSON that NestJS would not treat as a packet."""
    if not isinstance(obj, dict) or ("pattern" not in obj and "data" not in obj):
        return None
    get = obj.get
    return _tuple(Incoming, ("id" in obj, get("id"), get("pattern"), get("data"), get("metadata")))


class ReplyKind(enum.Enum):
    """What a reply packet means to the request it answers."""

    ITEM = "item"  # one value, more to come
    LAST = "last"  # the final value
    END = "end"  # no more values
    ERROR = "error"  # ``err`` set: the request failed


class Reply(NamedTuple):
    """A reply received by a client."""

    id: Any
    kind: ReplyKind
    value: Any = None
    no_handler: bool = False


def parse_reply(obj: Any) -> Reply | None:
    """Read what a server sent, as a NestJS 12 client does; None if it answers nothing."""
    if not isinstance(obj, dict) or not obj:
        return None
    get = obj.get
    if not _ENVELOPE_KEYS.issuperset(obj):
        return _tuple(Reply, (get("id"), _LAST, obj, False))
    err = get("err")
    if err is not None and js_truthy(err):
        no_handler = err == NO_HANDLER_MESSAGE and get("status") == "error"
        return _tuple(Reply, (get("id"), _ERROR, err, no_handler))
    disposed = get("isDisposed")
    if disposed is True or (disposed is not None and js_truthy(disposed)):
        if "response" in obj:
            return _tuple(Reply, (get("id"), _LAST, obj["response"], False))
        return _tuple(Reply, (get("id"), _END, None, False))
    return _tuple(Reply, (get("id"), _ITEM, get("response"), False))


_ITEM, _LAST, _END, _ERROR = ReplyKind.ITEM, ReplyKind.LAST, ReplyKind.END, ReplyKind.ERROR


# -- writers: the packets a client sends ----------------------------------------------
# Plain dict literals in NestJS's key order, one call per packet: they are built per
# request, so they stay as cheap as writing the literal in place.


def request_packet(pattern: Any, data: Any, request_id: str, metadata: Any = None) -> dict[str, Any]:
    """A request, as a NestJS client writes it (``metadata`` only when given)."""
    if metadata is None:
        return {"pattern": pattern, "data": data, "id": request_id}
    return {"pattern": pattern, "data": data, "metadata": metadata, "id": request_id}


def event_packet(pattern: Any, data: Any, metadata: Any = None) -> dict[str, Any]:
    """An event (no ``id``: nothing answers it)."""
    if metadata is None:
        return {"pattern": pattern, "data": data}
    return {"pattern": pattern, "data": data, "metadata": metadata}


# -- writers: the packets a server sends ----------------------------------------------
# NestJS 12 appends the client's id last to the replies of a handler; ``None`` is
# ``undefined`` (no ``response`` key at all).


def reply_packet(client_id: Any, value: Any) -> dict[str, Any]:
    """The final reply: ``value``, or none when it is ``None`` (the end of a stream too)."""
    if value is None:
        return {"isDisposed": True, "id": client_id}
    return {"response": value, "isDisposed": True, "id": client_id}


def item_packet(client_id: Any, value: Any) -> dict[str, Any]:
    """One value of a streamed reply, more to come."""
    return {"response": value, "id": client_id}


def error_packet(client_id: Any, err: Any) -> dict[str, Any]:
    """The final reply of a failed request; ``err`` from :func:`error_payload`."""
    return {"err": err, "isDisposed": True, "id": client_id}


def no_handler_packet(client_id: Any) -> dict[str, Any]:
    """NestJS's answer to a request no handler matches (written before any handler runs)."""
    return {"id": client_id, "status": "error", "err": NO_HANDLER_MESSAGE}


def error_payload(exc: BaseException) -> Any:
    """The ``err`` NestJS sends for an exception raised by a handler."""
    if isinstance(exc, RpcError):
        if isinstance(exc.payload, (dict, list)):
            return exc.payload
        return {"status": "error", "message": exc.payload}
    return INTERNAL_ERROR
