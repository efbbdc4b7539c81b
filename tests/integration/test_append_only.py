"""Append-only means append-only (issue 13, item 2), on the real embedded PostgreSQL:

* TRUNCATE of a chained log is refused (before: `TRUNCATE plane.ledger` worked and
  `verify-log --log ledger` then said "0 rows ok");
* the chain heads are anchored outside PostgreSQL after each tick, and `plane verify-log` checks
  against the last anchor by default, so a cut tail is caught without `--expect-head`;
* the governance catalog's history is chained, and a current entry edited behind the history's
  back (`UPDATE governance.catalog` to PUBLIC) is caught by `verify-log --log catalog`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from data_plane import catalog_store
from data_plane.catalog import tag_dataset
from data_plane.policy import load_policy
from reasoning_plane import store
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.tick import Pending, run_tick
from tests.unit.plane.factory import request, snapshot

REPO = Path(__file__).resolve().parents[2]
PLANE = str(Path(sys.executable).parent / "plane")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PLANE, "verify-log", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def ticked(plane_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One tick's decisions and reservations, written by the tick itself; anchors in tmp."""
    anchors = tmp_path / "anchors"
    monkeypatch.setenv("PLANE_ANCHOR_DIR", str(anchors))
    snap = snapshot()
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        run_tick(
            conn,
            [Pending(request(f"r{i}", gpu_count=1 + i % 3), f"k{i}") for i in range(6)],
            lambda c: snap,
            PlacementPolicy(),
        )
        conn.commit()
    return anchors


@pytest.mark.parametrize("table", ["plane.decisions", "plane.ledger", "plane.snapshots"])
def test_truncate_of_a_chained_log_is_refused(ticked: Path, plane_db: str, table: str) -> None:
    with psycopg.connect(plane_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only: TRUNCATE refused"):
            conn.execute(f"TRUNCATE {table} CASCADE")
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0


def test_a_decision_claim_cannot_be_truncated_either(plane_db: str) -> None:
    with psycopg.connect(plane_db, autocommit=True) as conn:
        store.ensure_schema(conn)
        with pytest.raises(psycopg.errors.RaiseException, match="TRUNCATE refused"):
            conn.execute("TRUNCATE plane.decision_claims")


def test_each_tick_anchors_the_heads_and_verify_log_checks_them(
    ticked: Path, plane_db: str
) -> None:
    latest = json.loads((ticked / "latest.json").read_text())
    with psycopg.connect(plane_db) as conn:
        pos, head = conn.execute(
            "SELECT chain_pos, row_hash FROM plane.ledger ORDER BY chain_pos DESC LIMIT 1"
        ).fetchone()
    assert latest["heads"]["plane.ledger"] == f"{pos}:{head}"
    env = {"PLANE_ANCHOR_DIR": str(ticked)}
    ok = _cli(env=env)
    assert ok.returncode == 0, ok.stderr
    assert "anchored" in ok.stdout

    # A superuser cuts the ledger's tail (triggers off): the chain itself still links up, but
    # the anchor written after the tick says it was longer.
    with psycopg.connect(plane_db, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM plane.ledger WHERE chain_pos = %s", (pos,))
    cut = _cli("--log", "ledger", env=env)
    assert cut.returncode == 6
    assert "rows were removed from its end" in cut.stderr


def test_a_catalog_entry_changed_behind_its_history_is_caught(
    plane_db: str, fresh_schema: None, pg: psycopg.Connection
) -> None:
    policy = load_policy(REPO / "config" / "governance.yaml")
    entry = tag_dataset(
        dataset_id="support_tickets",
        storage_endpoints=["s3://eu-west-1/support-tickets"],
        source_system="ZENDESK",
        owner_team="customer-support",
        declared_classification="PII",
        declared_retention="7_years",
        pii_columns={"body": ["email"]},
        last_updated=datetime(2026, 12, 1, tzinfo=UTC),
        policy=policy,
    )
    catalog_store.ensure_schema(pg)
    catalog_store.upsert_entry(pg, entry)
    pg.commit()
    assert _cli("--log", "catalog").returncode == 0
    # The insider's attack: PUBLIC, everywhere, without a history row.
    pg.execute(
        "UPDATE governance.catalog SET record = jsonb_set(record, '{classification}',"
        " '\"PUBLIC\"') WHERE dataset_id = 'support_tickets'"
    )
    pg.commit()
    caught = _cli("--log", "catalog")
    assert caught.returncode == 6
    assert "support_tickets" in caught.stderr and "history" in caught.stderr
