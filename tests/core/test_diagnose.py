"""What a user reads when things go wrong: foreign peers, silent servers, timeouts,
values JSON cannot carry, connections that cannot be made. No sockets: the exceptions
are built as the standard library and anyio raise them."""

from __future__ import annotations

import builtins
import errno
import math
import socket
import ssl
from typing import Any

import pytest

from sansio_tcpmsg import ClientConnection, Router, ServerConnection
from sansio_tcpmsg.codec import JsonCodec, js_number, locate_unserializable
from sansio_tcpmsg.diagnose import (
    HEAD_SIZE,
    connect_error,
    foreign_protocol_error,
    handshake_failure,
    host_port,
    listen_error,
    recognize,
    show_bytes,
    show_pattern,
)
from sansio_tcpmsg.errors import (
    ConnectionClosedError,
    ForeignProtocolError,
    FrameError,
    RequestTimeout,
    UnserializableError,
)
from sansio_tcpmsg.events import ConnectionClosed, ProtocolErrorOccurred, RequestTimedOut
from sansio_tcpmsg.framing import encode_frame

# Built in from 3.11; anyio uses the backport before.
ExceptionGroup = getattr(builtins, "ExceptionGroup", None) or pytest.importorskip("exceptiongroup").ExceptionGroup

TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x46"
TLS_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))
HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"


def closing_error(conn: Any) -> Any:
    events = conn.events_received()
    assert isinstance(events[0], ProtocolErrorOccurred) and isinstance(events[-1], ConnectionClosed)
    return events[0].error


# -- what arrived ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "protocol"),
    [
        (TLS_ALERT, "TLS alert record"),
        (TLS_CLIENT_HELLO, "TLS handshake record"),
        (b"\x16", "TLS handshake record"),
        (b"\x17\x03\x03\x00\x10", "TLS application-data record"),
        (b"\x14\x03\x03\x00\x01\x01", "TLS change-cipher-spec record"),
        (HTTP_400, "HTTP response"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP request"),
        (b"PRI * HTTP/2.0\r\n", "HTTP request"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY protocol header"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c", "PROXY protocol header"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "SSH banner"),
        (b"\x16\x01", None),  # not a TLS version
        (b"", None),
        (b"hello", None),
    ],
)
def test_recognize(head: bytes, protocol: str | None) -> None:
    assert recognize(head) == protocol


def test_show_bytes_is_escaped_and_bounded() -> None:
    assert show_bytes(b"\x00ab\r\n") == "b'\\x00ab\\r\\n'"
    shown = show_bytes(bytes(200))
    assert shown.endswith(" (and more)") and shown.count("\\x00") == 48


def test_host_port() -> None:
    assert host_port("localhost", 3000) == "localhost:3000"
    assert host_port("::1", 3000) == "[::1]:3000"


def test_plain_client_meets_tls_server_alert() -> None:
    conn = ClientConnection()
    conn.send_request("echo", 1)
    conn.receive_data(TLS_ALERT, 0.0)
    events = conn.events_received()
    error = events[0].error
    assert isinstance(error, ForeignProtocolError) and isinstance(error, FrameError)
    assert error.protocol == "TLS alert record" and error.head == TLS_ALERT
    assert str(error).startswith("the server speaks TLS: its first bytes are a TLS alert record, b'\\x15\\x03")
    assert "tls=ssl.create_default_context()" in str(error)
    message = str(events[-1].exception())
    assert message.startswith("the connection closed before the reply: the server speaks TLS")


def test_client_meets_http_server() -> None:
    conn = ClientConnection()
    conn.send_request("echo", 1)
    conn.receive_data(HTTP_400[:5], 0.0)  # "HTTP/" fails the prefix at once
    error = closing_error(conn)
    assert error.protocol == "HTTP response"
    assert "the server speaks HTTP" in str(error) and "not a NestJS TCP microservice" in str(error)
    assert "b'HTTP/'" in str(error)


def test_first_bytes_split_across_reads_are_kept() -> None:
    conn = ClientConnection()
    conn.receive_data(b"12", 0.0)  # digits: could be a prefix
    conn.receive_data(b"34567890123456789 more", 0.0)
    error = closing_error(conn)
    assert isinstance(error, ForeignProtocolError) and error.protocol is None
    assert "length prefix longer than 16 digits" in str(error)
    assert "its first bytes are b'1234567890123456789 more'" in str(error)


def test_head_is_bounded() -> None:
    conn = ClientConnection()
    conn.receive_data(b"9" * 10, 0.0)  # a prefix in the making
    conn.receive_data(b"x" * 100, 0.0)
    error = closing_error(conn)
    assert len(error.head) == HEAD_SIZE


