"""A raw TCP peer that records every frame a client writes (text exactly as sent).

Requests (packets with an ``id``) are answered ``{"response":"ok","isDisposed":true,"id":ID}``
so a client's ``send`` completes. Used to compare the frames our clients write with the
frames a NestJS client writes for the same calls.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

from sansio_tcpmsg import FrameDecoder, encode_frame


class CaptureServer:
    def __init__(self) -> None:
        self._lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self._lsock.getsockname()[1]
        self.frames: list[str] = []
        self._cond = threading.Condition()
        self._socks: list[socket.socket] = []
        self._closed = False

    def __enter__(self) -> CaptureServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed = True
        try:
            self._lsock.close()
        except OSError:
            pass
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                s, _ = self._lsock.accept()
            except OSError:
                return
            self._socks.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s: socket.socket) -> None:
        dec = FrameDecoder()
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            for text in dec.feed(data):
                with self._cond:
                    self.frames.append(text)
                    self._cond.notify_all()
                obj = json.loads(text)
                if isinstance(obj, dict) and "id" in obj:
                    reply = json.dumps({"response": "ok", "isDisposed": True, "id": obj["id"]})
                    try:
                        s.sendall(encode_frame(reply))
                    except OSError:
                        return

    def wait_frames(self, n: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.frames) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(self.frames)} frames, wanted {n}: {self.frames}")
                self._cond.wait(left)
            return list(self.frames)
