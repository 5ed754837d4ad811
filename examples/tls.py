"""TLS, and mutual TLS, with throwaway certificates (or your own).

    python examples/tls.py                                  # makes a CA and certs in a temp dir
    python examples/tls.py --ca ca.pem --cert server.pem --key server.key
                          [--client-cert client.pem --client-key client.key]

NestJS's side of the same setup is ``options: { tlsOptions: { key, cert, ca, requestCert:
true } }`` on the server and ``tlsOptions: { ca, key, cert }`` on the client. Certificate
generation uses the ``openssl`` command line tool (the standard library cannot make
certificates).
"""

from __future__ import annotations

import argparse
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import tcpmsg_threads

from sansio_tcpmsg import Router

router = Router()


@router.message("whoami")
def whoami(data, ctx):
    return {"peer": list(ctx.peer) if isinstance(ctx.peer, tuple) else ctx.peer, "said": data}


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_certs(where: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost, a client certificate."""
    ca_key, ca = where / "ca.key", where / "ca.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=throwaway CA",
            "-keyout", str(ca_key), "-out", str(ca))
    out = {"ca": ca}
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        key, csr, cert, extfile = (where / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
        extfile.write_text(ext + "\n")
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
        openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
                "-days", "1", "-extfile", str(extfile), "-out", str(cert))
        out[f"{name}_cert"], out[f"{name}_key"] = cert, key
    return out


def run(ca: Path, server_cert: Path, server_key: Path, client_cert: Path | None, client_key: Path | None) -> None:
    # Server: its certificate; with a client certificate at hand, require one (mutual TLS).
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(server_cert, server_key)
    if client_cert:
        server_tls.load_verify_locations(ca)
        server_tls.verify_mode = ssl.CERT_REQUIRED

    # Client: trust the CA (hostname checked against 127.0.0.1), present its certificate.
    client_tls = ssl.create_default_context(cafile=str(ca))
    if client_cert:
        client_tls.load_cert_chain(client_cert, client_key)

    with tcpmsg_threads.serve(router, "127.0.0.1", 0, tls=server_tls) as server:
        mode = "mutual TLS" if client_cert else "TLS"
        print(f"{mode} server on 127.0.0.1:{server.port}")
        with tcpmsg_threads.connect("127.0.0.1", server.port, tls=client_tls, timeout=10) as client:
            print("reply over", mode + ":", client.send("whoami", "hello"))

        if client_cert:
            # A client without a certificate is turned away.
            anonymous = ssl.create_default_context(cafile=str(ca))
            try:
                with tcpmsg_threads.connect("127.0.0.1", server.port, tls=anonymous, timeout=5) as client:
                    client.send("whoami", "hello")
                print("unexpected: a client without a certificate got in")
            except (OSError, ConnectionError, TimeoutError) as exc:
                print("a client without a certificate is refused:", type(exc).__name__)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ca")
    parser.add_argument("--cert", help="server certificate")
    parser.add_argument("--key", help="server key")
    parser.add_argument("--client-cert")
    parser.add_argument("--client-key")
    args = parser.parse_args(argv)
    if args.cert:
        if not (args.ca and args.key):
            parser.error("--cert needs --ca and --key")
        client_cert = Path(args.client_cert) if args.client_cert else None
        client_key = Path(args.client_key) if args.client_key else None
        run(Path(args.ca), Path(args.cert), Path(args.key), client_cert, client_key)
        return 0
    if shutil.which("openssl") is None:
        print("openssl is not installed: pass --ca/--cert/--key to use your own certificates")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp))
        run(certs["ca"], certs["server_cert"], certs["server_key"], None, None)
        run(certs["ca"], certs["server_cert"], certs["server_key"], certs["client_cert"], certs["client_key"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
