"""Entry points: ``simulate``, ``simulate_scenario`` and ``compare``."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from data_plane.catalog import CatalogRecord
from reasoning_plane.model import Budget, Fleet, TeamQuota
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.simulation.baselines import BATCH_POLICIES
from reasoning_plane.simulation.clock import DEADLINE_S, TICK_S, _run_clock
from reasoning_plane.simulation.hindsight import (
    HINDSIGHT_DELAYS_S,
    HINDSIGHT_MAX_VARIABLES,
    HINDSIGHT_TIME_LIMIT_S,
    HINDSIGHT_WINDOW_S,
    SLOT_S,
    _hindsight,
)
from reasoning_plane.simulation.metrics import SimResult, _result
from reasoning_plane.simulation.scenario import Scenario, TimedRequest

POLICIES = ("naive", "greedy", "plane", "hindsight")


def simulate(
    trace: Sequence[TimedRequest],
    fleet: Fleet,
    quotas: Mapping[str, TeamQuota],
    budgets: Mapping[str, Budget],
    catalog: Mapping[str, CatalogRecord],
    policy_name: str,
    seed: int = 0,
    *,
    background: Mapping[tuple[str, str], int] | None = None,
    hours: float | None = None,
    requests_per_workload: int = 1,
    unit: str = "1,000 placed workload requests",
    name: str = "trace",
    policy: PlacementPolicy | None = None,
    tick_s: float = TICK_S,
    deadline_s: float = DEADLINE_S,
    reference: SimResult | None = None,
) -> SimResult:
    """Replay ``trace`` through ``policy_name`` (one of ``POLICIES``); see the module docstring.

    ``seed`` is recorded in the result (the clock itself is deterministic). ``hindsight`` places
    the requests ``reference`` (a ``plane`` result on the same trace) placed; without it, the
    plane is simulated first.
    """
    last = max((tr.arrival_s for tr in trace), default=0.0)
    scenario = Scenario(
        name=name,
        fleet=fleet,
        trace=tuple(trace),
        catalog=catalog,
        quotas=quotas,
        budgets=budgets,
        hours=hours if hours is not None else max(last / 3600.0, 1e-9),
        background=dict(background or {}),
        requests_per_workload=requests_per_workload,
        unit=unit,
    )
    return simulate_scenario(
        scenario,
        policy_name,
        seed,
        policy=policy,
        tick_s=tick_s,
        deadline_s=deadline_s,
        reference=reference,
    )


def simulate_scenario(
    scenario: Scenario,
    policy_name: str,
    seed: int = 0,
    *,
    policy: PlacementPolicy | None = None,
    tick_s: float = TICK_S,
    deadline_s: float = DEADLINE_S,
    reference: SimResult | None = None,
    hindsight_delays_s: Sequence[float] = HINDSIGHT_DELAYS_S,
    hindsight_max_variables: int = HINDSIGHT_MAX_VARIABLES,
    hindsight_window_s: float = HINDSIGHT_WINDOW_S,
    hindsight_time_limit_s: float = HINDSIGHT_TIME_LIMIT_S,
) -> SimResult:
    """``simulate`` on a ``Scenario``."""
    policy = policy or PlacementPolicy()
    started = time.perf_counter()
    if policy_name == "hindsight":
        if reference is None:
            reference = simulate_scenario(
                scenario, "plane", seed, policy=policy, tick_s=tick_s, deadline_s=deadline_s
            )
        t0 = time.perf_counter()
        placements, bound, notes = _hindsight(
            scenario,
            policy,
            reference.placements,
            deadline_s,
            hindsight_delays_s,
            SLOT_S,
            hindsight_max_variables,
            hindsight_window_s,
            hindsight_time_limit_s,
        )
        decide_s = time.perf_counter() - t0
        placed = {p.request_id for p in placements}
        not_placed = [tr.request.request_id for tr in scenario.trace if tr.request.request_id
                      not in placed]  # fmt: skip
        return _result(
            "hindsight",
            scenario,
            seed,
            placements,
            (),
            (),
            not_placed,
            decide_s,
            time.perf_counter() - started,
            policy,
            notes + f"; places the {reference.placed} requests plane placed",
            None if math.isnan(bound) else bound,
        )
    if policy_name not in BATCH_POLICIES:
        raise ValueError(f"unknown policy {policy_name!r}; choose from {list(POLICIES)}")
    placements, deferred, expired, rejected, decide_s = _run_clock(
        scenario, BATCH_POLICIES[policy_name], policy, tick_s, deadline_s
    )
    return _result(
        policy_name,
        scenario,
        seed,
        placements,
        deferred,
        expired,
        rejected,
        decide_s,
        time.perf_counter() - started,
        policy,
    )


def compare(
    scenario: Scenario,
    policies: Sequence[str] = POLICIES,
    seed: int = 0,
    policy: PlacementPolicy | None = None,
) -> dict[str, SimResult]:
    """Every policy in ``policies`` on ``scenario`` (plane first when hindsight needs it)."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; choose from {list(POLICIES)}")
    results: dict[str, SimResult] = {}
    order = sorted(policies, key=lambda p: POLICIES.index(p))
    for name in order:
        ref = results.get("plane")
        if name == "hindsight" and ref is None:
            ref = simulate_scenario(scenario, "plane", seed, policy=policy)
        results[name] = simulate_scenario(scenario, name, seed, policy=policy, reference=ref)
    return {p: results[p] for p in policies}
