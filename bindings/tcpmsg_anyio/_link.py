"""One socket around one core connection: a reader loop, a writer task, the pump."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import ByteStream

from sansio_tcpmsg import Connection, ConnectionClosedError, Event

__all__ = ["Link", "Mailbox", "close_stream", "now"]

C = TypeVar("C", bound=Connection)

_CHUNK = 256 * 1024  # largest single write, so the queued byte count stays honest
_FLUSH_TIMEOUT = 2.0  # how long the last bytes may take once the connection is closed
_CLOSE_TIMEOUT = 1.0  # how long a polite close (TLS) may take before the socket is reset
_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def now() -> float:
    """The one clock of this binding (the event loop's), used for every deadline."""
    return anyio.current_time()


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
    """Items for one consumer task: a deque, and an event to wake the consumer."""

    __slots__ = ("items", "event")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.event = anyio.Event()

    def put(self, item: Any) -> None:
        """Add an item (synchronous, never blocks)."""
        self.items.append(item)
        self.event.set()

    async def get(self) -> Any:
        """The oldest item, waiting for one if need be."""
        while not self.items:
            await self.event.wait()
            self.event = anyio.Event()
        return self.items.popleft()


class Link(Generic[C]):
    """Carries bytes between a byte stream and a core connection.

    Every core call is followed by :meth:`pump`: queued bytes go to the writer task,
    the send buffer size is reported to the core, the reader's timer is re-armed and
    the events are handed to ``on_event``. Writes happen in one task only, so frames
    never interleave and a cancelled caller never leaves half a frame on the wire.
    """

    def __init__(
        self,
        conn: C,
        stream: ByteStream,
        on_event: Callable[[Event], None],
        *,
        pause_reading: bool,
        log: logging.Logger,
    ) -> None:
        self.conn = conn
        self._log = log
        self.stream = stream
        self._on_event = on_event
        self._pause_reading = pause_reading
        self._out = bytearray()
        self._in_write = 0
        self._queued = 0  # bytes ever queued
        self._sent = 0  # bytes ever written
        self._wake_writer = anyio.Event()
        self._progress = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self.finished = False
        self.done = anyio.Event()

    @property
    def buffered(self) -> int:
        """Bytes queued for the peer and not yet written."""
        return len(self._out) + self._in_write

    def pump(self) -> int:
        """Carry out what the last core calls asked for; return the writer's mark."""
        conn = self.conn
        data = conn.data_to_send()
        if data and not self.finished:
            self._out += data
            self._queued += len(data)
            self._wake_writer.set()
        conn.note_send_buffer(self.buffered)
        for event in conn.events_received():
            self._on_event(event)
        self._rearm()
        return self._queued

    def _rearm(self) -> None:
        scope = self._scope
        if scope is not None:
            if self.conn.closed:
                scope.cancel()
            else:
                timer = self.conn.get_timer()
                scope.deadline = math.inf if timer is None else timer

    def _notify(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    async def wait_sent(self, mark: int) -> None:
        """Wait until the bytes up to ``mark`` are written; raise if they never will be."""
        while self._sent < mark:
            if self.finished or self.conn.closed and not self.buffered:
                raise ConnectionClosedError("the connection closed before the data was sent")
            await self._progress.wait()

    async def run(self) -> None:
        """Read until the connection closes, flush what is left, close the stream."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write_loop)
                await self._read_loop()
                with anyio.move_on_after(_FLUSH_TIMEOUT):
                    while self.buffered:
                        await self._progress.wait()
                tg.cancel_scope.cancel()
        except Exception:  # a bug must cost this connection only, not its task group
            self._log.exception("connection failed")
            if not self.conn.closed:
                self.conn.close()
                for event in self.conn.events_received():
                    self._on_event(event)
        finally:
            self.finished = True
            self._notify()
            await close_stream(self.stream)
            self.done.set()

    async def _read_loop(self) -> None:
        conn = self.conn
        while not conn.closed:
            timer = conn.get_timer()
            data: bytes | None = None
            eof = False
            with anyio.CancelScope(deadline=math.inf if timer is None else timer) as scope:
                self._scope = scope
                if self._pause_reading and conn.reading_paused:
                    await self._progress.wait()
                else:
                    try:
                        data = await self.stream.receive()
                    except _STREAM_ERRORS:
                        eof = True
            self._scope = None
            t = now()
            if eof:
                conn.receive_eof()
            elif data is not None:
                conn.receive_data(data, t)
            timer = conn.get_timer()
            if timer is not None and t >= timer:
                conn.handle_timer(t)
            self.pump()

    async def _write_loop(self) -> None:
        while True:
            while not self._out:
                await self._wake_writer.wait()
                self._wake_writer = anyio.Event()
            chunk = bytes(self._out[:_CHUNK])
            del self._out[: len(chunk)]
            self._in_write = len(chunk)
            try:
                await self.stream.send(chunk)
            except _STREAM_ERRORS:
                self._out.clear()
                self._in_write = 0
                self.conn.receive_eof()  # the peer is gone
                self.pump()
                self._notify()
                return
            self._in_write = 0
            self._sent += len(chunk)
            self.conn.note_send_buffer(self.buffered)
            self._notify()
