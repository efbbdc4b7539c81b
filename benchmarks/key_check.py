"""What one API key check costs the gateway, with the schema check per call and once per connection.

`credentials.authenticate` is what a key cache miss of the gateway (`serving.keys`) runs, through
`plane serve`'s one shared connection as ``rp_plane`` (`plane_cli.serve.Database`). It used to
run `data_plane.migrations.ensure` on every call (two catalog queries before the key's own);
now a service connection is checked once (`migrations.checked`). Both arms run here, in one
process, on one connection, against the real embedded PostgreSQL (a fresh one in a temporary
``PLANE_STATE_DIR`` unless one is set): "per call" forgets the connection's check before each
call, which is the old code path exactly; "once per connection" is the code as it is. Blocks of
``--calls`` alternate between the arms ``--rounds`` times; it prints the mean, p50 and p99 of
each arm's calls, in ms, wall and CPU of this process.

    python benchmarks/key_check.py [--calls 500] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per block")
    parser.add_argument("--rounds", type=int, default=4, help="blocks per arm (alternating)")
    args = parser.parse_args()
    if not os.environ.get("PLANE_STATE_DIR") and not os.environ.get("PLANE_DATABASE_URL"):
        os.environ["PLANE_STATE_DIR"] = tempfile.mkdtemp(prefix="key-check-")

    import psycopg

    from benchmarks.machine import machine
    from data_plane import credentials, migrations
    from plane_cli.serve import Database
    from resources.database import database_url

    with psycopg.connect(database_url(), autocommit=True) as admin:
        _, key = credentials.issue(admin, "support-copilot")
    database = Database(database_url(role="plane"))
    assert database.authenticate(key) == "support-copilot"  # connected, checked once

    def forget() -> None:  # the old code path: the schema check on every call
        migrations._checked.clear()

    arms = {"schema check per call (before)": forget, "once per connection (now)": None}
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, before in arms.items():
            for _ in range(args.calls):
                if before is not None:
                    before()
                w, c = time.perf_counter(), time.process_time()
                database.authenticate(key)
                wall[name].append((time.perf_counter() - w) * 1000)
                cpu[name].append((time.process_time() - c) * 1000)
    print(f"machine: {machine()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{args.rounds} x {args.calls} calls per arm, alternating, one rp_plane connection")
    print(f"{'arm':32}  {'wall mean':>9}  {'p50':>6}  {'p99':>6}  {'CPU mean':>8}  {'checks/s':>8}")
    for name in arms:
        w = wall[name]
        print(
            f"{name:32}  {statistics.fmean(w):9.3f}  {pct(w, 0.5):6.3f}  {pct(w, 0.99):6.3f}"
            f"  {statistics.fmean(cpu[name]):8.3f}  {1000 / statistics.fmean(w):8.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
