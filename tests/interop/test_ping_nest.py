"""``tcpmsg ping`` against a real NestJS server: it answers "no handler", so it is alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nest
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(60)
def test_ping_a_nestjs_server(node_ready: None) -> None:
    with nest.NestServer(12) as server:
        proc = subprocess.run([sys.executable, "-m", "tcpmsg", "ping", f"127.0.0.1:{server.port}"],
                              capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "alive (no health route: not a sansio-tcpmsg server)"
