"""Deferred work re-decided every tick: what a tick costs and appends to the decision log when an
unchanged deferral is logged once (this code) against logged at every tick (before issue 16),
side by side in one run on the embedded PostgreSQL.

    python benchmarks/tick_dedupe.py [--requests 1000] [--ticks 5]

Every request is GPU work on EU personal data and no pool has telemetry, so every tick defers
all of them for the same reason (``telemetry_missing``). "before" is this code with the
outcome comparison switched off (`reasoning_plane.tick._repeats` returning nothing), which is
what the tick did before: log every decision again.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import psycopg

from reasoning_plane import store, tick
from reasoning_plane.policy import PlacementPolicy
from resources.database import database_url
from tests.unit.plane import factory


def run(n: int, ticks: int, dedupe: bool) -> dict:
    url = database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")
    pending = [
        tick.Pending(factory.request(f"r{i}", data_gb=1, latency_slo_ms=None), f"bench:r{i}")
        for i in range(n)
    ]
    real = tick._repeats
    if not dedupe:
        tick._repeats = lambda conn, out: {}
    seconds = []
    try:
        with psycopg.connect(url) as conn:
            store.ensure_schema(conn)
            conn.commit()
            for k in range(ticks):
                now = datetime.now(UTC) + timedelta(seconds=30 * k)
                t0 = time.perf_counter()
                tick.run_tick(
                    conn,
                    pending,
                    lambda c, now=now: factory.snapshot(now=now, telemetry={}),
                    PlacementPolicy(),
                )
                conn.commit()
                seconds.append(time.perf_counter() - t0)
            (rows,) = conn.execute("SELECT count(*) FROM plane.decisions").fetchone()
            (size,) = conn.execute("SELECT pg_total_relation_size('plane.decisions')").fetchone()
    finally:
        tick._repeats = real
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")
    return {"seconds": seconds, "rows": rows, "bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args()
    results = {
        "before (every tick logged)": run(args.requests, args.ticks, dedupe=False),
        "now (logged once per outcome)": run(args.requests, args.ticks, dedupe=True),
    }
    print(f"{args.requests} deferred requests, {args.ticks} ticks")
    print("| | first tick s | later ticks s (mean) | decision rows | plane.decisions size |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        later = r["seconds"][1:]
        mean = sum(later) / len(later) if later else float("nan")
        print(
            f"| {name} | {r['seconds'][0]:.2f} | {mean:.2f} | {r['rows']} "
            f"| {r['bytes'] / 1e6:.1f} MB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
