"""Several worker processes serving one port: ``tcpmsg serve MOD:ROUTER --workers N``.

Python handlers are bound by one core per process (the GIL); a host with several cores
runs several processes. Each worker is a full ``tcpmsg serve`` of the chosen binding,
listening on the same port with ``SO_REUSEPORT``: the kernel spreads new connections over
them, and no process stands between a client and its worker.

The parent (this module) only supervises: it starts the workers, restarts one that dies
(after a pause that grows while it keeps dying at once), and on SIGTERM or SIGINT passes
SIGTERM to every worker, which drains (health checks fail for ``drain_delay`` seconds,
in-flight requests get ``grace`` seconds), and exits once all have. Standard library only.

From Python::

    from tcpmsg.workers import run_workers
    run_workers("myapp.service:router", 4, host="0.0.0.0", port=3000, binding="anyio")
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any

from .output import say

__all__ = ["Workers", "run_workers", "stop_with_parent"]

log = logging.getLogger("tcpmsg.workers")

_START_TIMEOUT = 60.0  # seconds a worker may take to import its module and bind
_MAX_BACKOFF = 10.0  # the longest pause before restarting a worker that keeps dying
_STABLE = 5.0  # a worker that lived this long resets the restart pause


class _Worker:
    """One worker process and the thread that forwards its stdout."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[str] | None = None
        self.started_at = 0.0
        self.backoff = 0.0
        self.restart_at: float | None = None
        self.listening = threading.Event()


