"""What a gateway request's decision record costs on the request path, at 1,000 endpoints:
`record_of` (read from the engine's decision) and `Recorder.add` (a buffered append); and, with
``--write``, how fast the writer thread puts them into PostgreSQL (batches of 200).

Command: `python benchmarks/serving_records.py [--write]` (``--write`` uses the embedded
PostgreSQL of ``PLANE_STATE_DIR``, or ``PLANE_DATABASE_URL``).
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
from reasoning_plane.serving.records import record_of
from serving.records import Recorder

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
url = None
if "--write" in sys.argv:
    from resources.database import database_url

    url = database_url(role="plane")
recorder = Recorder(url or "postgresql://unused", batch_size=200, max_buffered=100_000)
decide_t, record_t, add_t, records = [], [], [], []
for i in range(2000):
    ask = InferenceRequest(
        f"bench-{now.timestamp()}-{i}",
        rng.choice(teams),
        "m",
        400,
        128,
        tuple(rng.sample(ds, 1)),
        slo_ttft_ms=300,
    )
    t0 = time.perf_counter()
    d = place_request(ask, snap, {}, policy)
    t1 = time.perf_counter()
    r = record_of(d, ask, principal="bench")
    t2 = time.perf_counter()
    recorder.add(r)
    t3 = time.perf_counter()
    decide_t.append(t1 - t0)
    record_t.append(t2 - t1)
    add_t.append(t3 - t2)


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {xs[len(xs) // 2] * 1e3:.3f} ms, p99 {xs[len(xs) * 99 // 100] * 1e3:.3f} ms"


print(f"1,000 endpoints: place_request {pct(decide_t)}")
print(f"  record_of {pct(record_t)}; Recorder.add {pct(add_t)}")
if url is not None:
    recorder.start()
    t = time.perf_counter()
    recorder.close(timeout_s=120)
    took = time.perf_counter() - t
    print(
        f"  wrote {recorder.written} records in {recorder.batches} batches: "
        f"{recorder.written / took:,.0f} records/s"
    )
