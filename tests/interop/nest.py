"""Fixtures that run real NestJS (10, 11, 12) next to the Python implementation.

Stdlib only. The pinned packages live in ``tests/interop/nestNN/`` (``package.json``
and ``package-lock.json``); :func:`ensure_installed` copies them to a cache directory
outside the source tree and runs ``npm ci`` there when the lock changed.

Cache root: ``$SANSIO_TCPMSG_NODE_CACHE`` (containing ``nestNN/``) or
``~/.cache/sansio-tcpmsg`` by default.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Mapping, Sequence

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js"
SERVER_JS = JS_DIR / "server.js"
CLIENT_JS = JS_DIR / "client.js"
MAJORS = (10, 11, 12)
STAMP_NAME = ".sansio-tcpmsg-lock.sha256"


class NestError(RuntimeError):
    """Node/npm missing, install failed, or a NestJS helper process misbehaved."""


def node_available() -> bool:
    """True when both ``node`` and ``npm`` are on PATH."""
    return shutil.which("node") is not None and shutil.which("npm") is not None


def cache_root() -> Path:
    env = os.environ.get("SANSIO_TCPMSG_NODE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sansio-tcpmsg"


def _check_major(major: int) -> None:
    if major not in MAJORS:
        raise ValueError(f"unsupported NestJS major {major!r}; expected one of {MAJORS}")


_install_lock = threading.Lock()


def ensure_installed(major: int) -> Path:
    """Install the pinned NestJS ``major`` into the cache; return its node_modules.

    ``npm ci`` only runs when the cached stamp (sha256 of package.json + lock) differs
    from the source tree's files, or node_modules is missing.
    """
    _check_major(major)
    if not node_available():
        raise NestError("node and npm are required for NestJS interop (not found on PATH)")
    src = HERE / f"nest{major}"
    pkg, lock = src / "package.json", src / "package-lock.json"
    for f in (pkg, lock):
        if not f.is_file():
            raise NestError(f"missing {f}")
    digest = hashlib.sha256(pkg.read_bytes() + b"\0" + lock.read_bytes()).hexdigest()
    dest = cache_root() / f"nest{major}"
    node_modules = dest / "node_modules"
    stamp = dest / STAMP_NAME
    with _install_lock:
        if (
            stamp.is_file()
            and stamp.read_text().strip() == digest
            and (node_modules / "@nestjs" / "microservices").is_dir()
        ):
            return node_modules
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pkg, dest / "package.json")
        shutil.copyfile(lock, dest / "package-lock.json")
        if stamp.exists():
            stamp.unlink()
        npm = shutil.which("npm")
        assert npm is not None
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=dest,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise NestError(
                f"npm ci for NestJS {major} failed in {dest} (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        stamp.write_text(digest + "\n")
    return node_modules


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise NestError("node not found on PATH")
    return node


def _tls_env(tls: Mapping[str, str | os.PathLike[str]] | None) -> dict[str, str]:
    """Map ``{"cert": ..., "key": ..., "ca": ...}`` to TLS_CERT/TLS_KEY/TLS_CA."""
    env: dict[str, str] = {}
    if tls:
        for k, v in tls.items():
            key = k.upper()
            if not key.startswith("TLS_"):
                key = "TLS_" + key
            env[key] = str(v)
    return env


def _terminate(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process by its pid, then kill it after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class _Base:
    """Common process plumbing: stderr goes to a temp file for diagnostics."""

    def __init__(self, major: int, env: Mapping[str, str] | None) -> None:
        _check_major(major)
        self.major = major
        self.node_modules = ensure_installed(major)
        self._extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr_file: IO[bytes] | None = None

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["NODE_PATH"] = str(self.node_modules)
        env.setdefault("NODE_NO_WARNINGS", "1")
        env.update(self._extra_env)
        return env

    def _spawn(self, script: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        if self._stderr_file is None:
            self._stderr_file = tempfile.TemporaryFile()
        return subprocess.Popen(
            [_node(), str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            env=env,
        )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise NestError("process not running")
        return self.proc.pid

    @property
    def stderr(self) -> str:
        """Everything the process(es) wrote to stderr so far."""
        f = self._stderr_file
        if f is None:
            return ""
        pos = f.tell()
        f.seek(0)
        data = f.read()
        f.seek(pos)
        return data.decode("utf-8", "replace")

    def _close_files(self) -> None:
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None


def _read_line_with_timeout(stream: IO[bytes], timeout: float) -> bytes | None:
    """Read one line from ``stream`` in a helper thread; None on timeout."""
    box: queue.Queue[bytes] = queue.Queue()
    t = threading.Thread(target=lambda: box.put(stream.readline()), daemon=True)
    t.start()
    try:
        return box.get(timeout=timeout)
    except queue.Empty:
        return None


class NestServer(_Base):
    """A real NestJS TCP microservice (``js/server.js``) on 127.0.0.1.

    ``tls``: ``{"cert": path, "key": path, "ca": path?}`` (``ca`` = mutual TLS).
    ``env``: extra env vars (e.g. ``{"MAX_BUFFER_SIZE": "1000"}``).
    """

    START_TIMEOUT = 20.0

    def __init__(
        self,
        major: int,
        *,
        tls: Mapping[str, str | os.PathLike[str]] | None = None,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(major, env)
        self.host = host
        self._tls = dict(tls) if tls else None
        self.port: int = 0

    def start(self, port: int = 0) -> None:
        env = self._base_env()
        env.update(_tls_env(self._tls))
        env["HOST"] = self.host
        env["PORT"] = str(port)
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            proc = self._spawn(SERVER_JS, env)
            assert proc.stdout is not None
            line = _read_line_with_timeout(proc.stdout, self.START_TIMEOUT)
            if line and line.startswith(b"LISTENING "):
                self.proc = proc
                self.port = int(line.split()[1])
                return
            _terminate(proc, grace=1.0)
            # restart on a fixed port: the old socket may linger briefly
            if port and time.monotonic() < deadline and "EADDRINUSE" in self.stderr:
                time.sleep(0.2)
                continue
            raise NestError(
                f"NestJS {self.major} server did not start (got {line!r}).\n"
                f"stderr:\n{self.stderr[-4000:]}"
            )

    def stop(self) -> None:
        if self.proc is not None:
            _terminate(self.proc)
            if self.proc.stdout:
                self.proc.stdout.close()
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc = None

    def restart(self) -> None:
        """Stop the server and start a new one on the same port."""
        port = self.port
        self.stop()
        self.start(port)

    def __enter__(self) -> NestServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._close_files()


class NestClient(_Base):
    """A real NestJS ``ClientTCP`` (``js/client.js``) driven over JSON lines.

    ``tls``: ``{"ca": path, "cert": path?, "key": path?}``.
    """

    START_TIMEOUT = 20.0

    def __init__(
        self,
        major: int,
        port: int,
        *,
        tls: Mapping[str, str | os.PathLike[str]] | None = None,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(major, env)
        self.host = host
        self.port = port
        self._tls = dict(tls) if tls else None
        self._results: dict[Any, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._next_tag = 0
        self.eof = False

    def start(self) -> None:
        env = self._base_env()
        env.update(_tls_env(self._tls))
        env["HOST"] = self.host
        env["PORT"] = str(self.port)
        proc = self._spawn(CLIENT_JS, env)
        assert proc.stdout is not None
        line = _read_line_with_timeout(proc.stdout, self.START_TIMEOUT)
        if line != b"READY\n":
            _terminate(proc, grace=1.0)
            raise NestError(
                f"NestJS {self.major} client did not connect (got {line!r}).\n"
                f"stderr:\n{self.stderr[-4000:]}"
            )
        self.proc = proc
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                self._results[msg.get("tag")] = msg
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def _tag(self) -> str:
        with self._write_lock:
            self._next_tag += 1
            return f"t{self._next_tag}"

    def submit(self, cmd: Mapping[str, Any]) -> Any:
        """Write one command (a tag is added if missing); return its tag."""
        if self.proc is None or self.proc.stdin is None:
            raise NestError("client not running")
        c = dict(cmd)
        if "tag" not in c:
            c["tag"] = self._tag()
        # ASCII escapes: also carries lone surrogates, which UTF-8 cannot encode
        line = (json.dumps(c, ensure_ascii=True) + "\n").encode("ascii")
        with self._write_lock:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        return c["tag"]

    def wait(self, tags: Sequence[Any], timeout: float = 10.0) -> dict[Any, dict[str, Any]]:
        """Wait for the results of ``tags``; raise TimeoutError naming the missing ones."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                missing = [t for t in tags if t not in self._results]
                if not missing:
                    return {t: self._results.pop(t) for t in tags}
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    why = "client exited" if self.eof else "timeout"
                    raise TimeoutError(
                        f"NestJS client: {why} waiting for {missing}; stderr:\n"
                        f"{self.stderr[-2000:]}"
                    )
                self._cond.wait(left)

    def request(
        self,
        op: str,
        pattern: Any = None,
        data: Any = None,
        metadata: Any = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Run one command and return its result line (``values``/``error``/``done``)."""
        cmd: dict[str, Any] = {"op": op}
        if op in ("send", "emit"):
            cmd["pattern"] = pattern
            cmd["data"] = data
            if metadata is not None:
                cmd["metadata"] = metadata
        tag = self.submit(cmd)
        return self.wait([tag], timeout)[tag]

    def send_many(
        self, cmds: Sequence[Mapping[str, Any]], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Write all commands at once (all in flight together); results in input order."""
        tags = [self.submit(c) for c in cmds]
        res = self.wait(tags, timeout)
        return [res[t] for t in tags]

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                try:
                    self.proc.stdin.close()  # client.js exits when stdin closes
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                _terminate(self.proc)
            if self._reader is not None:
                self._reader.join(timeout=2)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def __enter__(self) -> NestClient:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._close_files()
