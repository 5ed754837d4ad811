"""JSON as JavaScript writes and reads it.

NestJS frames carry ``JSON.stringify`` output. To write byte-identical frames we must
differ from Python's ``json`` in three places: numbers (``1.0`` is ``1`` and ``1e-05`` is
``0.00001`` in JavaScript), lone surrogates (escaped, as ES2019 ``JSON.stringify`` does),
and values JavaScript cannot read back (NaN, Infinity), which we refuse locally.
"""

from __future__ import annotations

import json
import json.encoder
import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from .errors import UnserializableError

__all__ = ["Codec", "DeserializerError", "JsonCodec", "PacketCodec", "js_number", "locate_unserializable"]

_MAX_SAFE = 2**53


class Codec(Protocol):
    """What the core needs from a JSON library: text out, value in.

    A replacement (orjson, msgspec, ...) must keep the rules of :class:`JsonCodec`:
    compact output, non-ASCII kept as is, NaN and Infinity refused with
    :class:`~sansio_tcpmsg.errors.UnserializableError`.
    """

    def dumps(self, value: Any) -> str:
        """Serialize ``value`` to JSON text."""

    def loads(self, text: str) -> Any:
        """Parse JSON text; raise ``ValueError`` when it is not JSON."""


def js_number(value: float | int) -> str:
    """Format a number as JavaScript's ``String(number)`` does.

    >>> js_number(1.0), js_number(1e-7), js_number(1e21), js_number(0.5)
    ('1', '1e-7', '1e+21', '0.5')
    """
    if isinstance(value, int) and abs(value) <= _MAX_SAFE:
        return str(value)
    try:
        number = float(value)
    except OverflowError:  # an int past every float: written in full, as json does
        return str(value)
    if not math.isfinite(number):
        raise UnserializableError(f"{value!r} cannot be written as JSON")
    if number == 0:
        return "0"
    # repr gives the shortest round-tripping digits, as JavaScript does; only the
    # layout (where the point goes, when to use an exponent) differs.
    digits, exponent = _shortest_digits(number)
    sign = "-" if number < 0 else ""
    point = exponent + 1  # position of the decimal point after the first digit
    if len(digits) <= point <= 21:
        return sign + digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    tail = "." + digits[1:] if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{tail}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def _shortest_digits(number: float) -> tuple[str, int]:
    """The shortest significant digits of ``abs(number)`` and its decimal exponent."""
    mantissa, _, exp_text = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    significant = (whole + fraction).lstrip("0")
    leading_zeros = len(whole) + len(fraction) - len(significant)
    exponent = len(whole) + int(exp_text or "0") - leading_zeros - 1
    return significant.rstrip("0"), exponent


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What repr writes for a float JavaScript writes otherwise ("1.0", "1e-05", "1e+16") where
# a JSON number starts (after "[", ":" or ","; the text's start is checked apart) or a
# float key does (after '"'), and, rarely, the same characters starting a string: a
# superset, checked on the value. A uuid's "3e-4" is not a number there (NestJS's
# request ids are uuids).
_PYTHON_ONLY_FLOAT_TEXT = re.compile(r'[\[:,"][-0-9][0-9]*(?:\.0(?![0-9])|(?:\.[0-9]+)?e[+-])')
_NUMBER_START = frozenset("-0123456789")
_SCAN_UP_TO = 400  # characters: past them, walking a reply's value is cheaper


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class JsonCodec:
    """The default codec: the standard library's ``json`` with JavaScript's rules."""

    def __init__(self) -> None:
        decoder = json.JSONDecoder(parse_constant=_reject_constant)
        self._decode = decoder.decode
        self._scan = decoder.scan_once  # type: ignore[attr-defined]  # the C scanner decode() uses
        # The C encoder made once, not once a call as json.dumps does. Without the
        # circular check (markers=None) a cycle ends in RecursionError, refused below.
        make_encoder = getattr(json.encoder, "c_make_encoder", None)
        if make_encoder is None:  # pragma: no cover - PyPy has no C encoder; CPython does
            encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            self._short = self._long = lambda value, _level: encoder.iterencode(value)
        else:
            # Two encoders writing the same text. Given the C escaper itself, the C encoder
            # escapes strings without a Python call each (0.1 µs); the other quotes long
            # strings in a fifth of the C escaper's time (see _encode_string_fast).
            c_escape = json.encoder.c_encode_basestring  # type: ignore[attr-defined]
            self._short = make_encoder(None, _not_serializable, c_escape, None, ":", ",", False, False, False)
            self._long = make_encoder(
                None, _not_serializable, _encode_string_fast, None, ":", ",", False, False, False
            )
        self._encode: Any = self._short

    def dumps(self, value: Any) -> str:
        """Serialize ``value`` as ``JSON.stringify`` would; refuse what JS cannot read."""
        try:
            text = "".join(self._encode(value, 0))
        except (TypeError, ValueError, RecursionError) as exc:
            where = locate_unserializable(value, "value")
            raise UnserializableError(where or f"cannot send {type(value).__name__} as JSON: {exc}") from None
        # The next value is likely as long as this one (an echo, a service's replies): its
        # encoder is chosen by this text. A guess is only ever slower, never different.
        self._encode = self._short if len(text) < _LONG_STRING else self._long
        # Every float Python writes otherwise than JavaScript has "." or "+" in its text, or
        # "e-" ("1e-05"). One character is found at memchr speed; "e-" is not (about 0.8 ns
        # a character), so a long text is suspect for any "-" (NestJS's ids all have one).
        # A short suspect text then takes a look for what such a number looks like (about
        # 2.5 µs per KiB), a long one a look at the value's floats (under 1 µs for a
        # reply's few items).
        if len(text) > _SCAN_UP_TO:
            suspect = "." in text or "+" in text or "-" in text
        else:
            suspect = ("." in text or "+" in text or "e-" in text) and (
                text[0] in _NUMBER_START or _PYTHON_ONLY_FLOAT_TEXT.search(text) is not None
            )
        if suspect and _has_python_only_float(value):
            text = _js_dumps(value)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates, which UTF-8 cannot carry
                text = _fix_surrogates(text)
        return text

    def loads(self, text: str) -> Any:
        """Parse JSON text as ``JSON.parse`` would (NaN and Infinity are not JSON)."""
        try:
            value, end = self._scan(text, 0)
        except StopIteration:
            end = -1
        if end == len(text):
            return value
        return self._decode(text)  # white space around the value, or an error to raise


