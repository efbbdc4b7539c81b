"""One placement tick: snapshot, joint placement, decision log and reservations, atomically.

The whole tick runs in one transaction under a global advisory lock: the snapshot's ledger
usage and in-flight reservations are read after the lock is taken, and the decisions and their
reservations are written before it is released. Two ticks (two daemons, or a sensor and a
schedule) therefore see each other's reservations and can never jointly exceed free GPUs, a
quota or a budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from reasoning_plane import store
from reasoning_plane.batch import place_batch
from reasoning_plane.model import PLACED, Decision, Snapshot, WorkloadRequest
from reasoning_plane.policy import PlacementPolicy

TICK_LOCK = "plane:placement-tick"


@dataclass(frozen=True)
class Pending:
    request: WorkloadRequest
    run_key: str


@dataclass(frozen=True)
class TickResult:
    snapshot: Snapshot
    decisions: tuple[tuple[Decision, str], ...]  # (decision, run key)

    def placed(self) -> list[tuple[Decision, str]]:
        return [(d, k) for d, k in self.decisions if d.status == PLACED]


def run_tick(
    conn: psycopg.Connection,
    pending: Sequence[Pending],
    snapshot_of: Callable[[psycopg.Connection], Snapshot],
    policy: PlacementPolicy,
) -> TickResult:
    """Place ``pending`` jointly, log every decision and reserve the placed ones."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TICK_LOCK,))
        snapshot = snapshot_of(conn)
        by_id = {p.request.request_id: p for p in pending}
        decisions = place_batch([p.request for p in pending], snapshot, policy)
        out = []
        for decision in decisions:
            run_key = by_id[decision.request.request_id].run_key
            store.record_decision(
                conn,
                decision,
                run_key=run_key,
                snapshot_payload=store.snapshot_payload(
                    snapshot, decision.request.datasets, decision.request.team
                ),
            )
            if decision.status == PLACED:
                store.reserve(conn, decision)
            out.append((decision, run_key))
    return TickResult(snapshot=snapshot, decisions=tuple(out))
