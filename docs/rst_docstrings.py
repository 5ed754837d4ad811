"""A griffe extension for the docs site: the reStructuredText in docstrings, as Markdown.

The docstrings are read by ``help()`` as much as by the site, so they keep the Sphinx
spelling: roles (:class:`Server`) and literal blocks announced by ``::``. Markdown would
show both as written; this turns each role into an optional cross-reference (a link when
the site documents the target, code otherwise) and ``text::`` into ``text:`` (the indented
block after it is a code block in Markdown too). Members without a docstring are shown
(attributes such as ``Server.port``, enum members), except the few that only tools read.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):`(~?)([\w.]+)(\(\))?`")
_LITERAL = re.compile(r"(?<=\S)::(?=\n\n)")
_FOR_TOOLS = ("__slots__", "__test__")  # read by Python and pytest, nothing a user calls


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


class RstDocstrings(griffe.Extension):
    """Rewrites every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        todo: list[griffe.Object] = [pkg]
        while todo:  # the objects defined in the package: a tree (aliases are left out)
            obj = todo.pop()
            if obj.docstring is not None:
                text = _ROLE.sub(lambda m, o=obj: _link(o, m), obj.docstring.value)
                obj.docstring.value = _LITERAL.sub(":", text)
            for name in _FOR_TOOLS:
                if name in obj.members:
                    obj.del_member(name)
            todo.extend(m for m in obj.members.values() if not m.is_alias)
