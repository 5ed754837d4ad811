"""What the command prints: one line at a time, values as JavaScript would write them."""

from __future__ import annotations

import json
import sys
from typing import Any

from sansio_tcpmsg import JsonCodec, TcpMsgError

__all__ = ["dumps", "say"]

_codec = JsonCodec()


def dumps(value: Any) -> str:
    """A value as one line of JSON, as JavaScript would write it."""
    try:
        return _codec.dumps(value)
    except TcpMsgError:
        return json.dumps(value, ensure_ascii=False, default=repr)


def say(line: str, file: Any = None) -> None:
    """Print ``line`` on stdout (or ``file``) at once: the demo interleaves with its relay."""
    stream = sys.stdout if file is None else file
    stream.write(line + "\n")
    stream.flush()
