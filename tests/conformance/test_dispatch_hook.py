"""``connect(..., on_dispatch=hook)`` on every binding: NestJS 12's ``setOnDispatchHook``.

The hook sees every request and event (``{"pattern", "data"}`` and the call's
``metadata``) before it is written, and may set ``packet["metadata"]``; the server's
handlers read it as ``ctx.metadata``. The core's ``ClientConnection`` calls it, so every
binding (and every connection of a pool) gets it from this one option.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest


def tracing(seen: list[Any]) -> Any:
    def hook(packet: dict[str, Any]) -> None:
        seen.append(packet["pattern"])
        packet["metadata"] = {**(packet.get("metadata") or {}), "traceparent": "00-trace-01"}

    return hook


def test_the_hook_sets_metadata_on_requests(binding, server) -> None:
    seen: list[Any] = []
    with binding.connect(server.port, on_dispatch=tracing(seen)) as c:
        assert c.send("meta", None) == {"traceparent": "00-trace-01"}
        assert c.send("meta", None, metadata={"user": 7}) == {"user": 7, "traceparent": "00-trace-01"}
        assert list(c.stream("count", {"n": 2})) == [0, 1]
    assert seen == ["meta", "meta", "count"]


def test_the_hook_sets_metadata_on_events(binding, server) -> None:
    seen: list[Any] = []
    token = uuid.uuid4().hex
    with binding.connect(server.port, on_dispatch=tracing(seen)) as c:
        c.emit({"cmd": "evt_meta"}, token)
        expected = [["meta", token, {"traceparent": "00-trace-01"}, '{"cmd":"evt_meta"}']]
        assert binding.wait_until(lambda: c.send("events_seen", token) == expected, timeout=5)
    assert seen[0] == {"cmd": "evt_meta"}


def test_a_failing_hook_fails_the_call_and_the_client_stays_usable(binding, server) -> None:
    def hook(packet: dict[str, Any]) -> None:
        if packet["data"] == "deny":
            raise PermissionError("no token for this call")

    with binding.connect(server.port, on_dispatch=hook) as c:
        with pytest.raises(PermissionError):
            c.send("echo", "deny")
        assert c.send("echo", "ok") == "ok"


def test_every_connection_of_a_pool_calls_the_hook(binding, server) -> None:
    seen: list[Any] = []
    with binding.connect(server.port, pool_size=3, on_dispatch=tracing(seen)) as c:
        for _ in range(6):
            assert c.send("meta", None) == {"traceparent": "00-trace-01"}
    assert seen == ["meta"] * 6
