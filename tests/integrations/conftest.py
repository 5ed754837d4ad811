"""Fixtures of the integrations' tests (tcpmsg_pydantic, tcpmsg_otel, tcpmsg_prometheus,
recipes): every binding in one process through the shared test facade
(``tests/facade.py``), and real NestJS 12 peers through the interop suite's ``nest`` module.

- ``binding``: a facade per binding (threads, gevent, anyio-asyncio, anyio-trio);
- ``node_ready``: NestJS 12 installed (skipped without node, a failure under ``CI=true``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "interop")]
import facade  # noqa: E402
import needs  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture(scope="session")
def node_ready() -> None:
    needs.need_nest([12])


_bindings = needs.Bindings()


def get_binding(name: str) -> facade.Binding:
    """The facade of binding ``name``, one per session (skipped when it cannot run here)."""
    return _bindings.get(name)


@pytest.fixture(scope="session", autouse=True)
def _shutdown_bindings() -> Iterator[None]:
    yield
    _bindings.shutdown()


@pytest.fixture(scope="session", params=["threads", "gevent", "anyio-asyncio", "anyio-trio"])
def binding(request: pytest.FixtureRequest) -> facade.Binding:
    return get_binding(request.param)


def is_async(binding: facade.Binding) -> bool:
    return binding.name.startswith("anyio")
