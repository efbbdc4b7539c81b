"""Telemetry cannot come from the future: a sample stamped ahead of the plane's clock is refused
where samples are accepted (the push path) and by the placement rule, and freshness is judged on
the time the plane received a sample as well as the time it says it was observed.

Samples written straight into ``plane.telemetry`` stand for a writer that bypasses the push path
(or a row written before it checked); everything they flow through (the snapshot, the ticks, the
ledger) is real, on the real embedded PostgreSQL.
"""

import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from reasoning_plane import snapshot as snapshot_mod
from reasoning_plane import store
from reasoning_plane.agent import run_agent
from reasoning_plane.gpu_telemetry import GpuInfo, NvmlReport
from reasoning_plane.model import DEFERRED, PLACED, Budget, TeamQuota, TelemetrySample
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.tick import Pending, run_tick
from tests.unit.plane.factory import CATALOG, fleet, request

TEAM = "financial-ml"
POOL = ("eu-fra-a10", "A10")  # the only pool EU personal data may use


def _write(
    conn: psycopg.Connection,
    free: int,
    observed_at: datetime,
    received_at: datetime | None = None,
    pool: tuple[str, str] = POOL,
) -> None:
    """A row as a writer that skips the push path's checks would leave it."""
    conn.execute(
        "INSERT INTO plane.telemetry (cluster, gpu_type, free_gpus, utilisation, observed_at,"
        " received_at) VALUES (%s, %s, %s, 0.5, %s, coalesce(%s, now()))",
        (*pool, free, observed_at, received_at),
    )


def _snapshot(conn: psycopg.Connection):
    return snapshot_mod.build_snapshot(
        conn,
        fleet=fleet(),
        quotas={TEAM: TeamQuota(TEAM, 100, "test")},
        budgets={TEAM: Budget(TEAM, 100_000.0)},
        catalog=CATALOG,
        now=datetime.now(UTC),
    )


def _ticks(url: str, n: int, policy: PlacementPolicy) -> list:
    """``n`` ticks one after another, each placing one 2-GPU run of EU personal data."""
    decisions = []
    for k in range(n):
        with psycopg.connect(url) as conn:
            pending = [
                Pending(request(f"t{k}", gpu_count=2, data_gb=1, latency_slo_ms=None), f"run:t{k}")
            ]
            result = run_tick(conn, pending, _snapshot, policy)
            conn.commit()
        decisions += [d for d, _ in result.decisions]
    return decisions


def _held(url: str) -> int:
    with psycopg.connect(url) as conn:
        return store.held_gpus_by_pool(conn, datetime(2000, 1, 1, tzinfo=UTC)).get(POOL, 0)


def _rejections(decision, rule: str) -> list[str]:
    return [
        r.message
        for e in decision.evaluations
        if e.candidate.label == "eu-fra-a10/A10"
        for r in e.rejections
        if r.rule == rule
    ]


def test_a_sample_from_an_hour_ahead_reserves_nothing(plane_db: str) -> None:
    """The attack: one sample stamped an hour ahead on a pool reporting 2 free GPUs. Trusted, it
    stays the newest sample for an hour and hides every reservation made before its time: four
    ticks reserved 8 GPUs on it."""
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        _write(conn, free=2, observed_at=datetime.now(UTC) + timedelta(hours=1))
        conn.commit()
    decisions = _ticks(plane_db, 4, PlacementPolicy())
    assert _held(plane_db) <= 2
    assert _held(plane_db) == 0
    for decision in decisions:
        assert decision.status == DEFERRED  # it may place once the pool reports honestly
        (message,) = _rejections(decision, "telemetry_future")
        assert "eu-fra-a10/A10" in message
        ahead = int(re.search(r"observed (\d+) s ahead", message).group(1))
        assert 3500 <= ahead <= 3600
        assert "max clock skew 5 s" in message


def test_reservations_after_receipt_count_against_a_sample_stamped_ahead(plane_db: str) -> None:
    """A sample stamped 4 s ahead (within the allowed clock skew) must not hide the
    reservations made after the plane received it: 2 free GPUs hold one 2-GPU run, not four."""
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        _write(conn, free=2, observed_at=datetime.now(UTC) + timedelta(seconds=4))
        conn.commit()
    decisions = _ticks(plane_db, 4, PlacementPolicy(max_telemetry_age_s=3600))
    assert _held(plane_db) <= 2
    assert [d.status for d in decisions].count(PLACED) == 1
    assert all(_rejections(d, "gpu_capacity") for d in decisions if d.status != PLACED)


def test_a_sample_received_long_ago_is_stale_whatever_it_says(plane_db: str) -> None:
    """A sample stamped an hour ahead when it arrived, an hour ago, now looks one second old by
    its own stamp: judged by when the plane received it, it is an hour old."""
    now = datetime.now(UTC)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        _write(
            conn,
            free=16,
            observed_at=now - timedelta(seconds=1),
            received_at=now - timedelta(hours=1),
        )
        conn.commit()
        decision = place(request(), _snapshot(conn), PlacementPolicy())
        assert decision.status != PLACED
        (message,) = _rejections(decision, "telemetry_stale")
        assert "eu-fra-a10/A10" in message and "received 3600 s ago" in message
        (sample,) = store.latest_telemetry(conn).values()
        assert sample.received_at == now - timedelta(hours=1)


def _report(at: datetime) -> NvmlReport:
    return NvmlReport(
        True, "1 GPU(s)", at, "580.1", (GpuInfo(0, "NVIDIA GB10", "GPU-0", 128.0, 30.0, 0.5),)
    )


def test_the_push_path_refuses_samples_from_the_future(plane_db: str) -> None:
    """A node whose clock runs an hour ahead: its samples are refused with a message naming the
    cluster, the pool and the offset; once its clock is right again they are accepted."""
    clocks = iter([timedelta(hours=1), timedelta(hours=1), timedelta(0)])
    logs: list[str] = []
    stats = run_agent(
        lambda: psycopg.connect(plane_db),
        "gpu-node-1",
        interval_s=0,
        iterations=3,
        reader=lambda: _report(datetime.now(UTC) + next(clocks)),
        log=logs.append,
        sleep=lambda _: None,
    )
    with psycopg.connect(plane_db) as conn:
        rows = conn.execute("SELECT observed_at, received_at FROM plane.telemetry").fetchall()
    assert len(rows) == 1 and rows[0][0] <= rows[0][1] + timedelta(seconds=5)
    assert stats.samples == 1 and stats.errors == 0
    refusals = [line for line in logs if "gpu-node-1/NVIDIA-GB10" in line]
    assert len(refusals) == 1, logs  # said once, not every second
    ahead = int(re.search(r"observed (\d+) s ahead", refusals[0]).group(1))
    assert 3500 <= ahead <= 3600

    with psycopg.connect(plane_db) as conn:
        future = TelemetrySample(*POOL, 2, 0.5, datetime.now(UTC) + timedelta(hours=1))
        with pytest.raises(ValueError, match=r"eu-fra-a10/A10 observed \d+ s ahead"):
            store.insert_samples(conn, [future])
        conn.rollback()
        assert POOL not in store.latest_telemetry(conn)