_c_encode_string = json.encoder.encode_basestring
_LONG_STRING = 4096  # characters: from there on, a string's escaping is worth checking first
_MUST_ESCAPE = tuple(map(chr, range(32))) + ('"', "\\")


def _encode_string_fast(text: str) -> str:
    """A JSON string, as ``encode_basestring`` writes it.

    The C escaper walks a long string character by character (150 µs for 64 KiB); a
    string with nothing to escape only needs quotes, which 34 ``in`` tests (memchr
    speed) prove in a fifth of that time.
    """
    if len(text) < _LONG_STRING:
        return _c_encode_string(text)
    for char in _MUST_ESCAPE:
        if char in text:
            return _c_encode_string(text)
    return '"' + text + '"'


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _has_python_only_float(value: Any) -> bool:
    """True if ``value`` holds a float whose repr is not JavaScript's ("1.0", "1e-05")."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        cls = item.__class__
        if cls is str or cls is int or cls is bool or item is None:
            continue  # the common leaves first, by exact type
        if cls is dict:
            extend(item.values())
            for key in item:
                if key.__class__ is not str:
                    extend(item)  # a float key is written by repr too
                    break
        elif cls is list or cls is tuple:
            extend(item)
        elif isinstance(item, float):
            text = repr(item)
            if "e" in text or text.endswith(".0"):
                return True
        elif isinstance(item, dict):
            extend(item.values())
            extend(item)
        elif isinstance(item, (list, tuple)):
            extend(item)
    return False


_HINTS: dict[type, tuple[str, str]] = {  # type -> (how to name one, what to send instead)
    set: ("a set", "send a list"),
    frozenset: ("a frozenset", "send a list"),
    bytes: ("bytes", "send a str, e.g. base64"),
    bytearray: ("a bytearray", "send a str, e.g. base64"),
}
_JSON_KEYS = (str, int, float, bool, type(None))


def locate_unserializable(value: Any, root: str) -> str | None:
    """Say where in ``value`` (named ``root``) the first thing JSON cannot carry sits.

    Only called once encoding failed, so the fast path pays nothing for it.

    >>> locate_unserializable({"x": [1, float("nan")]}, "data")
    'data["x"][1] is nan, which JSON cannot carry (JavaScript has no NaN or Infinity in JSON)'
    >>> locate_unserializable([1, {2}], "reply")
    'reply[1] is a set, which JSON cannot carry (send a list)'
    """
    stack: list[tuple[Any, Any]] = [(value, root)]  # (value, its path) or (_LEAVE, an id)
    open_containers: dict[int, str] = {}  # id of each container on the current path -> path
    while stack:
        item, path = stack.pop()
        if item is _LEAVE:
            del open_containers[path]
            continue
        if isinstance(item, (str, int)) or item is None:
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return (f"{path} is {item!r}, which JSON cannot carry "
                        "(JavaScript has no NaN or Infinity in JSON)")
            continue
        if not isinstance(item, (dict, list, tuple)):
            what, hint = _HINTS.get(type(item), (f"a {type(item).__name__}",
                                                 "send a dict, list, str, number, bool or None"))
            return f"{path} is {what}, which JSON cannot carry ({hint})"
        if id(item) in open_containers:
            return f"{path} is {open_containers[id(item)]} again: a cycle, which JSON cannot carry"
        open_containers[id(item)] = path
        stack.append((_LEAVE, id(item)))
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, _JSON_KEYS) or key != key or key in (math.inf, -math.inf):
                    return (f"{path} has the key {key!r}, a {type(key).__name__}: "
                            "JSON object keys are strings")
            children = [(v, f"{path}[{_show_key(k)}]") for k, v in item.items()]
        else:
            children = [(v, f"{path}[{i}]") for i, v in enumerate(item)]
        stack.extend(reversed(children))
    return None


_LEAVE = object()  # marks where the walk leaves a container


def _show_key(key: Any) -> str:
    return _encode_string(key) if isinstance(key, str) else repr(key)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _fix_surrogates(text: str) -> str:
    # A pair written as two code points is one character to JavaScript.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _LONE_SURROGATE.sub(_escape_surrogate, text)


_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def _js_dumps(value: Any) -> str:
    """Slow path: write numbers the JavaScript way (rare: only integral or tiny floats)."""
    if isinstance(value, str):
        return _encode_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return js_number(value)
    if isinstance(value, dict):
        items = (f"{_encode_string(_js_key(k))}:{_js_dumps(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return "[" + ",".join(_js_dumps(v) for v in value) + "]"


def _js_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    return _js_dumps(key)


class DeserializerError(ValueError):
    """A :class:`PacketCodec`'s ``deserialize`` refused a packet (the connection fails
    with a ``FrameError`` saying so, as for invalid JSON)."""


class PacketCodec:
    """Packets transformed on their way out and in: NestJS's ``serializer`` /
    ``deserializer`` options, which see the packet object, not the JSON text.

    ``serialize(packet)`` gets every packet this side writes (requests, events, replies:
    a dict as :mod:`sansio_tcpmsg.packets` builds it) and returns what is written as
    JSON instead, as a NestJS ``Serializer.serialize`` does; ``deserialize(value)`` gets
    every JSON value read and returns the packet to handle, as
    ``Deserializer.deserialize`` does. Either may be None (as is). ``codec`` writes and
    reads the JSON (:class:`JsonCodec` by default). Pass it as ``codec=`` to ``connect``
    or ``serve``:

    >>> codec = PacketCodec(serialize=lambda p: {"v": 1, "packet": p}, deserialize=lambda v: v["packet"])
    >>> codec.dumps({"pattern": "echo", "data": 1})
    '{"v":1,"packet":{"pattern":"echo","data":1}}'
    >>> codec.loads('{"v":1,"packet":{"response":2,"id":"1"}}')
    {'response': 2, 'id': '1'}

    What ``serialize`` raises is an :class:`UnserializableError` (nothing is sent); what
    ``deserialize`` raises fails the connection with a ``FrameError`` naming it.
    """

    def __init__(
        self,
        *,
        serialize: Callable[[Any], Any] | None = None,
        deserialize: Callable[[Any], Any] | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.serialize = serialize
        self.deserialize = deserialize
        self.codec = codec or JsonCodec()

    def dumps(self, value: Any) -> str:
        """``serialize(value)`` written as JSON."""
        if self.serialize is not None:
            try:
                value = self.serialize(value)
            except Exception as exc:
                raise UnserializableError(f"serializer {self.serialize!r} failed: {exc!r}") from exc
        return self.codec.dumps(value)

    def loads(self, text: str) -> Any:
        """The JSON value read, through ``deserialize``."""
        value = self.codec.loads(text)
        if self.deserialize is None:
            return value
        try:
            return self.deserialize(value)
        except Exception as exc:
            raise DeserializerError(f"deserializer {self.deserialize!r} refused {text[:80]!r}: {exc!r}") from exc
