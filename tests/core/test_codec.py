"""JSON as JSON.stringify writes it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sansio_tcpmsg import ClientConnection, PacketCodec, Router, ServerConnection
from sansio_tcpmsg import codec as codec_module
from sansio_tcpmsg.codec import JsonCodec, js_number
from sansio_tcpmsg.errors import FrameError, UnserializableError
from sansio_tcpmsg.events import ProtocolErrorOccurred, RequestReceived, ResponseReceived
from sansio_tcpmsg.packets import js_truthy

codec = JsonCodec()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (100.0, "100"),
        (0.1, "0.1"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (1e16, "10000000000000000"),
        (1e21, "1e+21"),
        (1.2345678901234568e21, "1.2345678901234568e+21"),
        (-2.5e-10, "-2.5e-10"),
        (5e-324, "5e-324"),
        (123.456, "123.456"),
        (2**60, "1152921504606847000"),
        (7, "7"),
    ],
)
def test_numbers_as_javascript_writes_them(value: float, text: str) -> None:
    assert js_number(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(UnserializableError):
        js_number(value)
    with pytest.raises(UnserializableError):
        codec.dumps({"x": [value]})


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes"])
def test_values_json_cannot_hold_are_refused(value: object) -> None:
    with pytest.raises(UnserializableError):
        codec.dumps({"x": value})


def test_compact_and_non_ascii_kept() -> None:
    assert codec.dumps({"a": [1, "é中😀\u2028"]}) == '{"a":[1,"é中😀\u2028"]}'


@pytest.mark.parametrize("tail", ["", '"', "\\", "\n", "\x00", "\x1f", "\x7f", "\u2028", "\ud800", "é"])
def test_long_strings_written_as_json_writes_them(tail: str) -> None:
    # A long string with nothing to escape takes the quotes-only path; any character
    # JSON escapes sends it back to the C escaper.
    for text in ("x" * 5000 + tail, tail + "y" * 5000):
        value = {"s": text, text: [text]}
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if "\ud800" not in tail:
            assert codec.dumps(value) == expected
        else:
            assert codec.dumps(value) == expected.replace("\ud800", "\\ud800")


def test_slow_path_only_changes_numbers() -> None:
    value = {"f": 1.0, "s": "1.0,", "n": None, "t": True, "x": False, "l": [1e-7, 2], 1: 0.5, False: 1.0, None: 2.0}
    assert codec.dumps(value) == '{"f":1,"s":"1.0,","n":null,"t":true,"x":false,"l":[1e-7,2],"1":0.5,"false":1,"null":2}'


@pytest.mark.parametrize("value", [
    {"id": "8b2d1c3e-aa0e-4bbb-8ccc-1234567e+9abc", "v": "1.0"},  # float-like text in strings only
    ["2e-5", 1.5, {"k": "x9.0"}],
    {"id": "9c4f6a2b-1d3e-4f5a-8b7c-0d1e2f3a4b5c", "response": {"n": 1}, "isDisposed": True},
])
def test_float_like_text_in_strings_is_written_as_json_writes_it(value: Any) -> None:
    # The text filter lets these through to a look at the value, which finds no float to rewrite.
    assert JsonCodec().dumps(value) == json.dumps(value, separators=(",", ":"))


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["", "x" * 500]))
def test_every_float_written_as_javascript_writes_it(value: float, pad: str) -> None:
    # short and long texts are checked differently
    text = f'[{js_number(value)},{{"k":{js_number(value)}}},"{pad}"]'
    assert JsonCodec().dumps([value, {"k": value}, pad]) == text


def test_lone_surrogates_are_escaped_and_pairs_joined() -> None:
    assert codec.dumps(["\ud800", "a\udc00b", "\ud83d\ude00", "é"]) == '["\\ud800","a\\udc00b","😀","é"]'


def test_loads_refuses_what_json_parse_refuses() -> None:
    assert codec.loads('{"a":[1,2.5,null]}') == {"a": [1, 2.5, None]}
    with pytest.raises(ValueError):
        codec.loads("NaN")
    with pytest.raises(ValueError):
        codec.loads("{")


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def as_javascript(value: object) -> object:
    """The value as JavaScript holds it: every number a double."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: as_javascript(v) for k, v in value.items()}
    assert isinstance(value, list)
    return [as_javascript(v) for v in value]


@given(json_values)
def test_round_trip_any_json_value(value: object) -> None:
    text = codec.dumps(value)
    text.encode("utf-8")  # always encodable: lone surrogates are escaped
    assert as_javascript(codec.loads(text)) == as_javascript(json.loads(json.dumps(value)))


# --- PacketCodec: NestJS's serializer / deserializer -------------------------------------


def _wrap(packet: Any) -> Any:
    return {"v": 1, "packet": packet}


def _unwrap(value: Any) -> Any:
    if value.get("v") != 1:
        raise ValueError("not an envelope")
    return value["packet"]


