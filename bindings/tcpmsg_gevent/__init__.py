"""Greenlet client and server: the ``tcpmsg_threads`` implementation on gevent primitives.

No monkey-patching is needed: sockets, locks, queues and tasks come from gevent directly
(:class:`GeventBackend`).
"""

from __future__ import annotations

from tcpmsg_threads import Client, EntryPoints, Server

from ._backend import GeventBackend

__all__ = ["Client", "GeventBackend", "Server", "connect", "run", "serve"]

_ENTRY = EntryPoints(GeventBackend())
connect = _ENTRY.connect
serve = _ENTRY.serve
run = _ENTRY.run
