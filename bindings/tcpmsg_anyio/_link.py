"""One core connection and the carrier of its bytes: the link, and the stream carrier.

A :class:`Link` is everything above the bytes. Every call into the core goes through
:meth:`Link.call`, which runs one core method and then transmits what it asked for
(as aioquic's protocol calls ``transmit()`` after every call into its connection):
the events are handed on, a closed connection closes its carrier, the timer is
re-armed, and the carrier is told that bytes wait. The carrier takes them
(:meth:`Link.take`) when it writes: at once on a stream, once per loop iteration on
asyncio, so the replies of one iteration leave in one write; until then they stay in
the core, which refuses to queue past ``max_send_buffer_size``. A carrier is the small
seam below (see :class:`Carrier`): anyio byte streams here (trio, and any backend), an
``asyncio.Protocol`` in ``_aio`` (asyncio). A carrier never calls back into a
transmit, so a transmit never re-enters itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio
from anyio.abc import ByteStream

from sansio_tcpmsg import Connection, ConnectionClosedError, Event
from sansio_tcpmsg.defaults import CLOSE_TIMEOUT, FLUSH_TIMEOUT

# How many times in a row a write waits for requests about to start (``Link.starting``):
# each wait lets one more handler that waits hand the rest of a read to a new worker.
MAX_DEFERS = 16

__all__ = ["MAX_DEFERS", "Carrier", "Link", "Mailbox", "StreamCarrier", "close_stream", "now"]

if TYPE_CHECKING:
    from typing_extensions import TypeVarTuple, Unpack

    Ts = TypeVarTuple("Ts")

C = TypeVar("C", bound=Connection)
R = TypeVar("R")

_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def now() -> float:
    """The one clock of this binding (the event loop's), used for every deadline."""
    return anyio.current_time()


def clock(loop: asyncio.AbstractEventLoop | None) -> Callable[[], float]:
    """:func:`now` as the running backend's own function (it is read for every call)."""
    if loop is not None:
        return loop.time
    if running_library() == "trio":
        import trio

        return trio.current_time
    return now  # pragma: no cover - anyio runs on asyncio or trio


def trio_lowlevel() -> Any:
    """``trio.lowlevel`` (imported when first needed: trio is an optional extra)."""
    import trio.lowlevel

    return trio.lowlevel


def running_library() -> str:
    """The running async library's name ("asyncio" or "trio")."""
    try:
        import sniffio  # trio's dependency: without it, trio is not running
    except ImportError:  # pragma: no cover - installed with trio
        return "asyncio"
    return sniffio.current_async_library()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop when the backend is asyncio, else None (trio)."""
    if running_library() != "asyncio":
        return None
    return asyncio.get_running_loop()


async def close_stream(stream: ByteStream) -> None:
    """Close ``stream`` within a bounded time, even while the caller is being cancelled."""
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(CLOSE_TIMEOUT):
            try:
                await stream.aclose()
                return
            except Exception:
                pass
        await anyio.aclose_forcefully(stream)


class Mailbox:
    """Items for one consumer task: a deque, and a waiter only while it waits.

    On asyncio the waiter is a bare future (``loop``); on trio it is the consumer task
    itself, parked with ``trio.lowlevel`` and rescheduled by ``put``.
    """

    __slots__ = ("items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.items: deque[Any] = deque()
        self._loop = loop
        self._waiter: Any = None

    def put(self, item: Any) -> None:
        """Add an item (synchronous, never blocks)."""
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if self._loop is None:
                trio_lowlevel().reschedule(waiter)
            elif not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        """The oldest item, waiting for one if need be."""
        while not self.items:
            if self._loop is None:
                lowlevel = trio_lowlevel()
                self._waiter = lowlevel.current_task()
                await lowlevel.wait_task_rescheduled(self._abort)
            else:
                future = self._waiter = self._loop.create_future()
                try:
                    await future
                finally:
                    self._waiter = None
        return self.items.popleft()

    def _abort(self, _raise_cancel: Any) -> Any:
        """trio: the parked consumer is cancelled; ``put`` must not wake it any more."""
        self._waiter = None
        return trio_lowlevel().Abort.SUCCEEDED


class Carrier(Protocol):
    """What a :class:`Link` needs from whatever carries its bytes.

    None of these calls back into a transmit: the carrier reports what happened on the
    socket (``feed``, ``eof``, ``tick``, ``report``) only from its own callbacks/tasks.
    """

    queued: int  # bytes ever taken from the core to be written

    @property
    def buffered(self) -> int:
        """Bytes taken from the core and not yet handed to the operating system."""

    def want_write(self) -> None:
        """The core has bytes queued: ``link.take()`` them soon (never blocks)."""

    def arm(self, when: float) -> None:
        """Call ``link.tick()`` at ``when`` (loop time), replacing the armed time."""

    def pause(self, paused: bool) -> None:
        """Stop (or resume) reading from the peer."""

    def close(self) -> None:
        """The connection is closed: write what is queued (within bounds), then close.

        Called inside a transmit: it may ``take`` the last bytes, nothing else."""

    async def progress(self) -> None:
        """Wait until some queued bytes are written or the carrier is done."""

    async def run(self) -> None:
        """Carry bytes until the connection is closed and the carrier is done."""


def _nothing() -> None:
    pass


class Link(Generic[C]):
    """Carries bytes between a carrier and a core connection (see the module's doc).

    Subclasses handle the events (:meth:`on_event`); what waits while reading is paused
    waits in the core. ``on_release`` is called once, when the carrier closes
    the socket: from then on the peer may see the end.
    """

    carrier: Carrier

    def __init__(
        self,
        conn: C,
        *,
        loop: asyncio.AbstractEventLoop | None,
        pause_reading: bool,
        log: logging.Logger,
    ) -> None:
        self.conn = conn
        self.loop = loop
        self.time = clock(loop)
        """The event loop's clock, looked up once (it is read for every call)."""
        self.log = log
        self._pause_reading = pause_reading
        self.paused = False
        self._armed = math.inf
        self.finished = False
        self.done = anyio.Event()
        self.on_release: Callable[[], None] | None = None

    def on_event(self, event: Event) -> None:
        """One event of the core's (subclasses handle them)."""

    def starting(self) -> bool:
        """True while requests wait to start in a task already scheduled (the server's
        request worker): a write now would part their replies from those before them."""
        return False

    def call(self, method: Callable[[Unpack[Ts]], R], *args: Unpack[Ts]) -> R:
        """Run ``method`` (of this link's core connection), then transmit: the one way in.

        Positional arguments only: forwarding keywords costs a quarter of a small request.
        """
        try:
            return method(*args)
        finally:
            # transmit (inline: this runs after every request and reply)
            conn = self.conn
            for event in conn.events_received():
                self.on_event(event)
            if conn.closed:
                self.carrier.close()
            elif not conn.bytes_to_send:
                self._rearm()
            else:
                self.carrier.want_write()  # ``take`` re-arms the timer, soon...
                if self.carrier.buffered:  # ...unless a write waits for a slow peer
                    self._rearm()

    def transmit(self) -> None:
        """Transmit what earlier calls made straight into the core asked for: a caller
        making many calls in a row (the server's request worker) transmits once."""
        self.call(_nothing)

    def _rearm(self) -> None:
        """Move the carrier's timer earlier if the core's next deadline is earlier."""
        timer = self.conn.get_timer()
        if timer is not None and timer < self._armed:
            self._armed = timer
            self.carrier.arm(timer)

    def take(self) -> bytes:
        """For the carrier, when it writes: the bytes the core queued (b"" once the
        carrier is done). The core counts them as held by the socket from now on."""
        conn = self.conn
        data = conn.data_to_send()
        if self.finished:
            return b""
        if data:
            # Within the cap: they were checked against it when queued.
            conn.note_send_buffer(self.carrier.buffered + len(data))
            self._repause()
        if not conn.closed:
            self._rearm()
        return data

    def _repause(self) -> None:
        """Pause or resume reading as the core asks (its send buffer, its requests)."""
        if self._pause_reading and self.conn.reading_paused is not self.paused:
            self.paused = paused = not self.paused
            self.carrier.pause(paused)

    # -- what the carrier reports ------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the peer."""
        self.call(self.conn.receive_data, data, self.time())
        self._repause()  # the core may hold what follows until replies complete

    def eof(self) -> None:
        """The peer is gone (or closed its side)."""
        self.call(self.conn.receive_eof)

    def tick(self) -> None:
        """The armed time has come."""
        self._armed = math.inf
        self.call(self.conn.handle_timer, self.time())

    def report(self) -> None:
        """Some bytes were written: tell the core what is still buffered."""
        self.call(self.conn.note_send_buffer, self.carrier.buffered)
        self._repause()

    def release(self) -> None:
        """The carrier closes the socket now (the peer may see it from here on)."""
        on_release, self.on_release = self.on_release, None
        if on_release is not None:
            on_release()

    def fail(self) -> None:
        """A bug in the binding: it must cost this connection only."""
        self.log.exception("connection failed")
        self.call(self.conn.close)

    async def wait_sent(self, mark: int) -> None:
        """Wait until the bytes up to ``mark`` are written; raise if they never will be."""
        carrier = self.carrier
        while carrier.queued - carrier.buffered < mark:
            if self.finished or self.conn.closed and not carrier.buffered and not self.conn.bytes_to_send:
                raise ConnectionClosedError("the connection closed before the data was sent")
            await carrier.progress()

    async def run(self) -> None:
        """Carry bytes until the connection closes and the carrier is done."""
        try:
            await self.carrier.run()
        finally:
            self.finished = True
            self.done.set()


def _never() -> bool:
    return False


class StreamCarrier:
    """A carrier over an anyio byte stream: a reader loop and a writer task.

    Writes happen in one task only, so frames never interleave and a cancelled caller
    never leaves half a frame on the wire. With ``eager=(sock, predicate)`` (the
    stream's own socket, never under TLS), bytes are written at once on ``sock`` while
    ``predicate()`` says so and the writer is idle, as the asyncio carrier's eager
    writes: a lone call leaves without a switch to the writer task (a few µs on trio),
    and what the socket does not take goes to the writer, ahead of anything later.
    """

    def __init__(
        self,
        link: Link[Any],
        stream: ByteStream,
        eager: tuple[socket.socket, Callable[[], bool]] | None = None,
    ) -> None:
        self.link = link
        self.stream = stream
        link.carrier = self
        self.queued = 0
        self._sock: socket.socket | None = None
        self._eager = _never
        if eager is not None:
            self._sock, self._eager = eager
        self._rest = b""  # what the socket did not take of a write made at once
        self._want = False  # the core has bytes for the writer
        self._in_write = 0
        self._waiting = 0  # tasks in ``progress``
        self._deadline = math.inf
        self._paused = False
        self._closing = False
        # anyio.Event() looks the backend up each time: its class is made directly.
        self._event: Callable[[], anyio.Event] = type(anyio.Event())
        self._wake_writer = self._event()
        self._progress = self._event()
        self._scope: anyio.CancelScope | None = None

    @property
    def buffered(self) -> int:
        return self._in_write

    def want_write(self) -> None:
        sock = self._sock
        if sock is not None and not (self._want or self._in_write or self._closing) and self._eager():
            self._write_now(sock)
            return
        self._want = True
        self._wake_writer.set()

    def _write_now(self, sock: socket.socket) -> None:
        """Write what the core queued without the writer (it is idle: nothing pending)."""
        data = self.link.take()
        if not data:
            return
        self.queued += len(data)
        try:
            sent = sock.send(data)
        except OSError:  # full (BlockingIOError), or broken: the writer finds out
            sent = 0
        if sent < len(data):
            self._rest = data[sent:]
            self._in_write = len(self._rest)
            self._want = True
            self._wake_writer.set()
        elif self._waiting:
            self._notify()

    def arm(self, when: float) -> None:
        self._deadline = when
        if self._scope is not None:
            self._scope.deadline = when

    def pause(self, paused: bool) -> None:
        self._paused = paused

    def close(self) -> None:
        self._closing = True
        self.want_write()  # the last bytes
        if self._scope is not None:
            self._scope.cancel()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = self._event()

    async def progress(self) -> None:
        self._waiting += 1
        try:
            await self._progress.wait()
        finally:
            self._waiting -= 1

    async def run(self) -> None:
        link = self.link
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write_loop)
                await self._read_loop()
                with anyio.move_on_after(FLUSH_TIMEOUT):
                    while self._want or self._in_write:
                        await self._progress.wait()
                tg.cancel_scope.cancel()
        except Exception:  # a bug must cost this connection only, not its task group
            link.fail()
        finally:
            link.finished = True
            self._notify()
            link.release()
            await close_stream(self.stream)

    async def _read_loop(self) -> None:
        link = self.link
        while not self._closing:
            # One cancel scope until the armed time comes (``arm`` moves its deadline),
            # not one a read.
            with anyio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                await self._read_some()
            self._scope = None
            if not self._closing and link.time() >= self._deadline:
                self._deadline = math.inf
                link.tick()

    async def _read_some(self) -> None:
        link = self.link
        while not self._closing:
            if self._paused:
                await self._progress.wait()
                continue
            try:
                data = await self.stream.receive()
            except _STREAM_ERRORS:
                link.eof()
                return
            link.feed(data)

    async def _write_loop(self) -> None:
        link = self.link
        while True:
            while not self._want:
                await self._wake_writer.wait()
                self._wake_writer = self._event()
            for _ in range(MAX_DEFERS):  # the requests read with these replies start first
                if not link.starting():
                    break
                await anyio.lowlevel.checkpoint()
            self._want = False
            rest, self._rest = self._rest, b""
            chunk = link.take()
            self.queued += len(chunk)
            if rest:
                chunk = rest + chunk
            if not chunk:
                self._notify()
                continue
            self._in_write = len(chunk)
            try:
                await self.stream.send(chunk)
            except _STREAM_ERRORS:
                self._in_write = 0
                link.eof()  # the peer is gone
                self._notify()
                return
            self._in_write = 0
            link.report()
            self._notify()
