"""One placement tick: snapshot, joint placement, decision log and reservations, atomically.

The whole tick runs in one transaction under a global advisory lock: the snapshot's ledger
usage and in-flight reservations are read after the lock is taken, and the decisions and their
reservations are written before it is released. Two ticks (two daemons, or a sensor and a
schedule) therefore see each other's reservations and can never jointly exceed free GPUs, a
quota or a budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg.pq import TransactionStatus

from data_plane import anchors
from reasoning_plane import store
from reasoning_plane.batch import place_batch
from reasoning_plane.model import PLACED, Decision, Snapshot, WorkloadRequest
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.signing import Signer

TICK_LOCK = "plane:placement-tick"
# The logs whose heads each tick anchors outside PostgreSQL (data_plane.anchors).
ANCHORED = (
    *store.CHAINED,
    "governance.access_log",
    "governance.catalog_history",
    "governance.read_grants_log",
)


REQUEST_KEY = "request:"  # run keys of explicit requests (plane.requests): request:<id>


@dataclass(frozen=True)
class Pending:
    request: WorkloadRequest
    run_key: str

    @property
    def queued_id(self) -> str | None:
        """The ``plane.requests`` id this work came from (None: due work found by a sensor)."""
        return (
            self.run_key.removeprefix(REQUEST_KEY) if self.run_key.startswith(REQUEST_KEY) else None
        )


@dataclass(frozen=True)
class TickResult:
    snapshot: Snapshot
    decisions: tuple[tuple[Decision, str], ...]  # (decision, run key)
    # decision id -> the logged decision it repeats: deferred or rejected work decided again
    # with the same outcome (`store.outcome_key`), not appended to the log again
    repeated: Mapping[str, str] = field(default_factory=dict)

    def placed(self) -> list[tuple[Decision, str]]:
        return [(d, k) for d, k in self.decisions if d.status == PLACED]

    def logged_id(self, decision: Decision) -> str:
        """The id of the logged record of ``decision``'s outcome (its own, or the one it
        repeats)."""
        return self.repeated.get(decision.decision_id, decision.decision_id)

    def changed(self) -> list[tuple[Decision, str]]:
        """The decisions this tick appended to the log (new outcomes)."""
        return [(d, k) for d, k in self.decisions if d.decision_id not in self.repeated]


def _repeats(conn: psycopg.Connection, out: Sequence[tuple[Decision, str]]) -> dict[str, str]:
    """Deferred or rejected decisions whose run key's latest logged decision has the same
    outcome (status and reason): decision id -> that logged decision's id."""
    unplaced = [(d, k) for d, k in out if d.status != PLACED]
    logged = store.last_outcomes(conn, [k for _, k in unplaced])
    repeated = {}
    for decision, run_key in unplaced:
        last = logged.get(run_key)
        if last is not None and store.outcome_key(last[1], last[2]) == store.outcome_key(
            decision.status, decision.reason
        ):
            repeated[decision.decision_id] = last[0]
    return repeated


def run_tick(
    conn: psycopg.Connection,
    pending: Sequence[Pending],
    snapshot_of: Callable[[psycopg.Connection], Snapshot],
    policy: PlacementPolicy,
    signer: Signer | None = None,
    *,
    source: str = "tick",
) -> TickResult:
    """Place ``pending`` jointly, log every decision (signed with ``signer``) and reserve the
    placed ones. Queued requests (``plane.requests``) that another tick decided since they were
    read are dropped; the others are marked with their decision in this same transaction.

    The tick counts itself in ``plane.tick_stats`` under ``source`` (its duration, in its own
    transaction; a failure, after its transaction was rolled back), for `plane metrics`."""
    started = time.perf_counter()
    try:
        result = _tick(conn, pending, snapshot_of, policy, signer, source, started)
    except Exception as exc:
        _count_failure(conn, source, exc)
        raise
    if conn.info.transaction_status == TransactionStatus.IDLE:  # committed: anchor the heads
        anchors.write(conn, ANCHORED)
    return result


def _count_failure(conn: psycopg.Connection, source: str, exc: Exception) -> None:
    """Count a failed tick, if the connection can still write (best effort: the tick's own
    error is the one raised)."""
    if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
        return
    try:
        with conn.transaction():
            store.record_tick_failure(conn, source, f"{type(exc).__name__}: {exc}")
    except psycopg.Error:
        pass


def _tick(
    conn: psycopg.Connection,
    pending: Sequence[Pending],
    snapshot_of: Callable[[psycopg.Connection], Snapshot],
    policy: PlacementPolicy,
    signer: Signer | None,
    source: str,
    started: float,
) -> TickResult:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TICK_LOCK,))
        queued = [p.queued_id for p in pending if p.queued_id is not None]
        decided = store.decided_requests(conn, queued)
        pending = [p for p in pending if p.queued_id not in decided]
        snapshot = snapshot_of(conn)
        # Work decided by an earlier tick whose runs were never requested is decided again:
        # free what that decision reserved, and read the ledger again (store.release_superseded).
        if store.release_superseded(conn, [p.run_key for p in pending], snapshot.now):
            snapshot = snapshot_of(conn)
        by_id = {p.request.request_id: p for p in pending}
        decisions = place_batch([p.request for p in pending], snapshot, policy)
        out = [(d, by_id[d.request.request_id].run_key) for d in decisions]
        # Deferred work is decided again every tick: its decision is logged again only when
        # its outcome changed (the log stays one record per outcome, not one per tick).
        repeated = _repeats(conn, out)
        # Every new decision with what it read of the snapshot, then the placed ones'
        # reservations: the same rows as store.record_decision and store.reserve one by one.
        store.record_decisions(
            conn, [(d, k) for d, k in out if d.decision_id not in repeated], snapshot, signer
        )
        store.reserve_many(conn, [d for d in decisions if d.status == PLACED])
        for decision, run_key in out:
            if run_key.startswith(REQUEST_KEY):
                store.mark_request(
                    conn,
                    run_key.removeprefix(REQUEST_KEY),
                    decision.status,
                    repeated.get(decision.decision_id, decision.decision_id),
                )
        store.record_tick(conn, source, time.perf_counter() - started)
    return TickResult(snapshot=snapshot, decisions=tuple(out), repeated=repeated)
