"""Joint placement of every request pending in one tick.

Requests are taken in priority tiers, highest first, so lower-priority work can never displace
higher-priority work. Within a tier the assignment is an integer program (scipy's HiGHS MILP) when
the tier has at most ``policy.exact_max_pairs`` feasible (request, candidate) pairs: maximise the
number of requests placed, then minimise their total score, subject to free GPUs per pool, CPU
slots per cluster, each team's remaining GPU quota and remaining budget. Larger tiers use a
documented greedy heuristic: requests with the fewest feasible candidates first, each on its
cheapest candidate that still fits.

Whatever the method, every choice is re-checked in order against all hard constraints with the
capacity, quota and budget already taken by the batch (`constraints.BatchState`), so together
the placements can never exceed free GPUs, quotas or budgets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import groupby

import numpy as np

from reasoning_plane.constraints import BatchState
from reasoning_plane.hysteresis import choose_with_hysteresis
from reasoning_plane.model import CPU, Candidate, Decision, Evaluation, Snapshot, WorkloadRequest
from reasoning_plane.placement import decide, evaluate
from reasoning_plane.policy import PlacementPolicy


def _remaining(snapshot: Snapshot, state: BatchState, policy: PlacementPolicy):
    free: dict[tuple[str, str], float] = {}
    for (cluster, gpu_type), sample in snapshot.telemetry.items():
        free[(cluster, gpu_type)] = sample.free_gpus - state.gpus.get((cluster, gpu_type), 0)
    cpu = {c.name: c.cpu_slots - state.cpu_slots.get(c.name, 0) for c in snapshot.fleet.clusters}
    quota = {
        t: q.gpus - snapshot.usage_of(t).gpus_held - state.team_gpus.get(t, 0)
        for t, q in snapshot.quotas.items()
    }
    budget = {}
    for team, b in snapshot.budgets.items():
        u = snapshot.usage_of(team)
        budget[team] = b.limit_usd - u.spent_usd - u.reserved_usd - state.team_usd.get(team, 0.0)
    return free, cpu, quota, budget


def _exact(
    tier: Sequence[WorkloadRequest],
    options: dict[str, list[Evaluation]],
    snapshot: Snapshot,
    state: BatchState,
    policy: PlacementPolicy,
) -> dict[str, Candidate]:
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
    for i, (r, e) in enumerate(pairs):
        by_request[r.request_id].append(i)
        if e.candidate.gpu_type == CPU:
            by_cpu[e.candidate.cluster].append(i)
        else:
            by_pool[(e.candidate.cluster, e.candidate.gpu_type)].append(i)
            by_team_gpu[r.team].append(i)
        by_team_usd[r.team].append(i)
    free, cpu, quota, budget = _remaining(snapshot, state, policy)
    for idx in by_request.values():
        add(idx, [1.0] * len(idx), 1.0)
    for key, idx in by_pool.items():
        add(idx, [pairs[i][0].gpu_count for i in idx], free.get(key, 0))
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
        options={"time_limit": 10.0},
    )
    if result.x is None:
        return {}
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
            else _greedy(tier, options)
        )
        # Fewest options first, so the greedy path leaves room for the constrained requests.
        for request in sorted(tier, key=lambda r: (len(options[r.request_id]), r.request_id)):
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
                        request, evaluations, chosen, snapshot, policy
                    )
                decision = decide(
                    request, evaluations, snapshot, policy, chosen=chosen, reason=reason
                )
            if chosen is not None:
                picked = ok[chosen]
                state.take(request, chosen.cluster, chosen.gpu_type, picked.cost.total_usd)
            decisions.append(decision)
    return decisions
