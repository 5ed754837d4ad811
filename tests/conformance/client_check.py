"""Run the cross-binding checks with one binding's client against a server.

    python client_check.py --binding gevent --port N

Exit status 0 when every check passes; prints one line per check.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the suite's modules; tests/facade.py

import facade  # noqa: E402
from cross_checks import CHECKS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binding", required=True, choices=facade.BINDINGS)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    binding = facade.make_binding(args.binding)
    failed = 0
    try:
        with binding.connect(args.port, timeout=10) as client:
            for check in CHECKS:
                try:
                    check(client, binding)
                    print(f"PASS {check.__name__}", flush=True)
                except Exception:
                    failed += 1
                    print(f"FAIL {check.__name__}\n{traceback.format_exc()}", flush=True)
    finally:
        binding.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
