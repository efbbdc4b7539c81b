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
from benchmarks.endpoint_world import endpoint_world
from reasoning_plane.serving.endpoints import place_request
from reasoning_plane.serving.records import record_of
from serving.records import Recorder

w = endpoint_world(1000)
rng = random.Random(3)
url = None
if "--write" in sys.argv:
    from resources.database import database_url

    url = database_url(role="plane")
recorder = Recorder(url or "postgresql://unused", batch_size=200, max_buffered=100_000)
decide_t, record_t, add_t, records = [], [], [], []
for i in range(2000):
    ask = w.ask(rng, f"bench-{w.now.timestamp()}-{i}")
    t0 = time.perf_counter()
    d = place_request(ask, w.snapshot, {}, w.policy)
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
