"""TLS with certificates made by the test (``certs`` fixture, ``cryptography``)."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import client_ctx, server_ctx


def test_tls_roundtrip(binding, certs):
    with binding.serve(tls=server_ctx(certs)) as srv:
        with binding.connect(srv.port, tls=client_ctx(certs), server_hostname="localhost", timeout=5) as c:
            assert c.send("echo", {"tls": "é"}) == {"tls": "é"}
            assert list(c.stream("count", {"n": 3})) == [0, 1, 2]
            assert c.send("none", 1) is None


def test_tls_hostname_defaults_to_host(binding, certs):
    """The certificate names "localhost": connecting to host="localhost" checks that name."""
    with binding.serve(tls=server_ctx(certs)) as srv:
        with binding.connect(srv.port, host="localhost", tls=client_ctx(certs), timeout=5) as c:
            assert c.send("echo", 1) == 1


def test_tls_wrong_hostname_refused(binding, certs):
    with binding.serve(tls=server_ctx(certs)) as srv:
        with pytest.raises(OSError):  # ssl.SSLCertVerificationError
            with binding.connect(srv.port, tls=client_ctx(certs), server_hostname="wrong.example", timeout=5) as c:
                c.send("echo", 1)
        # 127.0.0.1 is not in the certificate either
        with pytest.raises(OSError):
            with binding.connect(srv.port, tls=client_ctx(certs), timeout=5) as c:
                c.send("echo", 1)


def test_tls_untrusted_server_refused(binding, certs):
    with binding.serve(tls=server_ctx(certs)) as srv:
        with pytest.raises(OSError):
            with binding.connect(srv.port, tls=client_ctx(certs, ca="otherca"), server_hostname="localhost", timeout=5) as c:
                c.send("echo", 1)


def test_mutual_tls(binding, certs):
    with binding.serve(tls=server_ctx(certs, mtls=True)) as srv:
        with binding.connect(srv.port, tls=client_ctx(certs, cert="client"), server_hostname="localhost", timeout=5) as c:
            assert c.send("echo", "mtls") == "mtls"
        for cert in (None, "intruder"):  # no certificate; one from another CA
            with pytest.raises(OSError):  # refused at connect, or the first call fails
                with binding.connect(srv.port, tls=client_ctx(certs, cert=cert), server_hostname="localhost", timeout=5) as c:
                    c.send("echo", 1)
        with binding.connect(srv.port, tls=client_ctx(certs, cert="client"), server_hostname="localhost", timeout=5) as c:
            assert c.send("echo", "still") == "still"


def test_tls_stalled_handshake_does_not_block_others(binding, certs):
    """A peer that connects and never says hello must not hold up other clients."""
    with binding.serve(tls=server_ctx(certs)) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as stalled:
            time.sleep(0.1)
            t0 = time.monotonic()
            with binding.connect(srv.port, tls=client_ctx(certs), server_hostname="localhost",
                                 timeout=3, connect_timeout=3) as c:
                assert c.send("echo", "through") == "through"
            assert time.monotonic() - t0 < 2
            stalled.sendall(b"not a TLS hello\r\n\r\n")


def test_plain_client_to_tls_server_fails_cleanly(binding, certs):
    with binding.serve(tls=server_ctx(certs)) as srv:
        with pytest.raises((OSError, TimeoutError)):
            with binding.connect(srv.port, timeout=2) as c:
                c.send("echo", 1)
        with binding.connect(srv.port, tls=client_ctx(certs), server_hostname="localhost", timeout=5) as c:
            assert c.send("echo", 2) == 2


def test_tls_reconnect_after_server_restart(binding, certs, server_process):
    proc = server_process(extra=["--tls", str(certs)])
    with binding.connect(proc.port, tls=client_ctx(certs), server_hostname="localhost", timeout=5) as c:
        assert c.send("echo", 1) == 1
        proc.kill()
        binding.wait_until(lambda: c.status == "disconnected", timeout=5)
        proc.start()
        assert c.send("echo", 2) == 2


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mutual-tls"])
def test_tls_one_client_shared_by_many_callers(binding, certs, mtls):
    """32 threads (greenlets on gevent, tasks through the portal on anyio) share one TLS
    client, 100 calls each with distinct payloads (some span several TLS records), 3 times
    over: every reply is the caller's own, none times out (OpenSSL forbids two threads in
    one SSL object; the sync bindings never let them)."""
    callers, calls = 32, 100
    with binding.serve(tls=server_ctx(certs, mtls=mtls)) as srv:
        with binding.connect(srv.port, tls=client_ctx(certs, cert="client" if mtls else None),
                             server_hostname="localhost", timeout=30) as c:
            for rnd in range(3):
                def caller(who: int, rnd: int = rnd) -> int:
                    for i in range(calls):
                        payload = {"round": rnd, "caller": who, "i": i,
                                   "pad": "é" * (20_000 if i % 40 == who % 40 else i * 13)}
                        assert c.send("echo", payload) == payload
                    return who

                running = [binding.spawn(caller, who) for who in range(callers)]
                assert [r.result(120) for r in running] == list(range(callers))
