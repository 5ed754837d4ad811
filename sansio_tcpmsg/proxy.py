"""The PROXY protocol (HAProxy's ``proxy-protocol.txt``), versions 1 and 2, receiver side.

An L4 balancer (HAProxy ``send-proxy``/``send-proxy-v2``, nginx ``proxy_protocol on``,
Envoy's ``proxy_protocol`` transport socket) writes one header in front of the stream,
saying who the client is. :class:`ProxyHeaderReader` reads it incrementally, like the
framer: any split across reads is fine, and the bytes after the header (the first frame,
or a TLS ClientHello) are handed back untouched. ``needed`` says how many bytes may be
read without reading past the header, for bindings that must leave what follows on the
socket (TLS is handshaken after the header).

``LOCAL`` (v2) and ``UNKNOWN`` (v1) mean "no client behind me": the connection's own
addresses stand, and a balancer's health checks send exactly that.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .errors import ProxyHeaderError

__all__ = ["V1_MAX_LENGTH", "V2_SIGNATURE", "ProxyHeader", "ProxyHeaderReader"]

#: The v2 signature: the first 12 bytes of every v2 header.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest v1 header, CRLF included (``proxy-protocol.txt`` section 2.1).
V1_MAX_LENGTH = 107
_V1_PREFIX = b"PROXY "
_V2_FIXED = 16  # signature, version/command, family/transport, length

# v2 family (high nibble) -> (address family, bytes of the two addresses and ports)
_V2_INET, _V2_INET6, _V2_UNIX = 0x1, 0x2, 0x3
_V2_ADDRESS_LENGTHS = {0x0: 0, _V2_INET: 12, _V2_INET6: 36, _V2_UNIX: 216}


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a PROXY header said.

    ``source`` is the original client's ``(host, port)`` and ``destination`` the address
    it connected to, both None when the header carries none (v2 ``LOCAL``, v1
    ``UNKNOWN``, an unspecified or Unix family): then the connection's own addresses
    stand.
    """

    #: 1 (text) or 2 (binary).
    version: int
    #: ``"PROXY"`` (a relayed client) or ``"LOCAL"`` (the balancer itself, e.g. a health check).
    command: str
    source: tuple[str, int] | None
    destination: tuple[str, int] | None

    def peer(self, default: Any) -> Any:
        """The peer a handler sees: the original client, or ``default`` (the socket's)."""
        return default if self.source is None else self.source


