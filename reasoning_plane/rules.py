"""The placement rules, each written once, over every candidate of a request at once.

A rule looks at all the candidates (every (cluster, GPU pool) of the fleet, and CPU where the
work allows it) of one request and gives a `Verdict`: which candidates it rejects (a bool array
in the order of `index.CandidateTable`) and, for any of them, the reasons (`Rejection`). A
candidate is feasible only when no rule rejects it; every failing rule's reasons are kept, in
the order of `RULES`, so the explanation says everything that was wrong with a cluster.

Most rules depend only on the snapshot and the request (`STATIC`); capacity, quota and budget
also on what earlier placements of the same batch took (`Taken`), and are re-judged after every
placement. What a rule's rejection means for the request is its kind:

* ``governance`` (residency, compliance): the candidate may never see this data;
* ``lasting``: no later state of the fleet helps (GPU memory, a pool or quota too small in all,
  the latency SLO);
* ``transient``: capacity, quota, budget, untrusted telemetry, a cluster that failed this work.

`status` turns that into placed, deferred or rejected: the one place that decides it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN, residency_parts
from reasoning_plane.model import (
    CPU,
    DEFERRED,
    PLACED,
    REJECTED,
    Cluster,
    Rejection,
    Snapshot,
    TeamQuota,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy

if TYPE_CHECKING:  # the index calls the rules; the rules read its arrays
    from reasoning_plane.index import CandidateTable, FleetIndex, Prepared

GOVERNANCE, LASTING, TRANSIENT = "governance", "lasting", "transient"

# Every rule name a `Rejection` can carry, in the order reasons are listed, with its kind.
RULES: dict[str, str] = {
    "residency": GOVERNANCE,
    "compliance": GOVERNANCE,
    "gpu_memory": LASTING,
    "telemetry_missing": TRANSIENT,
    "telemetry_future": TRANSIENT,
    "telemetry_stale": TRANSIENT,
    "pool_size": LASTING,
    "gpu_capacity": TRANSIENT,
    "cpu_capacity": TRANSIENT,
    "quota_size": LASTING,
    "quota": TRANSIENT,
    "budget": TRANSIENT,
    "excluded": TRANSIENT,
    "slo": LASTING,
}


class Verdict(NamedTuple):
    """One rule's judgement of every candidate of a request (a rule that rejects none gives
    None instead). The reasons are made only for the candidates someone reads:
    ``why(k, *args)`` gives candidate k's."""

    rule: str  # its name, or the first of its names (telemetry, quota)
    fail: np.ndarray  # bool per candidate
    why: Callable[..., tuple[Rejection, ...]]
    args: tuple[Any, ...]
    counts: Mapping[str, int] | None = None  # per name, when the rule has several

    @property
    def kind(self) -> str:
        return RULES[self.rule]

    def reasons(self, k: int) -> tuple[Rejection, ...]:
        return self.why(k, *self.args)

    def count(self) -> dict[str, int]:
        if self.counts is not None:
            return {rule: n for rule, n in self.counts.items() if n}
        n = int(self.fail.sum())
        return {self.rule: n} if n else {}


def _verdict(
    rule: str, fail: np.ndarray, why: Callable[..., tuple[Rejection, ...]], *args: Any
) -> Verdict | None:
    return Verdict(rule, fail, why, args) if fail.any() else None


