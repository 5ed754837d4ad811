"""What the framework-free ceilings share: NestJS framing and the ``echo`` JSON, nothing more.

Frames are cut by character count (exact for BMP text; the benchmark traffic is ASCII).
No limits, no routing, no error handling beyond what the callers do.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads


class Cutter:
    """Cuts ``<N>#<json>`` frames out of received bytes; returns the parsed packets.

    Raises ``ValueError`` for a length that is not a number or invalid JSON.
    """

    def __init__(self) -> None:
        self.decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self.buf = ""
        self.need = -1

    def feed(self, data: bytes) -> list[Any]:
        buf = self.buf + self.decode(data)
        pos, end, need = 0, len(buf), self.need
        packets = []
        while True:
            if need < 0:
                hash_at = buf.find("#", pos)
                if hash_at < 0:
                    break
                need = int(buf[pos:hash_at])
                pos = hash_at + 1
            if end - pos < need:
                break
            packets.append(_loads(buf[pos : pos + need]))
            pos += need
            need = -1
        self.buf, self.need = buf[pos:], need
        return packets


def request(data: Any, request_id: str) -> bytes:
    """One ``echo`` request frame."""
    text = _dumps({"pattern": "echo", "data": data, "id": request_id})
    return f"{len(text)}#{text}".encode()


def echo_replies(cutter: Cutter, data: bytes) -> bytes:
    """The replies to every complete request in ``data``, as one chunk of bytes (events get none)."""
    out = []
    for packet in cutter.feed(data):
        rid = packet.get("id")
        if rid is not None:
            text = _dumps({"response": packet.get("data"), "isDisposed": True, "id": rid})
            out.append(f"{len(text)}#{text}")
    return "".join(out).encode() if out else b""
