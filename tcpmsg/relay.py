"""A loopback TCP relay that shows the demo's frames as they travel."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from .output import say

__all__ = ["Relay"]


class Relay:
    """A loopback TCP relay that prints every chunk each side writes, then forwards it."""

    def __init__(self, target: tuple[str, int], encrypted: bool) -> None:
        self.target = target
        self.encrypted = encrypted
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                downstream.close()
                continue
            self._sockets += [downstream, upstream]
            self._spawn(self._pipe, downstream, upstream, "client -> server")
            self._spawn(self._pipe, upstream, downstream, "server -> client")

    def _pipe(self, src: socket.socket, dst: socket.socket, label: str) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                self._show(label, chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _show(self, label: str, chunk: bytes) -> None:
        if self.encrypted:
            text = f"({len(chunk)} bytes of TLS records)"
        else:
            text = chunk.decode("utf-8", "backslashreplace")
        with self._lock:
            if not self._closed:
                try:
                    say(f"    {label}  {text}")
                except (OSError, ValueError):
                    self._closed = True  # stdout went away: keep relaying, stop printing

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.listener.close()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)
