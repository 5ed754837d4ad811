"""One core connection and the carrier of its bytes: the pump, and the stream carrier.

A :class:`Link` is everything above the bytes: it feeds the core what the carrier
reads, writes what the core queues, re-arms the carrier's timer and hands the events
on. A carrier is the small seam below it (see :class:`Carrier`): anyio byte streams
here (trio, and any backend), an ``asyncio.Protocol`` in ``_aio`` (asyncio).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import anyio
from anyio.abc import ByteStream

from sansio_tcpmsg import Connection, ConnectionClosedError, Event

__all__ = ["Carrier", "Link", "Mailbox", "StreamCarrier", "close_stream", "now"]

C = TypeVar("C", bound=Connection)

FLUSH_TIMEOUT = 2.0  # how long the last bytes may take once the connection is closed
_CLOSE_TIMEOUT = 1.0  # how long a polite close (TLS) may take before the socket is reset
_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def now() -> float:
    """The one clock of this binding (the event loop's), used for every deadline."""
    return anyio.current_time()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop when the backend is asyncio, else None (trio)."""
    try:
        import sniffio

        if sniffio.current_async_library() != "asyncio":
            return None
    except ImportError:  # pragma: no cover - anyio installs sniffio
        pass
    return asyncio.get_running_loop()


async def close_stream(stream: ByteStream) -> None:
    """Close ``stream`` within a bounded time, even while the caller is being cancelled."""
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(_CLOSE_TIMEOUT):
            try:
                await stream.aclose()
                return
            except Exception:
                pass
        await anyio.aclose_forcefully(stream)


class Mailbox:
    """Items for one consumer task: a deque, and a waiter made only when it must wait.

    On asyncio the waiter is a bare future (``loop``), elsewhere an ``anyio.Event``.
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
                waiter.set()
            elif not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        """The oldest item, waiting for one if need be."""
        while not self.items:
            try:
                if self._loop is None:
                    event = self._waiter = anyio.Event()
                    await event.wait()
                else:
                    future = self._waiter = self._loop.create_future()
                    await future
            finally:
                self._waiter = None
        return self.items.popleft()


class Carrier(Protocol):
    """What a :class:`Link` needs from whatever carries its bytes."""

    queued: int  # bytes ever handed to ``write``

    @property
    def buffered(self) -> int:
        """Bytes written and not yet handed to the operating system."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer (never blocks)."""

    def kick(self) -> None:
        """The core has queued bytes: pump them out (now, or with the others of a batch)."""

    def arm(self, when: float) -> None:
        """Call ``link.tick()`` at ``when`` (loop time), replacing the armed time."""

    def pause(self, paused: bool) -> None:
        """Stop (or resume) reading from the peer."""

    def close(self) -> None:
        """The connection is closed: write what is queued (within bounds), then close."""

    async def progress(self) -> None:
        """Wait until some queued bytes are written or the carrier is done."""

    async def run(self) -> None:
        """Carry bytes until the connection is closed and the carrier is done."""


class Link(Generic[C]):
    """Carries bytes between a carrier and a core connection.

    Every core call is followed by :meth:`pump`: queued bytes go to the carrier, the
    send buffer size is reported to the core, the timer is re-armed (only when the
    core's deadline moves earlier than the armed one) and the events are handed to
    ``on_event``. The carrier calls :meth:`feed`, :meth:`eof` and :meth:`tick`.
    """

    carrier: Carrier

    def __init__(
        self,
        conn: C,
        on_event: Callable[[Event], None],
        *,
        loop: asyncio.AbstractEventLoop | None,
        pause_reading: bool,
        log: logging.Logger,
    ) -> None:
        self.conn = conn
        self.loop = loop
        self.log = log
        self._on_event = on_event
        self._pause_reading = pause_reading
        self._armed = math.inf
        self.finished = False
        self.done = anyio.Event()

    def time(self) -> float:
        """The event loop's clock."""
        return now() if self.loop is None else self.loop.time()

    def pump(self) -> int:
        """Carry out what the last core calls asked for; return the carrier's mark."""
        conn = self.conn
        carrier = self.carrier
        data = conn.data_to_send()
        if data and not self.finished:
            closed = conn.closed
            conn.note_send_buffer(carrier.buffered + len(data))
            if closed or not conn.closed:  # not bytes that overflow the peer's buffer
                carrier.write(data)
            if self._pause_reading:
                carrier.pause(conn.reading_paused)
        for event in conn.events_received():
            self._on_event(event)
        if conn.closed:
            carrier.close()
        else:
            timer = conn.get_timer()
            if timer is not None and timer < self._armed:
                self._armed = timer
                carrier.arm(timer)
        return carrier.queued

    def report(self) -> None:
        """Some bytes were written: tell the core what is still buffered."""
        conn = self.conn
        conn.note_send_buffer(self.carrier.buffered)
        if conn.closed:
            self.pump()
        elif self._pause_reading:
            self.carrier.pause(conn.reading_paused)

    def feed(self, data: bytes) -> None:
        """Bytes from the peer."""
        self.conn.receive_data(data, self.time())
        self.pump()

    def eof(self) -> None:
        """The peer is gone (or closed its side)."""
        self.conn.receive_eof()
        self.pump()

    def tick(self) -> None:
        """The armed time has come."""
        self._armed = math.inf
        t = self.time()
        timer = self.conn.get_timer()
        if timer is not None and t >= timer:
            self.conn.handle_timer(t)
        self.pump()

    def fail(self) -> None:
        """A bug in the binding: it must cost this connection only."""
        self.log.exception("connection failed")
        if not self.conn.closed:
            self.conn.close()
            for event in self.conn.events_received():
                self._on_event(event)

    async def wait_sent(self, mark: int) -> None:
        """Wait until the bytes up to ``mark`` are written; raise if they never will be."""
        carrier = self.carrier
        while carrier.queued - carrier.buffered < mark:
            if self.finished or self.conn.closed and not carrier.buffered:
                raise ConnectionClosedError("the connection closed before the data was sent")
            await carrier.progress()

    async def run(self) -> None:
        """Carry bytes until the connection closes and the carrier is done."""
        try:
            await self.carrier.run()
        finally:
            self.finished = True
            self.done.set()


class StreamCarrier:
    """A carrier over an anyio byte stream: a reader loop and a writer task.

    Writes happen in one task only, so frames never interleave and a cancelled caller
    never leaves half a frame on the wire.
    """

    def __init__(self, link: Link[Any], stream: ByteStream) -> None:
        self.link = link
        self.stream = stream
        link.carrier = self
        self.queued = 0
        self._out: list[bytes] = []
        self._out_size = 0
        self._in_write = 0
        self._deadline = math.inf
        self._paused = False
        self._closing = False
        self._wake_writer = anyio.Event()
        self._progress = anyio.Event()
        self._scope: anyio.CancelScope | None = None

    @property
    def buffered(self) -> int:
        return self._out_size + self._in_write

    def write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        self.queued += len(data)
        self._wake_writer.set()

    def kick(self) -> None:
        self.link.pump()

    def arm(self, when: float) -> None:
        self._deadline = when
        if self._scope is not None:
            self._scope.deadline = when

    def pause(self, paused: bool) -> None:
        self._paused = paused

    def close(self) -> None:
        self._closing = True
        if self._scope is not None:
            self._scope.cancel()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    async def progress(self) -> None:
        await self._progress.wait()

    async def run(self) -> None:
        link = self.link
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write_loop)
                await self._read_loop()
                with anyio.move_on_after(FLUSH_TIMEOUT):
                    while self.buffered:
                        await self._progress.wait()
                tg.cancel_scope.cancel()
        except Exception:  # a bug must cost this connection only, not its task group
            link.fail()
        finally:
            link.finished = True
            self._notify()
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
        while True:
            while not self._out:
                await self._wake_writer.wait()
                self._wake_writer = anyio.Event()
            out = self._out
            chunk = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._out_size = 0
            self._in_write = len(chunk)
            try:
                await self.stream.send(chunk)
            except _STREAM_ERRORS:
                self._out.clear()
                self._out_size = 0
                self._in_write = 0
                self.link.eof()  # the peer is gone
                self._notify()
                return
            self._in_write = 0
            self.link.report()
            self._notify()
