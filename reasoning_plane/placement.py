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

from reasoning_plane.hysteresis import choose_with_hysteresis
from reasoning_plane.index import Hints, fleet_index
from reasoning_plane.model import (
    CPU,
    DEFERRED,
    PLACED,
    Candidate,
    Cluster,
    CostBreakdown,
    Decision,
    Evaluations,
    Snapshot,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState


def evaluate(
    request: WorkloadRequest,
    snapshot: Snapshot,
    policy: PlacementPolicy,
    state: BatchState | None = None,
) -> Evaluations:
    """Every candidate with its cost and all the rules it breaks (against what ``state`` says
    earlier placements of a batch took)."""
    index = fleet_index(snapshot, policy)
    evaluations, _ = index.evaluations(index.prepare(request), index.taken(state))
    return evaluations


def status_of(
    request: WorkloadRequest,
    snapshot: Snapshot,
    policy: PlacementPolicy,
    state: BatchState | None = None,
) -> tuple[str, Evaluations, Hints]:
    """(placed, deferred or rejected, the evaluations, their hints) of ``request`` alone,
    before any choice: what the simulator's baselines and the launcher's re-check ask."""
    index = fleet_index(snapshot, policy)
    evaluations, hints = index.evaluations(index.prepare(request), index.taken(state))
    return hints.status, evaluations, hints


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


def _first_lowest(scores: np.ndarray, positions: Sequence[int] | np.ndarray) -> int:
    """The first of ``positions`` with the lowest score; -1 if none."""
    idx = np.asarray(positions, dtype=np.intp)
    return int(idx[np.argmin(scores[idx])]) if idx.size else -1


def _no_candidate_reason(evaluations: Evaluations, hints: Hints) -> str:
    """Why nothing is feasible: fail closed, naming the last compliant option."""
    if not len(evaluations):
        return "no candidate at all: the fleet has no pool or CPU slot for this work"
    compliant = np.flatnonzero(hints.compliant)
    if not compliant.size:
        first = evaluations[0].rejections[0]
        return f"no compliant cluster: every candidate breaks governance ({first.message})"
    best = evaluations[_first_lowest(hints.scores, compliant)]
    why = "; ".join(f"{r.rule}: {r.message}" for r in best.rejections)
    return f"not launched; the last compliant option {best.candidate.label} failed: {why}"


def best_of(evaluations: Evaluations, positions: Sequence[int], scores: np.ndarray) -> int:
    """The position of the lowest score among ``positions``; between equal scores, the
    candidate whose label sorts first."""
    idx = np.asarray(positions, dtype=np.intp)
    picked = scores[idx]
    ties = idx[picked == picked.min()].tolist()
    if len(ties) == 1:
        return ties[0]
    return min(ties, key=lambda k: evaluations.candidate_at(k).label)


def decide(
    request: WorkloadRequest,
    evaluations: Evaluations,
    hints: Hints,
    snapshot: Snapshot,
    policy: PlacementPolicy,
    *,
    chosen: Candidate | None = None,
    reason: str | None = None,
) -> Decision:
    """Turn evaluations into a decision: the cheapest feasible candidate (unless hysteresis
    keeps a recurring workload where it runs), or ``chosen`` when batch placement imposes it,
    or, with nothing chosen, why not (``reason``, else the last compliant option's reasons)."""
    if chosen is None and hints.feasible.size and reason is None:
        best = evaluations.candidate_at(best_of(evaluations, hints.feasible, hints.scores))
        chosen, reason = choose_with_hysteresis(request, evaluations, best, snapshot, policy)
    if chosen is None:
        status = hints.status if hints.status != PLACED else DEFERRED
        return _decision(request, snapshot, policy, status, None, evaluations, reason or "", hints)
    at = evaluations.position_of(chosen)
    assert at is not None, f"{chosen.label} is not a candidate of {request.request_id}"
    picked = evaluations[at]
    others = evaluations.feasible_mask().copy()
    others[at] = False
    runner_up = _first_lowest(hints.scores, np.flatnonzero(others))
    why = reason or (
        f"{chosen.label}: ${picked.cost.total_usd:,.2f}, ~{picked.cost.latency_ms:.0f} ms"
        + (
            f"; next best {evaluations[runner_up].candidate.label} "
            f"${evaluations[runner_up].cost.total_usd:,.2f}"
            if runner_up >= 0
            else "; the only feasible candidate"
        )
    )
    memory = _memory_arithmetic(request, snapshot, chosen)
    if memory:
        why = f"{why}; {memory}"
    return _decision(request, snapshot, policy, PLACED, chosen, evaluations, why, hints)


def _decision(
    request: WorkloadRequest,
    snapshot: Snapshot,
    policy: PlacementPolicy,
    status: str,
    chosen: Candidate | None,
    evaluations: Evaluations,
    why: str,
    hints: Hints,
) -> Decision:
    snapshot_hash, version = snapshot.telemetry_hash(), policy.version()
    cluster = snapshot.fleet.get(chosen.cluster) if chosen is not None else None
    return Decision(
        decision_id=decision_id(request, snapshot_hash, version, snapshot.now),
        request=request,
        status=status,
        chosen=chosen,
        evaluations=evaluations,
        reason=why if chosen is not None or why else _no_candidate_reason(evaluations, hints),
        policy_version=version,
        snapshot_hash=snapshot_hash,
        decided_at=snapshot.now,
        executor=executor_for(cluster, chosen.gpu_type) if cluster and chosen else None,
        zone=cluster.zone if cluster else None,
        namespace=cluster.namespace(request.team) if cluster else None,
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
    evaluations, hints = index.evaluations(index.prepare(request), index.taken())
    return decide(request, evaluations, hints, snapshot, policy)


def cost_of(
    request: WorkloadRequest, candidate: Candidate, snapshot: Snapshot, policy: PlacementPolicy
) -> CostBreakdown:
    """The cost model's figures for ``request`` on ``candidate`` (feasible or not)."""
    evaluations = evaluate(request, snapshot, policy)
    k = evaluations.position_of(candidate)
    if k is None:
        raise ValueError(f"{candidate.label} is not a candidate of {request.request_id}")
    return evaluations[k].cost
