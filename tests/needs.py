"""What a suite needs from this machine (node and NestJS, a binding's packages): a test
that lacks it is skipped here, and fails under ``CI=true``, whose machine must have it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import facade
import nest
import pytest

__all__ = ["CI", "Bindings", "need_nest", "skip_or_fail"]

CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip the test for ``reason``; under ``CI=true``, fail it."""
    if CI:
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def need_nest(majors: Iterable[int]) -> None:
    """Node and npm present and each NestJS major of ``majors`` installed (``npm ci`` into
    the cache when its lock changed)."""
    if not nest.node_available():
        skip_or_fail("node/npm not available: NestJS tests need Node >= 20.19 and npm")
    for major in majors:
        try:
            nest.ensure_installed(major)
        except (nest.NestError, OSError) as exc:
            skip_or_fail(f"NestJS {major} install failed: {exc}")


class Bindings:
    """One facade per binding name for the whole session; :meth:`shutdown` ends them."""

    def __init__(self) -> None:
        self._made: dict[str, facade.Binding] = {}

    def get(self, name: str, *, router: facade.RouterFactory | None = None,
            make: Callable[[], facade.Binding] | None = None) -> facade.Binding:
        """The facade of binding ``name`` (with ``router``), made the first time; skipped
        (or failed under CI) when it cannot run here. ``make`` makes one of the suite's
        own instead (``ref``)."""
        if name not in self._made:
            if make is None:
                why = facade.available(name)
                if why:
                    skip_or_fail(f"binding {name}: {why}")
                self._made[name] = facade.make_binding(name, router=router)
            else:
                self._made[name] = make()
        return self._made[name]

    def shutdown(self) -> None:
        """End every facade made so far."""
        for b in self._made.values():
            b.shutdown()
        self._made.clear()
