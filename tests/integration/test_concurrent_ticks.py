"""Ticks placing at the same time, each on its own PostgreSQL connection (as two sensor daemons
would), never jointly exceed free GPUs, a quota or a budget; and the decision log's hash chain
stays one unbroken line."""

import threading
from datetime import timedelta

import psycopg
import pytest

from data_plane.hash_chain import verify_chain
from reasoning_plane import snapshot as snapshot_mod
from reasoning_plane import store
from reasoning_plane.model import PLACED, Budget, TeamQuota, TelemetrySample
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.tick import Pending, run_tick
from tests.unit.plane.factory import CATALOG, NOW, fleet, request

TEAM = "financial-ml"
RUN_USD = 3 * 1.10 * 3600 / 0.45 / 3600  # three A10 GPUs for an hour of reference work


def _race(url: str, *, free: int, quota: int, budget: float, workers: int = 4) -> None:
    """``workers`` ticks at once, each placing four 3-GPU EU runs (only eu-fra-a10 may take
    them: EU personal data)."""
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample("eu-fra-a10", "A10", free, 0.5, NOW - timedelta(seconds=1)),
                TelemetrySample("us-east-a100", "A100-80GB", 32, 0.5, NOW - timedelta(seconds=1)),
            ],
        )
        conn.commit()
    policy = PlacementPolicy()
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def snapshot_of(conn: psycopg.Connection):
        return snapshot_mod.build_snapshot(
            conn,
            fleet=fleet(),
            quotas={TEAM: TeamQuota(TEAM, quota, "test")},
            budgets={TEAM: Budget(TEAM, budget)},
            catalog=CATALOG,
            now=NOW,
        )

    def worker(n: int) -> None:
        try:
            with psycopg.connect(url) as conn:
                pending = [
                    Pending(
                        request(f"w{n}-{i}", gpu_count=3, data_gb=1, latency_slo_ms=None),
                        f"run:w{n}-{i}",
                    )
                    for i in range(4)
                ]
                start.wait()
                run_tick(conn, pending, snapshot_of, policy)
                conn.commit()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def _outcome(url: str) -> tuple[int, int, float]:
    with psycopg.connect(url) as conn:
        usage = store.usage(conn, NOW - timedelta(days=1))[TEAM]
        (placed,) = conn.execute(
            "SELECT count(*) FROM plane.decisions WHERE status = %s", (PLACED,)
        ).fetchone()
        (logged,) = conn.execute("SELECT count(*) FROM plane.decisions").fetchone()
        assert logged == 16  # every request of every tick decided and logged once
        chain = verify_chain(conn, "plane.decisions")
        assert chain.ok and chain.chained == 16 and chain.head_pos == 16, chain.problems
        assert verify_chain(conn, "plane.ledger").ok
    return placed, usage.gpus_held, usage.reserved_usd


@pytest.mark.parametrize(
    ("free", "quota", "budget", "most"),
    [
        (7, 100, 5000.0, 2),  # free GPUs bind: 7 free hold two 3-GPU runs
        (16, 10, 5000.0, 3),  # the quota binds: 10 GPUs hold three
        (16, 100, 2.5 * RUN_USD, 2),  # the budget binds: it pays for two runs and a half
    ],
    ids=["capacity", "quota", "budget"],
)
def test_concurrent_ticks_never_jointly_exceed_capacity_quota_or_budget(
    plane_db: str, free: int, quota: int, budget: float, most: int
) -> None:
    _race(plane_db, free=free, quota=quota, budget=budget)
    placed, gpus_held, reserved_usd = _outcome(plane_db)
    assert gpus_held == 3 * placed
    assert gpus_held <= min(free, quota)
    assert reserved_usd <= budget + 1e-9
    assert placed == most  # ... and nothing was refused that fitted
