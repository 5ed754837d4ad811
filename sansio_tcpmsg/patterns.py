"""Patterns and routes, as NestJS 11/12's ``transformPatternToRoute`` makes them.

A pattern is a string, a number or a JSON object; a route is the string a server keys
its handlers by. Object keys are sorted as JavaScript's ``localeCompare`` sorts them (ICU
root collation), which is not Python's code point order: NestJS sorts the keys
``_ 1 a B é Z`` in that order, where ``sorted`` gives ``1 B Z _ a é``.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from typing import Any

from .codec import JsonCodec, js_number
from .errors import PatternError

__all__ = ["MAX_DEPTH", "MAX_KEYS", "collation_key", "normalize_pattern", "route_of_incoming"]

MAX_DEPTH = 5
MAX_KEYS = 20

# ICU root collation of ASCII: white space, punctuation and symbols (in this order)
# sort before digits, digits before letters; control characters are ignored.
_ASCII_ORDER = "\t\n\v\f\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789"
_PRIMARY = {ch: i for i, ch in enumerate(_ASCII_ORDER)}
_LETTER_BASE = len(_ASCII_ORDER)
# Secondary weights of the common accents, in DUCET order; others follow by code point.
_ACCENT_ORDER = "\u0301\u0300\u0306\u0302\u030c\u030a\u0308\u030b\u0303\u0307\u0328\u0304\u0327"
_ACCENTS = {ch: i + 1 for i, ch in enumerate(_ACCENT_ORDER)}
_EXPANSIONS = {"ß": "ss", "æ": "ae", "œ": "oe"}

CollationKey = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def collation_key(text: str) -> CollationKey:
    """A sort key that orders strings as ``a.localeCompare(b)`` does in Node.

    Exact for ASCII and for Latin letters with common accents: first by base
    character, then by accents, then lower case before upper case.
    """
    primary: list[int] = []
    secondary: list[int] = []
    tertiary: list[int] = []
    for original in text:
        expansion = _EXPANSIONS.get(original)
        for ch in expansion or unicodedata.normalize("NFD", original):
            if unicodedata.combining(ch):
                if secondary:
                    secondary[-1] = secondary[-1] * 64 + _ACCENTS.get(ch, 32 + ord(ch) % 32)
                continue
            if ch in _PRIMARY:
                primary.append(_PRIMARY[ch])
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                continue
            elif ch.isascii():
                primary.append(_LETTER_BASE + ord(ch.lower()) - ord("a"))
            else:
                # Everything else after the Latin letters, by code point.
                primary.append(_LETTER_BASE + 26 + ord(ch.lower()))
            secondary.append(0)
            tertiary.append(2 if expansion else int(ch.isupper()))
    return tuple(primary), tuple(secondary), tuple(tertiary)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _route(pattern: Any, depth: int) -> str:
    if isinstance(pattern, str):
        return pattern
    if pattern is True or pattern is False:
        return "true" if pattern else "false"
    if isinstance(pattern, (int, float)):
        if pattern != pattern or pattern in (math.inf, -math.inf):
            return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(pattern, "NaN")
        return js_number(pattern)
    if pattern is None:
        return "null"
    if isinstance(pattern, (list, tuple)):
        pattern = {str(i): v for i, v in enumerate(pattern)}
    if not isinstance(pattern, Mapping):
        raise PatternError(f"a pattern cannot hold {type(pattern).__name__}")
    if depth > MAX_DEPTH:
        return "[MAX_DEPTH_REACHED]"
    if len(pattern) > MAX_KEYS:
        return "[TOO_MANY_KEYS]"
    parts = []
    for key in sorted(pattern, key=lambda k: collation_key(str(k))):
        value = pattern[key]
        if isinstance(value, str):
            parts.append(f'"{_escape(str(key))}":"{_escape(value)}"')
        else:
            parts.append(f'"{_escape(str(key))}":{_route(value, depth + 1)}')
    return "{" + ",".join(parts) + "}"


def normalize_pattern(pattern: Any) -> str:
    """The route NestJS makes of ``pattern`` (``transformPatternToRoute``).

    >>> normalize_pattern({"v": 2, "cmd": "sum"})
    '{"cmd":"sum","v":2}'

    Strings stay as they are, numbers become their JavaScript text, objects are written
    with sorted keys and no spaces, arrays as objects keyed by index. Keys and string
    values have ``\\`` and ``"`` escaped; nesting past depth 5 and objects of more than 20
    keys are cut short as NestJS does. ``None`` and booleans are not patterns
    (:class:`~sansio_tcpmsg.errors.PatternError`).
    """
    if pattern is None or pattern is True or pattern is False:
        raise PatternError(f"{pattern!r} is not a pattern: use a string, a number or a dict")
    return _route(pattern, 0)


def route_of_incoming(pattern: Any) -> str | None:
    """The route a NestJS server gives to the pattern of a packet it received.

    The server turns a non-string pattern into JSON text, tries ``JSON.parse`` on it,
    and normalizes what comes out; ``None`` means no handler can match (a NestJS
    server looks up ``null`` or a boolean and finds nothing).
    """
    if isinstance(pattern, str):
        route = _string_routes.get(pattern, _MISSING)
        if route is _MISSING:
            route = _route_of_string(pattern)
            if len(_string_routes) >= _CACHE_SIZE:
                _string_routes.clear()
            _string_routes[pattern] = route
        return route  # type: ignore[return-value]
    if pattern is None or pattern is True or pattern is False:
        return None
    return _route(pattern, 0)


def _route_of_string(text: str) -> str | None:
    try:
        pattern = _parse_json(text)
    except ValueError:
        return text
    return route_of_incoming(pattern) if not isinstance(pattern, str) else pattern


# A server sees the same few string patterns again and again: parse each once.
_CACHE_SIZE = 4096
_MISSING = object()
_string_routes: dict[str, object] = {}
_parse_json = JsonCodec().loads
