"""A placement tick killed with SIGKILL, for real, then run again: no decision or reservation is
lost or duplicated, and the ledger holds exactly what the launched work needs."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from data_plane.hash_chain import verify_chain
from reasoning_plane import store
from reasoning_plane.model import TelemetrySample
from tests.unit.plane.factory import NOW

REPO = Path(__file__).resolve().parents[2]
N = 12  # requests per tick; the quota (10 GPUs) is what binds


def _telemetry(url: str, later_s: float = 0.0) -> None:
    at = NOW + timedelta(seconds=later_s - 1)
    with psycopg.connect(url, autocommit=True) as conn:
        store.insert_samples(
            conn,
            [
                TelemetrySample("eu-fra-a10", "A10", 16, 0.5, at),
                TelemetrySample("us-east-a100", "A100-80GB", 32, 0.5, at),
            ],
        )


@pytest.fixture
def crash_db(plane_db: str) -> str:
    with psycopg.connect(plane_db, autocommit=True) as conn:
        store.ensure_schema(conn)
    _telemetry(plane_db)
    return plane_db


def _worker(mode: str, later_s: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.tick_crash_worker", str(N), mode, str(later_s)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _worker_backend(conn: psycopg.Connection) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'tick-crash-worker'"
    ).fetchone()
    return (row[0], row[1]) if row else None


def _run_to_completion(later_s: float = 0.0) -> None:
    done = _worker("run", later_s)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0 and "DONE" in out, err


def _ledger(url: str) -> tuple[int, int, int, int]:
    """(decisions, run keys with an open reservation, open reservations, GPUs held)."""
    with psycopg.connect(url) as conn:
        (decisions,) = conn.execute("SELECT count(*) FROM plane.decisions").fetchone()
        keys, open_, gpus = conn.execute(
            """
            SELECT count(DISTINCT d.run_key), count(*), coalesce(sum(r.gpus), 0)
            FROM plane.ledger r JOIN plane.decisions d USING (decision_id)
            WHERE r.kind = 'reserve' AND NOT EXISTS (
                SELECT 1 FROM plane.ledger c
                WHERE c.decision_id = r.decision_id AND c.kind <> 'reserve')
            """
        ).fetchone()
        assert verify_chain(conn, "plane.decisions").ok
        assert verify_chain(conn, "plane.ledger").ok
    return decisions, keys, open_, int(gpus)


def test_a_tick_killed_while_writing_its_decisions_leaves_nothing_and_reruns_whole(
    crash_db: str,
) -> None:
    with psycopg.connect(crash_db, autocommit=True) as conn:
        # Slow the decision log down (test only) so that the kill lands inside the write.
        conn.execute(
            "CREATE FUNCTION plane.slow_insert() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER zz_slow BEFORE INSERT ON plane.decisions"
            " FOR EACH ROW EXECUTE FUNCTION plane.slow_insert()"
        )
        worker = _worker("run")
        _wait_for(
            lambda: (
                (b := _worker_backend(conn)) is not None
                and b[1].startswith("INSERT INTO plane.decisions")
            ),
            "the worker to write its decisions",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        _wait_for(lambda: _worker_backend(conn) is None, "the killed worker's backend to end")
        conn.execute("DROP TRIGGER zz_slow ON plane.decisions")
    assert worker.returncode == -signal.SIGKILL
    assert _ledger(crash_db) == (0, 0, 0, 0)  # the tick was one transaction: nothing of it
    _run_to_completion()
    decisions, keys, open_, gpus = _ledger(crash_db)
    assert decisions == N and keys == open_ == gpus == 10  # quota 10: ten placed, two deferred


def test_a_sensor_killed_after_its_tick_committed_does_not_leak_reservations(
    crash_db: str,
) -> None:
    worker = _worker("hold")
    assert worker.stdout is not None
    _wait_for(lambda: worker.stdout.readline().strip() == "COMMITTED", "the tick to commit")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert _ledger(crash_db) == (N, 10, 10, 10)
    # Dagster never got the run requests, so the same work is due again: the next tick (30 s
    # later) decides it afresh and releases what the dead tick reserved, instead of holding both.
    _telemetry(crash_db, later_s=30)  # the same free GPUs, reported again
    _run_to_completion(later_s=30)
    decisions, keys, open_, gpus = _ledger(crash_db)
    # both ticks' placements stay in the append-only log; the two requests deferred again for
    # the same reason are logged once (a deferral is logged again only when its reason changes)
    assert decisions == N + 10
    assert keys == open_ == gpus == 10  # one open reservation per placed run key, none leaked
    with psycopg.connect(crash_db) as conn:
        (released,) = conn.execute(
            "SELECT count(*) FROM plane.ledger WHERE kind = 'release' AND run_id = 'superseded'"
        ).fetchone()
        held_by = conn.execute(
            "SELECT DISTINCT d.decided_at FROM plane.ledger r JOIN plane.decisions d"
            " USING (decision_id) WHERE r.kind = 'reserve' AND NOT EXISTS (SELECT 1 FROM"
            " plane.ledger c WHERE c.decision_id = r.decision_id AND c.kind <> 'reserve')"
        ).fetchall()
    assert released == 10
    assert held_by == [(NOW + timedelta(seconds=30),)]  # the live tick's, not the dead one's
    # A tick at the very same instant does not supersede that instant's decisions: their
    # reservations stay, and the quota they fill defers the work instead of placing it twice.
    _run_to_completion(later_s=30)
    # all N deferred now, each a new outcome (logged), and still ten reservations
    assert _ledger(crash_db) == (N + 10 + N, 10, 10, 10)
