"""Routing decision time at 1,000 endpoints (one per cluster), requests in flight taking slots.

Command: `python benchmarks/routing.py` (issue 15 target: p99 <= 0.5 ms at 1,000 endpoints).
"""

import random
import sys
import time

sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
from benchmarks.endpoint_world import endpoint_world
from reasoning_plane.serving.endpoints import place_request

w = endpoint_world(1000)
rng = random.Random(3)
times = []
for i in range(2000):
    ask = w.ask(rng, f"q{i}")
    inflight = {(e.cluster, e.endpoint_id): rng.randint(0, 8) for e in rng.sample(w.endpoints, 20)}
    t = time.perf_counter()
    d = place_request(ask, w.snapshot, inflight, w.policy)
    times.append(time.perf_counter() - t)
times.sort()
p50, p99 = times[1000] * 1e3, times[1980] * 1e3
print(f"1,000 endpoints: p50 {p50:.3f} ms, p99 {p99:.3f} ms, last {d.status}")
