"""The recipes that cannot run as a docs block: gunicorn with gevent workers, for real
(docs/recipes.md runs the FastAPI and Flask ones)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import tcpmsg_threads

from sansio_tcpmsg import Router

ROOT = Path(__file__).resolve().parents[2]

router = Router()


@router.message({"cmd": "sum"})
def add(data: list[int]) -> int:
    return sum(data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.timeout(90)
def test_gunicorn_gevent_workers_start_with_the_backend_down(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    backend_port, http_port = free_port(), free_port()
    env = dict(os.environ, BACKEND_PORT=str(backend_port),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "bindings"), os.environ.get("PYTHONPATH", "")]))
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2", "-b", f"127.0.0.1:{http_port}",
         "--chdir", str(ROOT / "examples" / "recipes"), "gunicorn_gevent_app:app"],
        env=env, stdout=log, stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{http_port}/sum/1/2"
        deadline = time.monotonic() + 30
        while True:  # gunicorn is up once it answers; the backend is still down: 503
            try:
                status, body = get(url)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.1)
        assert status == 503 and "error" in body
        with tcpmsg_threads.serve(router, "127.0.0.1", backend_port) as backend:
            replies = [get(url) for _ in range(20)]
            assert {status for status, _ in replies} == {200}
            assert {body["sum"] for _, body in replies} == {3}
            workers = {body["worker"] for _, body in replies}
            assert proc.pid not in workers and 1 <= len(workers) <= 2
            assert backend.connections == len(workers)  # one connection per worker, opened after the fork
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    assert proc.returncode == 0, (tmp_path / "gunicorn.log").read_text()
