"""Routing decision time at 1,000 endpoints (one per cluster), requests in flight taking slots.

Command: `python benchmarks/routing.py` (issue 15 target: p99 <= 0.5 ms at 1,000 endpoints).
"""

import random
import sys
import time

sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks")
from datetime import UTC, datetime

from benchmarks.decision_speed import build_world
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import (
    Endpoint,
    EndpointSample,
    InferenceRequest,
    place_request,
    serving_policy,
    serving_snapshot,
)

w = build_world(1000)
now = datetime.now(UTC)
snap0 = w.snapshot(now, seed=1)
eps = [
    Endpoint(f"e{i}", c.name, c.pools[0].gpu_type, "vllm", "http://x", frozenset({"m"}), slots=8)
    for i, c in enumerate(snap0.fleet.clusters)
]
samples = {
    e.endpoint_id: EndpointSample(e.endpoint_id, now, 0, 0, 40.0, 50.0, frozenset({"m"}))
    for e in eps
}
teams = list(snap0.budgets)
snap = serving_snapshot(
    snap0.fleet, eps, samples, "m", budgets=snap0.budgets, usage={}, catalog=snap0.catalog, now=now
)
policy = serving_policy(PlacementPolicy())
rng = random.Random(3)
ds = list(snap0.catalog)
times = []
for i in range(2000):
    ask = InferenceRequest(
        f"q{i}", rng.choice(teams), "m", 400, 128, tuple(rng.sample(ds, 1)), slo_ttft_ms=300
    )
    inflight = {(e.cluster, e.endpoint_id): rng.randint(0, 8) for e in rng.sample(eps, 20)}
    t = time.perf_counter()
    d = place_request(ask, snap, inflight, policy)
    times.append(time.perf_counter() - t)
times.sort()
p50, p99 = times[1000] * 1e3, times[1980] * 1e3
print(f"1,000 endpoints: p50 {p50:.3f} ms, p99 {p99:.3f} ms, last {d.status}")