def _none(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


@dataclass
class BatchState:
    """What earlier placements of the same batch (or tick) already took, by name."""

    gpus: dict[tuple[str, str], int] = field(default_factory=dict)  # (cluster, gpu_type)
    cpu_slots: dict[str, int] = field(default_factory=dict)
    team_gpus: dict[str, int] = field(default_factory=dict)
    team_usd: dict[str, float] = field(default_factory=dict)
    # GPUs per (cluster, team), for the clusters whose quotas are read live (per namespace)
    cluster_team_gpus: dict[tuple[str, str], int] = field(default_factory=dict)

    def take(self, request: WorkloadRequest, cluster: str, gpu_type: str, usd: float) -> None:
        if gpu_type == CPU:
            self.cpu_slots[cluster] = self.cpu_slots.get(cluster, 0) + 1
        else:
            key = (cluster, gpu_type)
            self.gpus[key] = self.gpus.get(key, 0) + request.gpu_count
            self.team_gpus[request.team] = self.team_gpus.get(request.team, 0) + request.gpu_count
            where = (cluster, request.team)
            self.cluster_team_gpus[where] = self.cluster_team_gpus.get(where, 0) + request.gpu_count
        self.team_usd[request.team] = self.team_usd.get(request.team, 0.0) + usd


@dataclass
class Taken:
    """What earlier placements of a batch took, indexed like the fleet (`FleetIndex.taken`)."""

    pool: np.ndarray  # GPUs per (cluster, gpu_type) id
    cpu: np.ndarray  # CPU slots per cluster id
    team_gpus: dict[str, int] = field(default_factory=dict)
    team_usd: dict[str, float] = field(default_factory=dict)
    cluster_team_gpus: dict[tuple[str, str], int] = field(default_factory=dict)


# -- governance: residency and compliance, per set of input datasets ---------------------------


def residency_reasons(
    records: Iterable[CatalogRecord],
    zone_sets: Iterable[frozenset[str]],
    missing: Iterable[str],
    zone: str,
    accepts_unknown: bool,
    cluster_name: str | None,
    policy: PlacementPolicy,
) -> tuple[Rejection, ...]:
    """Why a cluster of ``zone`` may not process these inputs (fail closed on unknowns).

    A dataset without a catalog record, or of unknown residency, goes only where it is
    explicitly allowed; strict classifications (PII...) stay in their one residency zone."""
    out = [
        Rejection(
            "residency",
            f"{name} has no governance catalog record: its residency is unknown, so no "
            "cluster may process it",
        )
        for name in missing
    ]
    for record, parts in zip(records, zone_sets, strict=True):
        if UNKNOWN in parts:
            if not accepts_unknown:
                out.append(
                    Rejection(
                        "residency",
                        f"{record.dataset_id} has unknown residency; only clusters marked "
                        "accepts_unknown_residency may process it",
                    )
                )
            continue
        if record.classification not in policy.strict_classifications:
            if zone == UNKNOWN:
                out.append(Rejection("residency", f"cluster {cluster_name} has no known zone"))
            continue
        if len(parts) > 1:
            out.append(
                Rejection(
                    "residency",
                    f"{record.dataset_id} is {record.classification} with residency "
                    f"{record.data_residency}: no single zone satisfies every part",
                )
            )
        elif zone not in parts:
            out.append(
                Rejection(
                    "residency",
                    f"{record.dataset_id} is {record.classification} with residency "
                    f"{record.data_residency}; cluster zone is {zone}",
                )
            )
    return tuple(out)


def certifications_needed(
    records: Iterable[CatalogRecord], policy: PlacementPolicy
) -> tuple[tuple[str, str], ...]:
    """(certification, first dataset needing it), sorted: PII (and unknown classification)
    needs the policy's PII certifications, GDPR data a GDPR-certified cluster."""
    needed: dict[str, str] = {}
    for record in records:
        if record.classification in ("PII", UNKNOWN):
            for cert in policy.pii_certifications:
                needed.setdefault(cert, record.dataset_id)
        if record.gdpr_compliant:
            needed.setdefault(policy.gdpr_certification, record.dataset_id)
    return tuple(sorted(needed.items()))


def residency(index: FleetIndex, prep: Prepared) -> Verdict | None:
    table, inputs = prep.table, prep.inputs
    if not table.n:
        return None
    fail = inputs.class_fail[table.residency_class]
    return _verdict(
        "residency", fail, _by_class, inputs.class_rejections, table.residency_class_list
    )


def _by_class(k: int, by_class: list, classes: list[int]) -> tuple[Rejection, ...]:
    return by_class[classes[k]]


def compliance(index: FleetIndex, prep: Prepared) -> Verdict | None:
    table, inputs = prep.table, prep.inputs
    if inputs.cert_fail is None or not table.n:
        return None
    return _verdict(
        "compliance", inputs.cert_fail[table.ci], _compliance_why, index, inputs.needed, table
    )


def _compliance_why(
    k: int, index: FleetIndex, needed: tuple[tuple[str, str], ...], table: CandidateTable
) -> tuple[Rejection, ...]:
    return index.compliance_reasons(needed, table.ci_list[k])


def compliance_reasons(
    needed: Iterable[tuple[str, str]], cluster_name: str, certifications: frozenset[str]
) -> tuple[Rejection, ...]:
    have = ", ".join(sorted(certifications)) or "no certification"
    return tuple(
        Rejection(
            "compliance",
            f"{dataset} requires a {cert}-certified cluster; {cluster_name} has {have}",
        )
        for cert, dataset in needed
        if cert not in certifications
    )


def governance_on(
    datasets: Iterable[str],
    catalog: Mapping[str, CatalogRecord],
    cluster: Cluster,
    policy: PlacementPolicy,
) -> tuple[tuple[Rejection, ...], tuple[Rejection, ...]]:
    """(residency, compliance) reasons why ``cluster`` may not process ``datasets``, read from
    ``catalog`` (a dataset it lacks is the most restrictive): the two governance rules for one
    cluster, for callers outside the index (the residency planner, the simulator's audit)."""
    datasets = tuple(datasets)
    records = [catalog[d] for d in datasets if d in catalog]
    missing = [d for d in datasets if d not in catalog]
    residency = residency_reasons(
        records,
        [residency_parts(r.data_residency) for r in records],
        missing,
        cluster.zone,
        cluster.accepts_unknown_residency,
        cluster.name,
        policy,
    )
    needed = certifications_needed(records, policy)
    return residency, compliance_reasons(needed, cluster.name, cluster.certifications)


# -- the request's needs against each pool ----------------------------------------------------


def gpu_memory(index: FleetIndex, prep: Prepared) -> Verdict | None:
    """A pool whose GPUs are smaller than the request needs, or whose NVML free memory is."""
    table, need = prep.table, prep.request.gpu_memory_gb
    too_small = table.gpu & (table.memory < need)
    nvml = table.gpu & ~np.isnan(table.free_memory) & (table.free_memory < need)
    return _verdict("gpu_memory", too_small | nvml, _memory_why, table, need, too_small, nvml)


def _memory_why(
    k: int, table: CandidateTable, need: float, too_small: np.ndarray, nvml: np.ndarray
) -> tuple[Rejection, ...]:
    pool = table.pools[k]
    assert pool is not None
    out = []
    if too_small[k]:
        out.append(
            Rejection(
                "gpu_memory",
                f"{pool.gpu_type} has {pool.memory_gb:g} GB per GPU, {need:g} GB needed",
            )
        )
    if nvml[k]:
        out.append(
            Rejection(
                "gpu_memory",
                f"NVML reports {table.free_memory[k].item():g} GB free per GPU on "
                f"{table.names[k]}/{pool.gpu_type}, {need:g} GB needed",
            )
        )
    return tuple(out)


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
      ``policy.max_telemetry_age_s`` (``telemetry_stale``)."""
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


def telemetry(index: FleetIndex, prep: Prepared) -> Verdict | None:
    """Never trust stale telemetry: a missing, old or future sample makes the pool ineligible
    (judged once per snapshot: `CandidateTable.telemetry`)."""
    table = prep.table
    if not table.telemetry:
        return None
    return Verdict(
        "telemetry_missing",
        table.telemetry_fail,
        _telemetry_why,
        (table.telemetry,),
        table.telemetry_counts,
    )


def _telemetry_why(k: int, problems: Mapping[int, tuple[Rejection]]) -> tuple[Rejection, ...]:
    return problems[k]


def pool_size(index: FleetIndex, prep: Prepared) -> Verdict | None:
    """A pool with fewer GPUs in all than the request needs: it can never fit there."""
    table, need = prep.table, prep.request.gpu_count
    return _verdict("pool_size", table.gpu & (table.total < need), _size_why, table, need)


def _size_why(k: int, table: CandidateTable, need: int) -> tuple[Rejection, ...]:
    pool = table.pools[k]
    assert pool is not None
    message = f"{pool.gpu_type} pool has {pool.total} GPUs in all, {need} needed"
    return (Rejection("pool_size", message),)


def excluded(index: FleetIndex, prep: Prepared) -> Verdict | None:
    """A cluster that already failed this work (e.g. rejected the Job for capacity)."""
    table, request = prep.table, prep.request
    if not request.exclude_clusters:
        return None
    names = set(request.exclude_clusters)
    fail = np.array([name in names for name in table.names], dtype=bool)
    return _verdict("excluded", fail, _excluded_why, table, request.attempt - 1)


def _excluded_why(k: int, table: CandidateTable, attempt: int) -> tuple[Rejection, ...]:
    message = f"attempt {attempt} failed on {table.names[k]}; re-placing elsewhere"
    return (Rejection("excluded", message),)


def slo(index: FleetIndex, prep: Prepared) -> Verdict | None:
    """Under ``cheapest_within_slo``, a candidate whose estimated latency exceeds the SLO."""
    bound = prep.request.latency_slo_ms
    if index.policy.objective != "cheapest_within_slo" or bound is None:
        return None
    return _verdict("slo", prep.latency > bound, _slo_why, prep.latency, bound)


def _slo_why(k: int, latency: np.ndarray, bound: float) -> tuple[Rejection, ...]:
    message = f"estimated latency {latency[k].item():.0f} ms exceeds the SLO of {bound:g} ms"
    return (Rejection("slo", message),)


# -- against what the batch took: capacity, quota, budget ------------------------------------


def free_gpus_for(sample: TelemetrySample, need_gb: float) -> int:
    """GPUs of ``sample``'s pool free for a request needing ``need_gb`` GB per GPU.

    With the free memory of each GPU (``free_memory_per_gpu_gb``, from NVML): the reported free
    GPUs, but no more than the GPUs with at least ``need_gb`` free (a GPU with 20 of 24 GB in use
    is not free for a 20 GB request). Without it (telemetry that gives only ``free_gpus``, e.g. a
    telemetry file): every reported free GPU, whatever the request's memory; the pool's NVML
    free memory, when known, is still checked by `gpu_memory`.

    What a batch already took from the pool is then subtracted from this count whatever memory
    those requests needed (`gpu_capacity`): the batch never counts a GPU twice."""
    per_gpu = sample.free_memory_per_gpu_gb
    if per_gpu is None:
        return sample.free_gpus
    return min(sample.free_gpus, sum(1 for m in per_gpu if m >= need_gb))


def capacity_tiers(
    sample: TelemetrySample | None, needs: Iterable[float]
) -> list[tuple[float, int]]:
    """The GPU capacity of a pool in a batch's integer program: (memory threshold, GPUs free
    for it) for the distinct memory needs ``needs`` of its candidate pairs, ascending. The
    pairs needing at least a threshold may together take no more GPUs than are free for it
    (less what the batch already took). A threshold with as many GPUs as a lower one adds
    nothing and is left out, so a pool without per-GPU memory has one row."""
    if sample is None:
        return [(-math.inf, 0)]
    tiers: list[tuple[float, int]] = []
    for need_gb in sorted(set(needs)):
        fit = free_gpus_for(sample, need_gb)
        if not tiers or fit < tiers[-1][1]:
            tiers.append((need_gb, fit))
    return tiers


def gpu_capacity(index: FleetIndex, prep: Prepared, taken: Taken) -> Verdict | None:
    """Fewer free GPUs (with enough free memory each, where NVML says) than the request needs,
    after what the batch took. A pool without telemetry is the telemetry rule's, a pool too
    small in all `pool_size`'s."""
    table, request = prep.table, prep.request
    need = request.gpu_count
    if not table.gpu_idx.size:
        return None
    took = taken.pool[table.pool_id]
    fit = index.free_gpus(table, request.gpu_memory_gb)
    fail = table.gpu & table.has_sample & (table.total >= need) & (fit - took < need)
    return _verdict("gpu_capacity", fail, _capacity_why, table, request, took, fit)


