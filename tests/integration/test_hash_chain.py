"""The append-only logs are tamper-evident: a hash chain kept by PostgreSQL, checked by
`plane verify-log`, on the real embedded PostgreSQL. Tampering is done as an attacker with
superuser rights would: every trigger switched off for the session, rows edited or deleted."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from data_plane.hash_chain import verify_chain
from reasoning_plane import store
from reasoning_plane.batch import place_batch
from reasoning_plane.model import PLACED
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import request, snapshot

PLANE = str(Path(sys.executable).parent / "plane")


@pytest.fixture
def logged(plane_db: str) -> str:
    """A plane schema holding one tick's decisions and reservations."""
    snap = snapshot()
    decisions = place_batch(
        [request(f"r{i}", gpu_count=1 + i % 3) for i in range(8)], snap, PlacementPolicy()
    )
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        with conn.transaction():
            store.record_decisions(conn, [(d, f"run:{d.decision_id}") for d in decisions], snap)
            store.reserve_many(conn, [d for d in decisions if d.status == PLACED])
    return plane_db


def _tamper(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # A superuser switches off every trigger (append-only, foreign keys) for the session.
        conn.execute("SET session_replication_role = replica")
        conn.execute(statement)


def _verify(url: str, **kw):
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone TO 'Asia/Tokyo'")  # the session's settings do not matter
        conn.execute("SET extra_float_digits TO 0")
        return verify_chain(conn, "plane.decisions", **kw)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PLANE, "verify-log", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )


def test_an_untouched_log_verifies_and_names_its_head(logged: str) -> None:
    report = _verify(logged)
    assert report.ok and report.chained == 8 and report.unchained == 0
    assert report.head_pos == 8 and len(report.head_hash) == 64
    with psycopg.connect(logged) as conn:
        ledger = verify_chain(conn, "plane.ledger")
        assert ledger.ok and ledger.chained >= 1
        assert verify_chain(conn, "plane.snapshots").chained == 1
    out = _cli("--log", "decisions", "--log", "ledger")
    assert out.returncode == 0, out.stderr
    assert f"8:{report.head_hash}" in out.stdout and "TAMPERED" not in out.stdout


def test_an_edited_row_is_named(logged: str) -> None:
    _tamper(
        logged,
        "UPDATE plane.decisions SET cluster = 'us-east-a100', gpu_type = 'A100-80GB'"
        " WHERE chain_pos = 3",
    )
    report = _verify(logged)
    assert report.problems == ["plane.decisions: row 3 was changed after it was written"]
    out = _cli("--log", "decisions")
    assert out.returncode == 6
    assert "TAMPERED" in out.stdout and "row 3 was changed" in out.stderr


def test_a_deleted_row_breaks_the_chain(logged: str) -> None:
    _tamper(logged, "DELETE FROM plane.decisions WHERE chain_pos = 5")
    problems = _verify(logged).problems
    assert "plane.decisions: positions 5..5 are missing (rows deleted)" in problems
    assert any("row 6 does not follow row 5" in p for p in problems)


def test_rows_cut_from_the_end_are_caught_against_a_recorded_head(logged: str) -> None:
    head = _verify(logged).head
    _tamper(logged, "DELETE FROM plane.decisions WHERE chain_pos >= 7")
    assert _verify(logged).ok  # the shorter chain is consistent in itself ...
    report = _verify(logged, expect_head=head)  # ... but not with the head recorded earlier
    assert not report.ok and "past the end of the chain" in report.problems[0]
    out = _cli("--log", "decisions", "--expect-head", f"decisions={head}")
    assert out.returncode == 6


def test_a_bad_expected_head_is_refused(logged: str) -> None:
    out = _cli("--expect-head", "decisions=seven")
    assert out.returncode == 2 and "POS:SHA256HEX" in out.stderr
