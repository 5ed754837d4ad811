"""The built-in health route: what a balancer's check sends, and what a server answers.

Every server of this package answers requests on :data:`HEALTH_ROUTE` itself, without a
user handler, with NestJS-compatible frames: ``"serving"`` while it serves, and an error
(``{"status": "error", "message": "draining"}``) once it has begun to shut down, so that
a balancer stops sending new connections before the old ones close; after that error
the connection closes (unless calls are in flight on it), so a check that waits for the
serving reply fails at once instead of at its timeout. The route is reserved: a user
handler registered on it is never called.

For checks that send fixed bytes (HAProxy ``tcp-check send-binary``), the request
:data:`CHECK_REQUEST` is answered by a frame containing :data:`CHECK_EXPECT` while the
server serves, and by one without it while it drains.
"""

from __future__ import annotations

from typing import Any

from .packets import error_packet, reply_packet

__all__ = ["CHECK_EXPECT", "CHECK_REQUEST", "DRAINING", "HEALTH_ROUTE", "SERVING", "health_reply"]

#: The reserved route (pattern) of the health check.
HEALTH_ROUTE = "tcpmsg.health"
#: The value a serving server replies with.
SERVING = "serving"
#: The error a draining server replies with.
DRAINING = {"status": "error", "message": "draining"}

#: A complete health request frame, with the id ``"health"``: fixed bytes for a balancer.
CHECK_REQUEST = b'53#{"pattern":"tcpmsg.health","data":null,"id":"health"}'
#: A substring of the reply frame of a serving server (absent from a draining one's).
CHECK_EXPECT = '"response":"serving"'


def health_reply(request_id: Any, draining: bool) -> dict[str, Any]:
    """The reply packet to a health request with id ``request_id``."""
    return error_packet(request_id, DRAINING) if draining else reply_packet(request_id, SERVING)
