"""Which socket options our sockets get: decided here once, set by every binding.

Every binding's client and server use these (the anyio binding and the sync one alike),
so that keepalive and ``SO_REUSEPORT`` mean the same everywhere. The options are data
(``(level, option, value)`` triples, with the platform's constants), so they can be
checked without a socket; :func:`apply_options` sets them on whatever socket object a
binding holds (anything with ``setsockopt``).
"""

from __future__ import annotations

import socket
from typing import Any

from sansio_tcpmsg.keepalive import Keepalive

__all__ = ["Keepalive", "SocketOption", "apply_options", "keepalive_options", "listen_options"]

SocketOption = tuple[int, int, int]
"""``(level, option, value)`` as ``setsockopt`` takes them."""


def keepalive_options(keepalive: Keepalive | bool | None = True) -> list[SocketOption]:
    """The options of a connected socket: ``True`` is :class:`Keepalive` ()'s defaults,
    ``False``/None turns keepalive off. Knobs the platform lacks are left out."""
    if keepalive is True:
        keepalive = Keepalive()
    elif not isinstance(keepalive, (Keepalive, bool, type(None))):
        raise TypeError(f"keepalive must be a Keepalive, True, False or None, not {keepalive!r}")
    if not keepalive:
        return [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)]
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    # Linux names the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, keepalive.idle),
        (getattr(socket, "TCP_KEEPINTVL", None), keepalive.interval),
        (getattr(socket, "TCP_KEEPCNT", None), keepalive.count),
    ):
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    return options


def listen_options(reuse_port: bool = False) -> list[SocketOption]:
    """The options of a listening socket, set before ``bind``. ``reuse_port`` lets
    several processes listen on one port, the kernel spreading connections over them."""
    options = [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]
    if reuse_port:
        if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Windows
            raise OSError("reuse_port=True: this platform has no SO_REUSEPORT")
        options.append((socket.SOL_SOCKET, socket.SO_REUSEPORT, 1))
    return options


def apply_options(sock: Any, options: list[SocketOption]) -> None:
    """Set ``options`` on ``sock`` (a socket, or anything with ``setsockopt``)."""
    for level, option, value in options:
        sock.setsockopt(level, option, value)
