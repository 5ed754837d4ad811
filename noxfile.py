"""One session per binding, plus the core, typing, lint, interop, docs, the docs site and bench.

`nox` runs every default session; `nox -s conformance` runs the suite on every binding.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["core", "typing", "lint", "bindings", "conformance", "interop", "loadbalancer", "docs",
                        "integrations", "site"]

TEST = ".[all,test]"
BINDINGS = ["threads", "gevent", "anyio-asyncio", "anyio-trio"]


@nox.session
def core(session: nox.Session) -> None:
    """The Sans-IO core, no sockets: 100% branch coverage enforced."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "tests/core", "-p", "no:cacheprovider",
        "--cov=sansio_tcpmsg", "--cov-branch", "--cov-report=term-missing", "--cov-fail-under=100",
        *session.posargs,
    )


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the core and every binding."""
    session.install("-e", ".[all,test,pydantic,otel,prometheus,orjson]", "mypy")
    session.run("mypy", "--strict", "sansio_tcpmsg", "bindings/tcpmsg_anyio", "bindings/tcpmsg_gevent", "bindings/tcpmsg_sockopts",
                "bindings/tcpmsg_threads", "bindings/tcpmsg_sync", "tcpmsg",
                "integrations/tcpmsg_pydantic", "integrations/tcpmsg_otel", "integrations/tcpmsg_prometheus",
                "integrations/tcpmsg_orjson")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on everything."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def bindings(session: nox.Session) -> None:
    """Each binding's own tests: what only that binding has (uvloop, same-hub gevent, ...)."""
    session.install("-e", TEST, "uvloop")
    session.run("pytest", "tests/bindings", "-p", "no:cacheprovider", *session.posargs)


@nox.session
@nox.parametrize("binding", BINDINGS)
def conformance(session: nox.Session, binding: str) -> None:
    """The one conformance suite, on one binding, against itself and the others."""
    session.install("-e", TEST)
    session.run("pytest", "tests/conformance", "-p", "no:cacheprovider", *session.posargs,
                env={"TCPMSG_BINDING": binding})


@nox.session
def interop(session: nox.Session) -> None:
    """Against real NestJS 10, 11 and 12, installed with npm ci into a cache."""
    session.install("-e", TEST)
    session.run("pytest", "tests/interop", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def integrations(session: nox.Session) -> None:
    """tcpmsg_pydantic, tcpmsg_otel, tcpmsg_prometheus, tcpmsg_orjson and the recipes (FastAPI, Flask,
    gunicorn, ...) on every binding and against real NestJS 12."""
    session.install("-e", ".[all,test,test-integrations]")
    session.run("pytest", "tests/integrations", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def loadbalancer(session: nox.Session) -> None:
    """Behind a real HAProxy (Debian package ``haproxy``; .ci/run installs it): three of our
    servers, our client and a NestJS 12 client; backends killed and drained under load."""
    session.install("-e", TEST)
    session.run("pytest", "tests/loadbalancer", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Every docs sample, every example, and the tcpmsg command."""
    session.install("-e", ".[all,test,test-integrations]")  # docs/integrations.md, docs/recipes.md
    session.run("pytest", "tests/docs", "tests/examples", "tests/cli", "-p", "no:cacheprovider",
                *session.posargs)


@nox.session
def site(session: nox.Session) -> None:
    """The docs site (MkDocs, Material, mkdocstrings): --strict fails on any warning, broken
    link or reference; the API pages come from the docstrings. Writes site/."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with NestJS (not a test: writes bench/results/)."""
    session.install("-e", ".[all]", "uvloop", "cryptography")
    session.run("python", "bench/run.py", *session.posargs)
