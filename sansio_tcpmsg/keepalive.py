"""TCP keepalive settings, for client and server sockets alike.

On by default: a middlebox (NAT, balancer, firewall) silently drops connections idle for
longer than its timeout, and a NestJS connection may idle for hours between calls. With
the defaults a dead peer is noticed after ``idle + interval * count`` = 60 + 10 * 6 = 120
seconds of silence. The bindings turn this into socket options (``tcpmsg_sockopts``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LocalProtocolError

__all__ = ["Keepalive"]


@dataclass(frozen=True, slots=True)
class Keepalive:
    """TCP keepalive settings: probe after ``idle`` silent seconds, every ``interval``
    seconds, and give up after ``count`` unanswered probes."""

    idle: int = 60
    interval: int = 10
    count: int = 6

    def __post_init__(self) -> None:
        for name in ("idle", "interval", "count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LocalProtocolError(f"Keepalive.{name} must be a positive whole number, not {value!r}")
