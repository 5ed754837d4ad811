"""The PROXY protocol reader alone, and a server connection that expects the header."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sansio_tcpmsg import (
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
    RemoteProtocolError,
    Router,
    ServerConnection,
)
from sansio_tcpmsg.events import ConnectionClosed, ProtocolErrorOccurred, RequestReceived
from sansio_tcpmsg.framing import encode_frame
from sansio_tcpmsg.limits import Limits
from sansio_tcpmsg.proxy import V1_MAX_LENGTH, V2_SIGNATURE

FRAME = encode_frame('{"pattern":"who","data":null,"id":"1"}')


def v2(command: int, family: int, body: bytes, tlvs: bytes = b"") -> bytes:
    payload = body + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(payload)) + payload


def v2_inet(src: str, dst: str, sport: int, dport: int, tlvs: bytes = b"") -> bytes:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    family = 0x11 if a.version == 4 else 0x21
    return v2(1, family, a.packed + b.packed + struct.pack("!HH", sport, dport), tlvs)


def parse(data: bytes) -> tuple[ProxyHeader, bytes] | None:
    return ProxyHeaderReader().feed(data)


def read_exactly(stream: bytes) -> tuple[ProxyHeader, int]:
    """Read as a TLS binding does: ``needed`` bytes at a time; return where it stopped."""
    reader, pos = ProxyHeaderReader(), 0
    for _ in range(len(stream) + 1):
        n = reader.needed
        assert n >= 1
        chunk = stream[pos : pos + n]
        pos += len(chunk)
        done = reader.feed(chunk)
        if done is not None:
            header, rest = done
            assert rest == b""  # never read past the header
            return header, pos
    raise AssertionError("header never completed")


# -- version 1 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "source", "destination"),
    [
        (b"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n", ("192.168.0.1", 56324), ("10.0.0.2", 443)),
        (b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", ("2001:db8::1", 1), ("::1", 65535)),
        (b"PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n", ("0.0.0.0", 0), ("255.255.255.255", 0)),
    ],
)
def test_v1_addresses(line: bytes, source: tuple[str, int], destination: tuple[str, int]) -> None:
    assert parse(line + FRAME) == (ProxyHeader(1, "PROXY", source, destination), FRAME)
    assert read_exactly(line + FRAME) == (ProxyHeader(1, "PROXY", source, destination), len(line))


@pytest.mark.parametrize("line", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n", b"PROXY UNKNOWN whatever\r\n"])
def test_v1_unknown_keeps_the_socket_addresses(line: bytes) -> None:
    header, rest = parse(line + b"2#{}") or (None, b"")
    assert header == ProxyHeader(1, "PROXY", None, None) and rest == b"2#{}"
    assert header.peer(("10.1.1.1", 9)) == ("10.1.1.1", 9)


def test_v1_longest_header_fits_and_one_more_byte_does_not() -> None:
    longest = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - 16) + b"\r\n"
    assert len(longest) == V1_MAX_LENGTH
    assert parse(longest) is not None
    too_long = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - 15) + b"\r\n"
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        parse(too_long)
    reader = ProxyHeaderReader()
    for i in range(V1_MAX_LENGTH - 1):
        assert reader.feed(too_long[i : i + 1]) is None
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        reader.feed(b"x")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"5#{}", "began with b'5#{}'"),
        (b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "no PROXY protocol header"),
        (b"PROXYTCP4", "no PROXY protocol header"),
        (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", "invalid PROXY v1 header"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", "invalid PROXY v1 header"),
        (b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", "invalid PROXY v1 header"),
        (b"PROXY TCP4 1.2.3.4  1.2.3.4 1\r\n", "invalid IPv4 address ''"),
        (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "invalid PROXY v1 header"),
        (b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n", "invalid IPv4 address '::1'"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "invalid IPv6 address '1.2.3.4'"),
        (b"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n", "invalid IPv4 address"),
        (b"PROXY TCP4 host 1.2.3.4 1 2\r\n", "invalid IPv4 address 'host'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "invalid port '65536'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 -2\r\n", "invalid port '-2'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 000002\r\n", "invalid port '000002'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 \xd9\xa3\r\n", "invalid PROXY v1 header"),
        (b"PROXY TCP4 1.2.3.4\n", "invalid PROXY v1 header"),
        (b"PROXY TCP4 1.2\r3.4", "invalid PROXY v1 header"),
        (b"PROXY TCP4 1.2.3.4\x00", "invalid PROXY v1 header"),
    ],
)
def test_v1_invalid(data: bytes, match: str) -> None:
    with pytest.raises(ProxyHeaderError, match=match):
        parse(data)


def test_v1_errors_come_as_soon_as_the_bytes_cannot_be_a_header() -> None:
    reader = ProxyHeaderReader()
    assert reader.feed(b"PRO") is None
    assert reader.received == b"PRO"
    with pytest.raises(ProxyHeaderError, match="began with b'PROX-'"):
        reader.feed(b"X-")


# -- version 2 ------------------------------------------------------------------------


def test_v2_ipv4_and_ipv6() -> None:
    assert parse(v2_inet("127.0.0.1", "10.0.0.1", 51000, 3000) + FRAME) == (
        ProxyHeader(2, "PROXY", ("127.0.0.1", 51000), ("10.0.0.1", 3000)), FRAME)
    assert parse(v2_inet("2001:db8::7", "::1", 1, 2)) == (
        ProxyHeader(2, "PROXY", ("2001:db8::7", 1), ("::1", 2)), b"")


def test_v2_tlvs_are_skipped() -> None:
    tlvs = b"\x04\x00\x04abcd" + b"\x20\x00\x05\x07\x00\x00\x00\x00"  # NOOP and SSL TLVs
    header = v2_inet("1.2.3.4", "5.6.7.8", 1, 2, tlvs)
    assert parse(header + FRAME) == (ProxyHeader(2, "PROXY", ("1.2.3.4", 1), ("5.6.7.8", 2)), FRAME)
    assert read_exactly(header + FRAME)[1] == len(header)


def test_v2_local_ignores_whatever_addresses_it_carries() -> None:
    for family, body in [(0x00, b""), (0x11, bytes(12)), (0x21, b"\x01\x02"), (0x31, b"")]:
        header = v2(0, family, body)
        assert parse(header + FRAME) == (ProxyHeader(2, "LOCAL", None, None), FRAME)
        assert ProxyHeader(2, "LOCAL", None, None).peer("socket") == "socket"


def test_v2_unspecified_and_unix_families_keep_the_socket_addresses() -> None:
    assert parse(v2(1, 0x00, b"")) == (ProxyHeader(2, "PROXY", None, None), b"")
    assert parse(v2(1, 0x31, bytes(216))) == (ProxyHeader(2, "PROXY", None, None), b"")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (V2_SIGNATURE[:5] + b"X", "no PROXY protocol header"),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12), "version 1"),
        (V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12), "version 3"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12), "unknown command 0x2"),
        (V2_SIGNATURE + b"\x21\x41\x00\x0c" + bytes(12), "unknown family/transport 0x41"),
        (V2_SIGNATURE + b"\x21\x13\x00\x0c" + bytes(12), "unknown family/transport 0x13"),
        (V2_SIGNATURE + b"\x21\x12\x00\x0c" + bytes(12), "non-stream transport"),
        (V2_SIGNATURE + b"\x21\x10\x00\x0c" + bytes(12), "non-stream transport"),
        (V2_SIGNATURE + b"\x21\x11\x00\x0b" + bytes(11), "too short for its addresses: 11 bytes"),
        (V2_SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12), "too short"),
        (V2_SIGNATURE + b"\x21\x31\x00\x0c" + bytes(12), "too short"),
    ],
)
def test_v2_invalid(data: bytes, match: str) -> None:
    with pytest.raises(ProxyHeaderError, match=match):
        parse(data)


def test_v2_waits_for_the_announced_length() -> None:
    header = v2_inet("1.2.3.4", "5.6.7.8", 1, 2, b"\x04\x00\x100123456789abcdef")
    reader = ProxyHeaderReader()
    assert reader.feed(header[:15]) is None and reader.needed == 1
    assert reader.feed(header[15:-1]) is None and reader.needed == 1
    assert reader.feed(header[-1:] + b"x") == (ProxyHeader(2, "PROXY", ("1.2.3.4", 1), ("5.6.7.8", 2)), b"x")


def test_nothing_fed_is_nothing_parsed() -> None:
    reader = ProxyHeaderReader()
    assert reader.feed(b"") is None and reader.needed == 1


# -- properties -----------------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    kind = draw(st.sampled_from(["v1-4", "v1-6", "v1-unknown", "v2-4", "v2-6", "v2-local", "v2-unspec"]))
    if kind == "v1-unknown":
        return b"PROXY UNKNOWN\r\n", ProxyHeader(1, "PROXY", None, None)
    if kind == "v2-local":
        return v2(0, 0, draw(st.binary(max_size=40))), ProxyHeader(2, "LOCAL", None, None)
    if kind == "v2-unspec":
        return v2(1, 0, draw(st.binary(max_size=40))), ProxyHeader(2, "PROXY", None, None)
    addresses = ipv4 if kind.endswith("4") else ipv6
    src, dst, sport, dport = draw(addresses), draw(addresses), draw(ports), draw(ports)
    expected = ProxyHeader(int(kind[1]), "PROXY", (src, sport), (dst, dport))
    if kind.startswith("v1"):
        proto = "TCP4" if kind.endswith("4") else "TCP6"
        return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode(), expected
    tlvs = draw(st.binary(max_size=60))
    return v2_inet(src, dst, sport, dport, tlvs), expected


@given(headers(), st.binary(max_size=30), st.lists(st.integers(0, 400), max_size=8))
def test_any_split_gives_the_same_header_and_rest(
    case: tuple[bytes, ProxyHeader], after: bytes, cuts: list[int]
) -> None:
    raw, expected = case
    stream = raw + after
    reader, rest, result = ProxyHeaderReader(), b"", None
    start = 0
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        if result is None:
            result = reader.feed(stream[start:cut])
            if result is not None:
                rest = result[1]
        else:
            rest += stream[start:cut]
        start = cut
    assert result is not None and result[0] == expected and rest == after
    assert read_exactly(stream) == (expected, len(raw))


@settings(max_examples=500)
@given(st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=120).map(lambda b: b"PROXY " + b),
    st.binary(max_size=120).map(lambda b: V2_SIGNATURE + b),
), st.lists(st.integers(0, 300), max_size=5))
def test_random_bytes_give_only_proxy_header_errors(data: bytes, cuts: list[int]) -> None:
    reader, start = ProxyHeaderReader(), 0
    try:
        for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
            if reader.feed(data[start:cut]) is not None:
                return
            start = cut
            assert reader.needed >= 1
    except ProxyHeaderError as exc:
        assert str(exc)


# -- in a server connection -----------------------------------------------------------


def who_router() -> Router:
    router = Router()

    @router.message("who")
    def who(data: object, ctx: object) -> object:
        return None

    return router


def server(**kwargs: object) -> ServerConnection:
    return ServerConnection(who_router(), peer=("127.0.0.1", 40000), proxy_protocol=True, **kwargs)  # type: ignore[arg-type]


def test_header_then_first_frame_in_one_read() -> None:
    conn = server()
    assert conn.proxy_bytes_needed == 1
    conn.receive_data(b"PROXY TCP4 10.9.8.7 127.0.0.1 5555 3000\r\n" + FRAME, 0.0)
    [event] = conn.events_received()
    assert isinstance(event, RequestReceived) and event.context.peer == ("10.9.8.7", 5555)
    assert conn.peer == ("10.9.8.7", 5555) and conn.proxy_bytes_needed == 0
    assert conn.proxy_header is not None and conn.proxy_header.destination == ("127.0.0.1", 3000)


def test_header_byte_by_byte_then_frames() -> None:
    conn = server()
    stream = v2_inet("::1", "::1", 6000, 3000) + FRAME
    events = []
    for i in range(len(stream)):
        conn.receive_data(stream[i : i + 1], float(i))
        events += conn.events_received()
    [event] = events
    assert isinstance(event, RequestReceived) and event.context.peer == ("::1", 6000)


def test_a_header_alone_then_frames_in_later_reads() -> None:
    conn = server()
    conn.receive_data(v2(0, 0, b""), 0.0)
    assert conn.events_received() == [] and conn.get_timer() is None
    assert conn.peer == ("127.0.0.1", 40000)  # LOCAL: the socket's own address stands
    conn.receive_data(FRAME, 0.0)
    [event] = conn.events_received()
    assert event.context.peer == ("127.0.0.1", 40000)


def test_a_connection_without_the_header_is_refused_naming_what_arrived() -> None:
    conn = server()
    conn.receive_data(FRAME, 0.0)
    error, closed = conn.events_received()
    assert isinstance(error, ProtocolErrorOccurred) and isinstance(error.error, ProxyHeaderError)
    assert isinstance(error.error, RemoteProtocolError)
    assert "began with b'38#{\"pattern\"" in str(error.error)
    assert isinstance(closed, ConnectionClosed) and conn.closed
    assert conn.proxy_bytes_needed == 0
    conn.receive_data(b"more", 1.0)
    assert conn.events_received() == []


def test_a_half_header_expires_like_a_half_frame() -> None:
    conn = server(limits=Limits(incomplete_frame_timeout=5.0))
    conn.receive_data(b"PROXY TCP4 ", 1.0)
    assert conn.get_timer() == 6.0
    conn.handle_timer(6.0)
    assert conn.closed
    no_timeout = server(limits=Limits(incomplete_frame_timeout=0))
    no_timeout.receive_data(b"PROXY", 1.0)
    assert no_timeout.get_timer() is None


def test_eof_in_the_middle_of_a_header_is_an_error_and_before_it_is_not() -> None:
    conn = server()
    conn.receive_data(b"PROXY TCP4 1.2", 0.0)
    conn.receive_eof()
    error, closed = conn.events_received()
    assert isinstance(error, ProtocolErrorOccurred) and "b'PROXY TCP4 1.2'" in str(error.error)
    quiet = server()
    quiet.receive_eof()
    [closed] = quiet.events_received()
    assert isinstance(closed, ConnectionClosed) and closed.error is None
    quiet.receive_eof()  # a second end changes nothing
    assert quiet.events_received() == []


def test_without_the_option_a_header_is_just_a_bad_frame() -> None:
    conn = ServerConnection(who_router())
    assert conn.proxy_bytes_needed == 0
    conn.receive_data(b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\n", 0.0)
    assert conn.closed


def test_reads_of_needed_bytes_leave_the_tls_hello_on_the_socket() -> None:
    """What a TLS binding does: feed raw reads of ``proxy_bytes_needed`` until it is 0."""
    hello = b"\x16\x03\x01\x02\x00\x01"
    for header in (b"PROXY TCP6 ::2 ::1 7 8\r\n", v2_inet("1.1.1.1", "2.2.2.2", 3, 4, b"\x04\x00\x01z")):
        conn, stream, pos = server(), header + hello, 0
        while conn.proxy_bytes_needed:
            n = conn.proxy_bytes_needed
            conn.receive_data(stream[pos : pos + n], 0.0)
            pos += n
        assert stream[pos:] == hello and conn.peer[1] in (7, 3)


@settings(max_examples=200)
@given(headers(), st.lists(st.integers(0, 400), max_size=8))
def test_a_server_connection_gives_the_same_requests_and_peer_for_any_split(
    case: tuple[bytes, ProxyHeader], cuts: list[int]
) -> None:
    raw, expected = case
    stream = raw + FRAME + FRAME
    conn, start, events = server(), 0, []
    for cut in sorted(set(c % (len(stream) + 1) for c in cuts)) + [len(stream)]:
        conn.receive_data(stream[start:cut], 0.0)
        events += conn.events_received()
        start = cut
    assert [type(e) for e in events] == [RequestReceived, RequestReceived]
    assert conn.proxy_header == expected
    assert {e.context.peer for e in events} == {expected.peer(("127.0.0.1", 40000))}
