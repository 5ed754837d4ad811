"""What the ``tcpmsg`` command says when things go wrong: arguments that look like JSON
and are not, a module that fails to import, gevent without monkey-patching."""

from __future__ import annotations

import json
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_cli import Served, one_line_error, served, start_serve, stop, tcpmsg

__all__ = ["served"]  # the fixture, used here too


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{oops", "position 1"),
        ("[1, 2", "position 5"),
        ('"unterminated', "position 0"),
        ("2024-01-01", "position 4"),
        ("-1x", "position 2"),
        (" [1,,2]", "position 4"),
    ],
)
def test_data_that_starts_like_json_must_parse(text: str, where: str) -> None:
    proc = tcpmsg("send", "127.0.0.1:1", "echo", "--", text)  # refused before connecting
    line = one_line_error(proc)
    assert proc.returncode == 2
    assert "DATA starts like JSON but is not JSON: " in line and where in line, line
    assert repr(text) in line and "--string" in line


def test_pattern_that_starts_like_json_must_parse() -> None:
    proc = tcpmsg("emit", "127.0.0.1:1", "{cmd: 'sum'}", "1")
    line = one_line_error(proc)
    assert proc.returncode == 2 and "PATTERN starts like JSON" in line and "position 1" in line


def test_string_flag_sends_data_as_is(served: Served) -> None:
    for text in ("2024-01-01", "[draft]", "{oops", "42"):
        proc = tcpmsg("send", served.address, "echo", text, "--string")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["data"] == text


def test_words_stay_strings(served: Served) -> None:
    for text in ("hello world", "NaN", "-Infinity", "user.created"):
        proc = tcpmsg("send", served.address, "echo", "--", text)  # "--": -Infinity is no option
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["data"] == text


def test_timeout_names_pattern_and_seconds(served: Served) -> None:
    proc = tcpmsg("send", served.address, "slow", "3", "--timeout", "0.3")
    line = one_line_error(proc)
    assert proc.returncode == 4
    assert line.startswith("tcpmsg: error: no reply to 'slow' within 0.3 s"), line


def test_connection_refused_names_the_address_once() -> None:
    proc = tcpmsg("send", "127.0.0.1:1", "echo", "1")
    line = one_line_error(proc)
    assert proc.returncode == 3
    assert line == ("tcpmsg: error: cannot connect to 127.0.0.1:1: connection refused: "
                    "nothing listens on that port (is the server running?)"), line


# -- serve: the user's module -------------------------------------------------------------


def write(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def test_import_failure_shows_the_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "broken_service", """
        from sansio_tcpmsg import Router

        def helper():
            return 1 / 0

        router = Router()
        helper()
    """)
    proc = tcpmsg("serve", str(path), "--port", "0")
    assert proc.returncode == 2
    err = proc.stderr
    assert err.startswith("Traceback (most recent call last):"), err
    assert f'File "{path}", line 8, in <module>' in err and "return 1 / 0" in err
    assert "importlib" not in err and "cli.py" not in err  # only the user's frames
    assert err.strip().splitlines()[-1] == (
        "tcpmsg: error: importing 'broken_service' failed: ZeroDivisionError: division by zero")


def test_missing_dependency_of_the_module_shows_the_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "needs_dep", "import no_such_dependency_xyz\n")
    proc = tcpmsg("serve", str(path), "--port", "0")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "import no_such_dependency_xyz" in proc.stderr
    assert "No module named 'no_such_dependency_xyz'" in proc.stderr.strip().splitlines()[-1]


def test_missing_module_is_one_line() -> None:
    proc = tcpmsg("serve", "no_such_module_xyz:router", "--port", "0")
    line = one_line_error(proc)
    assert "cannot import 'no_such_module_xyz'" in line


def test_router_factory_failure_shows_the_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "factory_service", """
        def make():
            raise RuntimeError("no config")
    """)
    proc = tcpmsg("serve", f"{path}:make", "--port", "0")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and 'raise RuntimeError("no config")' in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("failed: RuntimeError: no config")


# -- serve: gevent and monkey-patching --------------------------------------------------------


GEVENT_SERVICE = """
    import sys
    import time

    from sansio_tcpmsg import Router

    # What the module saw when it was imported: patched already, or not.
    PATCHED_AT_IMPORT = "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("time")
    router = Router()

    @router.message("patched")
    def patched(data, ctx):
        return PATCHED_AT_IMPORT

    @router.message("nap")
    def nap(data, ctx):
        start = time.monotonic()
        time.sleep(data)  # a blocking call: with monkey-patching it yields to the others
        return [start, time.monotonic()]
"""


def _two_naps(port: int, seconds: float) -> list[list[float]]:
    """Send two naps at once; each handler's (start, end) on the server's clock."""
    import tcpmsg_threads

    with tcpmsg_threads.connect("127.0.0.1", port, timeout=20) as client:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda _: client.send("nap", seconds), range(2)))


def _gevent_or_skip() -> None:
    pytest.importorskip("gevent")
    pytest.importorskip("tcpmsg_gevent")


def test_gevent_without_monkey_patching_warns(tmp_path: Path) -> None:
    _gevent_or_skip()
    path = write(tmp_path, "gevent_service", GEVENT_SERVICE)
    server = start_serve(tmp_path, binding="gevent", target=str(path))
    try:
        proc = tcpmsg("send", server.address, "patched")
        assert proc.returncode == 0 and json.loads(proc.stdout) is False, proc.stderr
        # What the warning says: a blocking nap holds up the other one.
        (start1, end1), (start2, end2) = _two_naps(server.port, 0.3)
        assert max(start1, start2) >= min(end1, end2)
    finally:
        stop(server.proc)
    assert server.proc.stderr is not None
    err = server.proc.stderr.read()
    assert "a blocking call in one" in err and "pass --monkey-patch" in err, err


def test_gevent_monkey_patch_before_the_module(tmp_path: Path) -> None:
    _gevent_or_skip()
    path = write(tmp_path, "gevent_service", GEVENT_SERVICE)
    server = start_serve(tmp_path, "--monkey-patch", binding="gevent", target=str(path))
    try:
        proc = tcpmsg("send", server.address, "patched")
        assert proc.returncode == 0 and json.loads(proc.stdout) is True, proc.stderr
        # Two blocking naps sent at once overlap: time.sleep yields to the other greenlet.
        spans = _two_naps(server.port, 1.0)
        (start1, end1), (start2, end2) = spans
        assert max(start1, start2) < min(end1, end2), spans
    finally:
        stop(server.proc)
    assert server.proc.stderr is not None
    err = server.proc.stderr.read()
    assert "pass --monkey-patch" not in err and "Traceback" not in err, err


def test_monkey_patch_is_for_gevent() -> None:
    proc = tcpmsg("serve", "tests.cli.service:router", "--port", "0", "--monkey-patch")
    line = one_line_error(proc)
    assert proc.returncode == 2 and "--monkey-patch is for --binding gevent" in line