def _capacity_why(
    k: int, table: CandidateTable, request: WorkloadRequest, took: np.ndarray, fit: np.ndarray
) -> tuple[Rejection, ...]:
    need, need_gb = request.gpu_count, request.gpu_memory_gb
    free, t, label = table.reported[k], int(took[k]), f"{table.names[k]}/{table.gpu_types[k]}"
    if table.per_gpu_known[k]:
        f = int(fit[k])
        message = (
            f"{f} of {free} reported free GPUs on {label} have >= {need_gb:g} GB free, "
            f"{t} taken by this batch: {f - t} left, {need} needed"
        )
    else:
        message = (
            f"{free - t} GPUs free on {label} ({free} reported, {t} taken by this batch), "
            f"{need} needed"
        )
    return (Rejection("gpu_capacity", message),)


def cpu_capacity(index: FleetIndex, prep: Prepared, taken: Taken) -> Verdict | None:
    """No CPU slot left on the cluster after what the batch took."""
    table = prep.table
    if not table.cpu_idx.size:
        return None
    took = taken.cpu[table.cpu_id]
    fail = ~table.gpu & (table.cpu_slots - took < 1)
    return _verdict("cpu_capacity", fail, _cpu_why, table, took)


def _cpu_why(k: int, table: CandidateTable, took: np.ndarray) -> tuple[Rejection, ...]:
    message = f"{table.names[k]} has no free CPU slot ({table.cpu_slots[k]} slots, {took[k]} taken)"
    return (Rejection("cpu_capacity", message),)


