"""Shared fixtures of the NestJS interop suite.

- Every test gets a timeout (60 s unless it sets its own ``@pytest.mark.timeout``).
- Without node/npm: skip with the reason, unless ``CI=true``, where it is a failure.
  A failed ``npm ci`` is a failure under ``CI=true`` and a skip otherwise.
- ``binding``: a binding's facade (``tests/facade.py``, shared with the conformance
  suite) serving the mirror router; a binding that cannot run here is skipped (failed
  under ``CI=true``). With ``INTEROP_REF_BINDING=1`` also ``ref`` (``refbinding.py``).
- ``certs``: a CA, a server certificate (localhost, 127.0.0.1) and a client
  certificate, made with ``cryptography`` for the session.
"""

from __future__ import annotations

import os
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import facade  # noqa: E402
import needs  # noqa: E402
import nest  # noqa: E402
from mirror import build_router  # noqa: E402

DEFAULT_TIMEOUT = 60


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


@pytest.fixture(scope="session")
def node_ready() -> None:
    """Node/npm present and every pinned NestJS major installed (npm ci into the cache)."""
    needs.need_nest(nest.MAJORS)


BINDINGS = ["threads", "gevent", "anyio-asyncio", "anyio-trio"]
if os.environ.get("INTEROP_REF_BINDING") == "1":
    BINDINGS = ["ref", *BINDINGS]

_bindings = needs.Bindings()


def mirror_router(binding: facade.Binding) -> Any:
    """The mirror of js/server.js: ``async def`` handlers on anyio, plain ones elsewhere."""
    if binding.name.startswith("anyio"):
        return build_router("async")
    if binding.name == "gevent":
        import gevent

        return build_router("sync", gevent.sleep)
    return build_router("sync", time.sleep)


@pytest.fixture(scope="session", autouse=True)
def _shutdown_bindings() -> Iterator[None]:
    yield
    _bindings.shutdown()


@pytest.fixture(scope="session", params=BINDINGS)
def binding(request: pytest.FixtureRequest) -> facade.Binding:
    name = request.param
    if name == "ref":
        import refbinding

        return _bindings.get(name, make=lambda: facade.Binding("ref", refbinding, router=mirror_router))
    return _bindings.get(name, router=mirror_router)


# ---------------------------------------------------------------------- certificates


@dataclass
class Certs:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, mutual: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if mutual:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca)
        return ctx

    def client_context(self, with_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx

    # what nest.NestServer / nest.NestClient take
    def nest_server_tls(self, mutual: bool = False) -> dict[str, Path]:
        d = {"cert": self.server_cert, "key": self.server_key}
        if mutual:
            d["ca"] = self.ca
        return d

    def nest_client_tls(self, with_cert: bool = False) -> dict[str, Path]:
        d = {"ca": self.ca}
        if with_cert:
            d.update(cert=self.client_cert, key=self.client_key)
        return d


def _make_certs(dest: Path) -> Certs:
    from certificates import CA, LOCALHOST, ExtendedKeyUsageOID, cert_pem, key_pem

    ca = CA("sansio-tcpmsg test CA")
    (dest / "ca.pem").write_bytes(cert_pem(ca.cert))

    def leaf(cn: str, usage: Any, sans: Any) -> tuple[Path, Path]:
        cert, key = ca.issue(cn, [usage], sans)
        cp, kp = dest / f"{cn}.pem", dest / f"{cn}.key"
        cp.write_bytes(cert_pem(cert))
        kp.write_bytes(key_pem(key))
        return cp, kp

    sc, sk = leaf("server", ExtendedKeyUsageOID.SERVER_AUTH, LOCALHOST)
    cc, ck = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    return Certs(dest, dest / "ca.pem", sc, sk, cc, ck)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return _make_certs(tmp_path_factory.mktemp("certs"))
