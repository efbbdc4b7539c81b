"""The oracle's hard constraints, one candidate at a time: each a named rule that rejects a
candidate with a reason, or passes it.

Rules are pure functions of (request, cluster, pool, snapshot, policy, batch state). A candidate
is feasible only when every rule passes; the reasons of all failing rules are kept, so the
explanation can say everything that was wrong with a cluster, not just the first thing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN, residency_parts
from reasoning_plane.model import (
    CPU,
    Cluster,
    GpuPool,
    Rejection,
    Snapshot,
    TeamQuota,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState

GOVERNANCE_RULES = ("residency", "compliance")  # a candidate passing these is "compliant"
TRANSIENT_RULES = (
    "gpu_capacity",
    "cpu_capacity",
    "quota",
    "budget",
    "telemetry_stale",
    "telemetry_missing",
    "telemetry_future",
    "excluded",
)


@dataclass(frozen=True)
class Context:
    request: WorkloadRequest
    cluster: Cluster
    pool: GpuPool | None  # None: a CPU candidate
    records: tuple[CatalogRecord, ...]
    missing_datasets: tuple[str, ...]
    snapshot: Snapshot
    policy: PlacementPolicy
    state: BatchState
    cost_usd: float

    @property
    def gpu_type(self) -> str:
        return self.pool.gpu_type if self.pool else CPU


Rule = Callable[[Context], Iterable[Rejection]]


def residency(ctx: Context) -> Iterable[Rejection]:
    """Every input's residency must allow the cluster's zone (fail closed on unknowns)."""
    for name in ctx.missing_datasets:
        yield Rejection(
            "residency",
            f"{name} has no governance catalog record: its residency "
            "is unknown, so no cluster may process it",
        )
    zone = ctx.cluster.zone
    for record in ctx.records:
        parts = residency_parts(record.data_residency)
        if UNKNOWN in parts:
            if not ctx.cluster.accepts_unknown_residency:
                yield Rejection(
                    "residency",
                    f"{record.dataset_id} has unknown residency; only "
                    "clusters marked accepts_unknown_residency may "
                    "process it",
                )
            continue
        strict = record.classification in ctx.policy.strict_classifications
        if not strict:
            if zone == UNKNOWN:
                yield Rejection("residency", f"cluster {ctx.cluster.name} has no known zone")
            continue
        if len(parts) > 1:
            yield Rejection(
                "residency",
                f"{record.dataset_id} is {record.classification} with "
                f"residency {record.data_residency}: no single zone "
                "satisfies every part",
            )
        elif zone not in parts:
            yield Rejection(
                "residency",
                f"{record.dataset_id} is {record.classification} with "
                f"residency {record.data_residency}; cluster zone is "
                f"{zone}",
            )


def compliance(ctx: Context) -> Iterable[Rejection]:
    """PII needs the certifications of the policy, GDPR data a GDPR-certified cluster."""
    have = ctx.cluster.certifications
    needed: dict[str, str] = {}
    for record in ctx.records:
        if record.classification in ("PII", UNKNOWN):
            for cert in ctx.policy.pii_certifications:
                needed.setdefault(cert, record.dataset_id)
        if record.gdpr_compliant:
            needed.setdefault(ctx.policy.gdpr_certification, record.dataset_id)
    for cert, dataset in sorted(needed.items()):
        if cert not in have:
            yield Rejection(
                "compliance",
                f"{dataset} requires a {cert}-certified cluster; "
                f"{ctx.cluster.name} has "
                f"{', '.join(sorted(have)) or 'no certification'}",
            )


def gpu_memory(ctx: Context) -> Iterable[Rejection]:
    if ctx.pool is None:
        return
    need = ctx.request.gpu_memory_gb
    if ctx.pool.memory_gb < need:
        yield Rejection(
            "gpu_memory",
            f"{ctx.pool.gpu_type} has {ctx.pool.memory_gb:g} GB per GPU, {need:g} GB needed",
        )
    sample = ctx.snapshot.telemetry.get((ctx.cluster.name, ctx.pool.gpu_type))
    if sample is not None and sample.free_memory_gb is not None and sample.free_memory_gb < need:
        yield Rejection(
            "gpu_memory",
            f"NVML reports {sample.free_memory_gb:g} GB free per GPU "
            f"on {ctx.cluster.name}/{ctx.pool.gpu_type}, {need:g} GB "
            "needed",
        )


def telemetry_problem(
    cluster: str,
    gpu_type: str,
    sample: TelemetrySample | None,
    now: datetime,
    policy: PlacementPolicy,
) -> Rejection | None:
    """Why a pool's newest sample cannot be trusted at ``now``, or None when it can.

    * no sample (``telemetry_missing``): the pool is not assumed idle;
    * observed later than ``now`` plus ``policy.max_clock_skew_s`` (``telemetry_future``): a
      sample from the future would stay the newest for as long as it claims, hiding every
      reservation made before its time;
    * observed, or received by the plane (``received_at``, when known), longer ago than
      ``policy.max_telemetry_age_s`` (``telemetry_stale``).

    The same for every request: `index.FleetIndex` computes it once per pool."""
    label = f"{cluster}/{gpu_type}"
    if sample is None:
        return Rejection("telemetry_missing", f"no telemetry for {label}; not assumed idle")
    age = (now - sample.observed_at).total_seconds()
    if -age > policy.max_clock_skew_s:
        return Rejection(
            "telemetry_future",
            f"telemetry of {label} is observed {-age:.0f} s ahead of the plane's clock (max "
            f"clock skew {policy.max_clock_skew_s:g} s); refused, not assumed idle",
        )
    if age > policy.max_telemetry_age_s:
        return Rejection(
            "telemetry_stale",
            f"telemetry of {label} is {age:.0f} s old (max "
            f"{policy.max_telemetry_age_s:g} s); not assumed idle",
        )
    if sample.received_at is not None:
        received = (now - sample.received_at).total_seconds()
        if received > policy.max_telemetry_age_s:
            return Rejection(
                "telemetry_stale",
                f"telemetry of {label} was received {received:.0f} s ago (max "
                f"{policy.max_telemetry_age_s:g} s); not assumed idle",
            )
    return None


def telemetry(ctx: Context) -> Iterable[Rejection]:
    """Never trust stale telemetry: a missing, old or future sample makes the pool ineligible."""
    if ctx.pool is None:
        return
    sample = ctx.snapshot.telemetry.get((ctx.cluster.name, ctx.pool.gpu_type))
    problem = telemetry_problem(
        ctx.cluster.name, ctx.pool.gpu_type, sample, ctx.snapshot.now, ctx.policy
    )
    if problem is not None:
        yield problem


def gpu_capacity(ctx: Context) -> Iterable[Rejection]:
    if ctx.pool is None:
        taken = ctx.state.cpu_slots.get(ctx.cluster.name, 0)
        if ctx.cluster.cpu_slots - taken < 1:
            yield Rejection(
                "cpu_capacity",
                f"{ctx.cluster.name} has no free CPU slot "
                f"({ctx.cluster.cpu_slots} slots, {taken} taken)",
            )
        return
    need = ctx.request.gpu_count
    if ctx.pool.total < need:  # can never fit here: not transient
        yield Rejection(
            "pool_size",
            f"{ctx.pool.gpu_type} pool has {ctx.pool.total} GPUs in all, {need} needed",
        )
        return
    sample = ctx.snapshot.telemetry.get((ctx.cluster.name, ctx.pool.gpu_type))
    if sample is None:
        return  # reported by the telemetry rule
    taken = ctx.state.gpus.get((ctx.cluster.name, ctx.pool.gpu_type), 0)
    if sample.free_memory_per_gpu_gb is None:  # free GPUs only: every one counts
        free = sample.free_gpus - taken
        if free < need:
            yield Rejection(
                "gpu_capacity",
                f"{free} GPUs free on {ctx.cluster.name}/"
                f"{ctx.pool.gpu_type} ({sample.free_gpus} reported, "
                f"{taken} taken by this batch), {need} needed",
            )
        return
    need_gb = ctx.request.gpu_memory_gb
    fit = free_gpus_for(sample, need_gb)
    if fit - taken < need:
        yield Rejection(
            "gpu_capacity",
            capacity_message(
                fit, sample.free_gpus, ctx.cluster.name, ctx.pool.gpu_type, need_gb, taken, need
            ),
        )


def free_gpus_for(sample: TelemetrySample, need_gb: float) -> int:
    """GPUs of ``sample``'s pool free for a request needing ``need_gb`` GB per GPU.

    With the free memory of each GPU (``free_memory_per_gpu_gb``, from NVML): the reported free
    GPUs, but no more than the GPUs with at least ``need_gb`` free (a GPU with 20 of 24 GB in use
    is not free for a 20 GB request). Without it (telemetry that gives only ``free_gpus``, e.g. a
    telemetry file): every reported free GPU, whatever the request's memory, as before; the
    pool's NVML free memory, when known, is still checked by `gpu_memory`.

    What a batch already took from the pool is then subtracted from this count whatever memory
    those requests needed (`gpu_capacity`): the batch never counts a GPU twice."""
    per_gpu = sample.free_memory_per_gpu_gb
    if per_gpu is None:
        return sample.free_gpus
    return min(sample.free_gpus, sum(1 for m in per_gpu if m >= need_gb))


def capacity_message(
    fit: int, reported: int, cluster: str, gpu_type: str, need_gb: float, taken: int, need: int
) -> str:
    """`gpu_capacity`'s message for a pool whose GPUs' free memory is known."""
    return (
        f"{fit} of {reported} reported free GPUs on {cluster}/{gpu_type} have >= {need_gb:g} GB "
        f"free, {taken} taken by this batch: {fit - taken} left, {need} needed"
    )


def capacity_tiers(
    sample: TelemetrySample | None, needs: Iterable[float]
) -> list[tuple[float, int]]:
    """The GPU capacity of a pool in a batch's integer program: (memory threshold, GPUs free
    for it) for the distinct memory needs ``needs`` of its candidate pairs, ascending. The
    pairs needing at least a threshold may together take no more GPUs than are free for it
    (less what the batch already took). A threshold with as many GPUs as a lower one adds
    nothing and is left out, so a pool without per-GPU memory has one row, as before."""
    if sample is None:
        return [(-math.inf, 0)]
    tiers: list[tuple[float, int]] = []
    for need_gb in sorted(set(needs)):
        fit = free_gpus_for(sample, need_gb)
        if not tiers or fit < tiers[-1][1]:
            tiers.append((need_gb, fit))
    return tiers


def quota(ctx: Context) -> Iterable[Rejection]:
    if ctx.pool is None or ctx.request.gpu_count == 0:
        return
    if ctx.cluster.quotas is not None:
        yield from _live_quota(ctx)
        return
    team = ctx.request.team
    q = ctx.snapshot.quotas.get(team)
    if q is None:
        if ctx.policy.require_quota:
            yield Rejection(
                "quota",
                f"namespace {team} has no ResourceQuota with "
                "requests.nvidia.com/gpu: no GPU without a quota",
            )
        return
    if ctx.request.gpu_count > q.gpus:  # can never fit the team's quota: not transient
        yield Rejection("quota_size", quota_size_message(ctx.request.gpu_count, team, q))
        return
    held = ctx.snapshot.usage_of(team).gpus_held + ctx.state.team_gpus.get(team, 0)
    if held + ctx.request.gpu_count > q.gpus:
        yield Rejection(
            "quota",
            f"team {team} holds {held} of {q.gpus} GPUs "
            f"({q.source or 'ResourceQuota'}); {ctx.request.gpu_count} more "
            "would exceed it",
        )


def _live_quota(ctx: Context) -> Iterable[Rejection]:
    """The quota of the team's namespace on a cluster whose quotas are read live."""
    cluster, team, gpus = ctx.cluster, ctx.request.team, ctx.request.gpu_count
    namespace = cluster.namespace(team)
    errors = ctx.snapshot.quota_errors
    unknown = errors.get(cluster.name) or errors.get(f"{cluster.name}/{namespace}")
    if unknown is not None:
        yield Rejection(
            "quota",
            f"the GPU quota of namespace {namespace} on {cluster.name} is unknown "
            f"({unknown}): nothing is placed there until it can be read",
        )
        return
    q = ctx.snapshot.cluster_quotas.get((cluster.name, namespace))
    if q is None:
        if ctx.policy.require_quota:
            yield Rejection(
                "quota",
                f"namespace {namespace} on {cluster.name} has no ResourceQuota with "
                "requests.nvidia.com/gpu: no GPU without a quota",
            )
        return
    if gpus > q.gpus:
        yield Rejection("quota_size", quota_size_message(gpus, team, q))
        return
    held = q.used or 0
    for (name, other), n in ctx.state.cluster_team_gpus.items():
        if name == cluster.name and cluster.namespace(other) == namespace:
            held += n
    if held + gpus > q.gpus:
        yield Rejection(
            "quota",
            f"namespace {namespace} on {cluster.name} uses {held} of {q.gpus} GPUs "
            f"({q.source}); {gpus} more would exceed it",
        )


