"""Record golden vectors from real NestJS 10/11/12 (stdlib only).

    python tests/vectors/record.py            # all majors
    python tests/vectors/record.py 12         # one major

Installs the pinned packages through tests/interop/nest.py and runs record.js with
that major's NODE_PATH, writing tests/vectors/nestNN.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "interop"))
import nest  # noqa: E402


def record(major: int) -> Path:
    node_modules = nest.ensure_installed(major)
    out = HERE / f"nest{major}.json"
    env = dict(os.environ, NODE_PATH=str(node_modules), NODE_NO_WARNINGS="1")
    subprocess.run(
        ["node", str(HERE / "record.js"), str(out)], env=env, check=True, timeout=300
    )
    return out


def main(argv: list[str]) -> int:
    majors = [int(a) for a in argv] or list(nest.MAJORS)
    for major in majors:
        print(f"recorded {record(major)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
