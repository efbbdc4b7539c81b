"""The hot decision path: every candidate of a request evaluated at once over arrays.

`placement.evaluate` and `batch.place_batch` judge every (cluster, pool) of the fleet for every
request: with 1,000 clusters that is some 2,000 candidates a request. Almost everything about a
candidate depends on the snapshot alone (prices, speeds, telemetry age, congestion, zones,
certifications), so a `FleetIndex` computes it once per snapshot and policy, as numpy arrays in
the order `placement.candidates` lists the candidates. Per request what remains is:

* the cost model of `cost.estimate` as array arithmetic: the same IEEE operations on the same
  values in the same order, so every float is bit-for-bit what the scalar code gives;
* the verdicts of the input datasets (residency, compliance), computed once per set of inputs and
  per kind of cluster, not per candidate;
* the rules that depend on what a batch already took (GPU and CPU capacity, quota, budget), as
  array comparisons against the amounts taken (`Taken`), so that a batch can re-check its
  requests after every placement without evaluating them again from scratch;
* messages (`Rejection`) only for the candidates that fail, identical to `constraints.py`'s.

The rules are specified, one candidate at a time, in `constraints.py` and `cost.py`;
`reference.py` is that straightforward path, and ``tests/unit/plane/test_speed_equivalence.py``
checks on random worlds that this one gives exactly the same evaluations and decisions. A fleet
with two clusters of one name, or two pools of one GPU type in a cluster, is evaluated by
`reference.py` (`FleetIndex.usable` is false).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN, residency_parts
from reasoning_plane.constraints import (
    BatchState,
    capacity_message,
    quota_size_message,
    telemetry_problem,
)
from reasoning_plane.cost import UNKNOWN_LATENCY_MS
from reasoning_plane.memo import cache_of
from reasoning_plane.model import (
    CPU,
    Candidate,
    Cluster,
    CostBreakdown,
    Evaluation,
    GpuPool,
    Rejection,
    Snapshot,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy

_new = object.__new__
_set = object.__setattr__

GPU_ONLY, GPU_OR_CPU, CPU_ONLY = "gpu", "gpu+cpu", "cpu"


def shape_of(request: WorkloadRequest) -> str:
    """Which candidates a request has (`placement.candidates`)."""
    if request.gpu_count > 0:
        return GPU_OR_CPU if request.gpu_optional else GPU_ONLY
    return CPU_ONLY


def _rejections(rule: str, messages: Sequence[str]) -> tuple[Rejection, ...]:
    return tuple(Rejection(rule, m) for m in messages)


@dataclass
class _Shape:
    """The candidates of one request shape, in `placement.candidates` order, as arrays."""

    candidates: list[Candidate]
    n: int
    ci: np.ndarray  # cluster index of each candidate
    gpu: np.ndarray  # bool: a GPU pool (else CPU)
    gpu_idx: np.ndarray
    cpu_idx: np.ndarray
    pools: list[GpuPool | None]
    speed: np.ndarray  # GPU: the pool's speed; CPU: 1.0 (unused)
    rate: np.ndarray  # GPU: price per GPU-hour; CPU: the cluster's CPU price per hour
    egress: np.ndarray  # the cluster's egress price per GB
    zone: np.ndarray  # the cluster's zone id
    default_network: np.ndarray  # cluster.latency_ms.get(cluster.zone, 0.0)
    model_latency: np.ndarray  # GPU: congestion-stretched inference latency; CPU: the policy's
    cpu_latency_exact: bool  # model_latency of CPU candidates may be added as a float
    divides_by_zero: bool  # speed 0 or no congestion headroom: the scalar code raises
    memory: np.ndarray  # GPU memory per GPU (CPU: +inf)
    free_memory: np.ndarray  # NVML free memory per GPU (nan: not reported)
    total: np.ndarray  # GPUs in the pool (CPU: 0)
    has_sample: np.ndarray  # bool
    free_gpus: np.ndarray  # reported free GPUs (0 without a sample)
    # The free memory of each GPU, where a sample gives it (`constraints.free_gpus_for`):
    # candidate k's GPUs are per_gpu_memory[per_gpu_start[k]:per_gpu_end[k]].
    per_gpu: bool  # some candidate's sample gives it
    per_gpu_known: np.ndarray  # bool per candidate
    per_gpu_memory: np.ndarray
    per_gpu_start: np.ndarray
    per_gpu_end: np.ndarray
    pool_id: np.ndarray  # GPU: id of (cluster, gpu_type) in `Taken.pool`; CPU: 0
    cpu_id: np.ndarray  # CPU: id of the cluster in `Taken.cpu`; GPU: 0
    cpu_slots: np.ndarray  # CPU: the cluster's CPU slots
    telemetry_fail: np.ndarray  # bool
    telemetry_rejections: dict[int, tuple[Rejection, ...]]
    residency_class: np.ndarray  # id of the cluster's (zone, accepts unknown[, name]) class
    ci_list: list[int]  # `ci` as Python ints
    residency_class_list: list[int]  # `residency_class` as Python ints
    names: list[str]  # the cluster's name
    gpu_types: list[str]  # the pool's GPU type (CPU)
    reported: list[Any]  # GPU: the sample's free GPUs (None without a sample); CPU: None
    position: dict[int, int]  # id(candidate) -> its position
    capacity_messages: dict[tuple[Any, ...], tuple[Rejection, ...]] = field(default_factory=dict)
    fits: dict[Any, np.ndarray] = field(default_factory=dict)  # GPUs free per memory need
    slo_messages: dict[Any, dict[int, tuple[Rejection, ...]]] = field(default_factory=dict)
    networks: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    memory_verdicts: dict[Any, tuple[np.ndarray, dict[int, tuple[Rejection, ...]]]] = field(
        default_factory=dict
    )
    size_verdicts: dict[Any, tuple[np.ndarray, dict[int, tuple[Rejection, ...]]]] = field(
        default_factory=dict
    )


@dataclass
class _Inputs:
    """What a request's input datasets decide, the same for every request reading them."""

    records: tuple[CatalogRecord, ...]
    missing: tuple[str, ...]
    zone_sets: tuple[frozenset[str], ...]  # residency parts of each record
    data_zones: tuple[str, ...]  # known zones of the data, sorted (network latency)
    class_rejections: list[tuple[Rejection, ...]]  # residency, per residency class
    class_fail: np.ndarray  # bool per residency class
    needed: tuple[tuple[str, str], ...]  # (certification, first dataset needing it), sorted
    cert_fail: np.ndarray | None  # bool per cluster: lacks a needed certification