def quota_size_message(gpus: int, team: str, quota: TeamQuota) -> str:
    """`quota`'s message for a request larger than its team's whole quota."""
    return (
        f"{gpus} GPUs exceed team {team}'s whole quota of {quota.gpus} GPUs "
        f"({quota.source or 'ResourceQuota'}): it can never run"
    )


def budget(ctx: Context) -> Iterable[Rejection]:
    if ctx.cost_usd <= 0:
        return
    team = ctx.request.team
    b = ctx.snapshot.budgets.get(team)
    if b is None:
        if ctx.policy.require_budget:
            yield Rejection("budget", f"team {team} has no budget: nothing that costs money")
        return
    usage = ctx.snapshot.usage_of(team)
    committed = usage.spent_usd + usage.reserved_usd + ctx.state.team_usd.get(team, 0.0)
    low = ctx.request.priority < ctx.policy.low_priority_below
    limit = b.limit_usd * (1 - ctx.policy.budget_headroom_share) if low else b.limit_usd
    if committed + ctx.cost_usd > limit + 1e-9:
        kind = (
            f"low-priority work may use {1 - ctx.policy.budget_headroom_share:.0%} of it"
            if low
            else "the full budget"
        )
        yield Rejection(
            "budget",
            f"team {team} has committed ${committed:,.2f} of its "
            f"${b.limit_usd:,.2f} {b.period} budget ({kind}); this run "
            f"would add ${ctx.cost_usd:,.2f}",
        )


def not_excluded(ctx: Context) -> Iterable[Rejection]:
    """A cluster that already failed this work (e.g. rejected the Job for capacity)."""
    if ctx.cluster.name in ctx.request.exclude_clusters:
        yield Rejection(
            "excluded",
            f"attempt {ctx.request.attempt - 1} failed on {ctx.cluster.name}; re-placing elsewhere",
        )


RULES: tuple[Rule, ...] = (
    residency,
    compliance,
    gpu_memory,
    telemetry,
    gpu_capacity,
    quota,
    budget,
    not_excluded,
)
