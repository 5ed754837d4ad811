"""Cross-binding: this binding's client against every other binding's server (out of
process), and every other binding's client (out of process) against this binding's server."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback

import cross_checks
import facade
import pytest
from conftest import BINDING_NAME, HERE, ServerProcess

OTHERS = [b for b in facade.BINDINGS if b != BINDING_NAME]


@pytest.fixture(scope="module")
def other_servers(tmp_path_factory):
    procs: dict[str, ServerProcess] = {}
    logs = tmp_path_factory.mktemp("cross")

    def get(name: str) -> ServerProcess:
        why = facade.available(name)
        if why:
            pytest.skip(why)
        if name not in procs:
            procs[name] = ServerProcess(name, 0, None, logs / f"{name}.log")
        return procs[name]

    yield get
    for p in procs.values():
        p.kill()


def run_checks(client, binding) -> list[str]:
    failures = []
    for check in cross_checks.CHECKS:
        try:
            check(client, binding)
        except Exception:
            failures.append(f"{check.__name__}: {traceback.format_exc(limit=3)}")
    return failures


@pytest.mark.parametrize("other", OTHERS)
def test_this_client_against_other_server(binding, other_servers, other):
    srv = other_servers(other)
    with binding.connect(srv.port, timeout=10) as c:
        failures = run_checks(c, binding)
    assert not failures, f"{BINDING_NAME} client -> {other} server:\n" + "\n".join(failures)


@pytest.mark.parametrize("other", OTHERS)
def test_other_client_against_this_server(binding, server, other):
    why = facade.available(other)
    if why:
        pytest.skip(why)
    env = dict(os.environ, PYTHONPATH=facade.pythonpath(HERE))
    proc = subprocess.Popen(
        [sys.executable, "-u", str(HERE / "client_check.py"), "--binding", other, "--port", str(server.port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )
    deadline_out = None
    while deadline_out is None:  # wait without blocking a gevent hub in this thread for long
        try:
            deadline_out, _ = proc.communicate(timeout=0.05)
        except subprocess.TimeoutExpired:
            binding.sleep(0.05)
            if proc.poll() is None and _elapsed(proc) > 25:
                os.kill(proc.pid, 9)
                proc.wait(5)
                pytest.fail(f"{other} client did not finish within 25 s")
    out = deadline_out.decode(errors="replace")
    assert proc.returncode == 0, f"{other} client -> {BINDING_NAME} server:\n{out}"
    assert out.count("PASS ") == len(cross_checks.CHECKS), out


_STARTS: dict[int, float] = {}


def _elapsed(proc) -> float:
    import time

    return time.monotonic() - _STARTS.setdefault(proc.pid, time.monotonic())
