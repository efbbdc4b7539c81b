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

from reasoning_plane import constraints, cost
from reasoning_plane.constraints import GOVERNANCE_RULES, TRANSIENT_RULES, BatchState, Context
from reasoning_plane.hysteresis import choose_with_hysteresis
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
    Rejection,
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
    """Every candidate with its cost and all the rules it breaks."""
    state = state or BatchState()
    records = tuple(snapshot.catalog[d] for d in request.datasets if d in snapshot.catalog)
    missing = tuple(d for d in request.datasets if d not in snapshot.catalog)
    evaluations: list[Evaluation] = []
    for cluster, pool in candidates(request, snapshot):
        breakdown = cost.estimate(request, cluster, pool, records, snapshot, policy)
        ctx = Context(
            request, cluster, pool, records, missing, snapshot, policy, state, breakdown.total_usd
        )
        rejections = [r for rule in constraints.RULES for r in rule(ctx)]
        if (
            policy.objective == "cheapest_within_slo"
            and request.latency_slo_ms is not None
            and breakdown.latency_ms > request.latency_slo_ms
        ):
            rejections.append(
                Rejection(
                    "slo",
                    f"estimated latency {breakdown.latency_ms:.0f} ms "
                    f"exceeds the SLO of {request.latency_slo_ms:g} ms",
                )
            )
        evaluations.append(
            Evaluation(
                candidate=Candidate(cluster.name, pool.gpu_type if pool else CPU),
                cost=breakdown,
                rejections=tuple(rejections),
                score=_score(breakdown, policy),
            )
        )
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


def _no_candidate_reason(evaluations: Sequence[Evaluation]) -> tuple[str, str]:
    """(status, reason) when nothing is feasible: fail closed, naming the last compliant option."""
    if not evaluations:
        return REJECTED, "no candidate at all: the fleet has no pool or CPU slot for this work"
    compliant = [
        e for e in evaluations if not any(r.rule in GOVERNANCE_RULES for r in e.rejections)
    ]
    if not compliant:
        first = evaluations[0].rejections[0]
        return (
            REJECTED,
            f"no compliant cluster: every candidate breaks governance ({first.message})",
        )
    best = min(compliant, key=lambda e: e.score)
    why = "; ".join(f"{r.rule}: {r.message}" for r in best.rejections)
    transient = all(r.rule in TRANSIENT_RULES for e in compliant for r in e.rejections)
    status = DEFERRED if transient else REJECTED
    return status, f"not launched; the last compliant option {best.candidate.label} failed: {why}"


def decide(
    request: WorkloadRequest,
    evaluations: Sequence[Evaluation],
    snapshot: Snapshot,
    policy: PlacementPolicy,
    *,
    chosen: Candidate | None = None,
    reason: str | None = None,
) -> Decision:
    """Turn evaluations into a decision (``chosen`` may be imposed by batch placement)."""
    snapshot_hash = snapshot.telemetry_hash()
    feasible = [e for e in evaluations if e.feasible]
    if chosen is None and feasible and reason is None:
        best = min(feasible, key=lambda e: (e.score, e.candidate.label))
        chosen, reason = choose_with_hysteresis(
            request, evaluations, best.candidate, snapshot, policy
        )
    if chosen is None:
        status, why = _no_candidate_reason(evaluations)
        if reason:
            status, why = DEFERRED, reason
        return Decision(
            decision_id=decision_id(request, snapshot_hash, policy.version(), snapshot.now),
            request=request,
            status=status,
            chosen=None,
            evaluations=tuple(evaluations),
            reason=why,
            policy_version=policy.version(),
            snapshot_hash=snapshot_hash,
            decided_at=snapshot.now,
        )
    cluster = snapshot.fleet.get(chosen.cluster)
    assert cluster is not None
    picked = next(e for e in evaluations if e.candidate == chosen)
    memory = _memory_arithmetic(request, snapshot, chosen)
    others = sorted((e for e in feasible if e.candidate != chosen), key=lambda e: e.score)
    why = reason or (
        f"{chosen.label}: ${picked.cost.total_usd:,.2f}, ~{picked.cost.latency_ms:.0f} ms"
        + (
            f"; next best {others[0].candidate.label} ${others[0].cost.total_usd:,.2f}"
            if others
            else "; the only feasible candidate"
        )
    )
    if memory:
        why = f"{why}; {memory}"
    return Decision(
        decision_id=decision_id(request, snapshot_hash, policy.version(), snapshot.now),
        request=request,
        status=PLACED,
        chosen=chosen,
        evaluations=tuple(evaluations),
        reason=why,
        policy_version=policy.version(),
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
    return decide(request, evaluate(request, snapshot, policy), snapshot, policy)
