"""Per-connection limits, with NestJS 12's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .framing import DEFAULT_MAX_BUFFER_SIZE

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may cost us. NestJS option names are given for each field."""

    #: Largest frame, and most data buffered for one, in UTF-16 units (``maxBufferSize``).
    max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE
    #: Seconds a peer may stay silent mid-frame; 0 disables (``incompleteMessageTimeout``).
    incomplete_frame_timeout: float = 30.0
    #: Bytes queued for a peer that does not read before it is dropped; 0 disables
    #: (``maxSendBufferSize``).
    max_send_buffer_size: int = 128 * 1024 * 1024
    #: Bytes queued for a peer above which we stop reading from it (Node's ``write()``
    #: returning false); reading resumes once the queue drains below it.
    send_high_water: int = 64 * 1024
    #: Digits allowed in a length prefix (NestJS has no cap; 16 fits any JS safe integer).
    max_prefix_digits: int = 16
    #: Requests of one connection a server runs at once; past it the server stops reading
    #: from that connection, and frames already read wait, unparsed, until replies complete
    #: (0 disables). NestJS has no such cap; the pause is invisible on the wire. 1024 is
    #: far above what a client pipelines in practice (a request costs a few KiB in flight).
    max_in_flight: int = 1024
    #: Connections a server accepts at once; None for no cap (a server-side option).
    max_connections: int | None = None
