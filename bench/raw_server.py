"""The framework-free ceiling: a minimal asyncio server with NestJS framing, ``echo`` only.

    python bench/raw_server.py [--port 0] [--no-uvloop]

No routing, no limits, no timers, no error handling beyond dropping a broken peer: an
``asyncio.Protocol`` that cuts ``<N>#<json>`` frames out of a text buffer (N in
characters, exact for BMP text; the benchmark traffic is ASCII), answers each request
with ``{"response": data, "isDisposed": true, "id": id}`` and writes every reply of one
read in a single ``transport.write``. Uses uvloop when installed. Prints
``LISTENING <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import json
import signal
import sys

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads


class EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.buf = ""
        self.need = -1
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + self.decoder.decode(data)
        pos, end, need = 0, len(buf), self.need
        out = []
        while True:
            if need < 0:
                hash_at = buf.find("#", pos)
                if hash_at < 0:
                    break
                try:
                    need = int(buf[pos:hash_at])
                except ValueError:
                    assert self.transport is not None
                    self.transport.close()
                    return
                pos = hash_at + 1
            if end - pos < need:
                break
            packet = _loads(buf[pos : pos + need])
            pos += need
            need = -1
            rid = packet.get("id")
            if rid is not None:
                text = _dumps({"response": packet.get("data"), "isDisposed": True, "id": rid})
                out.append(f"{len(text)}#{text}")
        self.buf, self.need = buf[pos:], need
        if out and self.transport is not None:
            self.transport.write("".join(out).encode("utf-8"))


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port)
    sys.stdout.write(f"LISTENING {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    asyncio.run(main(args.host, args.port))
