"""How many thread wake-ups per second this machine allows: the ceiling of a threads client.

    python bench/thread_wakeups.py [--threads 64] [--duration 2]

C threads each hand a request (their own queue) to one "reader" thread and block until
it answers; the reader answers everything waiting in one go, as a socket reader answers
the replies of one read. No sockets, no JSON, no protocol: what remains is one wake-up
of a blocked thread per request, through the OS and the GIL. A client that blocks a
thread per call cannot do more requests per second than this. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--duration", type=float, default=2.0)
    args = ap.parse_args()
    requests: queue.SimpleQueue[queue.SimpleQueue[int] | None] = queue.SimpleQueue()
    stopping = False
    counts = [0] * args.threads

    def reader() -> None:
        while True:
            batch = [requests.get()]
            while True:
                try:
                    batch.append(requests.get_nowait())
                except queue.Empty:
                    break
            for waiter in batch:
                if waiter is None:
                    return
                waiter.put(1)

    def caller(i: int) -> None:
        mine: queue.SimpleQueue[int] = queue.SimpleQueue()
        while not stopping:
            requests.put(mine)
            mine.get()
            counts[i] += 1

    threads = [threading.Thread(target=reader)]
    threads += [threading.Thread(target=caller, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    n0, t0, c0 = sum(counts), time.perf_counter(), os.times()
    time.sleep(args.duration)
    n, dt, c1 = sum(counts) - n0, time.perf_counter() - t0, os.times()
    stopping = True
    for t in threads[1:]:
        t.join()
    requests.put(None)
    threads[0].join()
    print(json.dumps({
        "threads": args.threads,
        "wakeups_per_s": round(n / dt),
        "user_us_per_wakeup": round((c1.user - c0.user) / n * 1e6, 1),
        "system_us_per_wakeup": round((c1.system - c0.system) / n * 1e6, 1),
    }))


if __name__ == "__main__":
    main()