class Workers:
    """Start, watch and stop ``count`` worker processes serving ``target`` on one port.

    ``serve_args`` are more ``tcpmsg serve`` options given to every worker (TLS files,
    ``--proxy-protocol``, ``--log-level``, ...). ``port=0`` picks a free port, shared by
    every worker (the parent holds it, bound but not listening, with ``SO_REUSEPORT``).
    """

    def __init__(
        self,
        target: str,
        count: int,
        *,
        host: str = "localhost",
        port: int = 3000,
        binding: str = "threads",
        grace: float = 5.0,
        drain_delay: float = 0.0,
        serve_args: Sequence[str] = (),
        python: str | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"workers must be at least 1, not {count!r}")
        self.target, self.host, self.port, self.binding = target, host, port, binding
        self.grace, self.drain_delay = grace, drain_delay
        self.serve_args = list(serve_args)
        self.python = python or sys.executable  # the workers' interpreter: this one by default
        self.workers = [_Worker(i) for i in range(count)]
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._holder: socket.socket | None = None

    # -- starting ---------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker and wait until each listens (raises if one cannot)."""
        if self.port == 0:
            self._holder = _hold_port(self.host)
            self.port = self._holder.getsockname()[1]
        for worker in self.workers:
            self._spawn(worker)
        deadline = time.monotonic() + _START_TIMEOUT
        for worker in self.workers:
            while not worker.listening.wait(0.05):
                if self.stopping.is_set():  # a signal came first: watch() waits for them
                    return
                proc = worker.proc
                if proc is not None and proc.poll() is not None:
                    self._abort(f"worker {worker.index} exited with status {proc.returncode} before listening")
                if time.monotonic() > deadline:
                    self._abort(f"worker {worker.index} did not listen within {_START_TIMEOUT:g} s")

    def _abort(self, message: str) -> None:
        self.stop()
        self._wait_all()
        raise RuntimeError(message)

    def _command(self) -> list[str]:
        return [
            self.python, "-m", "tcpmsg", "serve", self.target, "--host", self.host, "--port", str(self.port),
            "--binding", self.binding, "--reuse-port", "--grace", repr(self.grace),
            "--drain-delay", repr(self.drain_delay), *self.serve_args,
        ]

    def _spawn(self, worker: _Worker) -> None:
        worker.listening.clear()
        env = dict(os.environ, PYTHONUNBUFFERED="1", TCPMSG_WORKER=str(worker.index),
                   TCPMSG_PARENT_PID=str(os.getpid()))
        # Workers ignore the terminal's Ctrl-C: the parent tells them when to stop, once.
        proc = subprocess.Popen(self._command(), stdout=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        worker.proc, worker.started_at, worker.restart_at = proc, time.monotonic(), None
        log.info("worker %d started (pid %d)", worker.index, proc.pid)
        assert proc.stdout is not None
        threading.Thread(target=self._forward, args=(worker, proc.stdout), daemon=True,
                         name=f"tcpmsg-worker-{worker.index}-stdout").start()

    def _forward(self, worker: _Worker, stream: IO[str]) -> None:
        """Pass a worker's stdout on, noting when it says it listens."""
        for line in stream:
            if not worker.listening.is_set() and line.startswith("listening on "):
                worker.listening.set()
                continue  # the parent says it once for all
            sys.stdout.write(line)
            sys.stdout.flush()

    # -- watching ---------------------------------------------------------------------

    def watch(self) -> None:
        """Restart workers that die, until :meth:`stop` is called; then wait for them."""
        while not self.stopping.wait(0.1):
            now = time.monotonic()
            with self._lock:
                if self.stopping.is_set():
                    break
                for worker in self.workers:
                    self._check(worker, now)
        self._wait_all()

    def _check(self, worker: _Worker, now: float) -> None:
        proc = worker.proc
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                self._spawn(worker)
            return
        if proc is None or proc.poll() is None:
            return
        lived = now - worker.started_at
        worker.backoff = 0.0 if lived >= _STABLE else min(max(worker.backoff * 2, 0.5), _MAX_BACKOFF)
        log.warning("worker %d (pid %d) exited with status %s after %.1f s; restarting in %.1f s",
                    worker.index, proc.pid, proc.returncode, lived, worker.backoff)
        worker.restart_at = now + worker.backoff

    # -- stopping ---------------------------------------------------------------------

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask every worker to drain and stop (SIGTERM); :meth:`watch` then waits for them."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
            for worker in self.workers:
                proc = worker.proc
                if proc is not None and proc.poll() is None:
                    try:
                        proc.send_signal(signum)
                    except ProcessLookupError:  # pragma: no cover - exited meanwhile
                        pass

    def _wait_all(self) -> None:
        """Wait for every worker to exit (killing those past their drain, grace and a margin)."""
        deadline = time.monotonic() + self.drain_delay + self.grace + 10.0
        for worker in self.workers:
            proc = worker.proc
            if proc is None:
                continue
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("worker %d (pid %d) did not stop in time: killed", worker.index, proc.pid)
                proc.kill()
                proc.wait()
            log.info("worker %d (pid %d) stopped with status %s", worker.index, proc.pid, proc.returncode)
        if self._holder is not None:
            self._holder.close()

    @property
    def pids(self) -> list[int]:
        """The running workers' process ids."""
        return [w.proc.pid for w in self.workers if w.proc is not None and w.proc.poll() is None]


def stop_with_parent(parent: int, interval: float = 1.0) -> None:
    """In a worker: drain and stop (SIGTERM to itself) if the parent ``parent`` is gone,
    so that a parent killed outright (SIGKILL, OOM) leaves no orphaned workers serving."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("the parent process %d is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tcpmsg-parent-watch", daemon=True).start()


def _hold_port(host: str) -> socket.socket:
    """A free port, held by a socket that is bound (not listening) with ``SO_REUSEPORT``,
    so the workers can all bind it and nobody else takes it meanwhile."""
    info = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(info[4])
    return sock


def run_workers(target: str, count: int, **options: Any) -> int:
    """Serve ``target`` (``MODULE[:ROUTER]``) with ``count`` worker processes until SIGTERM
    or SIGINT, then drain them all and return 0. Prints ``listening on HOST:PORT`` once
    every worker listens. ``options`` are :class:`Workers`' (``host``, ``port``,
    ``binding``, ``grace``, ``drain_delay``, ``serve_args``). Call it from the main thread
    (it installs signal handlers)."""
    workers = Workers(target, count, **options)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s received, stopping %d workers", signal.Signals(signum).name, count)
        workers.stop()

    previous: dict[int, Any] = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        workers.start()
        host = workers.host
        host_port = f"[{host}]:{workers.port}" if ":" in host else f"{host}:{workers.port}"
        say(f"listening on {host_port}")
        log.info("%d workers of %s (%s binding), pids %s", count, target, workers.binding, workers.pids)
        workers.watch()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("all workers stopped")
    return 0