class ProxyHeaderReader:
    """Reads one PROXY header (v1 or v2) from the start of a stream, incrementally.

    ``feed`` returns None until the header is complete, then ``(header, rest)`` where
    ``rest`` is whatever followed the header in the data fed so far. It raises
    :class:`~sansio_tcpmsg.errors.ProxyHeaderError` (naming what arrived) as soon as the
    bytes cannot start a valid header; the reader must not be fed again after that or
    after the header is complete.
    """

    def __init__(self) -> None:
        self._data = b""

    @property
    def received(self) -> bytes:
        """What was fed so far (the header is not complete yet)."""
        return self._data

    @property
    def needed(self) -> int:
        """Bytes that can be read next without reading past the end of the header (>= 1)."""
        data = self._data
        if data.startswith(b"\r"):  # v2: fixed part, then the length it announces
            if len(data) < _V2_FIXED:
                return _V2_FIXED - len(data)
            return _V2_FIXED + int.from_bytes(data[14:16], "big") - len(data)
        # v1 ends with CRLF: after a CR the end may be one byte away, otherwise two.
        return 1 if data.endswith(b"\r") or not data else 2

    def feed(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        """Add bytes; the header and the bytes after it once it is complete."""
        data = self._data = self._data + data
        if not data:
            return None
        if data[0:1] == b"\r":
            return self._feed_v2(data)
        return self._feed_v1(data)

    def _feed_v1(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        start = data[: len(_V1_PREFIX)]
        if not _V1_PREFIX.startswith(start):
            raise ProxyHeaderError(f"no PROXY protocol header: the connection began with {_shown(data)}")
        end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
        if end < 0:
            if len(data) >= V1_MAX_LENGTH:
                raise ProxyHeaderError(f"PROXY v1 header longer than {V1_MAX_LENGTH} bytes: {_shown(data)}")
            if b"\n" in data or not _printable(data.rstrip(b"\r")):
                raise ProxyHeaderError(f"invalid PROXY v1 header {_shown(data)}")
            return None
        return _parse_v1(data[:end]), data[end + 2 :]

    def _feed_v2(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        if not data.startswith(V2_SIGNATURE[: len(data)]):
            raise ProxyHeaderError(f"no PROXY protocol header: the connection began with {_shown(data)}")
        if len(data) < _V2_FIXED:
            return None
        version_command, family_transport = data[12], data[13]
        if version_command >> 4 != 2:
            raise ProxyHeaderError(f"PROXY v2 header with version {version_command >> 4} (not 2)")
        command = version_command & 0xF
        if command > 1:
            raise ProxyHeaderError(f"PROXY v2 header with unknown command {command:#x}")
        family, transport = family_transport >> 4, family_transport & 0xF
        if family not in _V2_ADDRESS_LENGTHS or transport > 2:
            raise ProxyHeaderError(f"PROXY v2 header with unknown family/transport {family_transport:#04x}")
        length = int.from_bytes(data[14:16], "big")
        if len(data) < _V2_FIXED + length:
            return None
        rest = data[_V2_FIXED + length :]
        if command == 0:  # LOCAL: the balancer speaks for itself; addresses are ignored
            return ProxyHeader(2, "LOCAL", None, None), rest
        if length < _V2_ADDRESS_LENGTHS[family]:
            raise ProxyHeaderError(
                f"PROXY v2 header too short for its addresses: {length} bytes, family {family_transport:#04x}"
            )
        if family in (_V2_INET, _V2_INET6) and transport != 1:
            raise ProxyHeaderError(f"PROXY v2 header for a non-stream transport ({family_transport:#04x})")
        body = data[_V2_FIXED:]
        source: tuple[str, int] | None
        destination: tuple[str, int] | None
        if family == _V2_INET:
            source, destination = _v2_addresses(body, 4)
        elif family == _V2_INET6:
            source, destination = _v2_addresses(body, 16)
        else:  # unspecified, or a Unix socket: no (host, port) to give
            source = destination = None
        # What lies between the addresses and the announced length is TLVs: skipped.
        return ProxyHeader(2, "PROXY", source, destination), rest


def _v2_addresses(body: bytes, size: int) -> tuple[tuple[str, int], tuple[str, int]]:
    src = ipaddress.ip_address(body[:size])
    dst = ipaddress.ip_address(body[size : 2 * size])
    ports = body[2 * size : 2 * size + 4]
    return (str(src), int.from_bytes(ports[:2], "big")), (str(dst), int.from_bytes(ports[2:], "big"))


def _parse_v1(line: bytes) -> ProxyHeader:
    """``PROXY TCP4 src dst sport dport`` (or TCP6, or UNKNOWN and anything)."""
    if not _printable(line):
        raise ProxyHeaderError(f"invalid PROXY v1 header {_shown(line)}")
    parts = line.decode("ascii").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(1, "PROXY", None, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"invalid PROXY v1 header {_shown(line)}")
    version = 4 if parts[1] == "TCP4" else 6
    src, dst = _v1_address(parts[2], version, line), _v1_address(parts[3], version, line)
    return ProxyHeader(1, "PROXY", (src, _v1_port(parts[4], line)), (dst, _v1_port(parts[5], line)))


def _v1_address(text: str, version: int, line: bytes) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or address.version != version:
        raise ProxyHeaderError(f"invalid IPv{version} address {text!r} in PROXY v1 header {_shown(line)}")
    return str(address)


def _v1_port(text: str, line: bytes) -> int:
    if not (text.isdigit() and text.isascii() and len(text) <= 5 and int(text) <= 65535):
        raise ProxyHeaderError(f"invalid port {text!r} in PROXY v1 header {_shown(line)}")
    return int(text)


def _printable(data: bytes) -> bool:
    return data.isascii() and all(32 <= byte < 127 for byte in data)


def _shown(data: bytes) -> str:
    """The start of what arrived, for the log line that refuses it."""
    return repr(data[:48]) + ("..." if len(data) > 48 else "")
