"""Greenlet client and server: the one sync implementation (``tcpmsg_sync``) on gevent.

No monkey-patching is needed for the binding itself: sockets, locks, queues and tasks come
from gevent directly (:class:`GeventBackend`). But handlers run in greenlets: a handler
that blocks on the standard library (``time.sleep``, ``requests``, database drivers)
stops every connection of the process until it returns, unless ``gevent.monkey.patch_all()``
ran before anything else was imported (``tcpmsg serve --binding gevent --monkey-patch``
does it before importing your module).
"""

from __future__ import annotations

import tcpmsg_sync
from tcpmsg_sync import PooledClient
from tcpmsg_sync._backends.gevent import GeventBackend, GreenFuture

__all__ = ["Client", "PooledClient", "GeventBackend", "GreenFuture", "Server", "connect", "run",
           "serve"]


class Client(tcpmsg_sync.Client):
    """The sync client on gevent's primitives (``connect`` is this class)."""

    backend = GeventBackend()


class Server(tcpmsg_sync.Server):
    """The sync server on gevent's primitives, handlers in greenlets (``serve`` is this class)."""

    backend = Client.backend
    binding = "tcpmsg_gevent"


connect = Client
"""``connect(host, port, ...)``: a :class:`Client`; ``with`` it to connect and close."""
serve = Server
"""``serve(router, host, port, ...)``: a :class:`Server`; ``with`` it to serve."""
run = tcpmsg_sync.runner(Server)
"""``run(router, host, port, ...)``, with :class:`Server`'s parameters: serve until Ctrl-C."""
