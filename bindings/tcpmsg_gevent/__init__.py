"""Greenlet client and server: the ``tcpmsg_threads`` implementation on gevent primitives.

No monkey-patching is needed: sockets, locks, queues and tasks come from gevent directly
(:class:`GeventBackend`).
"""

from __future__ import annotations

import tcpmsg_threads

from ._backend import GeventBackend

__all__ = ["Client", "GeventBackend", "Server", "connect", "run", "serve"]


class Client(tcpmsg_threads.Client):
    """The sync client on gevent's primitives (``connect`` is this class)."""

    backend = GeventBackend()


class Server(tcpmsg_threads.Server):
    """The sync server on gevent's primitives, a greenlet per request (``serve`` is this class)."""

    backend = Client.backend


connect = Client
serve = Server
run = Server.run
