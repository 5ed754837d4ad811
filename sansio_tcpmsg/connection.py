"""What client and server connections share: frames in and out, limits, closing.

A connection never does I/O. The binding feeds it bytes (``receive_data``), the end of
the stream (``receive_eof``) and the time (``handle_timer``); it takes bytes out
(``data_to_send``) and events (``events_received``, the one way to take them), and
closes the socket once ``closed`` is true and the last bytes are written.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from .codec import Codec, DeserializerError, JsonCodec, locate_unserializable
from .diagnose import HEAD_SIZE, foreign_protocol_error, starts_like_frames
from .errors import (
    FrameError,
    IncompleteFrameTimeout,
    RemoteProtocolError,
    SendBufferExceeded,
    UnserializableError,
)
from .events import ConnectionClosed, Event, ProtocolErrorOccurred
from .framing import FrameDecoder, encode_frame
from .limits import Limits

__all__ = ["Connection"]

_DEFAULT_CODEC = JsonCodec()

# How messages name the parts of a packet a value JSON cannot carry sits in.
_PACKET_PARTS = {"response": "reply", "err": "error"}


class Connection(ABC):
    """Base of :class:`ClientConnection` and :class:`ServerConnection`."""

    #: What the other end is, as messages name it.
    _peer_role = "peer"

    def __init__(self, *, limits: Limits | None = None, codec: Codec | None = None) -> None:
        self.limits = limits or Limits()
        self.codec = codec or _DEFAULT_CODEC
        self._decoder = FrameDecoder(self.limits.max_buffer_size, self.limits.max_prefix_digits)
        self._outbound: list[bytes] = []
        #: How many bytes are queued and not yet taken by ``data_to_send`` (read only).
        self.bytes_to_send = 0
        self._events: list[Event] = []
        self._frame_deadline: float | None = None
        self._send_buffered = 0
        # The peer's first bytes, kept until its first frame is read: if they break the
        # framing, they say which protocol the peer speaks instead (TLS, HTTP, ...).
        self._head: bytes | None = b""
        self._send_cap = self.limits.max_send_buffer_size or math.inf
        self._high_water = self.limits.send_high_water
        # Frames read while ``_paused`` (set by a server at its limits): handled, in order,
        # once it is cleared, so what one read held never costs more than its frames.
        self._held: deque[str] = deque()
        self._paused = False
        self.closed = False

    # -- bytes in ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the socket at time ``now`` (any split is fine)."""
        if self.closed:
            return
        head = self._head
        if head is not None and len(head) < HEAD_SIZE:
            self._head = head + data[: HEAD_SIZE - len(head)]
        try:
            texts = self._decoder.feed(data)
            if texts and head is not None:
                self._head = None  # a frame: the peer speaks our protocol
            held = self._held
            loads, handle = self.codec.loads, self._handle_packet
            for text in texts:
                if self.closed:  # a reply to an earlier frame passed the send cap
                    return
                if self._paused or held:
                    held.append(text)  # after those read before it
                    continue
                try:  # _handle_text, inline: this runs once per request
                    obj = loads(text)
                except ValueError as exc:
                    raise _frame_error(exc, text) from None
                handle({} if obj is None else obj)
        except RemoteProtocolError as exc:
            head = self._head
            if head is not None and isinstance(exc, FrameError) and not starts_like_frames(head):
                exc = foreign_protocol_error(head, self._peer_role, exc)
            self._fail(exc)
            return
        timeout = self.limits.incomplete_frame_timeout
        # The deadline is refreshed by every read, as in NestJS: only a silent peer expires.
        self._frame_deadline = now + timeout if timeout and self._decoder.has_partial_frame else None

    def _handle_text(self, text: str) -> None:
        try:
            obj = self.codec.loads(text)
        except ValueError as exc:
            raise _frame_error(exc, text) from None
        self._handle_packet({} if obj is None else obj)

    def _release(self) -> None:
        """Handle the frames held while paused, until paused again (or closed)."""
        held = self._held
        try:
            while held and not self._paused and not self.closed:
                self._handle_text(held.popleft())
        except RemoteProtocolError as exc:
            self._fail(exc)

    def receive_eof(self) -> None:
        """The peer closed its side of the stream (or reset the connection)."""
        self._close(None, nothing_received=self._head == b"")

    # -- bytes out --------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call; the binding writes it,
        then says with ``note_send_buffer`` how much its socket still holds."""
        outbound = self._outbound
        if not outbound:
            return b""
        out = b"".join(outbound)  # one frame: the frame itself, no copy
        outbound.clear()
        self.bytes_to_send = 0
        return out

    def _queue(self, packet: dict[str, Any]) -> None:
        try:
            text = self.codec.dumps(packet)
        except UnserializableError as exc:
            raise _unserializable(packet, exc) from None
        frame = encode_frame(text)
        self._outbound.append(frame)
        self.bytes_to_send = queued = self.bytes_to_send + len(frame)
        if self._send_buffered + queued > self._send_cap:
            self._check_send_buffer()  # refused: nothing past the cap stays queued

    # -- backpressure -----------------------------------------------------------------

    def note_send_buffer(self, size: int) -> None:
        """Tell the connection how many bytes the socket still holds for the peer.

        Once those and the bytes queued here pass ``Limits.max_send_buffer_size``, the
        peer is dropped, as NestJS 12 destroys its socket: the connection fails with
        :class:`SendBufferExceeded`, what is queued here is discarded and nothing more
        is queued. So one connection never holds more than the cap, however many
        replies its handlers produce before the binding next writes.
        """
        self._send_buffered = size
        if size + self.bytes_to_send > self._send_cap:
            self._check_send_buffer()

    def _check_send_buffer(self) -> None:
        size = self._send_buffered + self.bytes_to_send
        if size > self._send_cap and not self.closed:
            self._outbound.clear()
            self.bytes_to_send = 0
            cap = self._send_cap
            self._fail(SendBufferExceeded(f"{size} bytes queued for a peer that does not read (limit {cap})"))

    @property
    def reading_paused(self) -> bool:
        """True while the peer is not reading fast enough: stop reading from it."""
        return self._send_buffered > self._high_water

    # -- time -------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must be called next, or None."""
        return self._frame_deadline

    def handle_timer(self, now: float) -> None:
        """Turn whatever expired by ``now`` into events."""
        if self._frame_deadline is not None and now >= self._frame_deadline:
            self._fail(IncompleteFrameTimeout(
                f"peer silent mid-frame for {self.limits.incomplete_frame_timeout} s"
            ))

    # -- events -----------------------------------------------------------------------

    def events_received(self) -> list[Event]:
        """Every event since the last call, in order (the list is the caller's to keep).

        One call takes the whole batch: a sync binding takes it under its lock and
        dispatches it outside, and handing over the list costs no copy.
        """
        events = self._events
        if not events:
            return []
        self._events = []
        return events

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close locally; the binding writes what is queued, then closes the socket."""
        self._close(None)

    def _fail(self, error: RemoteProtocolError) -> None:
        self._events.append(ProtocolErrorOccurred(error))
        self._close(error)

    def _close(self, error: RemoteProtocolError | None, *, nothing_received: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self._frame_deadline = None
        self._held.clear()
        self._events.append(ConnectionClosed(error, self._abandon(), nothing_received))

    @property
    def nothing_received(self) -> bool:
        """True while the peer has not sent a single byte on this connection."""
        return self._head == b""

    # -- for subclasses ---------------------------------------------------------------

    @abstractmethod
    def _handle_packet(self, obj: Any) -> None: ...

    @abstractmethod
    def _abandon(self) -> tuple[str, ...]:
        """Forget every pending exchange; return the client request ids it failed."""


def _frame_error(exc: ValueError, text: str) -> FrameError:
    """What a frame whose text the codec refused fails the connection with."""
    if isinstance(exc, DeserializerError):
        return FrameError(str(exc))
    return FrameError(f"invalid JSON in frame: {text[:80]!r}")


def _unserializable(packet: dict[str, Any], exc: UnserializableError) -> UnserializableError:
    """``exc`` said again with where the value sits, in the caller's terms (data, reply)."""
    for key, value in packet.items():
        where = locate_unserializable(value, _PACKET_PARTS.get(key, key))
        if where is not None:
            return UnserializableError(where)
    return exc
