"""A MkDocs hook: the line ``<!-- tcpmsg --help -->`` in a page becomes the ``--help`` of
the ``tcpmsg`` command and of each subcommand, taken from its parser, so the page cannot
fall behind the command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- tcpmsg --help -->"
WIDTH = "76"  # argparse wraps help to $COLUMNS


def _help_text() -> str:
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tcpmsg.cli import build_parser

    parser = build_parser()
    sections = [("tcpmsg", parser)]
    for action in parser._actions:  # argparse has no public way to list the subcommands
        if isinstance(action, argparse._SubParsersAction):
            sections += [(f"tcpmsg {name}", sub) for name, sub in action.choices.items()]
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return "\n\n".join(f"### `{title}`\n\n```text\n{p.format_help().rstrip()}\n```" for title, p in sections)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Fills in the marker, on the pages that have it."""
    return markdown.replace(MARKER, _help_text()) if MARKER in markdown else markdown