def quota_size_message(gpus: int, team: str, quota: TeamQuota) -> str:
    """`quota`'s message for a request larger than its team's whole quota."""
    return (
        f"{gpus} GPUs exceed team {team}'s whole quota of {quota.gpus} GPUs "
        f"({quota.source or 'ResourceQuota'}): it can never run"
    )


def quota(index: FleetIndex, prep: Prepared, taken: Taken) -> Verdict | tuple[Verdict, ...] | None:
    """GPU work needs its team's ResourceQuota (``requests.nvidia.com/gpu``) to have room: the
    GPUs the team holds plus what the batch gave it plus this request. On a cluster whose
    quotas are read live (`live_quotas`) that is the quota of the team's namespace there: its
    ``status.used`` (and the plane's unstarted reservations) plus what the batch gave the team
    on that cluster; a quota that could not be read is unknown and nothing is placed against it.
    Elsewhere it is the quota file's, one per team for those clusters together."""
    table, request, snapshot = prep.table, prep.request, index.snapshot
    gpus = request.gpu_count
    if not table.gpu_idx.size or gpus == 0:
        return None
    live = _live_quota_clusters(snapshot)
    if not live:
        rejection = _file_quota(index, request, taken)
        if rejection is None:
            return None
        return _verdict(rejection.rule, table.gpu, _same, (rejection,))
    names = np.asarray(table.names)
    fail: dict[str, np.ndarray] = {}
    reasons: dict[str, tuple[Rejection, ...]] = {}
    file_rejection: Rejection | None = None
    file_judged = False
    for name in sorted(set(names[table.gpu].tolist())):
        if name in live:
            rejection = _live_quota(index, live[name], request, taken)
        else:
            if not file_judged:
                file_rejection, file_judged = _file_quota(index, request, taken), True
            rejection = file_rejection
        if rejection is None:
            continue
        mask = table.gpu & (names == name)
        fail[rejection.rule] = fail.get(rejection.rule, _none(table.n)) | mask
        reasons[name] = (rejection,)
    verdicts = tuple(
        Verdict(rule, mask, _by_cluster, (table.names, reasons)) for rule, mask in fail.items()
    )
    return verdicts or None


