"""The JSON objects that travel in frames, read and written by NestJS's rules.

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
    "error_payload",
    "js_truthy",
    "parse_incoming",
    "parse_reply",
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


def parse_incoming(obj: Any) -> Incoming | None:
    """Read what a client sent; None for JSON that NestJS would not treat as a packet."""
    if not isinstance(obj, dict) or ("pattern" not in obj and "data" not in obj):
        return None
    return Incoming("id" in obj, obj.get("id"), obj.get("pattern"), obj.get("data"), obj.get("metadata"))


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
    if not _ENVELOPE_KEYS.issuperset(obj):
        return Reply(obj.get("id"), ReplyKind.LAST, obj)
    err = obj.get("err")
    if err is not None and js_truthy(err):
        no_handler = err == NO_HANDLER_MESSAGE and obj.get("status") == "error"
        return Reply(obj.get("id"), ReplyKind.ERROR, err, no_handler)
    if js_truthy(obj.get("isDisposed")):
        if "response" in obj:
            return Reply(obj.get("id"), ReplyKind.LAST, obj["response"])
        return Reply(obj.get("id"), ReplyKind.END)
    return Reply(obj.get("id"), ReplyKind.ITEM, obj.get("response"))


def error_payload(exc: BaseException) -> Any:
    """The ``err`` NestJS sends for an exception raised by a handler."""
    if isinstance(exc, RpcError):
        if isinstance(exc.payload, (dict, list)):
            return exc.payload
        return {"status": "error", "message": exc.payload}
    return INTERNAL_ERROR
