"""``OrjsonCodec``: the default codec's output and rules, faster, with ``orjson``.

Pass it as ``codec=`` to ``connect`` or ``serve`` of any binding (extra ``[orjson]``)::

    tcpmsg_threads.serve(router, codec=OrjsonCodec())

It writes exactly what :class:`~sansio_tcpmsg.JsonCodec` writes (``JSON.stringify``'s
text) and reads what it reads: ``orjson`` does the common case, and everything it would
do otherwise goes to ``JsonCodec`` instead:

- a text with a float orjson writes otherwise than JavaScript (``1.0``, ``1e+16``,
  ``1e-6``; JavaScript ``1``, ``10000000000000000``, ``0.000001``), or with ``null``
  (orjson writes NaN and Infinity as ``null``, which ``JsonCodec`` refuses with
  ``UnserializableError`` before anything is queued);
- what orjson refuses: lone surrogates (escaped as ES2019 ``JSON.stringify`` does),
  integers past 64 bits, keys that are not strings (``1`` -> ``"1"``), sets, bytes,
  dataclasses and datetimes (refused by ``JsonCodec``, with where they are);
- reading, whatever orjson cannot parse (``1e400`` is ``inf``, a lone ``\\ud800`` escape
  is kept, invalid JSON raises ``ValueError``).

Non-ASCII text is written raw (UTF-8), as by ``JsonCodec``. What differs: ``uuid.UUID``
values and members of a plain ``enum.Enum`` are written (as their string and value, as
orjson does) where ``JsonCodec`` refuses them; and an integer past 64 bits is read as
a float (as ``JSON.parse`` reads it), where ``JsonCodec`` reads the exact ``int``.
"""

from __future__ import annotations

from typing import Any

import orjson

from sansio_tcpmsg import JsonCodec

__all__ = ["OrjsonCodec"]

# What orjson writes otherwise than JSON.stringify, or where JsonCodec refuses: integral
# floats ("1.0"), exponents JavaScript writes in full ("1e+16", "1.5e-6"), and null (NaN
# and Infinity). Every other float orjson writes as JavaScript does (the tests sweep them).
# Each is looked for only where its rarest byte is: one byte is found at memchr speed, a
# longer needle at about 0.8 ns a byte (3 µs for four of them in a 1 KiB reply). A match
# inside a string only costs the exact path.
_NOT_OURS = ((b".", b".0"), (b"+", b"e+"), (b"-", b"e-6"), (b"l", b"null"))
_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _refuse(value: Any) -> Any:
    raise TypeError


class OrjsonCodec:
    """:class:`~sansio_tcpmsg.JsonCodec`'s output and rules, with ``orjson`` for speed."""

    def __init__(self) -> None:
        self._exact = JsonCodec()

    def dumps(self, value: Any) -> str:
        """Serialize ``value`` as ``JSON.stringify`` would; refuse what JS cannot read."""
        try:
            data = orjson.dumps(value, default=_refuse, option=_OPTIONS)
        except TypeError:
            return self._exact.dumps(value)
        for byte, text in _NOT_OURS:
            if byte in data and text in data:
                return self._exact.dumps(value)
        return data.decode()

    def loads(self, text: str) -> Any:
        """Parse JSON text as ``JSON.parse`` would (NaN and Infinity are not JSON)."""
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return self._exact.loads(text)
