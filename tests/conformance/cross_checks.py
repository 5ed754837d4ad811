"""Checks run across bindings (a client of one against a server of another)."""

from __future__ import annotations

import uuid

import pytest

import sansio_tcpmsg as st


def check_echo(c, b):
    assert c.send("echo", {"a": [1, "é", "😀"]}) == {"a": [1, "é", "😀"]}


def check_none(c, b):
    assert c.send("none", 1) is None


def check_stream(c, b):
    assert list(c.stream("count", {"n": 4, "gap": 0.01})) == [0, 1, 2, 3]
    assert list(c.stream("count", {"n": 0})) == []


def check_errors(c, b):
    with pytest.raises(st.RemoteError) as e:
        c.send("boom_dict", None)
    assert e.value.error == {"code": 42, "why": "dict payload"}
    with pytest.raises(st.RemoteError) as e:
        c.send("boom_text", None)
    assert e.value.error == {"status": "error", "message": "text payload"}
    with pytest.raises(st.RemoteError) as e:
        c.send("boom_other", None)
    assert e.value.error == {"status": "error", "message": "Internal server error"}
    with pytest.raises(st.NoHandlerError):
        c.send("no-such-route", None)


def check_patterns(c, b):
    assert c.send({"v": 2, "cmd": "sum"}, [1, 2, 3]) == 6
    assert c.send(42, None) == "forty-two"


def check_metadata(c, b):
    assert c.send("meta", None, metadata={"trace": "t-1"}) == {"trace": "t-1"}


def check_events(c, b):
    token = uuid.uuid4().hex
    for i in range(3):
        c.emit("evt", [token, i])
    want = [[kind, token, i] for i in range(3) for kind in ("first", "second")]
    got = b.wait_until(lambda: (r := c.send("events_seen", token)) == want and r, timeout=5) or c.send("events_seen", token)
    assert got == want


CHECKS = [check_echo, check_none, check_stream, check_errors, check_patterns, check_metadata, check_events]
