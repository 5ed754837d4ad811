"""gevent primitives for the shared sync implementation (no monkey-patching)."""

from __future__ import annotations

import socket as _stdsocket
import time
from collections.abc import Callable
from typing import Any

import gevent  # type: ignore[import-untyped, unused-ignore]
import gevent.event  # type: ignore[import-untyped, unused-ignore]
import gevent.lock  # type: ignore[import-untyped, unused-ignore]
import gevent.queue  # type: ignore[import-untyped, unused-ignore]
import gevent.socket  # type: ignore[import-untyped, unused-ignore]
from tcpmsg_sockopts import SocketOption

from .base import addresses, listen_on

__all__ = ["GeventBackend"]


class _GreenletPool:
    """A raw greenlet per submitted call (no ``Greenlet`` object, no group links),
    tracked in a set so that shutdown can wait for or kill them."""

    def __init__(self) -> None:
        self._running: set[Any] = set()

    def _run(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        current = gevent.getcurrent()
        self._running.add(current)
        try:
            fn(*args)
        finally:
            self._running.discard(current)

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` in a new greenlet."""
        gevent.spawn_raw(self._run, fn, args)

    def shutdown(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds, then kill what still runs."""
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            gevent.sleep(0.005)
        for glet in list(self._running):
            gevent.kill(glet)
        deadline = time.monotonic() + 1.0
        while self._running and time.monotonic() < deadline:
            gevent.sleep(0.005)


class GeventBackend:
    """Cooperative primitives: gevent sockets, greenlets, gevent locks, events, queues."""

    def connect(self, host: str, port: int, timeout: float | None) -> Any:
        """A connected gevent socket."""
        sock: Any = gevent.socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock

    def listen(self, host: str, port: int, options: list[SocketOption]) -> Any:
        """A listening gevent socket."""
        info = _stdsocket.getaddrinfo(host, port, type=_stdsocket.SOCK_STREAM)[0]
        return listen_on(gevent.socket.socket(info[0], _stdsocket.SOCK_STREAM), host, port, options)

    def wait_readable(self, sock: Any, timeout: float | None) -> bool:
        """Wait cooperatively until ``sock`` is readable; False on timeout."""
        try:
            gevent.socket.wait_read(sock.fileno(), None if timeout is None else max(timeout, 0.0))
        except TimeoutError:
            return False
        return True

    def spawn(self, fn: Callable[..., object], *args: Any) -> Any:
        """Run ``fn(*args)`` in a new greenlet."""
        return gevent.spawn(fn, *args)

    def lock(self) -> Any:
        """A new gevent lock."""
        return gevent.lock.Semaphore(1)

    def event(self) -> Any:
        """A new gevent event."""
        return gevent.event.Event()

    def queue(self) -> Any:
        """A new unbounded gevent queue (no task tracking: half the cost of ``Queue``)."""
        return gevent.queue.SimpleQueue()

    def pool(self, max_workers: int) -> _GreenletPool:
        """A greenlet per request (``max_workers`` does not apply to greenlets)."""
        return _GreenletPool()

    def sleep(self, seconds: float) -> None:
        """Yield to other greenlets for ``seconds``."""
        gevent.sleep(seconds)

    def before_write(self) -> None:
        """Yield once: greenlets already scheduled (a read batch's handlers, other
        callers) queue their bytes behind this write, which then carries them all."""
        gevent.sleep(0)

    def monotonic(self) -> float:
        """``time.monotonic``."""
        return time.monotonic()

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host`` (``gevent.socket.getaddrinfo``)."""
        return addresses(gevent.socket.getaddrinfo(host, port, type=_stdsocket.SOCK_STREAM))