def test_packet_codec_between_client_and_server() -> None:
    envelope = PacketCodec(serialize=_wrap, deserialize=_unwrap)
    client = ClientConnection(codec=envelope)
    server = ServerConnection(Router(), codec=envelope)
    router = server.router
    assert isinstance(router, Router)
    router.message("echo")(lambda data: data)
    client.send_request("echo", 1.0)
    sent = client.data_to_send()
    assert sent.endswith(b'{"v":1,"packet":{"pattern":"echo","data":1,"id":"1"}}')
    server.receive_data(sent, 0.0)
    [request] = server.events_received()
    assert isinstance(request, RequestReceived) and request.data == 1
    server.respond(request.request_id, 2)
    client.receive_data(server.data_to_send(), 0.0)
    assert client.events_received() == [ResponseReceived("1", 2)]


def test_packet_codec_either_side_may_be_none() -> None:
    assert PacketCodec().dumps({"a": 1}) == '{"a":1}' and PacketCodec().loads('{"a":1}') == {"a": 1}


def test_packet_codec_failures_are_named() -> None:
    def refuse(packet: Any) -> Any:
        raise KeyError("no key")

    with pytest.raises(UnserializableError, match="serializer .*refuse.* failed: KeyError"):
        ClientConnection(codec=PacketCodec(serialize=refuse)).emit("e", 1)
    conn = ClientConnection(codec=PacketCodec(deserialize=_unwrap))
    conn.receive_data(b'14#{"response":1}', 0.0)
    [event, _closed] = conn.events_received()
    assert isinstance(event, ProtocolErrorOccurred) and isinstance(event.error, FrameError)
    assert "deserializer" in str(event.error) and "not an envelope" in str(event.error)
    conn = ClientConnection(codec=PacketCodec(deserialize=_unwrap))
    conn.receive_data(b"3#{x}", 0.0)
    assert "invalid JSON in frame" in str(conn.events_received()[0].error)  # type: ignore[attr-defined]


class _Dict(dict):  # type: ignore[type-arg]
    pass


class _List(list):  # type: ignore[type-arg]
    pass


class _Int(int):
    pass


@pytest.mark.parametrize("pad", ["", "x" * 500])
def test_floats_in_subclasses_and_keys_are_written_as_javascript_writes_them(pad: str) -> None:
    # short and long texts; the walk of the value sees through dict and list subclasses
    value = [_Dict({"a": 1.0}), _List([2.0]), {3.0: "k", "s": pad}, 1e-7]
    assert JsonCodec().dumps(value) == f'[{{"a":1}},[2],{{"3":"k","s":"{pad}"}},1e-7]'
    assert JsonCodec().dumps(1.0) == "1" and JsonCodec().dumps(-1e-7) == "-1e-7"
    assert JsonCodec().dumps([_Dict({1: pad}), _List(["-", _Int(5)])]) == f'[{{"1":"{pad}"}},["-",5]]'


def test_the_encoder_follows_the_length_of_the_texts() -> None:
    # a long string is quoted by the check-first encoder; either encoder writes the same text
    codec = JsonCodec()
    long = "x" * 5000 + '"'
    for value in ["é", long, long, "a\n", long + "\n", "short"]:
        assert codec.dumps(value) == json.dumps(value, ensure_ascii=False)


def test_js_truthy() -> None:
    assert [js_truthy(v) for v in (None, False, 0, "", 0.0, [], {}, "a", 1, True)] == [
        False, False, False, False, False, True, True, True, True, True
    ]


@pytest.mark.parametrize("pad", ["", "x" * 500])
def test_float_keys_alone_are_written_as_javascript_writes_them(pad: str) -> None:
    # JSON writes a float key as a string: its text follows a quote, not a ":" or a ","
    assert JsonCodec().dumps({1.0: pad}) == f'{{"1":"{pad}"}}'
    assert JsonCodec().dumps({"x": {1e16: 2, -1e-7: pad}}) == f'{{"x":{{"10000000000000000":2,"-1e-7":"{pad}"}}}}'
    assert JsonCodec().dumps({"1.0": pad, "2e-5": 1}) == f'{{"1.0":"{pad}","2e-5":1}}'  # strings stay


_SAFE_INTS = st.integers(min_value=-(2**53), max_value=2**53)
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8) | st.sampled_from(
    ["1.0", "2e-5", "x" * 450, "a-3e-4", "-", "e+"]
)
_VALUES = st.recursive(
    st.none() | st.booleans() | _SAFE_INTS | _FLOATS | _TEXT,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(_TEXT | _SAFE_INTS | _FLOATS, inner, max_size=4),
    max_leaves=12,
)


@given(_VALUES)
def test_the_fast_path_writes_what_the_javascript_writer_writes(value: Any) -> None:
    # the text checks only decide which writer runs: the result is always JavaScript's
    assert JsonCodec().dumps(value) == codec_module._js_dumps(value)
