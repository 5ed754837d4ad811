"""Generate docs/api.md from the docstrings of the public names.

    python docs/gen_api.py            # rewrite docs/api.md
    python docs/gen_api.py --check    # exit 1 if docs/api.md is out of date

Public names are each module's ``__all__``. A binding's re-export of a core name points
to the core's entry instead of repeating it; a second name for the same object (``connect``
for ``Client``) points to the first. A class lists the public methods it inherits from a
base that has no entry of its own (``tcpmsg_threads.Client`` those of ``tcpmsg_sync``'s).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

MODULES = [
    ("sansio_tcpmsg", "The Sans-IO core: connections, events, routing, framing, errors."),
    ("sansio_tcpmsg.balancing", "Many endpoints, pools and failover: the decisions a pooled client carries out."),
    ("sansio_tcpmsg.health", "The built-in health route: what a balancer's check sends and what it gets back."),
    ("sansio_tcpmsg.testing", "In-memory testing: no sockets, no threads, a fake clock."),
    ("sansio_tcpmsg.handlers", "Handler kinds, which binding runs them, what a result means, middleware."),
    ("sansio_tcpmsg.calls", "Client middleware around each send, stream and emit of any client."),
    ("sansio_tcpmsg.diagnose", "What went wrong, in words a user can act on: foreign peers, connection errors."),
    ("tcpmsg_threads", "Blocking client and server for plain threads (standard library only)."),
    ("tcpmsg_gevent", "Client and server for gevent (extra `[gevent]`)."),
    ("tcpmsg_anyio", "Async client and server over anyio, for asyncio and trio (extras `[anyio]`, `[trio]`)."),
    ("tcpmsg.workers", "Several worker processes serving one port (`tcpmsg serve --workers N`)."),
    ("tcpmsg_pydantic", "Typed payloads: pydantic validation and serialization (extra `[pydantic]`)."),
    ("tcpmsg_otel", "OpenTelemetry tracing: trace context in metadata, a span per call (extra `[otel]`)."),
    ("tcpmsg_prometheus", "Prometheus metrics for servers and clients (extra `[prometheus]`)."),
]

CORE_MODULES = ("sansio_tcpmsg", "sansio_tcpmsg.testing", "sansio_tcpmsg.handlers", "sansio_tcpmsg.calls")


def anchor(module: str, name: str) -> str:
    return f"{module}.{name}".replace(".", "-").replace("_", "-").lower()


def doc(obj: Any) -> str:
    text = inspect.getdoc(obj) or ""
    return text.strip()


_QUOTED_ANNOTATION = re.compile(r"(: |-> )'([^']*)'")


def signature(obj: Any, name: str) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return name
    return name + _QUOTED_ANNOTATION.sub(r"\1\2", sig)


def home(obj: Any) -> str | None:
    """The core module documenting ``obj``, if it is a core object."""
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("sansio_tcpmsg.testing"):
        return "sansio_tcpmsg.testing"
    if module.startswith("sansio_tcpmsg.handlers"):
        return "sansio_tcpmsg.handlers"
    if module.startswith("sansio_tcpmsg.calls"):
        return "sansio_tcpmsg.calls"
    if module.startswith("sansio_tcpmsg"):
        return "sansio_tcpmsg"
    return None


def documented() -> set[int]:
    """Ids of the objects that have an entry of their own on the page."""
    ids: set[int] = set()
    for module_name, _ in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        ids.update(id(getattr(module, n)) for n in getattr(module, "__all__", []))
    return ids


def unlisted(base: type) -> bool:
    """True for a class of ours that has no entry of its own (``tcpmsg_sync.Client``)."""
    roots = {m.split(".")[0] for m, _ in MODULES} | {"tcpmsg_sync"}
    return base.__module__.split(".")[0] in roots and id(base) not in documented()


def own_classes(cls: type) -> list[type]:
    """``cls`` and the bases whose members it shows."""
    return [cls] + [base for base in cls.__mro__[1:] if unlisted(base)]


def base_name(base: type) -> str:
    """A base as a user reaches it: qualified by its package when it has no entry here."""
    root = importlib.import_module(base.__module__.split(".")[0])
    if unlisted(base) and getattr(root, base.__name__, None) is base:
        return f"{root.__name__}.{base.__name__}"
    return base.__name__


def class_members(cls: type) -> list[str]:
    lines: list[str] = []
    fields = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    if issubclass(cls, enum.Enum):
        members = ", ".join(f"`{m.name}` = `{m.value!r}`" for m in cls)
        lines.append(f"Members: {members}.\n")
        return lines
    if fields and not issubclass(cls, BaseException):
        lines.append("Fields: " + ", ".join(f"`{f}`" for f in fields) + ".\n")
    members: dict[str, Any] = {}
    for klass in own_classes(cls):
        for attr, value in klass.__dict__.items():
            members.setdefault(attr, value)  # the subclass's own definition wins
    for attr, value in members.items():
        if attr.startswith("_") and attr not in ("__enter__", "__aenter__"):
            continue
        if attr in fields:
            continue
        if isinstance(value, property):
            text = doc(value)
            lines.append(f"- `{attr}` (property)" + (f": {text.splitlines()[0]}" if text else ""))
        elif isinstance(value, (staticmethod, classmethod)) or inspect.isfunction(value):
            func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if not doc(func) and attr.startswith("_"):
                continue
            prefix = "async " if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func) else ""
            sig = signature(func, attr).replace("(self, ", "(").replace("(self)", "()")
            text = doc(func)
            indented = "\n".join(f"  {line}" if line else "" for line in text.splitlines())
            lines.append(f"- `{prefix}{sig}`" + ("\n\n" + indented if text else ""))
    if lines and lines[-1]:
        lines.append("")
    return lines


def entry(module: str, name: str, obj: Any) -> list[str]:
    lines = [f"### `{name}`", ""]
    if inspect.isclass(obj):
        bases = [base_name(b) for b in obj.__bases__ if b is not object]
        lines.append(f"```text\nclass {signature(obj, name)}" + (f"  # bases: {', '.join(bases)}" if bases else "") + "\n```")
        lines.append("")
        if doc(obj):
            lines += [doc(obj), ""]
        lines += class_members(obj)
    elif callable(obj):
        prefix = "async " if inspect.iscoroutinefunction(obj) else ""
        lines += [f"```text\n{prefix}{signature(obj, name)}\n```", ""]
        if doc(obj):
            lines += [doc(obj), ""]
    else:
        lines += [f"Value: `{obj!r}`" if len(repr(obj)) < 120 else f"A `{type(obj).__name__}`.", ""]
    return lines


def generate() -> str:
    out = [
        "# API reference",
        "",
        "Generated by `python docs/gen_api.py` from the docstrings of every public name",
        "(each module's `__all__`). Do not edit by hand: `nox -s docs` fails when it is stale.",
        "",
        "See also: [configuration](configuration.md) (every option and its NestJS name),",
        "[testing](testing.md), [protocol](protocol.md).",
        "",
        "Modules:",
        "",
    ]
    sections: list[str] = []
    for module_name, summary in MODULES:
        out.append(f"- [`{module_name}`](#{module_name.replace('.', '')}): {summary}")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            sections += [f"## {module_name}", "", f"_Not importable when generated: {exc}._", ""]
            continue
        sections += [f"## {module_name}", ""]
        if not doc(module).startswith(summary):
            sections += [summary, ""]
        if doc(module):
            sections += [doc(module), ""]
        names = [n for n in getattr(module, "__all__", []) if not n.startswith("__")]
        first_name: dict[int, str] = {}
        for name in names:
            obj = getattr(module, name)
            where = home(obj)
            if module_name not in CORE_MODULES and where is not None and hasattr(importlib.import_module(where), name):
                continue
            if id(obj) in first_name:
                sections += [f"### `{name}`", "", f"Another name for `{first_name[id(obj)]}` above.", ""]
                continue
            first_name[id(obj)] = name
            sections += entry(module_name, name, obj)
        reexports = [
            n for n in names
            if module_name not in CORE_MODULES and home(getattr(module, n)) is not None
            and hasattr(importlib.import_module(home(getattr(module, n)) or ""), n)
        ]
        if reexports:
            sections += ["Re-exported from the core: " + ", ".join(f"`{n}`" for n in reexports) + ".", ""]
    out.append("")
    return "\n".join(out + sections).rstrip() + "\n"


def main(argv: list[str]) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "bindings")]
    text = generate()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print("docs/api.md is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
