"""The framer alone: any split, any text, only the core's errors for garbage."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_tcpmsg.errors import FrameError, FrameTooLarge, RemoteProtocolError
from sansio_tcpmsg.framing import FrameDecoder, encode_frame, utf16_length

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[str]:
    decoder = FrameDecoder()
    frames: list[str] = []
    start = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        frames += decoder.feed(data[start:cut])
        start = cut
    assert not decoder.has_partial_frame
    assert decoder.buffered_units == 0
    return frames


@given(st.lists(json_values, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_gives_the_same_frames(values: list[object], cuts: list[int]) -> None:
    texts = [dumps(v) for v in values]
    stream = b"".join(encode_frame(t) for t in texts)
    assert feed_in_pieces(stream, cuts) == texts


@given(st.text())
def test_any_unicode_round_trips_byte_by_byte(text: str) -> None:
    body = dumps(text)
    stream = encode_frame(body)
    assert feed_in_pieces(stream, list(range(len(stream)))) == [body]
    assert json.loads(feed_in_pieces(stream, [])[0]) == text


@settings(max_examples=300)
@given(st.binary(max_size=200), st.lists(st.integers(0, 300), max_size=5))
def test_random_bytes_give_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_buffer_size=1000)
    start = 0
    try:
        for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
            decoder.feed(data[start:cut])
            start = cut
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize(
    ("text", "units"),
    [("abc", 3), ("é", 1), ("中", 1), ("😀", 2), ("a😀é", 4), ("", 0)],
)
def test_length_counts_utf16_units(text: str, units: int) -> None:
    assert utf16_length(text) == units
    assert encode_frame(text).startswith(f"{units}#".encode())


def test_astral_characters_are_cut_by_units() -> None:
    texts = ['"😀"', '"a😀😀b"', '"x"']
    stream = b"".join(encode_frame(t) for t in texts)
    assert FrameDecoder().feed(stream) == texts
    assert feed_in_pieces(stream, list(range(0, len(stream), 3))) == texts


def test_many_frames_in_one_chunk() -> None:
    texts = [dumps({"i": i}) for i in range(1000)]
    assert FrameDecoder().feed(b"".join(encode_frame(t) for t in texts)) == texts


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert FrameDecoder().feed(b'3#"\xff"') == ['"\ufffd"']


def test_empty_frame_body() -> None:
    assert FrameDecoder().feed(b"0#") == [""]


@pytest.mark.parametrize("data", [b"ab#{}", b"-1#{}", b" 2#{}", b"#{}", b"4a#{}", b"\xd9\xa3#{}"])
def test_invalid_prefix_is_a_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(data)


def test_partial_prefix_is_checked_at_once() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"12") == []
    assert decoder.has_partial_frame
    with pytest.raises(FrameError, match="invalid length prefix"):
        FrameDecoder().feed(b"1x")


def test_prefix_digit_cap() -> None:
    decoder = FrameDecoder(max_prefix_digits=4)
    with pytest.raises(FrameError, match="longer than 4"):
        decoder.feed(b"12345")
    with pytest.raises(FrameError):
        FrameDecoder(max_prefix_digits=4).feed(b"12345#")


def test_frame_over_the_limit_is_refused_before_it_arrives() -> None:
    decoder = FrameDecoder(max_buffer_size=10)
    assert decoder.feed(b'10#"12345678"') == ['"12345678"']
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"11#")


def test_large_frame_in_small_reads() -> None:
    body = dumps("é" * 10_000 + "😀" * 1000)
    stream = encode_frame(body) + encode_frame("1")
    decoder = FrameDecoder()
    frames: list[str] = []
    for i in range(0, len(stream), 4096):
        frames += decoder.feed(stream[i : i + 4096])
        if len(frames) < 2 and i + 4096 < len(stream):
            assert decoder.has_partial_frame
    assert frames == [body, "1"]
    assert decoder.buffered_units == 0


def test_buffered_units_while_waiting() -> None:
    decoder = FrameDecoder()
    decoder.feed(b'10#"ab')
    assert decoder.buffered_units == 3
    decoder.feed("😀".encode())
    assert decoder.buffered_units == 5


def test_length_splitting_a_surrogate_pair_is_an_error() -> None:
    with pytest.raises(FrameError, match="splits"):
        FrameDecoder().feed(b'2#"' + "😀".encode() + b'"')
