"""Every ```python block in README.md and docs/**/*.md runs as written (each in its own interpreter).

A block right after the line ``<!-- no-run -->`` (and a blank line) is a fragment that cannot run alone
and is skipped; the comment is invisible on the site, where the block is an ordinary Python block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TIMEOUT = 60

PAGES = sorted(DOCS.rglob("*.md"))

FRAGMENT = "<!-- no-run -->"
_FENCE = re.compile(r"^(<!-- no-run -->\n\n)?```python([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def code_blocks() -> list[tuple[str, str, str]]:
    blocks = []
    for path in [ROOT / "README.md", *PAGES]:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            info = FRAGMENT if match.group(1) else match.group(2).strip()
            blocks.append((f"{path.relative_to(ROOT)}:{line}", info, match.group(3)))
    return blocks


BLOCKS = code_blocks()


def test_docs_have_code() -> None:
    assert len([b for b in BLOCKS if b[1] != FRAGMENT]) >= 10


def test_few_fragments() -> None:
    fragments = [name for name, info, _ in BLOCKS if info == FRAGMENT]
    assert len(fragments) <= max(3, len(BLOCKS) // 5), fragments


@pytest.mark.parametrize(("name", "info", "code"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_block_runs(name: str, info: str, code: str, tmp_path: Path) -> None:
    if info == FRAGMENT:
        pytest.skip("a fragment marked <!-- no-run -->")
    assert info == "", f"{name}: unknown fence info {info!r} (a fragment: <!-- no-run --> before the fence)"
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "bindings"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, f"{name} failed:\n{code}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_api_pages_cover_every_public_name() -> None:
    """Each ``::: module`` page lists its module's ``__all__`` in ``members:``, or links a core
    re-export to its entry; ``mkdocs build --strict`` (nox -s site) checks that they resolve."""
    import importlib

    import sansio_tcpmsg

    missing = []
    for page in sorted((DOCS / "api").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for module_name, options in re.findall(r"^::: ([\w.]+)\n((?:    .*\n)*)", text, re.MULTILINE):
            listed = re.search(r"members: \[([^]]*)\]", options)
            if listed is None:
                continue  # every public name is rendered
            members = {m.strip() for m in listed.group(1).split(",")}
            for name in importlib.import_module(module_name).__all__:
                core = getattr(sansio_tcpmsg, name, None) is getattr(importlib.import_module(module_name), name)
                if name not in members and not (core and f"][sansio_tcpmsg.{name}]" in text):
                    missing.append(f"{page.name}: {module_name}.{name}")
    assert not missing, missing


def test_links_between_docs_resolve() -> None:
    broken = []
    for path in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(DOCS)} -> {target}")
    assert not broken, broken


def test_every_page_is_in_the_site_nav() -> None:
    """A page missing from mkdocs.yml's nav fails ``nox -s site`` (--strict); say so here too."""
    nav = set(re.findall(r"[-:]\s+([\w/.-]+\.md)\b", (ROOT / "mkdocs.yml").read_text(encoding="utf-8")))
    missing = [str(p.relative_to(DOCS)) for p in PAGES if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"add {missing} to the nav in mkdocs.yml"
