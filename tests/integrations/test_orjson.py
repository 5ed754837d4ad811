"""``tcpmsg_orjson.OrjsonCodec``: JsonCodec's exact text and rules, with orjson's speed;
its documented differences; on every binding and with a NestJS 12 client."""

from __future__ import annotations

import enum
import json
import math
import random
import struct
import uuid
from typing import Any

import nest
import pytest
from facade import Binding
from hypothesis import given, settings
from hypothesis import strategies as st
from tcpmsg_orjson import OrjsonCodec

from sansio_tcpmsg import JsonCodec, RemoteError, Router, UnserializableError

fast, exact = OrjsonCodec(), JsonCodec()

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats() | st.text())  # text: lone surrogates and non-ASCII included
_keys = st.text() | st.integers() | st.booleans() | st.floats(allow_nan=False) | st.none()


def _json_values(scalars: Any) -> Any:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                        | st.dictionaries(_keys, inner, max_size=4), max_leaves=12)


_values = _json_values(_scalars)


def _as_orjson_reads(value: Any) -> Any:
    """An integer past 64 bits as the float orjson reads (and JSON.parse): the one difference."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, list):
        return [_as_orjson_reads(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_orjson_reads(v) for k, v in value.items()}
    return value


def _outcome(codec: Any, value: Any) -> tuple[str, str]:
    try:
        return "text", codec.dumps(value)
    except UnserializableError as exc:
        return "refused", str(exc)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_writes_what_json_codec_writes_or_refuses_alike(value: Any) -> None:
    assert _outcome(fast, value) == _outcome(exact, value)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_reads_what_json_codec_reads(value: Any) -> None:
    try:
        text = exact.dumps(value)
    except UnserializableError:
        return
    got, want = fast.loads(text), _as_orjson_reads(exact.loads(text))
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def test_every_float_as_json_codec_writes_it() -> None:
    """A sweep of magnitudes and random bit patterns: orjson's own text is kept only where
    it is JavaScript's, so this guards against a change in orjson's float format."""
    rnd = random.Random(7)
    values = [m * 10.0**e for e in range(-324, 309) for m in (1, -1.5, 2.5, 9.999, 1.2345678901234567)]
    values += [struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0] for _ in range(20000)]
    values += [rnd.uniform(-1, 1) * 10.0 ** rnd.randint(-9, 22) for _ in range(20000)]
    wrong = [v for v in values if math.isfinite(v) and fast.dumps(v) != exact.dumps(v)]
    assert wrong == []


@pytest.mark.parametrize("value", [float("nan"), [1, {"x": float("inf")}], {"k": -math.inf}])
def test_nan_and_infinity_refused_naming_where(value: Any) -> None:
    with pytest.raises(UnserializableError) as info:
        fast.dumps(value)
    assert "JavaScript has no NaN or Infinity" in str(info.value)


@pytest.mark.parametrize(("value", "text"), [
    ({"a": "é€😀", "b": [1, True, None]}, '{"a":"é€😀","b":[1,true,null]}'),  # non-ASCII raw
    ("\ud800x", '"\\ud800x"'),  # a lone surrogate escaped, as ES2019 JSON.stringify does
    ({"n": 1.0, "m": 1e-5, "p": 1e16}, '{"n":1,"m":0.00001,"p":10000000000000000}'),
    ({1: 2, False: 3}, '{"1":2,"false":3}'),
    (2**70, str(2**70)),
])
def test_javascript_text(value: Any, text: str) -> None:
    assert fast.dumps(value) == text == exact.dumps(value)


@pytest.mark.parametrize("value", [{1, 2}, b"x", object()])
def test_refused_with_where_it_is(value: Any) -> None:
    with pytest.raises(UnserializableError) as info:
        fast.dumps({"k": [value]})
    assert str(info.value).startswith('value["k"][0] is')


@pytest.mark.parametrize(("text", "check"), [
    ("1e400", lambda v: v == math.inf),
    ('"\\ud800"', lambda v: v == "\ud800"),
    (' {"a": [1, 2.5]} ', lambda v: v == {"a": [1, 2.5]}),
])
def test_reads_what_orjson_refuses_as_json_codec_does(text: str, check: Any) -> None:
    assert check(fast.loads(text))


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "{", "", "1 2"])
def test_not_json_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        fast.loads(text)


class Color(enum.Enum):
    RED = "red"


def test_documented_differences() -> None:
    u = uuid.UUID(int=1)
    assert fast.dumps([u, Color.RED]) == f'["{u}","red"]'
    with pytest.raises(UnserializableError):
        exact.dumps([u, Color.RED])
    big = "123456789012345678901234567890"
    assert fast.loads(big) == float(big) and exact.loads(big) == int(big)


router = Router()


@router.message("echo")
def echo(data: Any) -> Any:
    return data


@router.message("nan")
def nan(data: Any) -> Any:
    return {"x": float("nan")}


def test_on_every_binding(binding: Binding) -> None:
    with binding.serve(router, codec=OrjsonCodec()) as server, \
            binding.connect(server.port, codec=OrjsonCodec()) as client:
        value = {"s": "é\ud800", "f": [1.0, 0.5], "n": None, 1: 2}
        assert client.send("echo", value) == {"s": "é\ud800", "f": [1, 0.5], "n": None, "1": 2}
        with pytest.raises(RemoteError):  # refused before anything is queued: an error reply
            client.send("nan", 0)
        assert client.send("echo", "still served") == "still served"
        with pytest.raises(UnserializableError):
            client.send("echo", float("nan"))


def test_a_nestjs_client(binding: Binding, node_ready: None) -> None:
    with binding.serve(router, codec=OrjsonCodec()) as server, nest.NestClient(12, server.port) as cli:
        assert cli.request("send", "echo", {"a": [1, 2.5, "é"]})["values"] == [{"a": [1, 2.5, "é"]}]
