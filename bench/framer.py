"""The framer alone: ``sansio_tcpmsg.framing.FrameDecoder`` decoding NestJS traffic.

    python bench/framer.py [--quick] [--json]

Same bytes as ``bench/js/framer.js`` (NestJS's own ``JsonSocket``), built the same way:

- ``small-ascii-100k`` / ``small-nonascii-100k``: 100,000 small request frames in one
  chunk (the non-ASCII one carries accents, CJK and an emoji);
- ``large-ascii-50MB`` / ``large-nonascii-50MB``: one ~50 MB frame fed in 4 KiB chunks
  (the non-ASCII chunks split characters);
- the same at 10k frames and 10 MB, for linearity: time(50 MB) / time(10 MB) should be
  about 5 and time(100k) / time(10k) about 10.

Framing only (cutting frames out of the byte stream, UTF-8 decoding included; no JSON
parsing), best of several runs. ``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import _common  # noqa: F401  (import paths)

from sansio_tcpmsg.framing import FrameDecoder, utf16_length

ASCII_BLOCK = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
NONASCII_BLOCK = "h\u00e9llo w\u00f6rld \u4e2d\u6587\u5b57 \U0001f600 \u2713 \u00ff caf\u00e9 "
SMALL_ASCII = '{"pattern":"echo","data":{"n":1},"id":"0123456789abcdef01234"}'
SMALL_NONASCII = '{"pattern":"echo","data":{"s":"\u00e9\u4e2d\U0001f600 \u00fcn\u00efc\u00f6de \u2713"},"id":"0123456789abcdef01234"}'
CHUNK = 4096


def frame(text: str) -> bytes:
    return f"{utf16_length(text)}#{text}".encode()


def small_input(text: str, count: int) -> list[bytes]:
    return [frame(text) * count]


def large_input(block: str, mbytes: int) -> list[bytes]:
    n = mbytes * 1_000_000 // len(block.encode())
    data = frame('{"s":"' + block * n + '"}')
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def cases(quick: bool) -> dict[str, tuple[list[bytes], int]]:
    big, mid = (10, 2) if quick else (50, 10)
    many, few = (20_000, 2_000) if quick else (100_000, 10_000)
    return {
        f"small-ascii-{many // 1000}k": (small_input(SMALL_ASCII, many), many),
        f"small-ascii-{few // 1000}k": (small_input(SMALL_ASCII, few), few),
        f"small-nonascii-{many // 1000}k": (small_input(SMALL_NONASCII, many), many),
        f"small-nonascii-{few // 1000}k": (small_input(SMALL_NONASCII, few), few),
        f"large-ascii-{big}MB": (large_input(ASCII_BLOCK, big), 1),
        f"large-ascii-{mid}MB": (large_input(ASCII_BLOCK, mid), 1),
        f"large-nonascii-{big}MB": (large_input(NONASCII_BLOCK, big), 1),
        f"large-nonascii-{mid}MB": (large_input(NONASCII_BLOCK, mid), 1),
    }


def decode_once(chunks: list[bytes], expect: int) -> float:
    dec = FrameDecoder()
    feed = dec.feed
    n = 0
    t0 = time.perf_counter()
    for c in chunks:
        n += len(feed(c))
    dt = time.perf_counter() - t0
    if n != expect:
        raise AssertionError(f"decoded {n} frames, expected {expect}")
    return dt


def linearity(results: dict[str, Any], quick: bool) -> dict[str, Any]:
    big, mid = (10, 2) if quick else (50, 10)
    many, few = (20, 2) if quick else (100, 10)
    out = {}
    for kind in ("ascii", "nonascii"):
        out[f"large-{kind} {big}MB/{mid}MB"] = {
            "expected": big / mid,
            "ratio": results[f"large-{kind}-{big}MB"]["seconds"] / results[f"large-{kind}-{mid}MB"]["seconds"],
        }
        out[f"small-{kind} {many}k/{few}k"] = {
            "expected": many / few,
            "ratio": results[f"small-{kind}-{many}k"]["seconds"] / results[f"small-{kind}-{few}k"]["seconds"],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    results: dict[str, Any] = {}
    for name, (chunks, expect) in cases(args.quick).items():
        size = sum(map(len, chunks))
        best = min(decode_once(chunks, expect) for _ in range(runs))
        results[name] = {"bytes": size, "frames": expect, "seconds": best, "mb_s": size / best / 1e6}
    report = {"impl": "sansio_tcpmsg.framing.FrameDecoder", "runs": runs, "cases": results,
              "linearity": linearity(results, args.quick)}
    if args.json:
        print(json.dumps(report))
    else:
        for name, r in results.items():
            print(f"{name:24} {r['bytes']:>12,} B {r['seconds'] * 1e3:9.1f} ms {r['mb_s']:9.1f} MB/s")
        for name, r in report["linearity"].items():
            print(f"{name:28} ratio {r['ratio']:.2f} (linear: {r['expected']:.0f})")


if __name__ == "__main__":
    main()
