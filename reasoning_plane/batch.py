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

Speed: each request's costs and its state-independent verdicts (residency, compliance, memory,
telemetry, SLO) are computed once (`index.FleetIndex.prepare`); only capacity, quota and budget
are re-checked against what the batch took, as array comparisons. The decisions are exactly those
of the straightforward `reference.place_batch`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np

from reasoning_plane.hysteresis import choose_with_hysteresis
from reasoning_plane.index import FleetIndex, Prepared, fleet_index
from reasoning_plane.model import Candidate, Decision, Snapshot, WorkloadRequest
from reasoning_plane.placement import best_of, decide
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import Taken, capacity_tiers


def _remaining(index: FleetIndex, taken: Taken):
    """CPU slots per cluster, quota and budget per team left after ``taken`` (bounds of the
    integer program; GPU capacity per pool: `constraints.capacity_tiers`)."""
    snapshot = index.snapshot
    cpu = {c.name: c.cpu_slots - int(taken.cpu[i]) for i, c in enumerate(snapshot.fleet.clusters)}
    quota = {
        t: q.gpus - snapshot.usage_of(t).gpus_held - taken.team_gpus.get(t, 0)
        for t, q in snapshot.quotas.items()
    }
    budget = {}
    for team, b in snapshot.budgets.items():
        u = snapshot.usage_of(team)
        budget[team] = b.limit_usd - u.spent_usd - u.reserved_usd - taken.team_usd.get(team, 0.0)
    return cpu, quota, budget


def _exact(
    tier: Sequence[WorkloadRequest],
    prepared: dict[str, Prepared],
    options: dict[str, np.ndarray],
    index: FleetIndex,
    taken: Taken,
) -> dict[str, int] | None:
    """The integer program; returns the chosen candidate (its position) per request, or None
    when the solver found no solution within ``policy.exact_time_limit_s``."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csc_array

    pairs: list[tuple[WorkloadRequest, int]] = []
    scores_l: list[float] = []
    usd_l: list[float] = []
    for r in tier:
        prep = prepared[r.request_id]
        picked = options[r.request_id]
        pairs += [(r, k) for k in picked.tolist()]
        scores_l += prep.score[picked].tolist()
        usd_l += prep.total[picked].tolist()
    if not pairs:
        return {}
    n = len(pairs)
    scores = np.array(scores_l)
    big = float(np.abs(scores).sum()) + 1.0
    objective = scores - big  # each placement is worth `big`: maximise count, then min score
    rows = _Rows()
    _constraints(rows, pairs, usd_l, prepared, index, taken)
    matrix = csc_array(
        (np.array(rows.data, dtype=np.float64), (np.array(rows.rows), np.array(rows.cols))),
        shape=(len(rows.upper), n),
    )
    result = milp(
        c=objective,
        constraints=LinearConstraint(matrix, -np.inf, np.array(rows.upper)),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": index.policy.exact_time_limit_s},
    )
    if result.x is None:  # no integer solution found in time
        return None
    return {pairs[i][0].request_id: pairs[i][1] for i in range(n) if result.x[i] > 0.5}


@dataclass
class _Rows:
    """The integer program's constraint matrix, row by row (sparse), and each row's bound."""

    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    data: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)

    def add(self, indices: list[int], weights: list[float], bound: float) -> None:
        row = len(self.upper)
        for i, w in zip(indices, weights, strict=True):
            if w != 0:  # as a dense row turned sparse: zeros are not stored
                self.rows.append(row)
                self.cols.append(i)
                self.data.append(float(w))
        self.upper.append(bound)


def _constraints(
    rows: _Rows,
    pairs: list[tuple[WorkloadRequest, int]],
    usd: list[float],
    prepared: dict[str, Prepared],
    index: FleetIndex,
    taken: Taken,
) -> None:
    """At most one candidate per request; free GPUs per pool (per memory tier), CPU slots per
    cluster, each team's remaining quota and budget, after what ``taken`` holds."""
    by_request: dict[str, list[int]] = defaultdict(list)
    by_pool: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_cpu: dict[str, list[int]] = defaultdict(list)
    by_team_gpu: dict[str, list[int]] = defaultdict(list)
    by_team_usd: dict[str, list[int]] = defaultdict(list)
    by_namespace: dict[tuple[str, str], list[int]] = defaultdict(list)  # live quotas
    fleet = index.snapshot.fleet
    for i, (r, k) in enumerate(pairs):
        by_request[r.request_id].append(i)
        candidate = prepared[r.request_id].table.candidates[k]
        if not prepared[r.request_id].table.gpu[k]:
            by_cpu[candidate.cluster].append(i)
        else:
            by_pool[(candidate.cluster, candidate.gpu_type)].append(i)
            cluster = fleet.get(candidate.cluster)
            if cluster is not None and cluster.quotas is not None:
                by_namespace[(cluster.name, cluster.namespace(r.team))].append(i)
            else:
                by_team_gpu[r.team].append(i)
        by_team_usd[r.team].append(i)
    cpu, quota, budget = _remaining(index, taken)
    for (name, namespace), idx in by_namespace.items():
        live = index.snapshot.cluster_quotas.get((name, namespace))
        if live is None:
            continue  # unknown or absent: the rules leave these pairs out of the options
        cluster = fleet.get(name)
        took = sum(
            n
            for (c, team), n in taken.cluster_team_gpus.items()
            if c == name and cluster is not None and cluster.namespace(team) == namespace
        )
        room = live.gpus - (live.used or 0) - took
        rows.add(idx, [pairs[i][0].gpu_count for i in idx], room)
    for idx in by_request.values():
        rows.add(idx, [1.0] * len(idx), 1.0)
    for key, idx in by_pool.items():
        pool = index.pool_ids.get(key)
        took = int(taken.pool[pool]) if pool is not None else 0
        needs = [pairs[i][0].gpu_memory_gb for i in idx]
        for threshold, fit in capacity_tiers(index.snapshot.telemetry.get(key), needs):
            tier = [i for i in idx if pairs[i][0].gpu_memory_gb >= threshold]
            rows.add(tier, [pairs[i][0].gpu_count for i in tier], fit - took)
    for cluster, idx in by_cpu.items():
        rows.add(idx, [1.0] * len(idx), cpu.get(cluster, 0))
    for team, idx in by_team_gpu.items():
        if team in quota:
            rows.add(idx, [pairs[i][0].gpu_count for i in idx], quota[team])
    for team, idx in by_team_usd.items():
        if team in budget:
            rows.add(idx, [usd[i] for i in idx], budget[team])


