"""What every binding must agree on beyond the protocol: timings, and how each situation is logged.

:class:`~sansio_tcpmsg.Limits` holds what one connection may cost, mirroring NestJS's
options, set by the user per server or client. The values here are not options: they
are the project's, written once so that the same situation takes the same time and
gives the same log line (same logger, level and words) on every binding. The core
itself never waits and never logs; the bindings import these.
"""

from __future__ import annotations

import logging

__all__ = [
    "CLOSE_TIMEOUT",
    "FLUSH_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "LOG",
    "RETRY_DELAY_CAP",
    "LogLine",
]

#: Seconds a closed connection may take to write what is still queued for the peer.
FLUSH_TIMEOUT = 2.0
#: Seconds a polite close (TLS ``close_notify``) may take before the socket is reset.
CLOSE_TIMEOUT = 1.0
#: Seconds a server waits for a client's TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: The longest wait between a client's connection attempts (the backoff doubles up to it).
RETRY_DELAY_CAP = 2.0

LogLine = tuple[int, str]
"""A level and a %-format: ``logger.log(*LOG.REFUSED, peer, count)``."""


class LOG:
    """Every situation both binding families log, with its level and words.

    Server (logger ``tcpmsg.server``) and client (``tcpmsg.client``) lines; a problem of
    the peer's is a WARNING, the life of a connection INFO, what a debugger wants DEBUG.
    """

    LISTENING: LogLine = (logging.INFO, "listening on %s:%s")
    SERVER_CLOSED: LogLine = (logging.INFO, "server on %s:%s closed")
    ACCEPT_FAILED: LogLine = (logging.WARNING, "accept failed: %s")
    REFUSED: LogLine = (logging.WARNING, "refused a connection from %s: %d connections open")
    HANDSHAKE_FAILED: LogLine = (logging.WARNING, "TLS handshake with %s failed: %s")  # diagnose.handshake_failure
    OPENED: LogLine = (logging.INFO, "connection from %s opened")
    CLOSED: LogLine = (logging.INFO, "connection from %s closed")
    PROTOCOL_ERROR: LogLine = (logging.WARNING, "protocol error from %s: %s")
    PACKET_DROPPED: LogLine = (logging.DEBUG, "dropped a packet from %s: %s")
    NO_EVENT_HANDLER: LogLine = (logging.WARNING, "no event handler for %r")
    RETRYING: LogLine = (logging.INFO, "%s; retrying")  # the connect error names host:port
    CONNECTED: LogLine = (logging.INFO, "connected to %s:%s")
