"""The asyncio carrier: an ``asyncio.Protocol`` on a transport (uvloop's when installed).

Reads arrive in ``data_received`` and go straight to the core; writes are gathered
and handed to ``transport.write`` once per loop iteration (after the request worker a
read woke has started its requests, so their replies leave in one write). A
carrier given ``eager`` (the client's: "at most one call in flight") writes at once
while ``eager()`` is true and the transport holds nothing: a lone call leaves without
waiting for the next loop iteration (a round trip's share at c=1), while many calls
still leave in one write per iteration. The write buffer limits are 0/0, so
``pause_writing``/``resume_writing`` say exactly when the transport holds bytes; its
size is the send buffer the core is told about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from sansio_tcpmsg.defaults import CLOSE_TIMEOUT, FLUSH_TIMEOUT

from ._link import MAX_DEFERS, Link

__all__ = ["ProtocolCarrier"]


class ProtocolCarrier(asyncio.Protocol):
    """Carries one link's bytes on an asyncio transport (see ``_link.Carrier``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        link: Link[Any] | None = None,
        on_made: Callable[[ProtocolCarrier], None] | None = None,
        *,
        eager: Callable[[], bool] | None = None,
    ) -> None:
        self.loop = loop
        self._eager = eager
        self.link: Link[Any] | None = None
        self.transport: asyncio.Transport | None = None
        self.queued = 0
        self._on_made = on_made
        self._holding = False
        self._flush_handle: asyncio.Handle | None = None
        self._defers = 0
        self._timer: asyncio.TimerHandle | None = None
        self._abort: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._paused = False
        self._closing = False
        self._lost: asyncio.Future[None] = loop.create_future()
        if link is not None:
            self.attach(link)

    def __call__(self) -> ProtocolCarrier:
        """The protocol factory of a connection made for this carrier."""
        return self

    def attach(self, link: Link[Any]) -> None:
        self.link = link
        link.carrier = self

    # -- the seam -------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        transport = self.transport
        if transport is None or self._lost.done():
            return 0
        return transport.get_write_buffer_size()

    def want_write(self) -> None:
        if self._flush_handle is None and not self._holding:
            if self._eager is not None and self._eager() and not self.buffered:
                self._send()
            else:
                self._flush_handle = self.loop.call_soon(self._flush)

    def arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._fire)

    def pause(self, paused: bool) -> None:
        if paused is not self._paused and self.transport is not None and not self._closing:
            self._paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self.link is not None:
            self._send()
            self.link.release()
        transport = self.transport
        if transport is not None and not self._lost.done():
            transport.close()  # after the buffered bytes (and the TLS close) are sent
            self._abort = self.loop.call_later(FLUSH_TIMEOUT + CLOSE_TIMEOUT, transport.abort)

    async def progress(self) -> None:
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def run(self) -> None:
        try:
            await self._lost
        except BaseException:  # cancelled: drop the connection now
            if self.transport is not None:
                self.transport.abort()
            raise

    # -- inside ---------------------------------------------------------------------

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        link = self.link
        if link is not None and link.starting() and self._defers < MAX_DEFERS:
            # after the worker that starts the rest of the read: their replies join these
            self._defers += 1
            self._flush_handle = self.loop.call_soon(self._flush)
            return
        self._flush_handle = None
        self._defers = 0
        if self._send() and link is not None:
            link.report()  # the send buffer now: reading may resume

    def _send(self) -> bool:
        """Hand what the core queued to the transport in one write."""
        assert self.link is not None
        data = self.link.take()
        if not data:
            return False
        self.queued += len(data)
        transport = self.transport
        if transport is not None and not self._lost.done():
            transport.write(data)
        self._wake()
        return True

    def _fire(self) -> None:
        self._timer = None
        assert self.link is not None
        try:
            self.link.tick()
        except Exception:
            self.link.fail()  # and close

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        transport.set_write_buffer_limits(high=0, low=0)
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        link = self.link
        if link is None:
            return
        self._holding = True
        try:
            link.feed(data)
        except Exception:
            link.fail()  # and close
        finally:
            self._holding = False
        # after the request worker this read woke (its task was scheduled first)
        if self._flush_handle is None and (self._eager is None or link.conn.bytes_to_send):
            self._flush_handle = self.loop.call_soon(self._flush)

    def eof_received(self) -> bool | None:
        if self.link is not None:
            self.link.eof()
        return None

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        if self.link is not None:
            self.link.report()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in (self._timer, self._flush_handle, self._abort):
            if handle is not None:
                handle.cancel()
        if not self._lost.done():
            self._lost.set_result(None)
        link = self.link
        if link is not None:
            link.finished = True
            link.release()
            link.eof()
        self._closing = True
        self._wake()
