"""The one sync implementation behind ``tcpmsg_threads`` and ``tcpmsg_gevent``.

Not imported by users: those two bindings subclass :class:`Client` and :class:`Server`
with their backend (``_backends/threads.py``, ``_backends/gevent.py``), the only place
where they differ, as httpcore keeps its network backends behind one seam.
"""

from __future__ import annotations

from ._backends.base import Backend
from ._client import Client
from ._pool import PooledClient
from ._server import Server, runner

__all__ = ["Backend", "Client", "PooledClient", "Server", "runner"]
