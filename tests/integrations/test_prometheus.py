"""tcpmsg_prometheus: real calls on every binding, then the exposition text scraped."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import is_async
from facade import Binding
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tcpmsg_prometheus import Metrics

from sansio_tcpmsg import RemoteError, Router, RpcError
from sansio_tcpmsg.testing import TestClient


def measured_router(metrics: Metrics, asynchronous: bool) -> Router:
    router = Router()
    router.use(metrics.async_middleware() if asynchronous else metrics.middleware())

    @router.message({"cmd": "sum"})
    def add(data: list[int]) -> int:
        return sum(data)

    @router.message("fail")
    def fail(data: Any) -> Any:
        raise RpcError("nope")

    @router.message("count")
    def count(n: int) -> Any:
        yield from range(n)

    @router.event("noted")
    def noted(data: Any) -> None:
        pass

    return router


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, by name and labels."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_test_client_counts_requests_errors_streams_and_events() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry)
    client = TestClient(measured_router(metrics, False))
    assert client.send({"cmd": "sum"}, [1, 2]) == 3
    with pytest.raises(RemoteError):
        client.send("fail", None)
    assert client.stream("count", 3) == [0, 1, 2]
    client.emit("noted", 1)
    s = scrape(registry)
    route = '{"cmd":"sum"}'
    assert value(s, "tcpmsg_server_requests_total", route=route, kind="request") == 1
    assert value(s, "tcpmsg_server_duration_seconds_count", route=route, kind="request") == 1
    assert value(s, "tcpmsg_server_errors_total", route="fail", kind="request") == 1
    assert value(s, "tcpmsg_server_errors_total", route=route, kind="request") == 0
    assert value(s, "tcpmsg_server_duration_seconds_count", route="count", kind="request") == 1
    assert value(s, "tcpmsg_server_requests_total", route="noted", kind="event") == 1
    assert value(s, "tcpmsg_server_in_flight", route="count", kind="request") == 0


def test_every_binding_server_and_client(binding: Binding) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry)
    with binding.serve(measured_router(metrics, is_async(binding))) as srv:
        metrics.track(srv.raw)
        with binding.connect(srv.port) as client:
            client.raw = metrics.client(client.raw)
            for _ in range(3):
                assert client.send({"cmd": "sum"}, [1, 2]) == 3
            with pytest.raises(RemoteError):
                client.send("fail", None)
            assert list(client.stream("count", 2)) == [0, 1]
            client.emit("noted", 1)
            deadline = time.monotonic() + 5  # the event's handler ends after emit returns
            while value(scrape(registry), "tcpmsg_server_requests_total", route="noted", kind="event") < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            s = scrape(registry)
            assert value(s, "tcpmsg_server_connections") == 1
        route = '{"cmd":"sum"}'
        for side, label in (("server", "route"), ("client", "pattern")):
            kind = "request" if side == "server" else "send"
            assert value(s, f"tcpmsg_{side}_requests_total", **{label: route, "kind": kind}) == 3
            assert value(s, f"tcpmsg_{side}_duration_seconds_count", **{label: route, "kind": kind}) == 3
            assert value(s, f"tcpmsg_{side}_duration_seconds_sum", **{label: route, "kind": kind}) > 0
            assert value(s, f"tcpmsg_{side}_errors_total", **{label: "fail", "kind": kind}) == 1
            assert value(s, f"tcpmsg_{side}_in_flight", **{label: route, "kind": kind}) == 0
        assert value(s, "tcpmsg_client_requests_total", pattern="count", kind="stream") == 1
        assert value(s, "tcpmsg_client_duration_seconds_count", pattern="count", kind="stream") == 1
        assert value(s, "tcpmsg_client_requests_total", pattern="noted", kind="emit") == 1
        deadline = time.monotonic() + 5  # the server sees the client's close a moment later
        while value(scrape(registry), "tcpmsg_server_connections") != 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
