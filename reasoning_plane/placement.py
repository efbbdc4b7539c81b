"""Placement of one workload: candidates -> hard constraints -> cost -> choice -> decision.

Same shape as SkyPilot's optimizer and Kueue's scheduler: enumerate every (cluster, GPU pool)
pair (and CPU where the work allows it), evaluate each against every rule keeping all reasons,
score the feasible ones with the cost model, pick the best, and keep the whole table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from reasoning_plane.constraints import GOVERNANCE_RULES, TRANSIENT_RULES, BatchState
from reasoning_plane.hysteresis import choose_with_hysteresis
from reasoning_plane.index import Hints, LazyEvaluations, collector_paused, fleet_index
from reasoning_plane.model import (
    CPU,
    DEFERRED,
    PLACED,
    REJECTED,
    Candidate,
    Cluster,
    Decision,
    Evaluation,
    GpuPool,
    Snapshot,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy


def candidates(
    request: WorkloadRequest, snapshot: Snapshot
) -> list[tuple[Cluster, GpuPool | None]]:
    """Every (cluster, pool) that could run the request; CPU when it needs or allows no GPU."""
    out: list[tuple[Cluster, GpuPool | None]] = []
    for cluster in snapshot.fleet.clusters:
        if request.gpu_count > 0:
            out += [(cluster, pool) for pool in cluster.pools]
        if (request.gpu_count == 0 or request.gpu_optional) and cluster.cpu_slots > 0:
            out.append((cluster, None))
    return out


def _score(breakdown, policy: PlacementPolicy) -> float:
    if policy.objective == "weighted":
        return (
            policy.cost_weight * breakdown.total_usd + policy.latency_weight * breakdown.latency_ms
        )
    return breakdown.total_usd + breakdown.latency_ms * 1e-9  # latency only breaks ties


def evaluate(
    request: WorkloadRequest,
    snapshot: Snapshot,
    policy: PlacementPolicy,
    state: BatchState | None = None,
) -> list[Evaluation]:
    """Every candidate with its cost and all the rules it breaks.

    Evaluated over arrays by `index.FleetIndex` (built once per snapshot and policy); the rules
    are those of `constraints.py`, and the result is exactly `reference.evaluate`'s.
    """
    index = fleet_index(snapshot, policy)
    if not index.usable:
        from reasoning_plane import reference

        return reference.evaluate(request, snapshot, policy, state)
    evaluations, _ = index.evaluations(index.prepare(request), index.taken(state))
    return evaluations


def executor_for(cluster: Cluster, gpu_type: str) -> str:
    """GPU work on a Kubernetes cluster runs each step as a GPU Job; the rest in processes."""
    if gpu_type != CPU and not cluster.local:
        return "k8s_job_executor"
    return "multiprocess"


def decision_id(
    request: WorkloadRequest, snapshot_hash: str, policy_version: str, now: datetime
) -> str:
    raw = json.dumps([request.request_id, snapshot_hash, policy_version, now.isoformat()])
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def hints_of(evaluations: Sequence[Evaluation]) -> Hints:
    """`Hints` found by looking at every evaluation."""
    feasible, compliant = [], []
    transient = False
    for i, e in enumerate(evaluations):
        rejections = e.rejections
        if not rejections:
            feasible.append(i)
            compliant.append(i)
            continue
        if any(r.rule in GOVERNANCE_RULES for r in rejections):
            continue
        compliant.append(i)
        if not transient and all(r.rule in TRANSIENT_RULES for r in rejections):
            transient = True
    return Hints(feasible, compliant, transient, [e.score for e in evaluations])


def _first_lowest(
    scores: Sequence[float] | np.ndarray, indices: Sequence[int], skip: int = -1
) -> int:
    """The first of ``indices`` (other than ``skip``) with the lowest score; -1 if none."""
    if isinstance(scores, np.ndarray):  # the index's scores: the same answer, vectorised
        idx = np.asarray(indices, dtype=np.intp)
        if skip >= 0:
            idx = idx[idx != skip]
        return int(idx[np.argmin(scores[idx])]) if idx.size else -1
    best, low = -1, 0.0
    for i in indices:
        if i == skip:
            continue
        s = scores[i]
        if best < 0 or s < low:
            best, low = i, s
    return best


def _no_candidate_reason(
    evaluations: Sequence[Evaluation], hints: Hints | None = None
) -> tuple[str, str]:
    """(status, reason) when nothing is feasible: fail closed, naming the last compliant option."""
    if not evaluations:
        return REJECTED, "no candidate at all: the fleet has no pool or CPU slot for this work"
    hints = hints or hints_of(evaluations)
    if len(hints.compliant) == 0:
        first = evaluations[0].rejections[0]
        return (
            REJECTED,
            f"no compliant cluster: every candidate breaks governance ({first.message})",
        )
    best = evaluations[_first_lowest(hints.scores, hints.compliant)]
    why = "; ".join(f"{r.rule}: {r.message}" for r in best.rejections)
    status = DEFERRED if hints.transient else REJECTED
    return status, f"not launched; the last compliant option {best.candidate.label} failed: {why}"


def best_of(
    evaluations: Sequence[Evaluation],
    indices: Sequence[int],
    scores: Sequence[float] | np.ndarray,
) -> int:
    """The position of ``min`` by (score, label) over ``evaluations[i] for i in indices`` (the
    first of ties), comparing labels only between equal scores."""
    if isinstance(scores, np.ndarray):  # the index's scores: the same answer, vectorised
        idx = np.asarray(indices, dtype=np.intp)
        picked = scores[idx]
        ties = idx[picked == picked.min()].tolist()
        if len(ties) == 1:
            return ties[0]
        return min(ties, key=lambda i: evaluations[i].candidate.label)
    low = min(map(scores.__getitem__, indices))
    ties = [i for i in indices if scores[i] == low]
    if len(ties) == 1:
        return ties[0]
    return min(ties, key=lambda i: evaluations[i].candidate.label)


def _position(evaluations: Sequence[Evaluation], chosen: Candidate, hints: Hints) -> int:
    """Where ``chosen`` is among ``evaluations`` (the first equal one)."""
    if hints.position is not None:
        k = hints.position.get(id(chosen), -1)
        if k >= 0 and evaluations[k].candidate is chosen:
            return k
    for k, e in enumerate(evaluations):
        if e.candidate is chosen:
            return k
    return next(k for k, e in enumerate(evaluations) if e.candidate == chosen)


def decide(
    request: WorkloadRequest,
    evaluations: Sequence[Evaluation],
    snapshot: Snapshot,
    policy: PlacementPolicy,
    *,
    chosen: Candidate | None = None,
    reason: str | None = None,
    hints: Hints | None = None,
) -> Decision:
    """Turn evaluations into a decision (``chosen`` may be imposed by batch placement).

    ``hints``, when the caller has them, must describe ``evaluations`` (see `index.Hints`)."""
    snapshot_hash = snapshot.telemetry_hash()
    version = policy.version()
    # The index's lazily built evaluations stay lazy (see `index.LazyEvaluations`).
    kept = evaluations if isinstance(evaluations, LazyEvaluations) else tuple(evaluations)
    if hints is None:
        hints = hints_of(evaluations)
    feasible, scores = hints.feasible, hints.scores
    if chosen is None and feasible and reason is None:
        best = evaluations[best_of(evaluations, feasible, scores)]
        chosen, reason = choose_with_hysteresis(
            request, evaluations, best.candidate, snapshot, policy, feasible=feasible
        )
    if chosen is None:
        if reason:
            status, why = DEFERRED, reason
        else:
            status, why = _no_candidate_reason(evaluations, hints)
        return Decision(
            decision_id=decision_id(request, snapshot_hash, version, snapshot.now),
            request=request,
            status=status,
            chosen=None,
            evaluations=kept,
            reason=why,
            policy_version=version,
            snapshot_hash=snapshot_hash,
            decided_at=snapshot.now,
        )
    cluster = snapshot.fleet.get(chosen.cluster)
    assert cluster is not None
    at = _position(evaluations, chosen, hints)
    picked = evaluations[at]
    memory = _memory_arithmetic(request, snapshot, chosen)
    if hints.unique:
        runner_up = _first_lowest(scores, feasible, skip=at)
    else:  # skip every candidate equal to the chosen one
        others = [i for i in feasible if evaluations[i].candidate != chosen]
        runner_up = _first_lowest(scores, others)
    why = reason or (
        f"{chosen.label}: ${picked.cost.total_usd:,.2f}, ~{picked.cost.latency_ms:.0f} ms"
        + (
            f"; next best {evaluations[runner_up].candidate.label} "
            f"${evaluations[runner_up].cost.total_usd:,.2f}"
            if runner_up >= 0
            else "; the only feasible candidate"
        )
    )
    if memory:
        why = f"{why}; {memory}"
    return Decision(
        decision_id=decision_id(request, snapshot_hash, version, snapshot.now),
        request=request,
        status=PLACED,
        chosen=chosen,
        evaluations=kept,
        reason=why,
        policy_version=version,
        snapshot_hash=snapshot_hash,
        decided_at=snapshot.now,
        executor=executor_for(cluster, chosen.gpu_type),
        zone=cluster.zone,
        namespace=cluster.namespace(request.team),
    )


def _memory_arithmetic(request: WorkloadRequest, snapshot: Snapshot, chosen: Candidate) -> str:
    """Memory arithmetic of single-node packing, e.g. '28.0 GB free per NVML >= 20 GB needed'."""
    if chosen.gpu_type == CPU:
        return ""
    sample = snapshot.telemetry.get((chosen.cluster, chosen.gpu_type))
    cluster = snapshot.fleet.get(chosen.cluster)
    pool = cluster.pool(chosen.gpu_type) if cluster else None
    if sample is None or sample.free_memory_gb is None or pool is None:
        return ""
    return (
        f"GPU memory: {pool.memory_gb:g} GB per GPU, {sample.free_memory_gb:.1f} GB free per "
        f"NVML >= {request.gpu_memory_gb:g} GB needed"
    )


def place(request: WorkloadRequest, snapshot: Snapshot, policy: PlacementPolicy) -> Decision:
    """Place one request alone."""
    index = fleet_index(snapshot, policy)
    if not index.usable:
        return decide(request, evaluate(request, snapshot, policy), snapshot, policy)
    with collector_paused():
        prep = index.prepare(request)
        evaluations, ok = index.evaluations(prep, index.taken())
        return decide(request, evaluations, snapshot, policy, hints=index.hints(prep, ok))