def test_errors_after_the_first_frame_are_plain_frame_errors() -> None:
    conn = ClientConnection()
    rid = conn.send_request("echo", 1)
    conn.receive_data(encode_frame(f'{{"response":1,"isDisposed":true,"id":"{rid}"}}') + b"HTTP/1.1", 0.0)
    error = conn.events_received()[1].error
    assert type(error) is FrameError and "invalid length prefix" in str(error)
    conn = ClientConnection()
    conn.receive_data(b"11#{not json!}", 0.0)  # speaks the framing, not JSON: not foreign
    assert type(closing_error(conn)) is FrameError


def test_server_meets_tls_client() -> None:
    conn = ServerConnection(Router(), peer=("127.0.0.1", 5))
    conn.receive_data(TLS_CLIENT_HELLO, 0.0)
    error = closing_error(conn)
    assert error.protocol == "TLS handshake record"
    assert str(error).startswith("the client speaks TLS: its first bytes are a TLS handshake record")
    assert "serve with tls=" in str(error)


def test_server_meets_http_client() -> None:
    conn = ServerConnection(Router())
    conn.receive_data(b"GET / HTTP/1.1\r\n", 0.0)
    assert "the client speaks HTTP" in str(closing_error(conn))


def test_proxy_header_and_others() -> None:
    for role in ("server", "client"):
        error = foreign_protocol_error(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", role, "bad prefix")
        assert f"the {role} sent a PROXY protocol header" in str(error)
    error = foreign_protocol_error(b"SSH-2.0-x\r\n", "server", "bad prefix")
    assert str(error).startswith("the server is not a NestJS TCP peer: its first bytes are an SSH banner")


# -- a silent peer --------------------------------------------------------------------


def test_server_closing_without_a_byte_names_tls() -> None:
    conn = ClientConnection()
    rid = conn.send_request("echo", 1)
    assert conn.nothing_received
    conn.receive_eof()
    (closed,) = conn.events_received()
    assert closed == ConnectionClosed(None, (rid,)) and closed.nothing_received
    message = str(closed.exception())
    assert isinstance(closed.exception(), ConnectionClosedError)
    assert "the server closed the connection without sending a byte" in message
    assert "tls=ssl.create_default_context()" in message


def test_server_closing_after_bytes_says_nothing_of_tls() -> None:
    conn = ClientConnection()
    conn.send_request("echo", 1)
    conn.receive_data(b"5", 0.0)
    assert not conn.nothing_received
    conn.receive_eof()
    (closed,) = conn.events_received()
    assert not closed.nothing_received
    assert str(closed.exception()) == "the connection closed before the reply"


def test_local_close_is_not_silent_peer() -> None:
    conn = ClientConnection()
    conn.send_request("echo", 1)
    conn.close()
    assert not conn.events_received()[0].nothing_received


# -- timeouts -------------------------------------------------------------------------


def test_timeout_names_pattern_and_seconds() -> None:
    conn = ClientConnection()
    rid = conn.send_request({"cmd": "sum"}, [1], deadline=2.5, timeout=2.5)
    conn.handle_timer(3.0)
    (event,) = conn.events_received()
    assert event == RequestTimedOut(rid)
    exc = event.exception()
    assert isinstance(exc, RequestTimeout) and isinstance(exc, TimeoutError)
    assert str(exc).startswith(f'no reply to {{"cmd":"sum"}} within 2.5 s (request {rid})')
    assert "has not sent a single byte" in str(exc)  # nothing came back on this connection


def test_stream_timeout_after_some_bytes() -> None:
    conn = ClientConnection()
    first = conn.send_request("echo", 1)
    rid = conn.send_request("count", 3, deadline=1.0, timeout=1, stream=True)
    conn.receive_data(encode_frame(f'{{"isDisposed":true,"id":"{first}"}}'), 0.0)
    conn.handle_timer(1.0)
    event = conn.events_received()[-1]
    assert str(event.exception()) == f"the stream of 'count' did not end within 1 s (request {rid})"


def test_timeout_messages_without_details() -> None:
    assert str(RequestTimedOut("7").exception()) == "no reply before its deadline (request 7)"
    assert str(RequestTimedOut("7", stream=True).exception()) == "the stream did not end before its deadline (request 7)"


def test_show_pattern() -> None:
    assert show_pattern("sum") == "'sum'"
    assert show_pattern(42) == "42"
    assert show_pattern({"b": 1, "a": "x"}) == '{"a":"x","b":1}'


# -- values JSON cannot carry ---------------------------------------------------------


class User:
    pass


def _cycle() -> dict[str, Any]:
    inner: dict[str, Any] = {}
    outer = {"a": inner}
    inner["b"] = outer["a"]
    return outer


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": math.nan}, 'data["x"] is nan, which JSON cannot carry'),
        ([1, 2, {3}], "data[2] is a set, which JSON cannot carry (send a list)"),
        ({"u": User()}, 'data["u"] is a User, which JSON cannot carry'),
        ({"b": [b"x"]}, 'data["b"][0] is bytes, which JSON cannot carry (send a str, e.g. base64)'),
        ({(1, 2): 1}, "data has the key (1, 2), a tuple: JSON object keys are strings"),
        ({math.inf: 1}, "data has the key inf, a float"),
        ({"ok": 1.5, "t": (1, -math.inf)}, 'data["t"][1] is -inf'),
        (_cycle(), 'data["a"]["b"] is data["a"] again: a cycle'),
    ],
)
def test_request_data_names_where_the_value_sits(data: Any, message: str) -> None:
    conn = ClientConnection()
    with pytest.raises(UnserializableError) as info:
        conn.send_request("p", data)
    assert str(info.value).startswith(message)
    assert conn.data_to_send() == b""


