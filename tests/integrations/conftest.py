"""Fixtures of the integrations' tests (tcpmsg_pydantic, tcpmsg_otel, tcpmsg_prometheus,
recipes): every binding in one process through the shared test facade
(``tests/facade.py``), and real NestJS 12 peers through the interop suite's ``nest`` module.

- ``binding``: a facade per binding (threads, gevent, anyio-asyncio, anyio-trio);
- ``node_ready``: NestJS 12 installed (skipped without node, a failure under ``CI=true``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "interop")]
import facade  # noqa: E402
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


_bindings: dict[str, facade.Binding] = {}


def get_binding(name: str) -> facade.Binding:
    """The facade of binding ``name``, one per session (skipped when it cannot run here)."""
    if name not in _bindings:
        why = facade.available(name)
        if why:
            _skip_or_fail(f"binding {name}: {why}")
        _bindings[name] = facade.make_binding(name)
    return _bindings[name]


@pytest.fixture(scope="session", autouse=True)
def _shutdown_bindings() -> Iterator[None]:
    yield
    for b in _bindings.values():
        b.shutdown()
    _bindings.clear()


@pytest.fixture(scope="session", params=["threads", "gevent", "anyio-asyncio", "anyio-trio"])
def binding(request: pytest.FixtureRequest) -> facade.Binding:
    return get_binding(request.param)


def is_async(binding: facade.Binding) -> bool:
    return binding.name.startswith("anyio")