@dataclass(frozen=True)
class Hints:
    """What is already known about a list of evaluations (positions in it), so that deciding
    need not look at thousands of candidates again (`placement.decide`)."""

    feasible: Sequence[int]  # the feasible ones, in order
    compliant: Sequence[int] | np.ndarray  # no governance (residency, compliance) rejection
    transient: bool  # some compliant candidate fails only rules in TRANSIENT_RULES
    scores: Sequence[float] | np.ndarray  # every evaluation's score
    position: Mapping[int, int] | None = None  # id(candidate) -> its position
    unique: bool = False  # no two evaluations have equal candidates


@dataclass
class Taken:
    """What earlier placements of a batch took, indexed like the fleet (a `BatchState`)."""

    pool: np.ndarray  # GPUs per (cluster, gpu_type) id
    cpu: np.ndarray  # CPU slots per cluster id
    team_gpus: dict[str, int] = field(default_factory=dict)
    team_usd: dict[str, float] = field(default_factory=dict)


@dataclass
class Prepared:
    """A request with everything about its candidates that does not depend on a batch's state."""

    request: WorkloadRequest
    shape: _Shape
    inputs: _Inputs
    seconds: np.ndarray  # duration on each candidate (CPU ones: see cpu_seconds)
    cpu_seconds: Any  # the duration on a CPU slot, exactly as given (None: no CPU candidate)
    gpu_usd: np.ndarray
    egress_usd: np.ndarray
    moved: np.ndarray
    latency: np.ndarray
    total: np.ndarray
    score: np.ndarray
    static_fail: np.ndarray  # bool: fails a rule whatever the batch took
    governance_fail: np.ndarray
    memory_fail: np.ndarray
    memory_rejections: dict[int, tuple[Rejection, ...]]
    size_fail: np.ndarray  # GPU pool smaller than the request
    size_rejections: dict[int, tuple[Rejection, ...]]
    excluded: dict[int, tuple[Rejection, ...]]
    slo_fail: np.ndarray | None
    priced: np.ndarray  # bool: total > 0 in the sense of the budget rule (not total <= 0)
    lists: tuple[list[Any], ...] | None = None  # floats of the arrays, made on first use