def test_metadata_pattern_and_event_data() -> None:
    conn = ClientConnection()
    with pytest.raises(UnserializableError, match=r'^metadata\["trace"\] is a frozenset'):
        conn.send_request("p", 1, metadata={"trace": frozenset()})
    with pytest.raises(UnserializableError, match=r"^data is nan"):
        conn.emit("e", math.nan)


def test_reply_value_is_named_reply() -> None:
    router = Router()
    router.message("p")(lambda data, ctx: data)
    server = ServerConnection(router)
    client = ClientConnection()
    client.send_request("p", 1)
    server.receive_data(client.data_to_send(), 0.0)
    (request,) = server.events_received()
    with pytest.raises(UnserializableError, match=r'^reply\["when"\] is a User'):
        server.respond(request.request_id, {"when": User()})
    with pytest.raises(UnserializableError, match=r"^reply\[0\] is a set"):
        server.send_item(request.request_id, [set()])


def test_too_deep_keeps_the_codec_message() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(UnserializableError, match="maximum recursion depth"):
        ClientConnection().send_request("p", deep)


def test_custom_codec_message_kept_when_nothing_is_found() -> None:
    class Picky:
        def dumps(self, value: Any) -> str:
            raise UnserializableError("picky says no")

        def loads(self, text: str) -> Any:
            raise ValueError(text)

    with pytest.raises(UnserializableError, match="^picky says no$"):
        ClientConnection(codec=Picky()).send_request("p", 1)


def test_codec_names_the_value() -> None:
    with pytest.raises(UnserializableError, match=r'^value\["a"\] is inf'):
        JsonCodec().dumps({"a": math.inf})
    assert locate_unserializable({"fine": [1, "x", None, True, 2.5]}, "data") is None


def test_huge_int_beside_a_float_is_written_not_crashing() -> None:
    assert js_number(10**400) == str(10**400)
    assert JsonCodec().dumps([1.0, 10**400]) == f"[1,{10**400}]"


# -- connection errors ----------------------------------------------------------------


def test_refused_keeps_its_type_and_names_the_address() -> None:
    exc = connect_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "localhost", 3000)
    assert type(exc) is ConnectionRefusedError and exc.errno == errno.ECONNREFUSED
    assert "cannot connect to localhost:3000: connection refused" in str(exc)
    assert "is the server running?" in str(exc)


def test_anyio_all_attempts_failed_becomes_refused() -> None:
    # anyio on trio: OSError("All connection attempts failed") from the attempts
    attempts = [ConnectionRefusedError(errno.ECONNREFUSED, f"Error connecting to {a}") for a in ("::1", "127.0.0.1")]
    for cause in (attempts[0], ExceptionGroup("multiple connection attempts failed", attempts)):
        gathered = OSError("All connection attempts failed")
        gathered.__cause__ = cause
        exc = connect_error(gathered, "localhost", 3000)
        assert type(exc) is ConnectionRefusedError and "localhost:3000: connection refused" in str(exc)


def test_asyncio_multiple_exceptions_becomes_refused() -> None:
    gathered = OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 3000, 0, 0), "
                       "[Errno 111] Connect call failed ('127.0.0.1', 3000)")
    assert type(connect_error(gathered, "localhost", 3000)) is ConnectionRefusedError