def _live_quota_clusters(snapshot: Snapshot) -> dict[str, Cluster]:
    """The clusters whose quotas are read live, by name (once per snapshot)."""
    found = snapshot.derived.get("live_quota_clusters")
    if found is None:
        found = snapshot.derived["live_quota_clusters"] = {
            c.name: c for c in snapshot.fleet.clusters if c.quotas is not None
        }
    return found


def _by_cluster(
    k: int, names: list[str], reasons: Mapping[str, tuple[Rejection, ...]]
) -> tuple[Rejection, ...]:
    return reasons[names[k]]


def _file_quota(index: FleetIndex, request: WorkloadRequest, taken: Taken) -> Rejection | None:
    """The quota file's rule: the team's one quota for the clusters without live quotas."""
    snapshot = index.snapshot
    team, gpus = request.team, request.gpu_count
    q = snapshot.quotas.get(team)
    if q is None:
        if index.policy.require_quota:
            return Rejection(
                "quota",
                f"namespace {team} has no ResourceQuota with requests.nvidia.com/gpu: no GPU "
                "without a quota",
            )
        return None
    if gpus > q.gpus:  # can never fit the team's quota
        return Rejection("quota_size", quota_size_message(gpus, team, q))
    held = snapshot.usage_of(team).gpus_held + taken.team_gpus.get(team, 0)
    if held + gpus > q.gpus:
        return Rejection(
            "quota",
            f"team {team} holds {held} of {q.gpus} GPUs ({q.source or 'ResourceQuota'}); "
            f"{gpus} more would exceed it",
        )
    return None