class FleetIndex:
    """Everything about a snapshot's candidates that the requests do not change."""

    def __init__(self, snapshot: Snapshot, policy: PlacementPolicy) -> None:
        # A copy, not the snapshot itself: the index is cached against the snapshot
        # (`memo.cache_of`) and must not keep it alive, or neither would ever be freed.
        self.snapshot = replace(snapshot)
        self.policy = policy
        self.clusters: tuple[Cluster, ...] = tuple(snapshot.fleet.clusters)
        names = [c.name for c in self.clusters]
        self.usable = len(set(names)) == len(names) and all(
            len({p.gpu_type for p in c.pools}) == len(c.pools)
            and all(p.gpu_type != CPU for p in c.pools)
            for c in self.clusters
        )
        self.cluster_index = {c.name: i for i, c in enumerate(self.clusters)}
        self.pool_ids: dict[tuple[str, str], int] = {}
        for c in self.clusters:
            for p in c.pools:
                self.pool_ids.setdefault((c.name, p.gpu_type), len(self.pool_ids))
        zones = sorted({c.zone for c in self.clusters})
        self.zones = zones
        self.zone_id = {z: i for i, z in enumerate(zones)}
        # Residency verdicts depend on a cluster only through these (see `constraints.residency`).
        classes: dict[tuple[str, bool, str | None], int] = {}
        cluster_class = []
        for c in self.clusters:
            key = (c.zone, bool(c.accepts_unknown_residency), c.name if c.zone == UNKNOWN else None)
            cluster_class.append(classes.setdefault(key, len(classes)))
        self.residency_classes = list(classes)
        self.cluster_class = np.array(cluster_class, dtype=np.intp)
        self.certified: dict[str, np.ndarray] = {}
        self.cert_text = [
            ", ".join(sorted(c.certifications)) or "no certification" for c in self.clusters
        ]
        self._candidates: dict[tuple[int, str], Candidate] = {}
        self._shapes: dict[str, _Shape] = {}
        self._inputs: dict[tuple[str, ...], _Inputs] = {}
        self._compliance_rejections: dict[Any, tuple[Rejection, ...]] = {}

    # -- per snapshot ---------------------------------------------------------------------

    def taken(self, state: BatchState | None = None) -> Taken:
        """A `Taken` holding what ``state`` took (an empty one without a state)."""
        taken = Taken(
            pool=np.zeros(len(self.pool_ids), dtype=np.int64),
            cpu=np.zeros(len(self.clusters), dtype=np.int64),
        )
        if state is not None:
            for key, n in state.gpus.items():
                if key in self.pool_ids:
                    taken.pool[self.pool_ids[key]] = n
            for name, n in state.cpu_slots.items():
                if name in self.cluster_index:
                    taken.cpu[self.cluster_index[name]] = n
            taken.team_gpus = dict(state.team_gpus)
            taken.team_usd = dict(state.team_usd)
        return taken

    def shape(self, kind: str) -> _Shape:
        found = self._shapes.get(kind)
        if found is None:
            found = self._shapes[kind] = self._build_shape(kind)
        return found

    def _build_shape(self, kind: str) -> _Shape:
        snapshot, policy = self.snapshot, self.policy
        entries: list[tuple[int, GpuPool | None]] = []
        for i, cluster in enumerate(self.clusters):
            if kind != CPU_ONLY:
                entries += [(i, pool) for pool in cluster.pools]
            if kind != GPU_ONLY and cluster.cpu_slots > 0:
                entries.append((i, None))
        n = len(entries)
        cands, speed, rate, memory, free_memory, total = [], [], [], [], [], []
        has_sample, free_gpus, pool_id, cpu_slots, model_latency = [], [], [], [], []
        reported: list[Any] = []
        per_gpu_known: list[bool] = []
        per_gpu_memory: list[float] = []
        per_gpu_start: list[int] = []
        per_gpu_end: list[int] = []
        telemetry_rejections: dict[int, tuple[Rejection, ...]] = {}
        divides_by_zero = False
        cpu_latency_exact = isinstance(policy.cpu_inference_latency_ms, float)
        for k, (i, pool) in enumerate(entries):
            cluster = self.clusters[i]
            gpu_type = pool.gpu_type if pool else CPU
            cand = self._candidates.get((i, gpu_type))
            if cand is None:
                cand = self._candidates[(i, gpu_type)] = Candidate(cluster.name, gpu_type)
            cands.append(cand)
            if pool is None:
                speed.append(1.0)
                rate.append(cluster.cpu_price_per_hour)
                memory.append(np.inf)
                free_memory.append(np.nan)
                total.append(0)
                has_sample.append(False)
                free_gpus.append(0)
                pool_id.append(0)
                cpu_slots.append(cluster.cpu_slots)
                model_latency.append(policy.cpu_inference_latency_ms)
                reported.append(None)
                per_gpu_known.append(False)
                per_gpu_start.append(len(per_gpu_memory))
                per_gpu_end.append(len(per_gpu_memory))
                continue
            sample = snapshot.telemetry.get((cluster.name, pool.gpu_type))
            reported.append(sample.free_gpus if sample is not None else None)
            per_gpu = None if sample is None else sample.free_memory_per_gpu_gb
            per_gpu_known.append(per_gpu is not None)
            per_gpu_start.append(len(per_gpu_memory))
            per_gpu_memory.extend(per_gpu or ())
            per_gpu_end.append(len(per_gpu_memory))
            speed.append(pool.speed)
            divides_by_zero = divides_by_zero or pool.speed == 0
            rate.append(pool.price_per_hour)
            memory.append(pool.memory_gb)
            free = None if sample is None else sample.free_memory_gb
            free_memory.append(np.nan if free is None else free)
            total.append(pool.total)
            has_sample.append(sample is not None)
            free_gpus.append(sample.free_gpus if sample is not None else 0)
            pool_id.append(self.pool_ids[(cluster.name, pool.gpu_type)])
            cpu_slots.append(0)
            utilisation = min(sample.utilisation, policy.congestion_cap) if sample else 0.0
            try:
                model_latency.append(pool.inference_latency_ms / (1 - utilisation))
            except ZeroDivisionError:
                divides_by_zero = True
                model_latency.append(np.nan)
            # `constraints.telemetry`: the same for every request.
            problem = telemetry_problem(cluster.name, pool.gpu_type, sample, snapshot.now, policy)
            if problem is not None:
                telemetry_rejections[k] = (problem,)
        ci = np.array([i for i, _ in entries], dtype=np.intp)
        gpu = np.array([p is not None for _, p in entries], dtype=bool)
        telemetry_fail = np.zeros(n, dtype=bool)
        telemetry_fail[list(telemetry_rejections)] = True
        clusters = self.clusters
        return _Shape(
            candidates=cands,
            n=n,
            ci=ci,
            gpu=gpu,
            gpu_idx=np.flatnonzero(gpu),
            cpu_idx=np.flatnonzero(~gpu),
            pools=[p for _, p in entries],
            speed=np.array(speed, dtype=np.float64),
            rate=np.array(rate, dtype=np.float64),
            egress=np.array([clusters[i].egress_per_gb for i, _ in entries], dtype=np.float64),
            zone=np.array([self.zone_id[clusters[i].zone] for i, _ in entries], dtype=np.intp),
            default_network=np.array(
                [clusters[i].latency_ms.get(clusters[i].zone, 0.0) for i, _ in entries],
                dtype=np.float64,
            ),
            model_latency=np.array(model_latency, dtype=np.float64),
            cpu_latency_exact=cpu_latency_exact,
            divides_by_zero=divides_by_zero,
            memory=np.array(memory, dtype=np.float64),
            free_memory=np.array(free_memory, dtype=np.float64),
            total=np.array(total, dtype=np.int64),
            has_sample=np.array(has_sample, dtype=bool),
            free_gpus=np.array(free_gpus, dtype=np.int64),
            per_gpu=any(per_gpu_known),
            per_gpu_known=np.array(per_gpu_known, dtype=bool),
            per_gpu_memory=np.array(per_gpu_memory, dtype=np.float64),
            per_gpu_start=np.array(per_gpu_start, dtype=np.intp),
            per_gpu_end=np.array(per_gpu_end, dtype=np.intp),
            pool_id=np.array(pool_id, dtype=np.intp),
            cpu_id=ci.copy(),
            cpu_slots=np.array(cpu_slots, dtype=np.int64),
            telemetry_fail=telemetry_fail,
            telemetry_rejections=telemetry_rejections,
            residency_class=self.cluster_class[ci] if n else np.zeros(0, dtype=np.intp),
            ci_list=ci.tolist(),
            residency_class_list=(self.cluster_class[ci] if n else np.zeros(0, np.intp)).tolist(),
            names=[clusters[i].name for i, _ in entries],
            gpu_types=[c.gpu_type for c in cands],
            reported=reported,
            position={id(c): k for k, c in enumerate(cands)},
        )

    def _network(self, shape: _Shape, data_zones: tuple[str, ...]) -> np.ndarray:
        """Network latency from the data to each candidate's cluster (`cost.estimate`)."""
        found = shape.networks.get(data_zones)
        if found is None:
            if not data_zones:
                found = shape.default_network
            else:
                per_cluster = np.array(
                    [
                        max(c.latency_ms.get(z, UNKNOWN_LATENCY_MS) for z in data_zones)
                        for c in self.clusters
                    ],
                    dtype=np.float64,
                )
                found = per_cluster[shape.ci]
            shape.networks[data_zones] = found
        return found

    # -- per set of inputs -----------------------------------------------------------------

    def inputs(self, datasets: tuple[str, ...]) -> _Inputs:
        found = self._inputs.get(datasets)
        if found is None:
            found = self._inputs[datasets] = self._build_inputs(datasets)
        return found

    def _build_inputs(self, datasets: tuple[str, ...]) -> _Inputs:
        catalog: Mapping[str, CatalogRecord] = self.snapshot.catalog
        policy = self.policy
        records = tuple(catalog[d] for d in datasets if d in catalog)
        missing = tuple(d for d in datasets if d not in catalog)
        zone_sets = tuple(residency_parts(r.data_residency) for r in records)
        data_zones: set[str] = set()
        for zones in zone_sets:
            data_zones |= zones
        # `constraints.residency`, per residency class of cluster.
        head = [
            f"{name} has no governance catalog record: its residency "
            "is unknown, so no cluster may process it"
            for name in missing
        ]
        class_rejections = []
        for zone, accepts_unknown, cluster_name in self.residency_classes:
            messages = list(head)
            for record, parts in zip(records, zone_sets, strict=True):
                if UNKNOWN in parts:
                    if not accepts_unknown:
                        messages.append(
                            f"{record.dataset_id} has unknown residency; only "
                            "clusters marked accepts_unknown_residency may "
                            "process it"
                        )
                    continue
                strict = record.classification in policy.strict_classifications
                if not strict:
                    if zone == UNKNOWN:
                        messages.append(f"cluster {cluster_name} has no known zone")
                    continue
                if len(parts) > 1:
                    messages.append(
                        f"{record.dataset_id} is {record.classification} with "
                        f"residency {record.data_residency}: no single zone "
                        "satisfies every part"
                    )
                elif zone not in parts:
                    messages.append(
                        f"{record.dataset_id} is {record.classification} with "
                        f"residency {record.data_residency}; cluster zone is "
                        f"{zone}"
                    )
            class_rejections.append(_rejections("residency", messages))
        # `constraints.compliance`: which certifications the inputs need.
        needed: dict[str, str] = {}
        for record in records:
            if record.classification in ("PII", UNKNOWN):
                for cert in policy.pii_certifications:
                    needed.setdefault(cert, record.dataset_id)
            if record.gdpr_compliant:
                needed.setdefault(policy.gdpr_certification, record.dataset_id)
        needed_sorted = tuple(sorted(needed.items()))
        cert_fail = None
        if needed_sorted:
            cert_fail = np.zeros(len(self.clusters), dtype=bool)
            for cert, _ in needed_sorted:
                cert_fail |= ~self._certified(cert)
        return _Inputs(
            records=records,
            missing=missing,
            zone_sets=zone_sets,
            data_zones=tuple(sorted(data_zones - {UNKNOWN})),
            class_rejections=class_rejections,
            class_fail=np.array([bool(r) for r in class_rejections], dtype=bool),
            needed=needed_sorted,
            cert_fail=cert_fail,
        )

    def _certified(self, cert: str) -> np.ndarray:
        found = self.certified.get(cert)
        if found is None:
            found = self.certified[cert] = np.array(
                [cert in c.certifications for c in self.clusters], dtype=bool
            )
        return found

    def _compliance(self, needed: tuple[tuple[str, str], ...], i: int) -> tuple[Rejection, ...]:
        """`constraints.compliance` of cluster ``i`` for inputs needing ``needed``."""
        key = (needed, i)
        found = self._compliance_rejections.get(key)
        if found is None:
            cluster = self.clusters[i]
            have = cluster.certifications
            found = self._compliance_rejections[key] = tuple(
                _rejection(
                    "compliance",
                    f"{dataset} requires a {cert}-certified cluster; "
                    f"{cluster.name} has {self.cert_text[i]}",
                )
                for cert, dataset in needed
                if cert not in have
            )
        return found

    # -- per request -------------------------------------------------------------------------

    def prepare(self, request: WorkloadRequest) -> Prepared:
        """The request's costs and its state-independent verdicts, for every candidate."""
        policy = self.policy
        shape = self.shape(shape_of(request))
        inputs = self.inputs(tuple(request.datasets))
        n = shape.n
        if shape.divides_by_zero and shape.gpu_idx.size:
            raise ZeroDivisionError("float division by zero")
        # `cost.estimate`, operation for operation.
        cpu_seconds = None
        if shape.cpu_idx.size:
            cpu_seconds = (
                request.cpu_duration_s or request.estimated_duration_s * policy.cpu_slowdown
            )
        seconds = request.estimated_duration_s / shape.speed
        if cpu_seconds is not None:
            seconds[shape.cpu_idx] = cpu_seconds
        hours = seconds / 3600
        if shape.cpu_idx.size == 0:
            gpu_usd = shape.rate * request.gpu_count * hours
        elif shape.gpu_idx.size == 0:
            gpu_usd = shape.rate * hours
        else:
            gpu_usd = shape.rate * hours
            g = shape.gpu_idx
            gpu_usd[g] = shape.rate[g] * request.gpu_count * hours[g]
        n_inputs = max(len(request.datasets), 1)
        share = request.data_gb / n_inputs
        moved_by_zone = []
        for zone in self.zones:
            moved = 0.0
            own = {zone}
            for zones in inputs.zone_sets:
                if zones != own:
                    moved += share
            moved += share * (n_inputs - len(inputs.records))
            moved_by_zone.append(moved)
        moved = np.array(moved_by_zone, dtype=np.float64)[shape.zone]
        egress_usd = moved * shape.egress
        network = self._network(shape, inputs.data_zones)
        latency = network + shape.model_latency
        total = gpu_usd + egress_usd
        if policy.objective == "weighted":
            score = policy.cost_weight * total + policy.latency_weight * latency
        else:
            score = total + latency * 1e-9
        # State-independent rules.
        governance_fail = (inputs.class_fail[shape.residency_class]) if n else np.zeros(0, bool)
        if inputs.cert_fail is not None and n:
            governance_fail = governance_fail | inputs.cert_fail[shape.ci]
        memory_fail, memory_rejections = self._memory(shape, request.gpu_memory_gb)
        size_fail, size_rejections = self._size(shape, request.gpu_count)
        excluded: dict[int, tuple[Rejection, ...]] = {}
        static_fail = governance_fail | memory_fail | shape.telemetry_fail | size_fail
        if request.exclude_clusters:  # `constraints.not_excluded`
            names = set(request.exclude_clusters)
            for k, name in enumerate(shape.names):
                if name in names:
                    excluded[k] = (
                        Rejection(
                            "excluded",
                            f"attempt {request.attempt - 1} failed on {name}; re-placing elsewhere",
                        ),
                    )
            if excluded:
                static_fail[list(excluded)] = True
        slo_fail = None
        if policy.objective == "cheapest_within_slo" and request.latency_slo_ms is not None:
            slo_fail = latency > request.latency_slo_ms
            static_fail = static_fail | slo_fail
        return Prepared(
            request=request,
            shape=shape,
            inputs=inputs,
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            gpu_usd=gpu_usd,
            egress_usd=egress_usd,
            moved=moved,
            latency=latency,
            total=total,
            score=score,
            static_fail=static_fail,
            governance_fail=governance_fail,
            memory_fail=memory_fail,
            memory_rejections=memory_rejections,
            size_fail=size_fail,
            size_rejections=size_rejections,
            excluded=excluded,
            slo_fail=slo_fail,
            priced=~(total <= 0),
        )

    def _memory(self, shape: _Shape, need: Any):
        """`constraints.gpu_memory` for a request needing ``need`` GB per GPU."""
        key = (type(need), need)
        found = shape.memory_verdicts.get(key)
        if found is None:
            too_small = shape.gpu & (shape.memory < need)
            nvml = shape.gpu & ~np.isnan(shape.free_memory) & (shape.free_memory < need)
            rejections: dict[int, tuple[Rejection, ...]] = {}
            for k in np.flatnonzero(too_small | nvml).tolist():
                pool = shape.pools[k]
                assert pool is not None
                out = []
                if too_small[k]:
                    out.append(
                        Rejection(
                            "gpu_memory",
                            f"{pool.gpu_type} has {pool.memory_gb:g} GB per GPU, "
                            f"{need:g} GB needed",
                        )
                    )
                if nvml[k]:
                    cluster = self.clusters[shape.ci[k]]
                    sample = self.snapshot.telemetry[(cluster.name, pool.gpu_type)]
                    out.append(
                        Rejection(
                            "gpu_memory",
                            f"NVML reports {sample.free_memory_gb:g} GB free per GPU "
                            f"on {cluster.name}/{pool.gpu_type}, {need:g} GB "
                            "needed",
                        )
                    )
                rejections[k] = tuple(out)
            found = shape.memory_verdicts[key] = (too_small | nvml, rejections)
        return found

    def _size(self, shape: _Shape, need: int):
        """The static half of `constraints.gpu_capacity`: a pool too small in all."""
        key = (type(need), need)
        found = shape.size_verdicts.get(key)
        if found is None:
            fail = shape.gpu & (shape.total < need)
            rejections = {}
            for k in np.flatnonzero(fail).tolist():
                pool = shape.pools[k]
                assert pool is not None
                rejections[k] = (
                    Rejection(
                        "pool_size",
                        f"{pool.gpu_type} pool has {pool.total} GPUs in all, {need} needed",
                    ),
                )
            found = shape.size_verdicts[key] = (fail, rejections)
        return found

    def _fit(self, shape: _Shape, need: Any) -> np.ndarray:
        """`constraints.free_gpus_for` of every candidate for a request needing ``need`` GB
        per GPU: the reported free GPUs, capped, where a sample gives each GPU's free memory,
        at the GPUs with at least ``need`` free (counted over all pools at once)."""
        if not shape.per_gpu:
            return shape.free_gpus
        key = (type(need), need)
        found = shape.fits.get(key)
        if found is None:
            at_least = np.zeros(shape.per_gpu_memory.size + 1, dtype=np.int64)
            np.cumsum(shape.per_gpu_memory >= need, out=at_least[1:])
            enough = at_least[shape.per_gpu_end] - at_least[shape.per_gpu_start]
            found = shape.fits[key] = np.where(
                shape.per_gpu_known, np.minimum(shape.free_gpus, enough), shape.free_gpus
            )
        return found

    # -- against what a batch took ---------------------------------------------------------

    def _dynamic(self, prep: Prepared, taken: Taken):
        """Capacity, quota and budget verdicts against ``taken``: (capacity fail, capacity
        free/taken arrays, quota rejection or None, budget fail mask, budget context)."""
        request, shape, policy, snapshot = prep.request, prep.shape, self.policy, self.snapshot
        n = shape.n
        team = request.team
        capacity_fail = np.zeros(n, dtype=bool)
        pool_taken = None
        if shape.gpu_idx.size:
            pool_taken = taken.pool[shape.pool_id]
            capacity_fail |= (
                shape.gpu
                & shape.has_sample
                & ~prep.size_fail
                & (self._fit(shape, request.gpu_memory_gb) - pool_taken < request.gpu_count)
            )
        cpu_taken = None
        if shape.cpu_idx.size:
            cpu_taken = taken.cpu[shape.cpu_id]
            capacity_fail |= ~shape.gpu & (shape.cpu_slots - cpu_taken < 1)
        quota = None
        if shape.gpu_idx.size and request.gpu_count != 0:
            q = snapshot.quotas.get(team)
            if q is None:
                if policy.require_quota:
                    quota = Rejection(
                        "quota",
                        f"namespace {team} has no ResourceQuota with "
                        "requests.nvidia.com/gpu: no GPU without a quota",
                    )
            elif request.gpu_count > q.gpus:
                quota = Rejection("quota_size", quota_size_message(request.gpu_count, team, q))
            else:
                held = snapshot.usage_of(team).gpus_held + taken.team_gpus.get(team, 0)
                if held + request.gpu_count > q.gpus:
                    quota = Rejection(
                        "quota",
                        f"team {team} holds {held} of {q.gpus} GPUs "
                        f"({q.source or 'ResourceQuota'}); {request.gpu_count} more "
                        "would exceed it",
                    )
        budget_fail = None
        budget_ctx = None
        b = snapshot.budgets.get(team)
        if b is None:
            if policy.require_budget:
                budget_fail = prep.priced
        else:
            usage = snapshot.usage_of(team)
            committed = usage.spent_usd + usage.reserved_usd + taken.team_usd.get(team, 0.0)
            low = request.priority < policy.low_priority_below
            limit = b.limit_usd * (1 - policy.budget_headroom_share) if low else b.limit_usd
            budget_fail = prep.priced & (committed + prep.total > limit + 1e-9)
            budget_ctx = (committed, low, b)
        return capacity_fail, pool_taken, cpu_taken, quota, budget_fail, budget_ctx

    def feasible(self, prep: Prepared, taken: Taken) -> np.ndarray:
        """Bool per candidate: passes every rule against ``taken``."""
        capacity_fail, _, _, quota, budget_fail, _ = self._dynamic(prep, taken)
        fail = prep.static_fail | capacity_fail
        if quota is not None:
            fail = fail | prep.shape.gpu
        if budget_fail is not None:
            fail = fail | budget_fail
        return ~fail

    def evaluations(self, prep: Prepared, taken: Taken) -> tuple[LazyEvaluations, np.ndarray]:
        """The `Evaluation` of every candidate against ``taken`` (and whether each is feasible),
        exactly as `reference.evaluate` gives them.

        The verdicts against ``taken`` are fixed now (the arrays are copies), but the
        `Evaluation` objects and the rejection messages are built only when they are read: a
        decision reads a handful of its ~2,000 candidates at 1,000 clusters, and the decision
        log a bounded summary of the rest (`explain.Renderer`)."""
        dynamic = self._dynamic(prep, taken)
        capacity_fail, _, _, quota, budget_fail, _ = dynamic
        fail = prep.static_fail | capacity_fail
        if quota is not None:
            fail = fail | prep.shape.gpu
        if budget_fail is not None:
            fail = fail | budget_fail
        return LazyEvaluations(self, prep, dynamic, fail), ~fail

    def _values(self, prep: Prepared) -> tuple[list[Any], ...]:
        """(duration, gpu $, egress $, data moved, latency, score) per candidate as Python
        numbers, exactly as the scalar code computes them."""
        shape, inputs = prep.shape, prep.inputs
        if prep.lists is None:
            latency = prep.latency.tolist()
            if not shape.cpu_latency_exact and shape.cpu_idx.size:
                # The policy's CPU latency is not a float: add it as the scalar code does (an
                # int network latency plus an int stays an int).
                for k in shape.cpu_idx.tolist():
                    cluster = self.clusters[shape.ci[k]]
                    network = (
                        max(
                            cluster.latency_ms.get(z, UNKNOWN_LATENCY_MS) for z in inputs.data_zones
                        )
                        if inputs.data_zones
                        else cluster.latency_ms.get(cluster.zone, 0.0)
                    )
                    latency[k] = network + self.policy.cpu_inference_latency_ms
            duration = prep.seconds.tolist()
            if prep.cpu_seconds is not None:
                for k in shape.cpu_idx.tolist():
                    duration[k] = prep.cpu_seconds
            prep.lists = (
                duration,
                prep.gpu_usd.tolist(),
                prep.egress_usd.tolist(),
                prep.moved.tolist(),
                latency,
                prep.score.tolist(),
            )
        return prep.lists

    def _few(self, prep: Prepared, positions: Sequence[int]) -> tuple[dict[int, Any], ...]:
        """`_values` of a few candidates only (the same Python numbers), by position."""
        shape = prep.shape
        cpu = set(shape.cpu_idx.tolist()) if shape.cpu_idx.size else set()
        out: tuple[dict[int, Any], ...] = ({}, {}, {}, {}, {}, {})
        duration, gpu_usd, egress_usd, moved, latency, score = out
        for k in positions:
            duration[k] = prep.cpu_seconds if k in cpu else prep.seconds[k].item()
            gpu_usd[k] = prep.gpu_usd[k].item()
            egress_usd[k] = prep.egress_usd[k].item()
            moved[k] = prep.moved[k].item()
            latency[k] = prep.latency[k].item()
            score[k] = prep.score[k].item()
        if cpu and not shape.cpu_latency_exact and any(k in cpu for k in positions):
            exact = self._values(prep)[4]  # the scalar code's int arithmetic
            for k in positions:
                latency[k] = exact[k]
        return out

    def _rejections_of(
        self, prep: Prepared, dynamic: tuple[Any, ...], fail: np.ndarray, only: np.ndarray | None
    ) -> list[tuple[Rejection, ...]]:
        """Rejections per candidate (``()`` for those that pass); with ``only`` (a bool mask),
        only those candidates' rejections are filled in."""
        rejections: list[tuple[Rejection, ...]] = [()] * prep.shape.n
        wanted = fail if only is None else fail & only
        if wanted.any():
            capacity_fail, pool_taken, cpu_taken, quota, budget_fail, budget_ctx = dynamic
            self._reasons(
                prep,
                rejections,
                capacity_fail,
                pool_taken,
                cpu_taken,
                quota,
                budget_fail,
                budget_ctx,
                only,
            )
        return rejections

    def _build(
        self, prep: Prepared, rejections: Sequence[tuple[Rejection, ...]], positions: Sequence[int]
    ) -> list[Evaluation]:
        if prep.lists is None and len(positions) * 8 < prep.shape.n:
            duration, gpu_usd, egress_usd, moved, latency, score = self._few(prep, positions)
        else:
            duration, gpu_usd, egress_usd, moved, latency, score = self._values(prep)
        candidates = prep.shape.candidates
        out: list[Evaluation] = []
        append = out.append
        for k in positions:
            cost = _new(CostBreakdown)
            _set(cost, "duration_s", duration[k])
            _set(cost, "gpu_usd", gpu_usd[k])
            _set(cost, "egress_usd", egress_usd[k])
            _set(cost, "data_moved_gb", moved[k])
            _set(cost, "latency_ms", latency[k])
            ev = _new(Evaluation)
            _set(ev, "candidate", candidates[k])
            _set(ev, "cost", cost)
            _set(ev, "rejections", rejections[k])
            _set(ev, "score", score[k])
            append(ev)
        return out

    def rule_counts(self, prep: Prepared, dynamic: tuple[Any, ...]) -> dict[str, int]:
        """How many candidates each rule rejects (a candidate may count under several), from
        the verdict arrays alone."""
        shape, inputs = prep.shape, prep.inputs
        capacity_fail, _, _, quota, budget_fail, _ = dynamic
        counts: dict[str, int] = {}

        def add(rule: str, n: int) -> None:
            if n:
                counts[rule] = counts.get(rule, 0) + int(n)

        if shape.n:
            add("residency", inputs.class_fail[shape.residency_class].sum())
            if inputs.cert_fail is not None:
                add("compliance", inputs.cert_fail[shape.ci].sum())
        add("gpu_memory", len(prep.memory_rejections))
        for more in shape.telemetry_rejections.values():
            add(more[0].rule, 1)
        add("pool_size", len(prep.size_rejections))
        add("gpu_capacity", (capacity_fail & shape.gpu).sum())
        add("cpu_capacity", (capacity_fail & ~shape.gpu).sum())
        if quota is not None:
            add(quota.rule, shape.gpu_idx.size)
        if budget_fail is not None:
            add("budget", budget_fail.sum())
        add("excluded", len(prep.excluded))
        if prep.slo_fail is not None:
            add("slo", prep.slo_fail.sum())
        return counts

    def hints(self, prep: Prepared, ok: np.ndarray) -> Hints:
        """`Hints` of the evaluations just made of ``prep`` (``ok``: which are feasible)."""
        # rules no later state can pass: memory, the SLO, a pool or quota too small in all
        bad = prep.memory_fail | prep.size_fail
        if prep.slo_fail is not None:
            bad = bad | prep.slo_fail
        q = self.snapshot.quotas.get(prep.request.team)
        if q is not None and prep.request.gpu_count > q.gpus:
            bad = bad | prep.shape.gpu
        compliant = ~prep.governance_fail
        return Hints(
            feasible=np.flatnonzero(ok).tolist(),
            compliant=np.flatnonzero(compliant),
            # Some compliant candidate fails only rules that can pass later (capacity, quota,
            # budget, telemetry): the work is deferred rather than rejected.
            transient=bool((~bad & compliant).any()),
            scores=prep.score,
            position=prep.shape.position,
            unique=True,
        )

    def _reasons(
        self,
        prep: Prepared,
        rejections: list[tuple[Rejection, ...]],
        capacity_fail: np.ndarray,
        pool_taken: np.ndarray | None,
        cpu_taken: np.ndarray | None,
        quota: Rejection | None,
        budget_fail: np.ndarray | None,
        budget_ctx: tuple[float, bool, Any] | None,
        only: np.ndarray | None = None,
    ) -> None:
        """Fill ``rejections`` of the failing candidates (of those in the bool mask ``only``,
        when given), rule by rule in `constraints.RULES` order, then the SLO (the messages are
        those of `constraints.py`)."""
        request, shape, inputs, policy = prep.request, prep.shape, prep.inputs, self.policy

        def within(mask: np.ndarray) -> np.ndarray:
            return mask if only is None else mask & only

        only_idx = None if only is None else np.flatnonzero(only).tolist()

        def chosen(extra: Mapping[int, Any]) -> Iterable[tuple[int, Any]]:
            if only_idx is None:
                return extra.items()
            return ((k, extra[k]) for k in only_idx if k in extra)

        governance_fail = within(prep.governance_fail)
        if governance_fail.any():  # residency (per class of cluster), then compliance
            by_class, classes = inputs.class_rejections, shape.residency_class_list
            failing = np.flatnonzero(governance_fail)
            for k in failing.tolist():
                rejections[k] = by_class[classes[k]]
            if inputs.cert_fail is not None:
                compliance, needed, ci = self._compliance, inputs.needed, shape.ci_list
                for k in failing[inputs.cert_fail[shape.ci[failing]]].tolist():
                    rejections[k] = rejections[k] + compliance(needed, ci[k])
        for extra in (prep.memory_rejections, shape.telemetry_rejections, prep.size_rejections):
            for k, more in chosen(extra):
                have = rejections[k]
                rejections[k] = have + more if have else more
        capacity_fail = within(capacity_fail)
        if capacity_fail.any():
            need = request.gpu_count
            need_gb = request.gpu_memory_gb
            names, gpu_types, reported = shape.names, shape.gpu_types, shape.reported
            fit: list[int] | None = None
            pool_took = pool_taken.tolist() if pool_taken is not None else None
            cpu_took = cpu_taken.tolist() if cpu_taken is not None else None
            known = shape.capacity_messages  # the same until the batch takes from the pool
            for k in np.flatnonzero(capacity_fail).tolist():
                free = reported[k]
                if free is None:  # a CPU candidate
                    assert cpu_took is not None
                    key = (k, cpu_took[k], 0)
                    more = known.get(key)
                    if more is None:
                        cluster = self.clusters[shape.ci_list[k]]
                        more = known[key] = (
                            _rejection(
                                "cpu_capacity",
                                f"{cluster.name} has no free CPU slot "
                                f"({cluster.cpu_slots} slots, {cpu_took[k]} taken)",
                            ),
                        )
                elif shape.per_gpu and shape.per_gpu_known[k]:
                    assert pool_took is not None
                    took = pool_took[k]
                    key = (k, took, need, type(need_gb), need_gb)
                    more = known.get(key)
                    if more is None:
                        if fit is None:
                            fit = self._fit(shape, need_gb).tolist()
                        more = known[key] = (
                            _rejection(
                                "gpu_capacity",
                                capacity_message(
                                    fit[k], free, names[k], gpu_types[k], need_gb, took, need
                                ),
                            ),
                        )
                else:
                    assert pool_took is not None
                    took = pool_took[k]
                    key = (k, took, need)
                    more = known.get(key)
                    if more is None:
                        more = known[key] = (
                            _rejection(
                                "gpu_capacity",
                                f"{free - took} GPUs free on {names[k]}/"
                                f"{gpu_types[k]} ({free} reported, "
                                f"{took} taken by this batch), {need} needed",
                            ),
                        )
                have = rejections[k]
                rejections[k] = have + more if have else more
        if quota is not None:
            one = (quota,)
            gpu_idx = shape.gpu_idx if only is None else shape.gpu_idx[only[shape.gpu_idx]]
            for k in gpu_idx.tolist():
                have = rejections[k]
                rejections[k] = have + one if have else one
        if budget_fail is not None:
            budget_fail = within(budget_fail)
        if budget_fail is not None and budget_fail.any():
            team = request.team
            idx = np.flatnonzero(budget_fail).tolist()
            if budget_ctx is None:
                one = (
                    _rejection("budget", f"team {team} has no budget: nothing that costs money"),
                )
                for k in idx:
                    have = rejections[k]
                    rejections[k] = have + one if have else one
            else:
                committed, low, b = budget_ctx
                kind = (
                    f"low-priority work may use {1 - policy.budget_headroom_share:.0%} of it"
                    if low
                    else "the full budget"
                )
                head = (
                    f"team {team} has committed ${committed:,.2f} of its "
                    f"${b.limit_usd:,.2f} {b.period} budget ({kind}); this run "
                    "would add $"
                )
                total = prep.total.tolist()
                for k in idx:
                    more = (_rejection("budget", f"{head}{total[k]:,.2f}"),)
                    have = rejections[k]
                    rejections[k] = have + more if have else more
        for k, more in chosen(prep.excluded):
            have = rejections[k]
            rejections[k] = have + more if have else more
        slo_fail = None if prep.slo_fail is None else within(prep.slo_fail)
        if slo_fail is not None and slo_fail.any():
            slo = request.latency_slo_ms
            # The latency of a candidate depends on the request only through the data's zones.
            known = shape.slo_messages.setdefault((inputs.data_zones, type(slo), slo), {})
            latency = None
            for k in np.flatnonzero(slo_fail).tolist():
                more = known.get(k)
                if more is None:
                    if latency is None:
                        latency = prep.latency.tolist()
                    more = known[k] = (
                        _rejection(
                            "slo",
                            f"estimated latency {latency[k]:.0f} ms exceeds the SLO of {slo:g} ms",
                        ),
                    )
                have = rejections[k]
                rejections[k] = have + more if have else more


