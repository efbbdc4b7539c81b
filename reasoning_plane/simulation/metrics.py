"""What every policy is measured by: placements, violations, cost per 1,000, utilisation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import numpy as np

from data_plane.catalog import CatalogRecord
from reasoning_plane import rules
from reasoning_plane.model import (
    Candidate,
    Cluster,
    GpuPool,
    Snapshot,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.placement import cost_of
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.simulation.scenario import EPOCH, Scenario, TimedRequest


@dataclass(frozen=True)
class Placement:
    request_id: str
    team: str
    cluster: str
    gpu_type: str
    gpu_count: int
    arrival_s: float
    start_s: float
    end_s: float
    cost_usd: float
    gpu_usd: float
    egress_usd: float


@dataclass(frozen=True)
class SimResult:
    policy: str
    scenario: str
    seed: int
    requests: int
    placed: int
    deferred: int
    expired: int
    rejected: int
    total_cost_usd: float
    gpu_usd: float
    egress_usd: float
    cost_per_1000_usd: float
    unit: str
    residency_violations: int
    compliance_violations: int
    slo_misses: int
    quota_violations: int
    budget_overruns: int
    capacity_overbooked: int
    mean_wait_s: float
    utilisation: Mapping[str, float]
    decide_s: float
    wall_s: float
    placements: tuple[Placement, ...] = ()
    lower_bound_usd: float | None = None  # hindsight: proven lower bound on the total cost
    notes: str = ""

    @property
    def violations(self) -> int:
        return (
            self.residency_violations
            + self.compliance_violations
            + self.quota_violations
            + self.budget_overruns
            + self.capacity_overbooked
        )

    def to_dict(self, placements: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in SimResult.__dataclass_fields__
            if k not in ("placements", "utilisation")
        }
        for k in ("total_cost_usd", "gpu_usd", "egress_usd", "cost_per_1000_usd"):
            out[k] = round(out[k], 4)
        if self.lower_bound_usd is not None:
            out["lower_bound_usd"] = round(self.lower_bound_usd, 4)
        out["decide_s"] = round(self.decide_s, 3)
        out["wall_s"] = round(self.wall_s, 3)
        out["mean_wait_s"] = round(self.mean_wait_s, 1)
        out["utilisation"] = {k: round(v, 4) for k, v in self.utilisation.items()}
        if placements:
            out["placements"] = [p.__dict__ for p in self.placements]
        return out


def _make_placement(
    tr: TimedRequest,
    cluster: Cluster,
    pool: GpuPool,
    start_s: float,
    catalog: Mapping[str, CatalogRecord],
    snapshot: Snapshot,
    policy: PlacementPolicy,
) -> Placement:
    r = tr.request
    breakdown = cost_of(r, Candidate(cluster.name, pool.gpu_type), snapshot, policy)
    return Placement(
        request_id=r.request_id,
        team=r.team,
        cluster=cluster.name,
        gpu_type=pool.gpu_type,
        gpu_count=r.gpu_count,
        arrival_s=tr.arrival_s,
        start_s=start_s,
        end_s=start_s + breakdown.duration_s,
        cost_usd=breakdown.total_usd,
        gpu_usd=breakdown.gpu_usd,
        egress_usd=breakdown.egress_usd,
    )


def _audit(
    request: WorkloadRequest,
    cluster: Cluster,
    catalog: Mapping[str, CatalogRecord],
    policy: PlacementPolicy,
) -> tuple[bool, bool]:
    """(residency violated, compliance violated) of running ``request`` on ``cluster``: the
    governance rules themselves (`rules.py`), applied to a placement after the fact."""
    residency, compliance = rules.governance_on(request.datasets, catalog, cluster, policy)
    return bool(residency), bool(compliance)


def _held_at(starts: np.ndarray, ends: np.ndarray, gpus: np.ndarray, at: float, strict: bool):
    began = starts < at if strict else starts <= at
    return float(gpus[began & (ends > at)].sum())


class _Violations(NamedTuple):
    residency: int
    compliance: int
    slo: int
    quota: int
    budget: int
    overbooked: int


def _violations(
    scenario: Scenario, placements: Sequence[Placement], policy: PlacementPolicy
) -> _Violations:
    """Rule breaches of ``placements`` (sorted by start), audited independently of the rules."""
    fleet, catalog = scenario.fleet, scenario.catalog
    by_id = {tr.request.request_id: tr.request for tr in scenario.trace}
    pools = {(c.name, p.gpu_type): (c, p) for c in fleet.clusters for p in c.pools}
    starts = np.array([p.start_s for p in placements])
    ends = np.array([p.end_s for p in placements])
    gpus = np.array([p.gpu_count for p in placements], dtype=float)
    keys = [(p.cluster, p.gpu_type) for p in placements]
    teams = np.array([p.team for p in placements])
    residency = compliance = slo = quota_v = budget_v = overbooked = 0
    spend: dict[str, float] = defaultdict(float)
    pool_mask = {k: np.array([key == k for key in keys], dtype=bool) for k in pools}
    team_mask = {t: teams == t for t in set(teams.tolist())}
    for p in placements:
        request = by_id[p.request_id]
        cluster, pool = pools[(p.cluster, p.gpu_type)]
        bad_res, bad_comp = _audit(request, cluster, catalog, policy)
        residency += bad_res
        compliance += bad_comp
        bg = scenario.background.get((p.cluster, p.gpu_type), 0)
        m = pool_mask[(p.cluster, p.gpu_type)]
        before = bg + _held_at(starts[m], ends[m], gpus[m], p.start_s, strict=True)
        if request.latency_slo_ms is not None:
            now = EPOCH + timedelta(seconds=p.start_s)
            sample = TelemetrySample(p.cluster, p.gpu_type, 0, before / pool.total, now)
            snap = Snapshot(fleet, {}, {}, {}, {(p.cluster, p.gpu_type): sample}, catalog, now)
            latency = cost_of(request, Candidate(p.cluster, p.gpu_type), snap, policy).latency_ms
            slo += latency > request.latency_slo_ms + 1e-9
        overbooked += bg + _held_at(starts[m], ends[m], gpus[m], p.start_s, False) > pool.total
        q = scenario.quotas.get(p.team)
        tm = team_mask[p.team]
        held = _held_at(starts[tm], ends[tm], gpus[tm], p.start_s, strict=False)
        quota_v += held > (q.gpus if q else 0)
        spend[p.team] += p.cost_usd
        b = scenario.budgets.get(p.team)
        budget_v += spend[p.team] > (b.limit_usd if b else 0.0) + 1e-6
    return _Violations(residency, compliance, slo, quota_v, budget_v, overbooked)


def _utilisation(scenario: Scenario, placements: Sequence[Placement]) -> dict[str, float]:
    """Per pool: GPU-seconds held (jobs and background) within the horizon / (GPUs x horizon)."""
    pools = {(c.name, p.gpu_type): p for c in scenario.fleet.clusters for p in c.pools}
    horizon = scenario.hours * 3600.0
    use: dict[tuple[str, str], float] = {k: 0.0 for k in pools}
    for p in placements:
        use[(p.cluster, p.gpu_type)] += p.gpu_count * max(
            0.0, min(p.end_s, horizon) - min(p.start_s, horizon)
        )
    utilisation = {}
    for key, pool in pools.items():
        bg = scenario.background.get(key, 0) * horizon
        utilisation[f"{key[0]}/{key[1]}"] = (use[key] + bg) / (pool.total * horizon)
    return utilisation


def _result(
    name: str,
    scenario: Scenario,
    seed: int,
    placements: Sequence[Placement],
    deferred: Iterable[str],
    expired: Iterable[str],
    rejected: Iterable[str],
    decide_s: float,
    wall_s: float,
    policy: PlacementPolicy,
    notes: str = "",
    lower_bound_usd: float | None = None,
) -> SimResult:
    placements = sorted(placements, key=lambda p: (p.start_s, p.request_id))
    v = _violations(scenario, placements, policy)
    total = sum(p.cost_usd for p in placements)
    units = len(placements) * scenario.requests_per_workload
    placed_ids = {p.request_id for p in placements}
    waits = [p.start_s - p.arrival_s for p in placements]
    return SimResult(
        policy=name,
        scenario=scenario.name,
        seed=seed,
        requests=len(scenario.trace),
        placed=len(placements),
        deferred=len(set(deferred)),
        expired=len(set(expired) - placed_ids),
        rejected=len(set(rejected) - placed_ids),
        total_cost_usd=total,
        gpu_usd=sum(p.gpu_usd for p in placements),
        egress_usd=sum(p.egress_usd for p in placements),
        cost_per_1000_usd=total / units * 1000 if units else 0.0,
        unit=scenario.unit,
        residency_violations=v.residency,
        compliance_violations=v.compliance,
        slo_misses=v.slo,
        quota_violations=v.quota,
        budget_overruns=v.budget,
        capacity_overbooked=v.overbooked,
        mean_wait_s=float(np.mean(waits)) if waits else 0.0,
        utilisation=_utilisation(scenario, placements),
        decide_s=decide_s,
        wall_s=wall_s,
        placements=tuple(placements),
        lower_bound_usd=lower_bound_usd,
        notes=notes,
    )


def summary(results: Mapping[str, SimResult]) -> dict[str, float | None]:
    """Fractions: plane's cost per 1,000 below naive's, above hindsight's, above the lower bound.

    Hindsight places exactly the requests plane placed, so its gaps compare equal sets.
    """
    plane, naive, best = results.get("plane"), results.get("naive"), results.get("hindsight")
    out: dict[str, float | None] = {
        "plane_vs_naive": None,
        "plane_vs_hindsight": None,
        "plane_vs_lower_bound": None,
    }
    if plane and naive and naive.cost_per_1000_usd > 0:
        out["plane_vs_naive"] = 1 - plane.cost_per_1000_usd / naive.cost_per_1000_usd
    if plane and best and best.cost_per_1000_usd > 0:
        out["plane_vs_hindsight"] = plane.cost_per_1000_usd / best.cost_per_1000_usd - 1
    if plane and best and best.lower_bound_usd:
        out["plane_vs_lower_bound"] = plane.total_cost_usd / best.lower_bound_usd - 1
    return out
