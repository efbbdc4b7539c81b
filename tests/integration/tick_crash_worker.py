"""A placement tick run as a real subprocess, for the crash-safety tests to kill with SIGKILL.

``python -m tests.integration.tick_crash_worker N MODE [LATER_S]``: one tick, at the
factory's ``NOW`` plus ``LATER_S`` seconds, (`tick.run_tick`) placing
N requests (run keys ``crash:0`` ... ``crash:N-1``) on the factory's two-cluster fleet, the way a
sensor does: the tick commits, then the sensor would mark explicit requests and return its run
requests to Dagster. ``MODE``:

* ``run``: do it all, print ``DONE``;
* ``hold``: after the tick has committed, print ``COMMITTED`` and wait (the sensor process dies
  before Dagster has its run requests).

The connection's ``application_name`` is ``tick-crash-worker`` so that the test can watch its
backend in ``pg_stat_activity``.
"""

import sys
import time
from datetime import timedelta

import psycopg

from reasoning_plane.model import Budget, TeamQuota
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.snapshot import build_snapshot
from reasoning_plane.tick import Pending, run_tick
from resources.database import database_url
from tests.unit.plane.factory import CATALOG, NOW, fleet, request

TEAM = "financial-ml"


def pending(n: int) -> list[Pending]:
    return [
        Pending(request(f"crash-{i}", gpu_count=1, data_gb=1, latency_slo_ms=None), f"crash:{i}")
        for i in range(n)
    ]


def main(n: int, mode: str, later_s: float = 0.0) -> None:
    with psycopg.connect(database_url(), application_name="tick-crash-worker") as conn:
        print("TICK", flush=True)
        run_tick(
            conn,
            pending(n),
            lambda c: build_snapshot(
                c,
                fleet=fleet(),
                quotas={TEAM: TeamQuota(TEAM, 10, "test")},
                budgets={TEAM: Budget(TEAM, 10_000.0)},
                catalog=CATALOG,
                now=NOW + timedelta(seconds=later_s),
            ),
            PlacementPolicy(),
        )
        conn.commit()
        if mode == "hold":
            print("COMMITTED", flush=True)
            time.sleep(600)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
