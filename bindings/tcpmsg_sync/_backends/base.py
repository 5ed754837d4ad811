"""The seam between the sync implementation and its primitives (sockets, tasks, locks).

``threads.ThreadBackend`` uses the standard library (threads, blocking sockets);
``gevent.GeventBackend`` has the same shape on gevent's primitives. Nothing about the
protocol lives here.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any, Protocol

from tcpmsg_sockopts import SocketOption, apply_options

__all__ = ["Backend", "Empty", "EventLike", "FutureLike", "LockLike", "Pool", "QueueLike", "Task",
           "addresses", "listen_on"]

#: Raised by ``QueueLike.get`` on timeout (gevent uses the same class).
Empty = queue.Empty


class Task(Protocol):
    """A running thread or greenlet."""

    def join(self, timeout: float | None = None) -> Any:
        """Wait (at most ``timeout`` seconds) for it to end."""


class LockLike(Protocol):
    """A mutual-exclusion lock usable with ``with``."""

    def __enter__(self) -> Any: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any: ...


class EventLike(Protocol):
    """A flag tasks can wait on."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> Any: ...


class QueueLike(Protocol):
    """An unbounded FIFO; ``get`` raises :data:`Empty` on timeout."""

    def put(self, item: Any) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...


class FutureLike(Protocol):
    """The outcome of a submitted call: ``concurrent.futures.Future``'s reading side
    (threads), the same on gevent; the client's reader sets it."""

    def set_result(self, result: Any) -> None: ...
    def set_exception(self, exception: BaseException | None) -> None: ...

    def result(self, timeout: float | None = None) -> Any:
        """The reply's value, or raise its error; ``TimeoutError`` if not done in time."""

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The call's error (None if it succeeded); waits like :meth:`result`."""

    def done(self) -> bool:
        """Whether the outcome is known."""

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call ``fn(future)`` once done (at once if it already is)."""


class Pool(Protocol):
    """Where handlers run: a bounded thread pool, or greenlets."""

    def submit(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` soon, without blocking the caller; False when it waits for
        a busy worker to finish (the pool is full), True when it starts at once."""

    def shutdown(self, timeout: float) -> None:
        """Stop; wait at most ``timeout`` seconds for running work."""


class Backend(Protocol):
    """The primitives the sync client and server are written against."""

    #: Whether a client's waiting callers take turns reading the socket themselves
    #: (threads: the caller whose reply comes next needs no thread wake-up), or leave
    #: it to the client's background reader (gevent: a switch is cheap, and a reader
    #: that never changes keeps one socket watcher and no hand-off per read).
    callers_read: bool

    def connect(self, host: str, port: int, timeout: float | None) -> Any:
        """A connected socket in blocking mode (TLS, if any, is ``tcpmsg_sync._tls``'s)."""

    def listen(self, host: str, port: int, options: list[SocketOption]) -> Any:
        """A listening socket, with ``options`` set before it binds."""

    def wait_readable(self, sock: Any, timeout: float | None) -> bool:
        """Wait until ``sock`` can be read (or accepted) without blocking; False on timeout."""

    def spawn(self, fn: Callable[..., object], *args: Any) -> Task:
        """Run ``fn(*args)`` in a new background task."""

    def lock(self) -> LockLike:
        """A new lock."""

    def event(self) -> EventLike:
        """A new event."""

    def queue(self) -> QueueLike:
        """A new unbounded queue."""

    def waiter(self) -> QueueLike:
        """What one call's caller blocks on for its one outcome (and, where callers read,
        the reader role): ``put`` from any task, ``get`` by that caller only (threads: a
        queue; gevent: a ``gevent.hub.Waiter``, as cheap as a switch)."""

    def future(self) -> FutureLike:
        """A new unresolved future (it cannot be cancelled: the call is already sent)."""

    def pool(self, max_workers: int) -> Pool:
        """Where a server runs its handlers."""

    def sleep(self, seconds: float) -> None:
        """Block this task."""

    def before_write(self) -> None:
        """Let tasks that are ready queue their bytes too, so one write carries them
        (gevent: yield once to the hub; threads: nothing, they run anyway)."""

    def monotonic(self) -> float:
        """The clock given to the core."""

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to for a TCP connection (``OSError`` if none)."""


def addresses(infos: list[Any]) -> list[str]:
    """The distinct addresses of ``getaddrinfo`` results, in its order."""
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def listen_on(sock: Any, host: str, port: int, options: list[SocketOption]) -> Any:
    """Set ``options``, bind ``sock`` to ``(host, port)`` and listen, as every backend does."""
    try:
        apply_options(sock, options)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock
