"""The batched decision log (`store.record_decisions`, `store.reserve_many`, used by a tick)
writes the same rows as `record_decision` and `reserve` one decision at a time, on the real
embedded PostgreSQL."""

import psycopg

from reasoning_plane import store
from reasoning_plane.batch import place_batch
from reasoning_plane.model import PLACED
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import request, snapshot

COLUMNS = (
    "decision_id, request_id, run_key, workload, team, status, cluster, gpu_type, executor,"
    " est_cost_usd, policy_version, snapshot_hash, payload, explanation, decided_at"
)


def _decisions():
    snap = snapshot()
    requests = [
        request("eu-1"),
        request("eu-2", gpu_count=8, priority=200),
        request("us", datasets=("customer_orders_us",), team="media-ml"),
        request("public", datasets=("conference_transcripts",), gpu_count=0, latency_slo_ms=None),
        request("ghost", datasets=("nowhere",)),
        request("mix", datasets=("eu_us_mix",)),
        request("big", gpu_count=40),
    ]
    decisions = place_batch(requests, snap, PlacementPolicy())
    assert {d.status for d in decisions} >= {"placed", "rejected"}
    return snap, [(d, f"run:{d.request.request_id}") for d in decisions]


def _rows(conn: psycopg.Connection):
    """The log's rows, each payload as `store.decisions` reads it back (the batched log keeps
    a tick's telemetry once, in plane.snapshots, and each payload refers to it)."""
    rows = conn.execute(f"SELECT {COLUMNS} FROM plane.decisions ORDER BY decision_id").fetchall()
    payloads = {d.decision_id: d.payload for d in store.decisions(conn)}
    at = COLUMNS.split(", ").index("payload")
    decisions = [(*r[:at], payloads[r[0]], *r[at + 1 :]) for r in rows]
    ledger = conn.execute(
        "SELECT id, team, decision_id, run_id, kind, cluster, gpu_type, gpus, usd"
        " FROM plane.ledger ORDER BY id"
    ).fetchall()
    return decisions, ledger


def test_batched_log_writes_the_rows_of_the_one_by_one_log(plane_db: str) -> None:
    snap, decisions = _decisions()
    placed = [d for d, _ in decisions if d.status == PLACED]
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        for decision, run_key in decisions:
            store.record_decision(
                conn,
                decision,
                run_key=run_key,
                snapshot_payload=store.snapshot_payload(
                    snap, decision.request.datasets, decision.request.team
                ),
            )
        for decision in placed:
            store.reserve(conn, decision)
        conn.commit()
        one_by_one = _rows(conn)
        conn.execute("DROP SCHEMA plane CASCADE")
        conn.commit()

        store.ensure_schema(conn)
        with conn.transaction():
            store.record_decisions(conn, decisions, snap)
            store.reserve_many(conn, placed)
            # again in the same transaction: idempotent on the decision id
            store.record_decisions(conn, decisions, snap)
            store.reserve_many(conn, placed)
        conn.commit()
        batched = _rows(conn)
    assert len(one_by_one[0]) == len(decisions) and len(one_by_one[1]) == len(placed)
    assert batched == one_by_one
    with psycopg.connect(plane_db) as conn:
        stored = conn.execute("SELECT payload->'snapshot' FROM plane.decisions").fetchall()
        (snapshots,) = conn.execute("SELECT count(*) FROM plane.snapshots").fetchone()
    # ... and stores the telemetry once, not once per decision
    assert snapshots == 1 and all("telemetry" not in s and s["telemetry_ref"] for (s,) in stored)
