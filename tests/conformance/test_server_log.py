"""The server's log says the same on every binding: one DEBUG line per request and per
event (worded by the core), WARNING for an event no handler takes, ERROR with the
traceback for a handler's exception other than RpcError."""

from __future__ import annotations

import logging
import re
import uuid

import pytest

from sansio_tcpmsg import RemoteError


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(level, message) of tcpmsg.server's per-call lines, the peer and duration masked."""
    out = []
    for record in caplog.records:
        if record.name != "tcpmsg.server" or record.levelno == logging.INFO:
            continue  # connections opened and closed, listening
        text = re.sub(r" from .*?: ", " from PEER: ", record.getMessage())
        out.append((record.levelname, re.sub(r" in \d+\.\d\d ms$", " in T ms", text)))
    return out


def test_one_line_per_request_and_event(binding, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tcpmsg.server")
    with binding.serve() as s, binding.connect(s.port) as c:
        assert c.send("echo", 1) == 1
        assert list(c.stream("count", {"n": 2})) == [0, 1]
        with pytest.raises(RemoteError):
            c.send("boom_other", None)
        with pytest.raises(RemoteError):
            c.send("boom_text", None)
        with pytest.raises(RemoteError):
            c.send("nowhere", None)
        c.emit("no-such-event", 1)
        token = uuid.uuid4().hex
        c.emit("evt", [token, 0])
        assert binding.wait_until(lambda: len(c.send("events_seen", token)) == 2)

        def logged() -> list[tuple[str, str]]:
            return [line for line in lines(caplog) if "events_seen" not in line[1]]

        expected = [
            ("DEBUG", "request 'echo' (route echo) from PEER: replied in T ms"),
            ("DEBUG", "request 'count' (route count) from PEER: streamed 2 in T ms"),
            ("ERROR", "handler for 'boom_other' failed"),
            ("DEBUG", "request 'boom_other' (route boom_other) from PEER: failed in T ms"),
            ("DEBUG", "request 'boom_text' (route boom_text) from PEER: failed in T ms"),
            ("DEBUG", "request 'nowhere' (route nowhere) from PEER: no handler"),
            ("WARNING", "no event handler for 'no-such-event'"),
            ("DEBUG", "event 'no-such-event' (route no-such-event) from PEER: no handler in T ms"),
            ("DEBUG", "event 'evt' (route evt) from PEER: handled by 2 in T ms"),
        ]
        assert binding.wait_until(lambda: logged() == expected, timeout=5), logged()
    error = next(r for r in caplog.records if r.getMessage() == "handler for 'boom_other' failed")
    assert error.exc_info is not None and "secret details" in str(error.exc_info[1])
