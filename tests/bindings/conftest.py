"""Certificates for the binding-specific TLS tests: a CA, and a server and a client
certificate (localhost, 127.0.0.1) each in one PEM file with its key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/certificates.py


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from certificates import CA, LOCALHOST, ExtendedKeyUsageOID, cert_pem, key_pem

    out = tmp_path_factory.mktemp("certs")
    ca = CA("bindings test CA")
    paths = {"ca": str(out / "ca.pem")}
    (out / "ca.pem").write_bytes(cert_pem(ca.cert))
    for name in ("server", "client"):
        cert, key = ca.issue(name, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                             LOCALHOST)
        (out / f"{name}.pem").write_bytes(cert_pem(cert) + key_pem(key))
        paths[name] = str(out / f"{name}.pem")
    return paths
