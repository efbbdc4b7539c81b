"""The engine: every candidate of a request judged at once, over arrays.

`placement.place` and `batch.place_batch` judge every (cluster, pool) of the fleet for every
request: with 1,000 clusters that is some 2,000 candidates a request. Almost everything about a
candidate depends on the snapshot alone (prices, speeds, telemetry, congestion, zones,
certifications), so a `FleetIndex` lays it out once per snapshot and policy as arrays, one
`CandidateTable` per request shape (GPU only, GPU or CPU, CPU only). Per request what remains:

* the cost model (`cost.estimate`) as array arithmetic;
* what the input datasets decide (residency per class of cluster, the certifications they
  need), once per set of inputs (`Inputs`);
* the rules (`rules.py`): those of the request alone once (`Prepared`), capacity, quota and
  budget against what the batch already took (`rules.Taken`), so a batch can re-judge its
  requests after every placement without starting again;
* `Evaluation` objects and their reasons only for the candidates someone reads
  (`LazyEvaluations`).

The one-candidate-at-a-time specification of the same rules lives in ``tests/oracle/``; the
property tests check on thousands of random worlds that this engine gives exactly its answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN, residency_parts
from reasoning_plane import cost, rules
from reasoning_plane.cost import UNKNOWN_LATENCY_MS, Costs
from reasoning_plane.model import (
    CPU,
    Candidate,
    Cluster,
    CostBreakdown,
    Evaluation,
    Evaluations,
    GpuPool,
    Rejection,
    Snapshot,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState, Taken, Verdict

GPU_ONLY, GPU_OR_CPU, CPU_ONLY = "gpu", "gpu+cpu", "cpu"


def shape_of(request: WorkloadRequest) -> str:
    """Which candidates a request has: GPU pools, CPU slots where it allows them, or both."""
    if request.gpu_count > 0:
        return GPU_OR_CPU if request.gpu_optional else GPU_ONLY
    return CPU_ONLY


@dataclass(frozen=True)
class CandidateTable:
    """The candidates of one request shape, in fleet order (each cluster's pools, then its CPU
    slots), and what the snapshot says of each, as arrays."""

    kind: str  # GPU_ONLY | GPU_OR_CPU | CPU_ONLY
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
    zones: list[str]  # the fleet's zones; `zone` holds positions in it
    zone: np.ndarray
    default_network: np.ndarray  # cluster.latency_ms.get(cluster.zone, 0.0)
    model_latency: np.ndarray  # GPU: congestion-stretched inference latency; CPU: the policy's
    memory: np.ndarray  # GPU memory per GPU (CPU: +inf)
    free_memory: np.ndarray  # NVML free memory per GPU (nan: not reported)
    total: np.ndarray  # GPUs in the pool (CPU: 0)
    has_sample: np.ndarray  # bool
    free_gpus: np.ndarray  # reported free GPUs (0 without a sample)
    # The free memory of each GPU, where a sample gives it (`rules.free_gpus_for`): candidate
    # k's GPUs are per_gpu_memory[per_gpu_start[k]:per_gpu_end[k]].
    per_gpu_known: np.ndarray  # bool per candidate
    per_gpu_memory: np.ndarray
    per_gpu_start: np.ndarray
    per_gpu_end: np.ndarray
    pool_id: np.ndarray  # GPU: id of (cluster, gpu_type) in `Taken.pool`; CPU: 0
    cpu_id: np.ndarray  # CPU: id of the cluster in `Taken.cpu`; GPU: 0
    cpu_slots: np.ndarray  # CPU: the cluster's CPU slots
    telemetry: dict[int, tuple[Rejection]]  # why a pool's telemetry is not trusted
    telemetry_counts: dict[str, int]  # how many pools per telemetry rule
    telemetry_fail: np.ndarray  # bool
    residency_class: np.ndarray  # id of the cluster's (zone, accepts unknown[, name]) class
    ci_list: list[int]
    residency_class_list: list[int]
    names: list[str]  # the cluster's name
    gpu_types: list[str]  # the pool's GPU type (CPU)
    reported: list[Any]  # GPU: the sample's free GPUs (None without a sample); CPU: None
    position: dict[Candidate, int]


@dataclass(frozen=True)
class Inputs:
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
class Prepared:
    """A request with its costs and the verdicts of the rules that do not depend on a batch."""

    request: WorkloadRequest
    table: CandidateTable
    inputs: Inputs
    costs: Costs
    static: tuple[Verdict, ...]  # `rules.STATIC`
    last: tuple[Verdict, ...]  # `rules.LAST`
    static_fail: np.ndarray  # bool: fails a rule whatever the batch took

    @property
    def latency(self) -> np.ndarray:
        return self.costs.latency_ms

    @property
    def total(self) -> np.ndarray:
        return self.costs.total_usd

    @property
    def score(self) -> np.ndarray:
        return self.costs.score


@dataclass(frozen=True)
class Hints:
    """What the verdicts say of a request's evaluations, by position: so deciding need not
    look at thousands of candidates again (`placement.decide`)."""

    feasible: np.ndarray  # positions of the feasible ones, in order
    scores: np.ndarray  # every evaluation's score
    verdicts: tuple[Verdict, ...]  # every rule's, in order

    @cached_property
    def _masks(self) -> tuple[np.ndarray, np.ndarray]:
        return rules.masks(self.verdicts, self.scores.size)

    @property
    def compliant(self) -> np.ndarray:
        """Bool per candidate: no governance (residency, compliance) rejection (read only when
        nothing is feasible, so built only then)."""
        return self._masks[0]

    @property
    def lasting(self) -> np.ndarray:
        """Bool per candidate: a rejection no later state lifts."""
        return self._masks[1]

    @property
    def status(self) -> str:
        return rules.status(bool(self.feasible.size), self.compliant, self.lasting)


class FleetIndex:
    """Everything about a snapshot's candidates that the requests do not change."""

    def __init__(self, snapshot: Snapshot, policy: PlacementPolicy) -> None:
        # A copy, not the snapshot itself: the index is kept with the snapshot
        # (`fleet_index`) and must not keep it alive.
        self.snapshot = replace(snapshot)
        self.policy = policy
        self.clusters: tuple[Cluster, ...] = tuple(snapshot.fleet.clusters)
        self.cluster_index = {c.name: i for i, c in enumerate(self.clusters)}
        self.pool_ids: dict[tuple[str, str], int] = {}
        for c in self.clusters:
            for p in c.pools:
                self.pool_ids[(c.name, p.gpu_type)] = len(self.pool_ids)
        self.zones = sorted({c.zone for c in self.clusters})
        self.zone_id = {z: i for i, z in enumerate(self.zones)}
        # Residency verdicts depend on a cluster only through these (`rules.residency_reasons`).
        classes: dict[tuple[str, bool, str | None], int] = {}
        cluster_class = []
        for c in self.clusters:
            key = (c.zone, bool(c.accepts_unknown_residency), c.name if c.zone == UNKNOWN else None)
            cluster_class.append(classes.setdefault(key, len(classes)))
        self.residency_classes = list(classes)
        self.cluster_class = np.array(cluster_class, dtype=np.intp)
        self._certified: dict[str, np.ndarray] = {}
        self._tables: dict[str, CandidateTable] = {}
        self._inputs: dict[tuple[str, ...], Inputs] = {}
        self._latencies: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, np.ndarray]] = {}
        self._fits: dict[tuple[str, Any], np.ndarray] = {}
        self._compliance: dict[tuple[Any, int], tuple[Rejection, ...]] = {}
        self._verdicts: dict[tuple[str, str, Any], Verdict | None] = {}

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
            taken.cluster_team_gpus = dict(state.cluster_team_gpus)
        return taken

    def table(self, kind: str) -> CandidateTable:
        found = self._tables.get(kind)
        if found is None:
            found = self._tables[kind] = self._build_table(kind)
        return found

    def _entries(self, kind: str) -> list[tuple[int, GpuPool | None]]:
        entries: list[tuple[int, GpuPool | None]] = []
        for i, cluster in enumerate(self.clusters):
            if kind != CPU_ONLY:
                entries += [(i, pool) for pool in cluster.pools]
            if kind != GPU_ONLY and cluster.cpu_slots > 0:
                entries.append((i, None))
        return entries

    def _columns(
        self, entries: list[tuple[int, GpuPool | None]]
    ) -> tuple[dict[str, list[Any]], list[float], dict[int, tuple[Rejection]]]:
        """The per-candidate columns of a table, each GPU's free memory (concatenated), and
        why a pool's telemetry is not trusted (`rules.telemetry_problem`)."""
        snapshot, policy = self.snapshot, self.policy
        cols: dict[str, list[Any]] = defaultdict(list)
        per_gpu_memory: list[float] = []
        telemetry: dict[int, tuple[Rejection]] = {}
        for k, (i, pool) in enumerate(entries):
            cluster = self.clusters[i]
            sample = None if pool is None else snapshot.telemetry.get((cluster.name, pool.gpu_type))
            per_gpu = None if sample is None else sample.free_memory_per_gpu_gb
            row = _table_row(cluster, pool, sample, policy, self.pool_ids)
            for name, value in row.items():
                cols[name].append(value)
            cols["per_gpu_known"].append(per_gpu is not None)
            cols["per_gpu_start"].append(len(per_gpu_memory))
            per_gpu_memory.extend(per_gpu or ())
            cols["per_gpu_end"].append(len(per_gpu_memory))
            if pool is not None:
                problem = rules.telemetry_problem(
                    cluster.name, pool.gpu_type, sample, snapshot.now, policy
                )
                if problem is not None:
                    telemetry[k] = (problem,)
        return cols, per_gpu_memory, telemetry

    def _build_table(self, kind: str) -> CandidateTable:
        entries = self._entries(kind)
        cols, per_gpu_memory, telemetry = self._columns(entries)
        n = len(entries)
        ci = np.array([i for i, _ in entries], dtype=np.intp)
        gpu = np.array([p is not None for _, p in entries], dtype=bool)
        telemetry_fail = np.zeros(n, dtype=bool)
        telemetry_fail[list(telemetry)] = True
        clusters = self.clusters
        candidates = [Candidate(clusters[i].name, p.gpu_type if p else CPU) for i, p in entries]
        residency_class = self.cluster_class[ci] if n else np.zeros(0, dtype=np.intp)
        f64, i64 = np.float64, np.int64
        return CandidateTable(
            kind=kind,
            candidates=candidates,
            n=n,
            ci=ci,
            gpu=gpu,
            gpu_idx=np.flatnonzero(gpu),
            cpu_idx=np.flatnonzero(~gpu),
            pools=[p for _, p in entries],
            speed=np.array(cols["speed"], dtype=f64),
            rate=np.array(cols["rate"], dtype=f64),
            egress=np.array([clusters[i].egress_per_gb for i, _ in entries], dtype=f64),
            zones=self.zones,
            zone=np.array([self.zone_id[clusters[i].zone] for i, _ in entries], dtype=np.intp),
            default_network=np.array(
                [clusters[i].latency_ms.get(clusters[i].zone, 0.0) for i, _ in entries], dtype=f64
            ),
            model_latency=np.array(cols["model_latency"], dtype=f64),
            memory=np.array(cols["memory"], dtype=f64),
            free_memory=np.array(cols["free_memory"], dtype=f64),
            total=np.array(cols["total"], dtype=i64),
            has_sample=np.array(cols["has_sample"], dtype=bool),
            free_gpus=np.array(cols["free_gpus"], dtype=i64),
            per_gpu_known=np.array(cols["per_gpu_known"], dtype=bool),
            per_gpu_memory=np.array(per_gpu_memory, dtype=f64),
            per_gpu_start=np.array(cols["per_gpu_start"], dtype=np.intp),
            per_gpu_end=np.array(cols["per_gpu_end"], dtype=np.intp),
            pool_id=np.array(cols["pool_id"], dtype=np.intp),
            cpu_id=ci.copy(),
            cpu_slots=np.array(cols["cpu_slots"], dtype=i64),
            telemetry=telemetry,
            telemetry_counts=_counts(telemetry),
            telemetry_fail=telemetry_fail,
            residency_class=residency_class,
            ci_list=ci.tolist(),
            residency_class_list=residency_class.tolist(),
            names=[c.cluster for c in candidates],
            gpu_types=[c.gpu_type for c in candidates],
            reported=cols["reported"],
            position={c: k for k, c in enumerate(candidates)},
        )

    def latency(self, kind: str, data_zones: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Latency of each candidate for data in ``data_zones``: the network latency from the
        data's zones (the worst; the cluster's own zone's for data of no known zone) plus the
        candidate's congestion-stretched model latency; and its part of the score
        (`cost.latency_score`)."""
        key = (kind, data_zones)
        found = self._latencies.get(key)
        if found is None:
            table = self.table(kind)
            if not data_zones:
                found = table.default_network
            else:
                per_cluster = np.array(
                    [
                        max(c.latency_ms.get(z, UNKNOWN_LATENCY_MS) for z in data_zones)
                        for c in self.clusters
                    ],
                    dtype=np.float64,
                )
                found = per_cluster[table.ci]
            latency = found + table.model_latency
            found = self._latencies[key] = (latency, cost.latency_score(latency, self.policy))
        return found

    def free_gpus(self, table: CandidateTable, need_gb: float) -> np.ndarray:
        """`rules.free_gpus_for` of every candidate of ``table``: the reported free GPUs,
        capped, where a sample gives each GPU's free memory, at those with ``need_gb`` free."""
        if not table.per_gpu_known.any():
            return table.free_gpus
        key = (table.kind, need_gb)
        found = self._fits.get(key)
        if found is None:
            at_least = np.zeros(table.per_gpu_memory.size + 1, dtype=np.int64)
            np.cumsum(table.per_gpu_memory >= need_gb, out=at_least[1:])
            enough = at_least[table.per_gpu_end] - at_least[table.per_gpu_start]
            found = self._fits[key] = np.where(
                table.per_gpu_known, np.minimum(table.free_gpus, enough), table.free_gpus
            )
        return found

    # -- per set of inputs -----------------------------------------------------------------

    def inputs(self, datasets: tuple[str, ...]) -> Inputs:
        found = self._inputs.get(datasets)
        if found is None:
            found = self._inputs[datasets] = self._build_inputs(datasets)
        return found

    def _build_inputs(self, datasets: tuple[str, ...]) -> Inputs:
        catalog: Mapping[str, CatalogRecord] = self.snapshot.catalog
        records = tuple(catalog[d] for d in datasets if d in catalog)
        missing = tuple(d for d in datasets if d not in catalog)
        zone_sets = tuple(residency_parts(r.data_residency) for r in records)
        data_zones: set[str] = set().union(*zone_sets) if zone_sets else set()
        class_rejections = [
            rules.residency_reasons(
                records, zone_sets, missing, zone, accepts_unknown, name, self.policy
            )
            for zone, accepts_unknown, name in self.residency_classes
        ]
        needed = rules.certifications_needed(records, self.policy)
        cert_fail = None
        if needed:
            cert_fail = np.zeros(len(self.clusters), dtype=bool)
            for cert, _ in needed:
                cert_fail |= ~self._has(cert)
        return Inputs(
            records=records,
            missing=missing,
            zone_sets=zone_sets,
            data_zones=tuple(sorted(data_zones - {UNKNOWN})),
            class_rejections=class_rejections,
            class_fail=np.array([bool(r) for r in class_rejections], dtype=bool),
            needed=needed,
            cert_fail=cert_fail,
        )

    def _has(self, cert: str) -> np.ndarray:
        found = self._certified.get(cert)
        if found is None:
            found = self._certified[cert] = np.array(
                [cert in c.certifications for c in self.clusters], dtype=bool
            )
        return found

    def compliance_reasons(
        self, needed: tuple[tuple[str, str], ...], i: int
    ) -> tuple[Rejection, ...]:
        """`rules.compliance_reasons` of cluster ``i`` (kept: many requests read the same)."""
        key = (needed, i)
        found = self._compliance.get(key)
        if found is None:
            cluster = self.clusters[i]
            found = self._compliance[key] = rules.compliance_reasons(
                needed, cluster.name, cluster.certifications
            )
        return found

    # -- per request -------------------------------------------------------------------------

    def prepare(self, request: WorkloadRequest) -> Prepared:
        """The request's costs and the verdicts of the rules of the request alone."""
        kind = shape_of(request)
        table = self.table(kind)
        inputs = self.inputs(tuple(request.datasets))
        latency, part = self.latency(kind, inputs.data_zones)
        costs = cost.estimate(request, table, inputs, latency, part, self.policy)
        judging = Prepared(request, table, inputs, costs, (), (), np.zeros(table.n, dtype=bool))
        static = self._static(judging)
        last = _judged(self, judging, rules.LAST)
        fail = np.zeros(table.n, dtype=bool)
        for v in static + last:
            fail |= v.fail
        return Prepared(request, table, inputs, costs, static, last, fail)

    def _static(self, prep: Prepared) -> tuple[Verdict, ...]:
        """The verdicts of `rules.STATIC`, kept per rule, shape and what the rule reads."""
        out = []
        for rule, reads in rules.STATIC:
            key = (rule.__name__, prep.table.kind, reads(prep.request))
            if key in self._verdicts:
                verdict = self._verdicts[key]
            else:
                verdict = self._verdicts[key] = rule(self, prep)
            if verdict is not None:
                out.append(verdict)
        return tuple(out)

    def _against(self, prep: Prepared, taken: Taken) -> tuple[Verdict, ...]:
        return _judged(self, prep, rules.AGAINST_BATCH, taken)

    def feasible(self, prep: Prepared, taken: Taken) -> np.ndarray:
        """Bool per candidate: passes every rule against ``taken``."""
        fail = prep.static_fail
        for v in self._against(prep, taken):
            fail = fail | v.fail
        return ~fail

    def evaluations(self, prep: Prepared, taken: Taken) -> tuple[LazyEvaluations, Hints]:
        """The `Evaluation` of every candidate against ``taken`` (built when read) and the
        `Hints` of them."""
        against = self._against(prep, taken)
        fail = prep.static_fail
        for v in against:
            fail = fail | v.fail
        ok = ~fail
        verdicts = prep.static + against + prep.last  # the order reasons are listed in
        hints = Hints(np.flatnonzero(ok), prep.score, verdicts)
        return LazyEvaluations(prep, verdicts, ok), hints


def _judged(index: FleetIndex, prep: Prepared, judges: Any, *taken: Taken) -> tuple[Verdict, ...]:
    """The verdicts of the rules ``judges`` that reject some candidate of ``prep``."""
    out = []
    for rule in judges:
        verdict = rule(index, prep, *taken)
        if isinstance(verdict, Verdict):
            out.append(verdict)
        elif verdict is not None:  # a rule whose names differ by candidate (quota)
            out.extend(verdict)
    return tuple(out)


def _counts(problems: Mapping[int, tuple[Rejection]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (problem,) in problems.values():
        counts[problem.rule] = counts.get(problem.rule, 0) + 1
    return counts


def _table_row(
    cluster: Cluster,
    pool: GpuPool | None,
    sample: Any,
    policy: PlacementPolicy,
    pool_ids: Mapping[tuple[str, str], int],
) -> dict[str, Any]:
    """One candidate's columns of a `CandidateTable` (``pool`` None: the CPU slots)."""
    if pool is None:
        return dict(
            speed=1.0,
            rate=cluster.cpu_price_per_hour,
            memory=np.inf,
            free_memory=np.nan,
            total=0,
            has_sample=False,
            free_gpus=0,
            pool_id=0,
            cpu_slots=cluster.cpu_slots,
            model_latency=float(policy.cpu_inference_latency_ms),
            reported=None,
        )
    utilisation = min(sample.utilisation, policy.congestion_cap) if sample else 0.0
    free_memory = None if sample is None else sample.free_memory_gb
    return dict(
        speed=pool.speed,
        rate=pool.price_per_hour,
        memory=pool.memory_gb,
        free_memory=np.nan if free_memory is None else free_memory,
        total=pool.total,
        has_sample=sample is not None,
        free_gpus=sample.free_gpus if sample is not None else 0,
        pool_id=pool_ids[(cluster.name, pool.gpu_type)],
        cpu_slots=0,
        model_latency=pool.inference_latency_ms / (1 - utilisation),
        reported=sample.free_gpus if sample is not None else None,
    )


class LazyEvaluations(Evaluations):
    """Every candidate's `Evaluation` of one request, built on first use: one at a time when a
    decision reads one (its choice, the runner-up), all at once when something iterates them.
    Equal to the tuple of those evaluations."""

    def __init__(self, prep: Prepared, verdicts: tuple[Verdict, ...], ok: np.ndarray) -> None:
        self._prep = prep
        self._verdicts = verdicts
        self._ok = ok
        self._built: dict[int, Evaluation] = {}

    def __len__(self) -> int:
        return self._prep.table.n

    def _one(self, k: int) -> Evaluation:
        found = self._built.get(k)
        if found is None:
            prep = self._prep
            c = prep.costs
            reasons: tuple[Rejection, ...] = ()
            if not self._ok[k]:
                for v in self._verdicts:
                    if v.fail[k]:
                        reasons += v.reasons(k)
            found = self._built[k] = Evaluation(
                candidate=prep.table.candidates[k],
                cost=CostBreakdown(
                    duration_s=c.seconds[k].item(),
                    gpu_usd=c.gpu_usd[k].item(),
                    egress_usd=c.egress_usd[k].item(),
                    data_moved_gb=c.moved_gb[k].item(),
                    latency_ms=c.latency_ms[k].item(),
                ),
                rejections=reasons,
                score=c.score[k].item(),
            )
        return found

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return tuple(self._one(i) for i in range(*k.indices(len(self))))
        n = len(self)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("evaluation index out of range")
        return self._one(k)

    def __iter__(self) -> Iterator[Evaluation]:
        return (self._one(k) for k in range(len(self)))

    def __repr__(self) -> str:
        return f"LazyEvaluations({len(self)} candidates)"

    @property
    def built(self) -> int:
        """How many evaluations were built so far (read by someone)."""
        return len(self._built)

    def position_of(self, candidate: Candidate) -> int | None:
        return self._prep.table.position.get(candidate)

    def candidate_at(self, k: int) -> Candidate:
        return self._prep.table.candidates[k]

    def feasible_mask(self) -> np.ndarray:
        return self._ok

    def scores(self) -> np.ndarray:
        return self._prep.score

    def latencies(self) -> np.ndarray:
        return self._prep.latency

    def rule_counts(self) -> dict[str, int]:
        """Candidates rejected per rule (one candidate may count under several rules)."""
        counts: dict[str, int] = {}
        for v in self._verdicts:
            for rule, n in v.count().items():
                counts[rule] = counts.get(rule, 0) + n
        return counts


def fleet_index(snapshot: Snapshot, policy: PlacementPolicy) -> FleetIndex:
    """The index of ``snapshot`` under ``policy``, built on first use and kept with them."""
    kept = snapshot.derived.setdefault("fleet_index", {})
    index = kept.get(policy.version())
    if index is None:
        index = kept[policy.version()] = FleetIndex(snapshot, policy)
        while len(kept) > 4:  # a snapshot is decided under one or two policies
            del kept[next(iter(kept))]
    return index
