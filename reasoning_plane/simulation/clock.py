"""The event loop: 30-s ticks, running jobs, the ledger, deferral and expiry."""

from __future__ import annotations

import heapq
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from reasoning_plane.model import (
    PLACED,
    REJECTED,
    Snapshot,
    TeamUsage,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.simulation.baselines import BatchPolicy
from reasoning_plane.simulation.metrics import Placement, _make_placement
from reasoning_plane.simulation.scenario import EPOCH, Scenario

TICK_S = 30.0
DEADLINE_S = 6 * 3600.0


@dataclass
class _Pending:
    arrival_s: float
    request: WorkloadRequest


class _Clock:
    """The simulator's state between ticks: GPUs held, the ledger, running and pending work."""

    def __init__(self, scenario: Scenario, policy: PlacementPolicy, deadline_s: float) -> None:
        self.scenario, self.policy, self.deadline_s = scenario, policy, deadline_s
        self.trace = sorted(scenario.trace, key=lambda tr: (tr.arrival_s, tr.request.request_id))
        self.by_id = {tr.request.request_id: tr for tr in self.trace}
        self.pools = {
            (c.name, p.gpu_type): (c, p) for c in scenario.fleet.clusters for p in c.pools
        }
        self.held = {key: scenario.background.get(key, 0) for key in self.pools}
        self.team_gpus: dict[str, int] = defaultdict(int)
        self.reserved: dict[str, float] = defaultdict(float)
        self.spent: dict[str, float] = defaultdict(float)
        self.running: list[tuple[float, int, Placement]] = []  # heap by end
        self.placements: list[Placement] = []
        self.pending: list[_Pending] = []
        self.deferred: set[str] = set()
        self.expired: set[str] = set()
        self.rejected: set[str] = set()
        self.decide_s = 0.0
        self.nxt = 0  # next trace entry to arrive

    def advance(self, t: float) -> bool:
        """Release jobs ended by ``t``, admit arrivals, expire the overdue: whether any did."""
        changed = False
        while self.running and self.running[0][0] <= t:
            _, _, job = heapq.heappop(self.running)
            self.held[(job.cluster, job.gpu_type)] -= job.gpu_count
            self.team_gpus[job.team] -= job.gpu_count
            self.reserved[job.team] -= job.cost_usd
            self.spent[job.team] += job.cost_usd
            changed = True
        while self.nxt < len(self.trace) and self.trace[self.nxt].arrival_s <= t:
            self.pending.append(
                _Pending(self.trace[self.nxt].arrival_s, self.trace[self.nxt].request)
            )
            self.nxt += 1
            changed = True
        alive = [p for p in self.pending if t <= p.arrival_s + self.deadline_s]
        if len(alive) < len(self.pending):
            self.expired.update(p.request.request_id for p in self.pending if p not in alive)
            self.pending = alive
            changed = True
        return changed

    def snapshot(self, t: float) -> Snapshot:
        """What the sensors would see at ``t``: fresh telemetry from the clock's own state."""
        now = EPOCH + timedelta(seconds=t)
        held = self.held
        telemetry = {
            key: TelemetrySample(c.name, p.gpu_type, p.total - held[key], held[key] / p.total, now)
            for key, (c, p) in self.pools.items()
        }
        s = self.scenario
        teams = set(self.team_gpus) | set(self.spent) | set(s.quotas) | set(s.budgets)
        usage = {
            team: TeamUsage(
                team, self.team_gpus[team], max(self.reserved[team], 0.0), self.spent[team]
            )
            for team in teams
        }
        return Snapshot(s.fleet, s.quotas, s.budgets, usage, telemetry, s.catalog, now)

    def decide(self, t: float, batch_policy: BatchPolicy) -> bool:
        """Ask the policy about every pending request; start the placed ones: whether any."""
        snapshot = self.snapshot(t)
        started = time.perf_counter()
        outcomes = batch_policy([p.request for p in self.pending], snapshot, self.policy)
        self.decide_s += time.perf_counter() - started
        still: list[_Pending] = []
        placed_any = False
        for p, outcome in zip(self.pending, outcomes, strict=True):
            rid = p.request.request_id
            if outcome.status == PLACED and outcome.candidate is not None:
                self.start(
                    rid, (outcome.candidate.cluster, outcome.candidate.gpu_type), t, snapshot
                )
                placed_any = True
            elif outcome.status == REJECTED:
                self.rejected.add(rid)
            else:
                self.deferred.add(rid)
                still.append(p)
        self.pending = still
        return placed_any

    def start(self, rid: str, key: tuple[str, str], t: float, snapshot: Snapshot) -> None:
        cluster, pool = self.pools[key]
        job = _make_placement(
            self.by_id[rid], cluster, pool, t, self.scenario.catalog, snapshot, self.policy
        )
        self.placements.append(job)
        heapq.heappush(self.running, (job.end_s, len(self.placements), job))
        self.held[key] += job.gpu_count
        self.team_gpus[job.team] += job.gpu_count
        self.reserved[job.team] += job.cost_usd

    def next_event(self) -> float | None:
        """The time of the next arrival, job end or expiry; None when nothing is left to place."""
        if not self.pending and self.nxt == len(self.trace):
            return None  # running jobs only release GPUs
        events = [self.trace[self.nxt].arrival_s] if self.nxt < len(self.trace) else []
        if self.running:
            events.append(self.running[0][0])
        if self.pending:
            events.append(min(p.arrival_s for p in self.pending) + self.deadline_s + 1e-6)
        return min(events)


def _run_clock(
    scenario: Scenario, batch_policy: BatchPolicy, policy: PlacementPolicy, tick_s, deadline_s
):
    """(placements, deferred ids, expired ids, rejected ids, decide seconds).

    A tick in which nothing changed would decide as the previous one, so the clock jumps to the
    first tick at or after the next event.
    """
    clock = _Clock(scenario, policy, deadline_s)
    t = 0.0
    changed = True
    while clock.nxt < len(clock.trace) or clock.pending:
        changed = clock.advance(t) or changed
        if clock.pending and changed:
            changed = clock.decide(t, batch_policy)
        if changed and clock.pending:
            t += tick_s
            continue
        event = clock.next_event()
        if event is None:
            break
        t = max(t + tick_s, math.ceil(event / tick_s) * tick_s)
    return clock.placements, clock.deferred, clock.expired, clock.rejected, clock.decide_s
