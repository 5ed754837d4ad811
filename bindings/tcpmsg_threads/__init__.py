"""Blocking client and server for plain threads (standard library only).

The client and server code is shared with ``tcpmsg_gevent``; only the primitives
(:class:`ThreadBackend` here) differ.
"""

from __future__ import annotations

from ._backend import Backend, ThreadBackend
from ._client import Client
from ._server import Server

__all__ = ["Backend", "Client", "Server", "ThreadBackend", "connect", "run", "serve"]

connect = Client
serve = Server
run = Server.run
