"""A griffe extension for the docs site: the reStructuredText in docstrings, as Markdown.

The docstrings are read by ``help()`` as much as by the site, so they keep the Sphinx
spelling: roles (:class:`Server`) and literal blocks announced by ``::``. Markdown would
show both as written; this turns each role into an optional cross-reference (a link when
the site documents the target, code otherwise) and ``text::`` into ``text:`` (the indented
block after it is a code block in Markdown too), and the first paragraph, wrapped in the
source, on one line (the summary tables show a first line). Members without a docstring are shown
(attributes such as ``Server.port``, enum members), except the few that only tools read.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):`(~?)([\w.]+)(\(\))?`")
_LITERAL = re.compile(r"(?<=\S)::(?=\n\n)")
_FOR_TOOLS = ("__slots__", "__test__")  # read by Python and pytest, nothing a user calls
_NOT_PROSE = re.compile(r"^(\s|[-*|>]|\d+\.)")  # a list, table, quote or indented block


def _one_line_summary(text: str) -> str:
    """The first paragraph on one line: the summary tables show only a docstring's first line."""
    first, sep, rest = text.partition("\n\n")
    lines = first.split("\n")
    if any(_NOT_PROSE.match(line) for line in lines[1:]):
        return text
    return " ".join(lines) + sep + rest


def _link(obj: griffe.Object, match: re.Match[str], ours: set[str]) -> str:
    """A role as a cross-reference to one of our objects, or as code (the standard library's)."""
    short, name, call = match.groups()
    title = (name.rsplit(".", 1)[-1] if short else name) + (call or "")
    head, _, rest = name.partition(".")
    try:
        path = obj.resolve(head) + (f".{rest}" if rest else "")
    except griffe.NameResolutionError:
        path = name
    if path.split(".")[0] not in ours:
        return f"<code>{title}</code>"
    return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'


class RstDocstrings(griffe.Extension):
    """Rewrites every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        ours = set(loader.modules_collection.members)
        todo: list[griffe.Object] = [pkg]
        while todo:  # the objects defined in the package: a tree (aliases, imported names, left out)
            obj = todo.pop()
            if obj.docstring is not None:
                text = _ROLE.sub(functools.partial(_link, obj, ours=ours), obj.docstring.value)
                obj.docstring.value = _one_line_summary(_LITERAL.sub(":", text))
            for name in _FOR_TOOLS:
                if name in obj.members:
                    obj.del_member(name)
            todo.extend(m for m in obj.members.values() if isinstance(m, griffe.Object))
