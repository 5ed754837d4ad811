"""``tcpmsg ping`` and ``tcpmsg serve --workers``, as real processes."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from test_cli import ROOT, Served, no_traceback, start_serve, stop, tcpmsg

sys.path.insert(0, str(ROOT / "bindings"))
import tcpmsg_threads  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def call(port: int, pattern: str, data: object = None, timeout: float = 20.0) -> object:
    with tcpmsg_threads.connect("127.0.0.1", port, timeout=timeout) as client:
        return client.send(pattern, data)


def close_pipes(server: Served) -> None:
    for stream in (server.proc.stdout, server.proc.stderr):
        if stream:
            stream.close()


# -- ping -----------------------------------------------------------------------------


def test_ping_a_serving_server(tmp_path: Path) -> None:
    server = start_serve(tmp_path)
    try:
        proc = tcpmsg("ping", server.address)
        no_traceback(proc)
        assert proc.returncode == 0 and proc.stdout.strip() == "serving", proc.stderr
    finally:
        stop(server.proc)
        close_pipes(server)


def test_ping_a_draining_server_fails_then_nothing_answers(tmp_path: Path) -> None:
    server = start_serve(tmp_path, "--drain-delay", "3")
    try:
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        proc = tcpmsg("ping", server.address)
        while proc.returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            proc = tcpmsg("ping", server.address)
        no_traceback(proc)
        assert proc.returncode == 1 and "draining" in proc.stderr, (proc.returncode, proc.stderr)
        assert server.proc.wait(15) == 0
        proc = tcpmsg("ping", server.address)
        assert proc.returncode == 3 and "cannot connect" in proc.stderr
    finally:
        stop(server.proc)
        close_pipes(server)


def test_ping_a_silent_listener_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        proc = tcpmsg("ping", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert proc.returncode == 4 and time.monotonic() - started < 15, proc.stderr
    no_traceback(proc)


# -- workers --------------------------------------------------------------------------


@pytest.mark.parametrize("binding", ["threads", "anyio"])
def test_workers_share_the_port_and_a_dead_one_is_restarted(tmp_path: Path, binding: str) -> None:
    server = start_serve(tmp_path, "--workers", "2", binding=binding)
    try:
        wait_for(lambda: len(children(server.proc.pid)) == 2)
        workers = children(server.proc.pid)
        seen: set[object] = set()
        for _ in range(40):  # new connections, spread over both by the kernel
            seen.add(call(server.port, "pid"))
            if seen == workers:
                break
        assert seen == workers
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children(server.proc.pid) - {victim}) == 2)
        assert victim not in children(server.proc.pid)
        wait_for(lambda: tcpmsg("ping", server.address).returncode == 0)
        assert call(server.port, {"cmd": "sum"}, [1, 2]) == 3
    finally:
        assert stop(server.proc) == 0
        close_pipes(server)


def test_sigterm_to_the_parent_answers_every_request_in_flight(tmp_path: Path) -> None:
    server = start_serve(tmp_path, "--workers", "2", "--grace", "10")
    try:
        wait_for(lambda: len(children(server.proc.pid)) == 2)
        workers = children(server.proc.pid)
        with cf.ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(call, server.port, "slow", 1.5) for _ in range(12)]
            time.sleep(0.7)  # every request has reached a worker and is running
            server.proc.send_signal(signal.SIGTERM)
            assert [f.result(30) for f in futures] == ["late"] * 12
        assert server.proc.wait(30) == 0
        assert not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in workers)
    finally:
        stop(server.proc)
        close_pipes(server)


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    server = start_serve(tmp_path, "--workers", "2")
    try:
        wait_for(lambda: len(children(server.proc.pid)) == 2)
        workers = children(server.proc.pid)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=30)
    finally:
        stop(server.proc)
        close_pipes(server)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_with_a_bad_target_fail_once_with_one_line(tmp_path: Path) -> None:
    proc = tcpmsg("serve", "no_such_module_here:router", "--workers", "2", "--port", "0")
    assert proc.returncode == 2 and "cannot import" in proc.stderr
    no_traceback(proc)
