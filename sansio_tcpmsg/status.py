"""The connection status a client reports, as NestJS's ``client.status`` does."""

from __future__ import annotations

import enum

__all__ = ["ConnectionStatus"]


class ConnectionStatus(str, enum.Enum):
    """Where a client's connection stands; the values are NestJS's status strings."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
