"""A griffe extension for the docs site: Sphinx roles in docstrings become links.

The docstrings are read by ``help()`` as much as by the site, so they keep the Sphinx
spelling (:class:`Server`). Markdown would show the role itself; this turns each one into
an optional cross-reference, a link when the site documents the target, code otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):`(~?)([\w.]+)(\(\))?`")


def _target(obj: griffe.Object, name: str) -> str:
    """The full path ``name`` means where ``obj`` is written, or ``name`` itself."""
    head, _, rest = name.partition(".")
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        return name
    return f"{path}.{rest}" if rest else path


def _link(obj: griffe.Object, match: re.Match[str]) -> str:
    short, name, call = match.groups()
    title = (name.rsplit(".", 1)[-1] if short else name) + (call or "")
    return f'<autoref identifier="{_target(obj, name)}" optional><code>{title}</code></autoref>'


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        todo: list[griffe.Object] = [pkg]
        while todo:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = _ROLE.sub(lambda m, o=obj: _link(o, m), obj.docstring.value)
            todo.extend(m for m in obj.members.values() if not m.is_alias)