def _greedy(
    tier: Sequence[WorkloadRequest], prepared: dict[str, Prepared], options: dict[str, np.ndarray]
) -> dict[str, int]:
    """Cheapest candidate first; the verify pass resolves contention."""
    plan = {}
    for r in tier:
        picked = options[r.request_id]
        if picked.size:
            plan[r.request_id] = int(picked[np.argmin(prepared[r.request_id].score[picked])])
    return plan


def place_batch(
    requests: Sequence[WorkloadRequest], snapshot: Snapshot, policy: PlacementPolicy
) -> list[Decision]:
    """Decisions for all requests, jointly feasible, in priority order (highest first)."""
    ids = [r.request_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("request ids in a batch must be unique")
    return _place_batch(requests, snapshot, policy)


def _place_batch(
    requests: Sequence[WorkloadRequest], snapshot: Snapshot, policy: PlacementPolicy
) -> list[Decision]:
    index = fleet_index(snapshot, policy)
    taken = index.taken()
    decisions: list[Decision] = []
    ordered = sorted(requests, key=lambda r: (-r.priority, r.request_id))
    for _, tier_iter in groupby(ordered, key=lambda r: r.priority):
        tier = list(tier_iter)
        prepared = {r.request_id: index.prepare(r) for r in tier}
        options = {
            rid: np.flatnonzero(index.feasible(prep, taken)) for rid, prep in prepared.items()
        }
        n_pairs = sum(len(v) for v in options.values())
        plan = (
            _exact(tier, prepared, options, index, taken)
            if n_pairs <= policy.exact_max_pairs
            else None
        )
        if plan is None:
            plan = _greedy(tier, prepared, options)
        # The plan's requests first: the plan is jointly feasible, and what it left out only
        # takes what is left (it must not push planned ones out). Then fewest options first,
        # so the greedy path leaves room for the constrained requests.
        for request in sorted(tier, key=lambda r: _recheck_order(r, plan, options)):
            prep = prepared.pop(request.request_id)
            decision = _recheck(request, prep, plan.get(request.request_id), options, index, taken)
            if decision.chosen is not None:
                k = decision.evaluations.position_of(decision.chosen)
                assert k is not None
                _take(prep, k, decision.evaluations[k].cost.total_usd, taken)
            decisions.append(decision)
    return decisions


def _recheck(
    request: WorkloadRequest,
    prep: Prepared,
    wanted: int | None,
    options: dict[str, np.ndarray],
    index: FleetIndex,
    taken: Taken,
) -> Decision:
    """The decision on ``request`` against what the batch took so far: the planned candidate
    when it still passes every rule, else the cheapest that does; none left is a deferral
    when the request had options at the start of its tier."""
    snapshot, policy = index.snapshot, index.policy
    evaluations, hints = index.evaluations(prep, taken)
    feasible = hints.feasible
    chosen: Candidate | None = None
    if wanted is not None and evaluations.feasible_mask()[wanted]:
        chosen = evaluations.candidate_at(wanted)
    elif feasible.size:
        chosen = evaluations.candidate_at(best_of(evaluations, feasible, hints.scores))
    if chosen is None and len(options[request.request_id]):
        lowest = evaluations[int(np.argmin(hints.scores))]  # the first lowest
        reason = (
            "deferred: capacity, quota or budget left after higher-priority and "
            "cheaper placements of this batch is not enough; "
            + "; ".join(f"{r.rule}: {r.message}" for r in lowest.rejections)
        )
        return decide(request, evaluations, hints, snapshot, policy, reason=reason)
    reason = None
    if chosen is not None:
        chosen, reason = choose_with_hysteresis(request, evaluations, chosen, snapshot, policy)
    return decide(request, evaluations, hints, snapshot, policy, chosen=chosen, reason=reason)


def _take(prep: Prepared, k: int, usd: float, taken: Taken) -> None:
    """What candidate ``k`` of ``prep`` takes from the batch's capacity, quota and budget."""
    request, table = prep.request, prep.table
    if not table.gpu[k]:
        taken.cpu[table.cpu_id[k]] += 1
    else:
        taken.pool[table.pool_id[k]] += request.gpu_count
        team = request.team
        taken.team_gpus[team] = taken.team_gpus.get(team, 0) + request.gpu_count
        where = (table.names[k], team)
        taken.cluster_team_gpus[where] = taken.cluster_team_gpus.get(where, 0) + request.gpu_count
    taken.team_usd[request.team] = taken.team_usd.get(request.team, 0.0) + usd


def _recheck_order(request: WorkloadRequest, plan: dict, options: dict) -> tuple:
    """The re-check order of a tier: planned requests, then fewest options, then id."""
    rid = request.request_id
    return (rid not in plan, len(options[rid]), rid)
