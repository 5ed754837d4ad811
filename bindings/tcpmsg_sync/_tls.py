"""TLS for the sync client and server, Sans-IO style: an ``ssl.SSLObject`` over two
``ssl.MemoryBIO`` buffers.

OpenSSL forbids using one SSL object from two threads at once, and CPython releases the
GIL inside ``SSL_read``/``SSL_write``: an ``ssl.SSLSocket`` read by one thread while
another writes it loses records. Here the socket moves only ciphertext; encrypting and
decrypting are in-memory calls made under the connection's lock (the same lock as every
core call), so no thread ever blocks inside OpenSSL and no two use it at once. The
handshake runs before the connection is shared, with a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from typing import Any, Protocol

__all__ = ["TlsLayer"]

_READ = 65536


class _Receiver(Protocol):
    """The core connection's input side (client or server)."""

    def receive_data(self, data: bytes, now: float) -> None: ...
    def receive_eof(self) -> None: ...


class TlsLayer:
    """One connection's TLS state: ciphertext in, plaintext to the core; plaintext from
    the core, ciphertext out. Every method but :meth:`handshake` is called under the
    connection's lock."""

    def __init__(self, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=server_hostname)
        self._closing = False
        #: The TLS error that ended the connection (a bad record, the peer's alert), if any.
        self.error: ssl.SSLError | None = None

    def handshake(self, sock: Any, timeout: float | None) -> None:
        """Run the handshake on the plain blocking ``sock`` (before anyone else uses it);
        raises ``ssl.SSLError``, ``TimeoutError`` or ``ConnectionError``. The peer's first
        data may have come with its last handshake bytes: ``receive(conn, b"", ...)``
        hands it over."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._handshake_step(sock, deadline):
                data = sock.recv(_READ)
                if not data:
                    raise ConnectionResetError(
                        "the peer closed the connection during the TLS handshake"
                        " (does it speak TLS?)")
                self._incoming.write(data)
        except TimeoutError:
            raise TimeoutError(f"the TLS handshake took longer than {timeout} s") from None
        finally:
            sock.settimeout(None)

    def _handshake_step(self, sock: Any, deadline: float | None) -> bool:
        """Advance the handshake and send what it wrote; True once it is done."""
        try:
            self._obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        except ssl.SSLError:
            with contextlib.suppress(OSError):  # the alert tells the peer why
                self._send(sock, deadline)
            raise
        self._send(sock, deadline)
        if not done:
            _arm(sock, deadline)
        return done

    def _send(self, sock: Any, deadline: float | None) -> None:
        out = self._outgoing.read()
        if out:
            _arm(sock, deadline)
            sock.sendall(out)

    def encrypt(self, data: bytes, closing: bool = False) -> bytes:
        """``data`` as TLS records, behind any TLS bytes already due (a key update's
        reply); with ``closing``, a close_notify after them (once)."""
        if not self._closing:
            try:
                if data:
                    self._obj.write(data)
                if closing:
                    self._closing = True
                    self._obj.unwrap()
            except ssl.SSLWantReadError:
                pass  # unwrap: the peer's close_notify is not waited for
            except ssl.SSLError as exc:  # the session already failed; the reader reports it
                self.error = self.error or exc
        return self._outgoing.read()

    def receive(self, conn: _Receiver, data: bytes, now: float, log: logging.Logger,
                peer: object) -> None:
        """Decrypt ``data`` into ``conn``; the peer's close_notify is its end of stream,
        a TLS error (logged, kept in :attr:`error`) ends the connection."""
        self._incoming.write(data)
        chunks: list[bytes] = []
        eof = False
        try:
            while chunk := self._obj.read(_READ):
                chunks.append(chunk)
            eof = True  # b"": close_notify received
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            eof = True
        except ssl.SSLError as exc:
            log.warning("TLS error on the connection with %s: %s", peer, exc)
            self.error, eof = exc, True
        if chunks:
            conn.receive_data(b"".join(chunks), now)
        if eof:
            conn.receive_eof()


def _arm(sock: Any, deadline: float | None) -> None:
    """Give ``sock`` what is left until ``deadline`` (``TimeoutError`` once it passed)."""
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise TimeoutError
    sock.settimeout(left)