def _live_quota(
    index: FleetIndex, cluster: Cluster, request: WorkloadRequest, taken: Taken
) -> Rejection | None:
    """The quota of the team's namespace on ``cluster``, read live (`live_quotas`)."""
    snapshot = index.snapshot
    team, gpus = request.team, request.gpu_count
    namespace = cluster.namespace(team)
    unknown = snapshot.quota_errors.get(cluster.name) or snapshot.quota_errors.get(
        f"{cluster.name}/{namespace}"
    )
    if unknown is not None:
        return Rejection(
            "quota",
            f"the GPU quota of namespace {namespace} on {cluster.name} is unknown ({unknown}): "
            "nothing is placed there until it can be read",
        )
    q = snapshot.cluster_quotas.get((cluster.name, namespace))
    if q is None:
        if index.policy.require_quota:
            return Rejection(
                "quota",
                f"namespace {namespace} on {cluster.name} has no ResourceQuota with "
                "requests.nvidia.com/gpu: no GPU without a quota",
            )
        return None
    if gpus > q.gpus:
        return Rejection("quota_size", quota_size_message(gpus, team, q))
    batch = sum(  # what the batch gave every team of this namespace on this cluster
        n
        for (name, other), n in taken.cluster_team_gpus.items()
        if name == cluster.name and cluster.namespace(other) == namespace
    )
    held = (q.used or 0) + batch
    if held + gpus > q.gpus:
        return Rejection(
            "quota",
            f"namespace {namespace} on {cluster.name} uses {held} of {q.gpus} GPUs "
            f"({q.source}); {gpus} more would exceed it",
        )
    return None


def _same(k: int, reasons: tuple[Rejection, ...]) -> tuple[Rejection, ...]:
    return reasons


def budget(index: FleetIndex, prep: Prepared, taken: Taken) -> Verdict | None:
    """Work that costs money needs its team's budget to have room for it, after what the team
    spent, reserved and was given by this batch; low-priority work may use only part of it."""
    request, snapshot, policy = prep.request, index.snapshot, index.policy
    team = request.team
    b = snapshot.budgets.get(team)
    priced = prep.costs.priced
    if b is None:
        if not policy.require_budget:
            return None
        none = (Rejection("budget", f"team {team} has no budget: nothing that costs money"),)
        return _verdict("budget", priced, _same, none)
    usage = snapshot.usage_of(team)
    committed = usage.spent_usd + usage.reserved_usd + taken.team_usd.get(team, 0.0)
    low = request.priority < policy.low_priority_below
    limit = b.limit_usd * (1 - policy.budget_headroom_share) if low else b.limit_usd
    fail = priced & (committed + prep.total > limit + 1e-9)
    kind = (
        f"low-priority work may use {1 - policy.budget_headroom_share:.0%} of it"
        if low
        else "the full budget"
    )
    head = (
        f"team {team} has committed ${committed:,.2f} of its ${b.limit_usd:,.2f} {b.period} "
        f"budget ({kind}); this run would add $"
    )
    return _verdict("budget", fail, _budget_why, head, prep.total)


def _budget_why(k: int, head: str, total: np.ndarray) -> tuple[Rejection, ...]:
    return (Rejection("budget", f"{head}{total[k].item():,.2f}"),)


# The rules in the order their reasons are listed. First those of the request alone, each with
# what it reads of the request: its verdict is the same for every request of one shape with the
# same values there, and the index keeps it. Then those judged against what the batch took, and
# the last two (per request).
STATIC: tuple[tuple[Callable[..., Verdict | None], Callable[[WorkloadRequest], Any]], ...] = (
    (residency, lambda r: r.datasets),
    (compliance, lambda r: r.datasets),
    (gpu_memory, lambda r: r.gpu_memory_gb),
    (telemetry, lambda r: None),
    (pool_size, lambda r: r.gpu_count),
)
AGAINST_BATCH = (gpu_capacity, cpu_capacity, quota, budget)
LAST = (excluded, slo)


# -- what it all means for the request ---------------------------------------------------------


def status(any_feasible: bool, compliant: np.ndarray, lasting: np.ndarray) -> str:
    """Placed when a candidate passes every rule; otherwise deferred when some candidate that
    may see the data fails only rules a later state can pass (``compliant & ~lasting``), and
    rejected when none does (fail closed: nothing compliant, or nothing that could ever fit)."""
    if any_feasible:
        return PLACED
    return DEFERRED if bool((compliant & ~lasting).any()) else REJECTED


def masks(verdicts: Iterable[Verdict], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(compliant, lasting) per candidate: no governance rejection; a rejection no later state
    can lift (a quota too small in all is lasting, a full one transient)."""
    governance, lasting = _none(n), _none(n)
    for v in verdicts:
        if v.kind == GOVERNANCE:
            governance |= v.fail
        elif v.kind == LASTING:
            lasting |= v.fail
    return ~governance, lasting