def test_attempts_failing_differently_stay_an_oserror_listing_them() -> None:
    gathered = OSError("All connection attempts failed")
    gathered.__cause__ = ExceptionGroup("x", [ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
                                               OSError(errno.ENETUNREACH, "unreachable")])
    exc = connect_error(gathered, "h", 1)
    assert type(exc) is OSError and exc.errno is None
    assert str(exc) == "cannot connect to h:1: All connection attempts failed ([Errno 111] refused; [Errno 101] unreachable)"
    bare = connect_error(OSError(), "h", 1)
    assert str(bare) == "cannot connect to h:1: OSError"


def test_timeout_names_the_seconds() -> None:
    exc = connect_error(TimeoutError("timed out"), "10.0.0.1", 3000, timeout=2.5)
    assert isinstance(exc, TimeoutError) and exc.errno == errno.ETIMEDOUT
    assert "cannot connect to 10.0.0.1:3000: no answer within 2.5 s" in str(exc)
    assert "no answer" in str(connect_error(OSError(errno.ETIMEDOUT, "x"), "h", 1))


def test_unknown_host() -> None:
    exc = connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "nohost.invalid", 3000)
    assert type(exc) is socket.gaierror
    assert "cannot connect to nohost.invalid:3000: unknown host (Name or service not known)" in str(exc)


def test_other_oserror_and_odd_subclasses() -> None:
    exc = connect_error(OSError(errno.ENETUNREACH, "Network is unreachable"), "h", 1)
    assert type(exc) is OSError and str(exc).endswith("cannot connect to h:1: Network is unreachable")

    class Odd(OSError):
        def __init__(self) -> None:
            super().__init__("odd")

    assert type(connect_error(Odd(), "h", 1)) is OSError
    assert type(connect_error(ValueError("strange"), "h", 1)) is OSError


def test_certificate_refused() -> None:
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    cause.verify_code, cause.verify_message = 62, "Hostname mismatch, certificate is not valid for 'x'."
    cause.reason, cause.library = "CERTIFICATE_VERIFY_FAILED", "SSL"
    exc = connect_error(cause, "x", 3000, tls=True)
    assert type(exc) is ssl.SSLCertVerificationError and exc.verify_code == 62
    assert str(exc) == ("TLS handshake with x:3000 failed: the server's certificate was refused: "
                        "Hostname mismatch, certificate is not valid for 'x'.")


def test_tls_client_to_plain_server() -> None:
    for cause in (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), ConnectionResetError()):
        exc = connect_error(cause, "localhost", 3000, tls=True)
        assert type(exc) is type(cause)
        assert "TLS handshake with localhost:3000 failed: the server closed the connection" in str(exc)
        assert "it may not speak TLS" in str(exc)

    class EndOfStream(Exception):  # anyio's, on trio
        pass

    exc = connect_error(EndOfStream(), "localhost", 3000, tls=True)
    assert type(exc) is ConnectionResetError and exc.errno == errno.ECONNRESET


def test_tls_client_to_server_answering_without_tls() -> None:
    cause = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    cause.reason = "WRONG_VERSION_NUMBER"
    exc = connect_error(cause, "h", 1, tls=True)
    assert type(exc) is ssl.SSLError
    assert str(exc) == ("TLS handshake with h:1 failed: WRONG_VERSION_NUMBER: "
                        "the server answered without TLS (connect without tls=...)")
    other = connect_error(ssl.SSLError(1, "something else"), "h", 1, tls=True)
    assert str(other) == "TLS handshake with h:1 failed: something else"


def test_tls_server_names_a_client_without_tls() -> None:
    for reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"):
        cause = ssl.SSLError(1, f"[SSL: {reason}] ...")
        cause.reason = reason
        assert handshake_failure(cause) == (
            f"{reason}: the client does not speak TLS (have it connect with "
            "tls=<a client ssl.SSLContext>, or serve without tls=)")
    for other in (ssl.SSLError(1, "something else"), ConnectionResetError(104, "reset"), TimeoutError()):
        assert handshake_failure(other) == repr(other)


# -- servers that cannot listen -----------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "cls", "says"),
    [
        (OSError(errno.EADDRINUSE, "Address already in use"), OSError, "address already in use: another server"),
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), OSError, "no such address on this machine"),
        (PermissionError(errno.EACCES, "Permission denied"), PermissionError, "permission denied (ports below 1024"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), socket.gaierror, "unknown host"),
        (OSError(errno.EMFILE, "Too many open files"), OSError, "Too many open files"),
        (OSError("odd"), OSError, "odd"),
        (OSError(), OSError, "OSError"),
    ],
)
def test_listen_error(exc: OSError, cls: type[OSError], says: str) -> None:
    error = listen_error(exc, "127.0.0.1", 3000)
    assert type(error) is cls and error.errno == exc.errno
    assert str(error).replace(f"[Errno {exc.errno}] ", "").startswith(f"cannot listen on 127.0.0.1:3000: {says}")
