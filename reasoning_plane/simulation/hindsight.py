"""The hindsight bound: one integer program over the whole trace (scipy HiGHS ``milp``)."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from reasoning_plane.model import CPU, Snapshot, WorkloadRequest
from reasoning_plane.placement import evaluate
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.simulation.metrics import Placement, _make_placement
from reasoning_plane.simulation.scenario import Scenario, _static_snapshot

SLOT_S = 300.0  # hindsight's time slot
HINDSIGHT_DELAYS_S = (0.0,)  # start choices besides plane's own start (seconds after arrival)
HINDSIGHT_MAX_VARIABLES = 150_000  # above this, the program is solved in time windows
HINDSIGHT_WINDOW_S = 4 * 3600.0
HINDSIGHT_TIME_LIMIT_S = 30.0


class _Option(NamedTuple):
    target: int  # index into the targets
    pool: tuple[str, str]
    start_s: float
    end_s: float
    cost_usd: float


@dataclass
class _Solve:
    """Outcome of one window's program."""

    chosen: list[int]  # option indices (local to the window)
    lp_bound: float  # the LP relaxation's optimum: a lower bound on the window's cost
    status: str
    fallback: bool = False  # could not place every target: placements were maximised first


def _solve_window(costs, a, lower, upper, n_targets: int, time_limit_s: float) -> _Solve:
    """Minimum-cost assignment: LP relaxation, then the MILP restricted to what the LP left open.

    Options the LP sets to 1 are fixed, options of requests the LP splits stay free; if that
    restricted program has no integer solution, the full MILP is solved (HiGHS, ``time_limit_s``).
    If the targets cannot all be placed, placements are maximised first, then cost minimised.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    n = len(costs)
    ones = np.ones(n)
    constraint = LinearConstraint(a, lower, upper)
    lp = milp(c=costs, constraints=constraint, integrality=np.zeros(n), bounds=Bounds(0, 1))
    fallback = False
    if lp.x is None:  # not every target fits: maximise the number placed, then the cost
        fallback = True
        lower = lower.copy()
        lower[:n_targets] = 0.0
        most = milp(
            c=-ones,
            constraints=LinearConstraint(a, lower, upper),
            integrality=ones,
            bounds=Bounds(0, 1),
            options={"time_limit": time_limit_s},
        )
        count = round(-most.fun) if most.x is not None else 0
        constraint = [
            LinearConstraint(a, lower, upper),
            LinearConstraint(ones.reshape(1, -1), count - 0.5, np.inf),
        ]
        lp = milp(c=costs, constraints=constraint, integrality=np.zeros(n), bounds=Bounds(0, 1))
        if lp.x is None:
            return _Solve([], 0.0, f"infeasible ({lp.message})", True)
    target_rows = a[:n_targets].tocsr()
    split = np.zeros(n, dtype=bool)  # options of targets whose LP solution is fractional
    for row in range(n_targets):
        cols = target_rows.indices[target_rows.indptr[row] : target_rows.indptr[row + 1]]
        if np.any((lp.x[cols] > 1e-6) & (lp.x[cols] < 1 - 1e-6)):
            split[cols] = True
    keep = split | (lp.x > 1 - 1e-6)
    options = {"time_limit": time_limit_s, "mip_rel_gap": 1e-3}
    result = milp(
        c=costs,
        constraints=constraint,
        integrality=ones,
        bounds=Bounds(0, keep.astype(float)),
        options=options,
    )
    status = f"LP-fixed MILP on {int(split.sum())} open options"
    if result.x is None:
        result = milp(
            c=costs, constraints=constraint, integrality=ones, bounds=Bounds(0, 1), options=options
        )
        status = "full MILP"
    if result.x is None:
        return _Solve([], float(lp.fun), f"{status}: {result.message}", fallback)
    status += f" ({'optimal' if result.status == 0 else result.message})"
    return _Solve([j for j in range(n) if result.x[j] > 0.5], float(lp.fun), status, fallback)


def _options(
    policy: PlacementPolicy,
    targets: Sequence[Placement],
    requests: Sequence[WorkloadRequest],
    static: Snapshot,
    deadline_s: float,
    delays: Sequence[float],
) -> list[_Option]:
    """Every (target, pool allowed by the static rules, start) the program may choose."""
    options: list[_Option] = []
    for i, ref in enumerate(targets):
        arrival = ref.arrival_s
        starts = sorted({arrival + d for d in delays if d <= deadline_s} | {ref.start_s})
        for e in evaluate(requests[i], static, policy):
            if e.feasible and e.candidate.gpu_type != CPU:
                key = (e.candidate.cluster, e.candidate.gpu_type)
                for s in starts:
                    options.append(_Option(i, key, s, s + e.cost.duration_s, e.cost.total_usd))
    return options


class _Program:
    """The windows' programs and what earlier windows already took (GPU-slots, spend)."""

    def __init__(
        self,
        scenario: Scenario,
        targets: Sequence[Placement],
        requests: Sequence[WorkloadRequest],
        n_slots: int,
        slot_s: float,
        time_limit_s: float,
    ) -> None:
        self.scenario, self.targets, self.requests = scenario, targets, requests
        self.slot_s, self.time_limit_s = slot_s, time_limit_s
        pools = {(c.name, p.gpu_type): p for c in scenario.fleet.clusters for p in c.pools}
        self.capacity = {k: p.total - scenario.background.get(k, 0) for k, p in pools.items()}
        self.quota = {t: float(q.gpus) for t, q in scenario.quotas.items()}
        self.pool_load = {k: np.zeros(n_slots) for k in pools}
        self.team_load: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(n_slots))
        self.spend: dict[str, float] = defaultdict(float)
        self.chosen: list[_Option] = []
        self.bound, self.statuses, self.fallback = 0.0, [], False

    def occupancy(self, o: _Option) -> list[tuple[int, float]]:
        """(slot, GPUs x share of the slot) the option holds."""
        gpus, slot_s = self.requests[o.target].gpu_count, self.slot_s
        first, last = int(o.start_s // slot_s), math.ceil(o.end_s / slot_s)
        return [
            (j, gpus * (min(o.end_s, (j + 1) * slot_s) - max(o.start_s, j * slot_s)) / slot_s)
            for j in range(first, last)
        ]

    def _limit(self, kind: str, key: Any) -> float:
        if kind == "pool":
            return self.capacity[key[0]] - self.pool_load[key[0]][key[1]]
        if kind == "team":
            return self.quota[key[0]] - self.team_load[key[0]][key[1]]
        return self.scenario.budgets[key].limit_usd - self.spend[key]

    def matrix(self, local: Sequence[_Option], members: Sequence[int]):
        """(A, lower, upper): one row per target (exactly one option), then pool-slot,
        team-slot and budget rows at what earlier windows left."""
        from scipy.sparse import coo_array

        row_of_target = {t: r for r, t in enumerate(members)}
        rows, cols, vals, lower, upper = [], [], [], [1.0] * len(members), [1.0] * len(members)
        table: dict[tuple[str, Any], int] = {}
        cells: list[tuple[str, Any, int, float]] = []
        for j, o in enumerate(local):
            rows.append(row_of_target[o.target])
            cols.append(j)
            vals.append(1.0)
            team = self.requests[o.target].team
            for slot, share in self.occupancy(o):
                cells.append(("pool", (o.pool, slot), j, share))
                if team in self.quota:
                    cells.append(("team", (team, slot), j, share))
            if team in self.scenario.budgets:
                cells.append(("budget", team, j, o.cost_usd))
        for kind, key, j, value in cells:
            if (kind, key) not in table:
                table[(kind, key)] = len(lower)
                lower.append(-np.inf)
                upper.append(self._limit(kind, key) + 1e-9)
            rows.append(table[(kind, key)])
            cols.append(j)
            vals.append(value)
        a = coo_array((vals, (rows, cols)), shape=(len(lower), len(local))).tocsr()
        return a, np.array(lower), np.array(upper)

    def solve(self, local: Sequence[_Option]) -> None:
        """Solve one window and take what it chose."""
        members = sorted({o.target for o in local})
        a, lower, upper = self.matrix(local, members)
        # A tie-break of 1e-7 $/s of delay (between equal costs, start earlier), taken out of
        # the bound again at its largest.
        ties = np.array([1e-7 * (o.start_s - self.targets[o.target].arrival_s) for o in local])
        costs = np.array([o.cost_usd for o in local]) + ties
        solved = _solve_window(costs, a, lower, upper, len(members), self.time_limit_s)
        most_ties: dict[int, float] = defaultdict(float)
        for o, tie in zip(local, ties, strict=True):
            most_ties[o.target] = max(most_ties[o.target], float(tie))
        self.bound += solved.lp_bound - sum(most_ties.values())
        chosen, status = self._no_worse_than_reference(local, members, solved)
        self.statuses.append(status)
        self.fallback = self.fallback or solved.fallback
        for j in chosen:
            self.take(local[j])

    def _no_worse_than_reference(
        self, local: Sequence[_Option], members: Sequence[int], solved: _Solve
    ) -> tuple[list[int], str]:
        """The solver's choice, or the reference's own schedule (a feasible point of the same
        program) where the solver, stopped by its time limit, placed fewer or paid more."""
        own = [
            j
            for j, o in enumerate(local)
            if o.start_s == self.targets[o.target].start_s
            and o.pool == (self.targets[o.target].cluster, self.targets[o.target].gpu_type)
        ]
        if len({local[j].target for j in own}) != len(members) or len(own) != len(members):
            return solved.chosen, solved.status
        placed = len({local[j].target for j in solved.chosen})
        paid = sum(local[j].cost_usd for j in solved.chosen)
        if placed == len(members) and paid <= sum(local[j].cost_usd for j in own) + 1e-9:
            return solved.chosen, solved.status
        return own, f"{solved.status}; kept plane's own schedule, cheaper than the solver's"

    def take(self, o: _Option) -> None:
        self.chosen.append(o)
        team = self.requests[o.target].team
        for slot, share in self.occupancy(o):
            self.pool_load[o.pool][slot] += share
            if team in self.quota:
                self.team_load[team][slot] += share
        self.spend[team] += o.cost_usd


def _windows(options, targets, max_variables: int, window_s: float) -> list[tuple[float, float]]:
    if len(options) <= max_variables:
        return [(-math.inf, math.inf)]
    last = max(t.arrival_s for t in targets)
    windows = [(k * window_s, (k + 1) * window_s) for k in range(int(last // window_s) + 1)]
    windows[0] = (-math.inf, windows[0][1])
    return windows


def _hindsight(
    scenario: Scenario,
    policy: PlacementPolicy,
    reference: Sequence[Placement],
    deadline_s: float,
    delays: Sequence[float],
    slot_s: float,
    max_variables: int,
    window_s: float,
    time_limit_s: float,
) -> tuple[list[Placement], float, str]:
    """(placements, lower bound, notes): the cheapest schedule of ``reference``'s requests."""
    fleet, catalog = scenario.fleet, scenario.catalog
    static = _static_snapshot(
        fleet, scenario.quotas, scenario.budgets, catalog, scenario.background
    )
    by_id = {tr.request.request_id: tr for tr in scenario.trace}
    targets = sorted(reference, key=lambda p: (p.arrival_s, p.request_id))
    requests = [by_id[t.request_id].request for t in targets]
    options = _options(policy, targets, requests, static, deadline_s, delays)
    if not options:
        return [], 0.0, "hindsight: nothing to place"
    windows = _windows(options, targets, max_variables, window_s)
    n_slots = math.ceil(max(o.end_s for o in options) / slot_s) + 1
    program = _Program(scenario, targets, requests, n_slots, slot_s, time_limit_s)
    started = time.perf_counter()
    for lo, hi in windows:
        local = [o for o in options if lo <= targets[o.target].arrival_s < hi]
        if local:
            program.solve(local)
    solve_s = time.perf_counter() - started
    pools = {(c.name, p.gpu_type): (c, p) for c in fleet.clusters for p in c.pools}
    placements = []
    for o in sorted(program.chosen, key=lambda o: o.target):
        cluster, pool = pools[o.pool]
        tr = by_id[targets[o.target].request_id]
        placements.append(_make_placement(tr, cluster, pool, o.start_s, catalog, static, policy))
    windowed = (
        f"{len(windows)} windows of {window_s / 3600:g} h (program too big for one solve: "
        "each window sees the occupancy and spend of the earlier ones, so the sum of the windows' "
        "LP bounds is not a bound on the whole)"
        if len(windows) > 1
        else "one program over the whole trace"
    )
    bound, fallback = program.bound, program.fallback
    notes = (
        f"hindsight: {len(options)} options ({len(targets)} requests x feasible pools x starts "
        f"at +{', +'.join(f'{d / 60:g}' for d in delays)} min and plane's own start), "
        f"{slot_s / 60:g}-min slots, {windowed}; {'; '.join(sorted(set(program.statuses)))}"
        f"{'; could not place every request: placements maximised first' if fallback else ''}"
        f"; LP lower bound ${bound:,.2f}; solved in {solve_s:.1f} s"
    )
    return placements, (bound if len(windows) == 1 else math.nan), notes
