"""Fixtures of the integrations' tests (tcpmsg_pydantic, tcpmsg_otel, tcpmsg_prometheus,
recipes): every binding in one process through the interop suite's drivers, and real
NestJS 12 peers through its ``nest`` module.

- ``binding``: a driver per binding (threads, gevent, anyio-asyncio, anyio-trio);
- ``node_ready``: NestJS 12 installed (skipped without node, a failure under ``CI=true``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "interop"))
import drivers  # noqa: E402
import nest  # noqa: E402

CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


def _skip_or_fail(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_ready() -> None:
    if not nest.node_available():
        _skip_or_fail("node/npm not available: NestJS tests need Node >= 20.19 and npm")
    try:
        nest.ensure_installed(12)
    except (nest.NestError, OSError) as exc:
        _skip_or_fail(f"NestJS 12 install failed: {exc}")


@pytest.fixture(scope="session", autouse=True)
def _shutdown_drivers() -> Iterator[None]:
    yield
    drivers.shutdown_all()


@pytest.fixture(scope="session", params=drivers.BINDINGS)
def binding(request: pytest.FixtureRequest) -> drivers.Driver:
    try:
        return drivers.get_driver(request.param)
    except ImportError as exc:
        _skip_or_fail(f"binding {request.param} not importable: {exc}")
        raise


def is_async(binding: drivers.Driver) -> bool:
    return binding.name.startswith("anyio")
