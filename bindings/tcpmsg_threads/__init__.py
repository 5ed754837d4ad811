"""Blocking client and server for plain threads (standard library only).

The client and server code is shared with ``tcpmsg_gevent`` (in ``tcpmsg_sync``); only
the primitives (:class:`ThreadBackend` here) differ.
"""

from __future__ import annotations

import tcpmsg_sync
from tcpmsg_sync import PooledClient
from tcpmsg_sync._backends.threads import ThreadBackend

__all__ = ["Client", "PooledClient", "Server", "ThreadBackend", "connect", "run", "serve"]


class Client(tcpmsg_sync.Client):
    """The sync client on threads (``connect`` is this class)."""

    backend = ThreadBackend()


class Server(tcpmsg_sync.Server):
    """The sync server, requests on a pool of threads (``serve`` is this class)."""

    backend = Client.backend
    binding = "tcpmsg_threads"


connect = Client
"""``connect(host, port, ...)``: a :class:`Client`; ``with`` it to connect and close."""
serve = Server
"""``serve(router, host, port, ...)``: a :class:`Server`; ``with`` it to serve."""
run = tcpmsg_sync.runner(Server)
"""``run(router, host, port, ...)``, with :class:`Server`'s parameters: serve until Ctrl-C."""
