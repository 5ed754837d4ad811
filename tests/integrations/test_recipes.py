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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by pid (a graceful stop), SIGKILL after 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


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
        stop(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "gunicorn.log").read_text()


@pytest.mark.timeout(90)
def test_celery_prefork_workers_one_client_each(tmp_path: Path) -> None:
    """A real ``celery worker`` (prefork, 2 processes) on kombu's filesystem transport; a
    task sent while the backend is down is retried until it comes up."""
    pytest.importorskip("celery")
    backend_port = free_port()
    env = dict(os.environ, BACKEND_PORT=str(backend_port), CELERY_DIR=str(tmp_path / "celery"),
               PYTHONPATH=os.pathsep.join([str(ROOT / "examples" / "recipes"), str(ROOT), str(ROOT / "bindings"),
                                           os.environ.get("PYTHONPATH", "")]))
    log = (tmp_path / "celery.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork", "-c", "2",
         "--loglevel", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, stdout=log, stderr=log, cwd=tmp_path,
    )
    logged = (tmp_path / "celery.log").read_text

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 40
        while text not in logged():
            assert worker.poll() is None and time.monotonic() < deadline, logged()
            time.sleep(0.05)

    try:
        wait_for("ready.")
        sender = subprocess.run(  # the caller in a process of its own, as a web app would be
            [sys.executable, "-c", "import celery_app; print(celery_app.total.delay(1, 2).id)"],
            env=env, capture_output=True, text=True, timeout=30,
        )
        assert sender.returncode == 0, sender.stderr
        wait_for("Retry in")  # nothing listens: the task failed with an OSError, retried
        with tcpmsg_threads.serve(router, "127.0.0.1", backend_port):
            got = subprocess.run(
                [sys.executable, "-c", f"import celery_app, json; print(json.dumps("
                 f"celery_app.app.AsyncResult({sender.stdout.strip()!r}).get(timeout=40)))"],
                env=env, capture_output=True, text=True, timeout=60,
            )
        assert got.returncode == 0, got.stderr + logged()
        reply = json.loads(got.stdout)
        assert reply["sum"] == 3 and reply["worker"] != worker.pid
    finally:
        stop(worker)
        log.close()
