"""Fixtures shared by the ``tcpmsg`` command's tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nestjs() -> Iterator[str]:
    """A real NestJS 12 microservice (tests/interop/js/server.js); skipped without Node off CI."""
    sys.path.insert(0, str(ROOT / "tests" / "interop"))
    from nest import NestServer, node_available

    if not node_available() and os.environ.get("CI") != "true":
        pytest.skip("node is not installed (CI runs this)")
    server = NestServer(12)
    server.start()
    try:
        yield f"{server.host}:{server.port}"
    finally:
        server.stop()
