"""The straightforward decision path: one candidate at a time, every rule of `constraints.RULES`
and `cost.estimate` called per candidate, every request re-evaluated in full per tier.

This is the specification the engine (`reasoning_plane.index`, used by `placement` and `batch`)
must match exactly: same evaluations (costs, scores, every rejection and its message), same
choices, same decisions. ``tests/unit/plane/test_speed_equivalence.py`` compares the two on
random worlds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import groupby
from typing import Any

import numpy as np

from reasoning_plane.explain import request_to_dict
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
    EvaluationList,
    GpuPool,
    Rejection,
    Snapshot,
    WorkloadRequest,
)
from reasoning_plane.placement import _memory_arithmetic, decision_id, executor_for
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState
from tests.oracle import constraints, cost
from tests.oracle.constraints import GOVERNANCE_RULES, TRANSIENT_RULES, Context, capacity_tiers


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
    # Deferred when some compliant candidate fails only rules that can pass later.
    transient = any(all(r.rule in TRANSIENT_RULES for r in e.rejections) for e in compliant)
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
    evaluations = EvaluationList(evaluations)
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
            evaluations=evaluations,
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
        evaluations=evaluations,
        reason=why,
        policy_version=policy.version(),
        snapshot_hash=snapshot_hash,
        decided_at=snapshot.now,
        executor=executor_for(cluster, chosen.gpu_type),
        zone=cluster.zone,
        namespace=cluster.namespace(request.team),
    )


def place(request: WorkloadRequest, snapshot: Snapshot, policy: PlacementPolicy) -> Decision:
    """Place one request alone."""
    return decide(request, evaluate(request, snapshot, policy), snapshot, policy)


def _remaining(snapshot: Snapshot, state: BatchState, policy: PlacementPolicy):
    cpu = {c.name: c.cpu_slots - state.cpu_slots.get(c.name, 0) for c in snapshot.fleet.clusters}
    quota = {
        t: q.gpus - snapshot.usage_of(t).gpus_held - state.team_gpus.get(t, 0)
        for t, q in snapshot.quotas.items()
    }
    budget = {}
    for team, b in snapshot.budgets.items():
        u = snapshot.usage_of(team)
        budget[team] = b.limit_usd - u.spent_usd - u.reserved_usd - state.team_usd.get(team, 0.0)
    return cpu, quota, budget


def _exact(
    tier: Sequence[WorkloadRequest],
    options: dict[str, list[Evaluation]],
    snapshot: Snapshot,
    state: BatchState,
    policy: PlacementPolicy,
) -> dict[str, Candidate] | None:
    from scipy.optimize import Bounds, LinearConstraint, milp

    pairs = [(r, e) for r in tier for e in options[r.request_id]]
    if not pairs:
        return {}
    n = len(pairs)
    scores = np.array([e.score for _, e in pairs])
    big = float(np.abs(scores).sum()) + 1.0
    objective = scores - big  # each placement is worth `big`: maximise count, then min score
    rows: list[np.ndarray] = []
    upper: list[float] = []

    def add(indices: list[int], weights: list[float], bound: float) -> None:
        row = np.zeros(n)
        row[indices] = weights
        rows.append(row)
        upper.append(bound)

    by_request: dict[str, list[int]] = defaultdict(list)
    by_pool: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_cpu: dict[str, list[int]] = defaultdict(list)
    by_team_gpu: dict[str, list[int]] = defaultdict(list)
    by_team_usd: dict[str, list[int]] = defaultdict(list)
    by_namespace: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (r, e) in enumerate(pairs):
        by_request[r.request_id].append(i)
        if e.candidate.gpu_type == CPU:
            by_cpu[e.candidate.cluster].append(i)
        else:
            by_pool[(e.candidate.cluster, e.candidate.gpu_type)].append(i)
            cluster = snapshot.fleet.get(e.candidate.cluster)
            if cluster.quotas is not None:
                by_namespace[(cluster.name, cluster.namespace(r.team))].append(i)
            else:
                by_team_gpu[r.team].append(i)
        by_team_usd[r.team].append(i)
    cpu, quota, budget = _remaining(snapshot, state, policy)
    for (name, namespace), idx in by_namespace.items():
        live = snapshot.cluster_quotas.get((name, namespace))
        if live is None:
            continue
        cluster = snapshot.fleet.get(name)
        took = sum(
            n
            for (c, team), n in state.cluster_team_gpus.items()
            if c == name and cluster.namespace(team) == namespace
        )
        add(idx, [pairs[i][0].gpu_count for i in idx], live.gpus - (live.used or 0) - took)
    for idx in by_request.values():
        add(idx, [1.0] * len(idx), 1.0)
    for key, idx in by_pool.items():
        took = state.gpus.get(key, 0)
        needs = [pairs[i][0].gpu_memory_gb for i in idx]
        for threshold, fit in capacity_tiers(snapshot.telemetry.get(key), needs):
            tier = [i for i in idx if pairs[i][0].gpu_memory_gb >= threshold]
            add(tier, [pairs[i][0].gpu_count for i in tier], fit - took)
    for cluster, idx in by_cpu.items():
        add(idx, [1.0] * len(idx), cpu.get(cluster, 0))
    for team, idx in by_team_gpu.items():
        if team in quota:
            add(idx, [pairs[i][0].gpu_count for i in idx], quota[team])
    for team, idx in by_team_usd.items():
        if team in budget:
            add(idx, [pairs[i][1].cost.total_usd for i in idx], budget[team])
    result = milp(
        c=objective,
        constraints=LinearConstraint(np.vstack(rows), -np.inf, np.array(upper)),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": policy.exact_time_limit_s},
    )
    if result.x is None:
        return None
    return {pairs[i][0].request_id: pairs[i][1].candidate for i in range(n) if result.x[i] > 0.5}


def _greedy(
    tier: Sequence[WorkloadRequest], options: dict[str, list[Evaluation]]
) -> dict[str, Candidate]:
    """Cheapest candidate first; the verify pass resolves contention."""
    return {
        r.request_id: min(options[r.request_id], key=lambda e: e.score).candidate
        for r in tier
        if options[r.request_id]
    }


def place_batch(
    requests: Sequence[WorkloadRequest], snapshot: Snapshot, policy: PlacementPolicy
) -> list[Decision]:
    """Decisions for all requests, jointly feasible, in priority order (highest first)."""
    ids = [r.request_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("request ids in a batch must be unique")
    state = BatchState()
    decisions: list[Decision] = []
    ordered = sorted(requests, key=lambda r: (-r.priority, r.request_id))
    for _, tier_iter in groupby(ordered, key=lambda r: r.priority):
        tier = list(tier_iter)
        base = {r.request_id: evaluate(r, snapshot, policy, state) for r in tier}
        options = {rid: [e for e in evs if e.feasible] for rid, evs in base.items()}
        n_pairs = sum(len(v) for v in options.values())
        plan = (
            _exact(tier, options, snapshot, state, policy)
            if n_pairs <= policy.exact_max_pairs
            else None
        )
        if plan is None:
            plan = _greedy(tier, options)
        # The plan's requests first: the plan is jointly feasible, and what it left out only
        # takes what is left (it must not push planned ones out). Then fewest options first,
        # so the greedy path leaves room for the constrained requests.
        for request in sorted(
            tier, key=lambda r: (r.request_id not in plan, len(options[r.request_id]), r.request_id)
        ):
            evaluations = evaluate(request, snapshot, policy, state)
            wanted = plan.get(request.request_id)
            ok = {e.candidate: e for e in evaluations if e.feasible}
            if wanted is not None and wanted in ok:
                chosen = wanted
            elif ok:
                chosen = min(ok.values(), key=lambda e: (e.score, e.candidate.label)).candidate
            else:
                chosen = None
            if chosen is None and options[request.request_id]:
                reason = (
                    "deferred: capacity, quota or budget left after higher-priority and "
                    "cheaper placements of this batch is not enough; "
                    + "; ".join(
                        f"{r.rule}: {r.message}"
                        for r in min(evaluations, key=lambda e: e.score).rejections
                    )
                )
                decision = decide(request, evaluations, snapshot, policy, reason=reason)
            else:
                reason = None
                if chosen is not None:
                    chosen, reason = choose_with_hysteresis(
                        request, EvaluationList(evaluations), chosen, snapshot, policy
                    )
                decision = decide(
                    request, evaluations, snapshot, policy, chosen=chosen, reason=reason
                )
            if chosen is not None:
                # hysteresis may keep a workload on its cluster failing only the SLO (not in ok)
                picked = next(e for e in evaluations if e.candidate == chosen)
                state.take(request, chosen.cluster, chosen.gpu_type, picked.cost.total_usd)
            decisions.append(decision)
    return decisions


# -- the decision log's text and payload, one candidate at a time -----------------------


def _row(e: Evaluation, decision: Decision) -> list[str]:
    if decision.chosen == e.candidate:
        status = "CHOSEN"
    elif e.feasible:
        status = "feasible"
    else:
        status = "rejected"
    c = e.cost
    reasons = "; ".join(f"{r.rule}: {r.message}" for r in e.rejections)
    return [
        e.candidate.label,
        status,
        f"{c.total_usd:.2f}",
        f"{c.gpu_usd:.2f}",
        f"{c.egress_usd:.2f}",
        f"{c.duration_s / 3600:.2f}",
        f"{c.latency_ms:.0f}",
        reasons,
    ]


def explain(decision: Decision) -> str:
    r = decision.request
    slo = f", SLO {r.latency_slo_ms:g} ms" if r.latency_slo_ms else ""
    head = [
        f"Decision {decision.decision_id}: {decision.status.upper()}"
        + (f" on {decision.chosen.label}" if decision.chosen else ""),
        f"  request {r.request_id} ({r.workload}) team {r.team}, priority {r.priority}: "
        f"{r.gpu_count} GPU x {r.gpu_memory_gb:g} GB, {r.estimated_duration_s / 3600:.2f} h on "
        f"the reference GPU, {r.data_gb:g} GB of {', '.join(r.datasets)}{slo}",
        f"  policy {decision.policy_version}, telemetry snapshot {decision.snapshot_hash}, "
        f"at {decision.decided_at.isoformat()}",
        f"  reason: {decision.reason}",
    ]
    if decision.executor:
        head.append(
            f"  executor {decision.executor}, zone {decision.zone}, namespace {decision.namespace}"
        )
    headers = [
        "candidate",
        "status",
        "cost $",
        "gpu $",
        "egress $",
        "hours",
        "latency ms",
        "reasons",
    ]
    order = sorted(
        decision.evaluations,
        key=lambda e: (decision.chosen != e.candidate, not e.feasible, e.score),
    )
    rows = [headers] + [_row(e, decision) for e in order]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append(("  " + "  ".join(cells) + "  " + row[-1]).rstrip())
    lines.insert(1, "  " + "  ".join("-" * w for w in widths) + "  -------")
    return "\n".join([*head, "", *lines])


def to_dict(decision: Decision) -> dict[str, Any]:
    """JSON-ready form of a decision (the decision log's payload)."""
    r = decision.request
    return {
        "decision_id": decision.decision_id,
        "status": decision.status,
        "chosen": decision.chosen.label if decision.chosen else None,
        "cluster": decision.chosen.cluster if decision.chosen else None,
        "gpu_type": decision.chosen.gpu_type if decision.chosen else None,
        "executor": decision.executor,
        "zone": decision.zone,
        "namespace": decision.namespace,
        "reason": decision.reason,
        "policy_version": decision.policy_version,
        "snapshot_hash": decision.snapshot_hash,
        "decided_at": decision.decided_at.isoformat(),
        "request": request_to_dict(r),
        "candidates": [
            {
                "candidate": e.candidate.label,
                "feasible": e.feasible,
                "chosen": decision.chosen == e.candidate,
                "total_usd": round(e.cost.total_usd, 6),
                "gpu_usd": round(e.cost.gpu_usd, 6),
                "egress_usd": round(e.cost.egress_usd, 6),
                "data_moved_gb": e.cost.data_moved_gb,
                "duration_s": round(e.cost.duration_s, 3),
                "latency_ms": round(e.cost.latency_ms, 3),
                "score": round(e.score, 9),
                "reasons": [{"rule": x.rule, "message": x.message} for x in e.rejections],
            }
            for e in decision.evaluations
        ],
    }
