"""Many callers sharing one client while some of them give up mid-flight, repeated.

A caller that leaves (a cancelled task, a greenlet interrupted by ``gevent.Timeout``, a
thread's own timeout) must cost only its own call: every other caller gets its own reply,
the reply that still comes for the abandoned request is dropped (never handed to
another caller), and the client goes on as before.
"""

from __future__ import annotations

import random

import pytest
from facade import GAVE_UP

from sansio_tcpmsg import RequestTimeout

ROUNDS = 6
CALLERS = 90


@pytest.mark.timeout(90)
def test_callers_giving_up_mid_flight_cost_only_their_call(client, binding):
    rng = random.Random(13)
    for rnd in range(ROUNDS):
        calls = []
        for i in range(CALLERS):
            value = f"{rnd}-{i}"
            if i % 3 == 0:  # gives up before its reply, possibly before its request is written
                calls.append(("slow", {"sleep": 0.15, "value": value},
                              {"cancel_after": rng.uniform(0.001, 0.08), "timeout": 10}))
            elif i % 3 == 1:  # its reply comes among the abandoned ones
                calls.append(("slow", {"sleep": rng.uniform(0, 0.1), "value": value}, {"timeout": 10}))
            else:
                calls.append(("echo", value, {"timeout": 10}))
        results = client.send_many(calls, timeout=30)
        for i, result in enumerate(results):
            if i % 3 == 0:
                assert result is GAVE_UP or isinstance(result, RequestTimeout), (rnd, i, result)
            else:
                assert result == f"{rnd}-{i}", (rnd, i, result)
    binding.sleep(0.3)  # the last abandoned replies arrive now and are dropped
    fresh = client.send_many([("echo", {"fresh": i}) for i in range(CALLERS)], timeout=30)
    assert fresh == [{"fresh": i} for i in range(CALLERS)]