class LazyEvaluations(Sequence[Evaluation]):
    """Every candidate's `Evaluation` of one request, as `FleetIndex.evaluations` gives them,
    built on first use: one at a time when a decision reads one (its choice, the runner-up),
    all at once when something iterates them. Equal to the tuple of those evaluations."""

    __slots__ = ("_all", "_dynamic", "_fail", "_index", "_one", "_prep")

    def __init__(
        self, index: FleetIndex, prep: Prepared, dynamic: tuple[Any, ...], fail: np.ndarray
    ) -> None:
        self._index = index
        self._prep = prep
        self._dynamic = dynamic
        self._fail = fail
        self._all: tuple[Evaluation, ...] | None = None
        self._one: dict[int, Evaluation] = {}

    def __len__(self) -> int:
        return self._prep.shape.n

    def _every(self) -> tuple[Evaluation, ...]:
        if self._all is None:
            index, prep = self._index, self._prep
            rejections = index._rejections_of(prep, self._dynamic, self._fail, None)
            built = index._build(prep, rejections, range(prep.shape.n))
            for k, known in self._one.items():  # keep the objects already handed out
                built[k] = known
            self._all = tuple(built)
        return self._all

    def __getitem__(self, k):  # type: ignore[override]
        if self._all is not None or isinstance(k, slice):
            return self._every()[k]
        n = self._prep.shape.n
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("evaluation index out of range")
        found = self._one.get(k)
        if found is None:
            found = self._one[k] = self.subset([k])[0]
        return found

    def subset(self, positions: Sequence[int]) -> list[Evaluation]:
        """The evaluations at ``positions`` (in that order), building only those."""
        if self._all is not None:
            return [self._all[k] for k in positions]
        index, prep = self._index, self._prep
        only = np.zeros(prep.shape.n, dtype=bool)
        only[list(positions)] = True
        rejections = index._rejections_of(prep, self._dynamic, self._fail, only)
        out = index._build(prep, rejections, positions)
        for i, k in enumerate(positions):
            known = self._one.get(k)
            if known is None:
                self._one[k] = out[i]
            else:
                out[i] = known
        return out

    def __iter__(self) -> Iterator[Evaluation]:
        return iter(self._every())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyEvaluations | tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LazyEvaluations({len(self)} candidates)"

    # -- what a summary of the decision needs, without building every evaluation -------------

    def position_of(self, candidate: Candidate) -> int | None:
        """Where ``candidate`` (the very object) is, if it is one of these."""
        k = self._prep.shape.position.get(id(candidate))
        if k is not None and self._prep.shape.candidates[k] is candidate:
            return k
        return None

    def candidate_at(self, k: int) -> Candidate:
        return self._prep.shape.candidates[k]

    def feasible_mask(self) -> np.ndarray:
        return ~self._fail

    def scores(self) -> list[float]:
        return self._index._values(self._prep)[5]

    def rule_counts(self) -> dict[str, int]:
        """Candidates rejected per rule (one candidate may count under several rules)."""
        return self._index.rule_counts(self._prep, self._dynamic)


def _rejection(rule: str, message: str) -> Rejection:
    """``Rejection(rule, message)`` without the frozen dataclass's per-field checks."""
    r = _new(Rejection)
    _set(r, "rule", rule)
    _set(r, "message", message)
    return r


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch builds millions of evaluations.

    They are acyclic (reference counting frees them), but each allocation counts towards a
    collection, and with a large batch alive every collection re-walks everything built so far:
    that tripled the time of a 10,000-request batch. After the batch the collector resumes and
    walks the survivors once.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fleet_index(snapshot: Snapshot, policy: PlacementPolicy) -> FleetIndex:
    """The index of ``snapshot`` under ``policy``, built on first use and kept with them."""
    cache = cache_of(snapshot)
    entries: list[tuple[PlacementPolicy, FleetIndex]] = cache.setdefault("fleet_index", [])
    for known, index in entries:
        if known is policy:
            return index
    for known, index in entries:
        if known == policy:
            return index
    index = FleetIndex(snapshot, policy)
    entries.append((policy, index))
    del entries[:-4]  # a snapshot is decided under one or two policies
    return index
