"""Blocking client and server for plain threads (standard library only).

The client and server code is shared with ``tcpmsg_gevent``; only the primitives
(:class:`ThreadBackend` here) differ.
"""

from __future__ import annotations

from ._backend import Backend, ThreadBackend
from ._client import Client
from ._entry import EntryPoints, run_with
from ._server import Server

__all__ = ["Backend", "Client", "EntryPoints", "Server", "ThreadBackend", "connect", "run", "run_with", "serve"]

_ENTRY = EntryPoints(ThreadBackend())
connect = _ENTRY.connect
serve = _ENTRY.serve
run = _ENTRY.run
