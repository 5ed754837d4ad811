"""Each example runs as written (``python examples/x.py``) and exits 0."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 90

NEEDS = {"math_anyio.py": "anyio", "streaming.py": "anyio", "math_gevent.py": "gevent"}

EXPECTED = {
    "math_threads.py": ["sum [1, 2, 3] = 6", "fibonacci 10 = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]", "division by zero"],
    "math_gevent.py": ["sum [1, 2, 3] = 6", "fibonacci 10 = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]", "division by zero"],
    "math_anyio.py": ["sum [1, 2, 3] = 6", "fibonacci 10 = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]", "division by zero"],
    "streaming.py": ["{'tick': 3}", "progress: ['0%', '25%', '50%', '75%', '100%']", "concurrent: {'a': 3, 'b': 5}"],
    "nest_client.py": ["sum: 6", "stream: [0, 1, 2]", "error.object: {'code': 42, 'reason': 'bad'}", "no handler:"],
    "tls.py": [],
}


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "bindings"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=env,
    )


# Modules the examples import, not programs of their own.
SHARED = {"math_service.py"}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in SHARED) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    need = NEEDS.get(name)
    if need and importlib.util.find_spec(need) is None:
        pytest.skip(f"{need} is not installed")
    proc = run_example(name)
    assert proc.returncode == 0, f"{name}:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    for text in EXPECTED[name]:
        assert text in proc.stdout, f"{name}: {text!r} not in\n{proc.stdout}"


def test_tls_example_output() -> None:
    proc = run_example("tls.py")
    assert proc.returncode == 0, proc.stderr
    if "openssl is not installed" in proc.stdout:
        pytest.skip("openssl is not available")
    assert "reply over TLS" in proc.stdout
    assert "reply over mutual TLS" in proc.stdout
    assert "a client without a certificate is refused" in proc.stdout


def test_nest_client_against_nestjs() -> None:
    """Against real NestJS 12 when node is available; else against our own server."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
    from nest import NestError, NestServer, node_available

    if not node_available() and os.environ.get("CI") != "true":
        proc = run_example("nest_client.py")  # the Python stand-in
        assert proc.returncode == 0, proc.stderr
        return
    try:
        server = NestServer(12)
        server.start()
    except NestError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"NestJS could not start here: {str(exc).splitlines()[0]}")
    try:
        proc = run_example("nest_client.py", server.host, str(server.port))
    finally:
        server.stop()
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    for text in EXPECTED["nest_client.py"]:
        assert text in proc.stdout, proc.stdout
    assert "echo: {'text': 'héllo 中文 😀'}" in proc.stdout
