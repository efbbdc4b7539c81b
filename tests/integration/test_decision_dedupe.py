"""Deferred work is decided again every tick; the append-only decision log gets a new record only
when its outcome changes (status, or reason beyond its numbers), not one per tick."""

from datetime import timedelta

import psycopg

from data_plane.hash_chain import verify_chain
from reasoning_plane import store
from reasoning_plane.model import DEFERRED, TeamQuota
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.tick import Pending, run_tick
from tests.unit.plane import factory
from tests.unit.plane.factory import NOW, request

RUN_KEY = "inference/customer_orders_eu@42"


def _tick(conn: psycopg.Connection, n: int, *, quota: int = 16, stale: bool = True):
    """Tick ``n`` (30 s apart): EU personal data, which only eu-fra-a10 may take; its
    telemetry stopped 10 s before the first tick, so it is older by 30 s at each."""
    now = NOW + timedelta(seconds=30 * n)
    age = 10 + 30 * n if stale else 1

    def snapshot_of(_conn):
        return factory.snapshot(
            now=now,
            telemetry={
                k: s.__class__(
                    s.cluster, s.gpu_type, s.free_gpus, s.utilisation, now - timedelta(seconds=age)
                )
                for k, s in factory.telemetry().items()
            },
            quotas={"financial-ml": TeamQuota("financial-ml", quota, "test")},
        )

    result = run_tick(
        conn, [Pending(request("r1", gpu_count=1), RUN_KEY)], snapshot_of, PlacementPolicy()
    )
    conn.commit()
    return result


def _logged(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return conn.execute(
        "SELECT decision_id, status, payload->>'reason' FROM plane.decisions"
        " WHERE run_key = %s ORDER BY decided_at",
        (RUN_KEY,),
    ).fetchall()


def test_unchanged_deferral_is_logged_once_and_a_new_reason_again(plane_db: str) -> None:
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        conn.commit()
        results = [_tick(conn, n) for n in range(5)]
        for r in results:
            ((d, _),) = r.decisions
            assert d.status == DEFERRED and "telemetry" in d.reason
        # the reason's numbers moved (the telemetry's age), its cause did not: one record
        assert results[0].decisions[0][0].reason != results[1].decisions[0][0].reason
        logged = _logged(conn)
        assert len(logged) == 1
        first = results[0].decisions[0][0]
        assert logged[0][0] == first.decision_id and not results[0].repeated
        for r in results[1:]:
            ((d, _),) = r.decisions
            assert r.repeated == {d.decision_id: first.decision_id}
            assert r.logged_id(d) == first.decision_id and r.changed() == []
        # another cause (the team's quota is full; telemetry is fresh): a second record
        changed = _tick(conn, 5, quota=0, stale=False)
        ((d, _),) = changed.decisions
        assert d.status != "placed" and "quota" in d.reason
        assert changed.changed() == list(changed.decisions)
        for n in range(6, 9):
            _tick(conn, n, quota=0, stale=False)
        logged = _logged(conn)
        assert [row[0] for row in logged] == [first.decision_id, d.decision_id]
        chain = verify_chain(conn, "plane.decisions")
        assert chain.ok, chain.problems
