"""The plain data the reasoning plane decides over: fleet, quotas, budgets, usage, telemetry,
governance, workload requests, and the decisions it makes.

Everything here is an immutable dataclass with no behaviour beyond small derived properties, so
that every step of a decision (`placement`, `batch`, `hysteresis`) is a pure function over a
`Snapshot` and can be tested and replayed alone.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np

from data_plane.catalog import CatalogRecord

CPU = "cpu"  # the pseudo GPU type of a CPU-only candidate


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str = "Exists"  # Exists | Equal
    value: str | None = None
    effect: str | None = None  # NoSchedule | PreferNoSchedule | NoExecute

    def to_k8s(self) -> dict[str, str]:
        out = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        return out


@dataclass(frozen=True)
class GpuPool:
    """A homogeneous set of GPU nodes in a cluster."""

    gpu_type: str  # e.g. A100-80GB, A10, H100
    memory_gb: float  # per GPU
    total: int  # GPUs in the pool
    price_per_hour: float  # USD per GPU-hour
    speed: float = 1.0  # throughput relative to the request's reference GPU (duration / speed)
    inference_latency_ms: float = 20.0  # model latency on this GPU at low load
    node_labels: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()


@dataclass(frozen=True)
class PrometheusTelemetry:
    """A cluster's telemetry read at tick time through the Prometheus HTTP API: the NVIDIA DCGM
    exporter's and kube-state-metrics' series (`reasoning_plane.prometheus_telemetry`)."""

    url: str  # e.g. http://prometheus.monitoring:9090
    labels: Mapping[str, str] = field(default_factory=dict)  # matchers added to every selector
    window_s: float = 60.0  # how far back a series' last sample is looked for
    timeout_s: float = 5.0


@dataclass(frozen=True)
class KubernetesQuotas:
    """A cluster's GPU quotas read live from its API server (`reasoning_plane.live_quotas`):
    each team namespace's ResourceQuota ``status.hard`` and ``status.used``."""

    kubeconfig: str | None = None  # None: $KUBECONFIG or ~/.kube/config, else in-cluster
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Cluster:
    name: str
    zone: str  # residency zone: EU, US, ...
    region: str  # cloud region: eu-central-1, ...
    location: str
    certifications: frozenset[str]  # GDPR, ISO27001, SOC2, HIPAA, PCI_DSS ...
    pools: tuple[GpuPool, ...]
    egress_per_gb: float  # USD per GB moved into this cluster from another zone
    latency_ms: Mapping[str, float]  # network latency from each zone to this cluster
    kube_context: str | None = None  # None: in-cluster config, or the local machine
    namespace_template: str = "{team}"
    service_account: str = "dagster-run"
    image: str | None = None
    node_labels: Mapping[str, str] = field(default_factory=dict)
    cpu_price_per_hour: float = 0.0  # USD per hour of CPU-only work
    cpu_slots: int = 0  # concurrent CPU-only runs (0: no CPU work here)
    accepts_unknown_residency: bool = False  # explicitly marked for data of unknown residency
    local: bool = False  # the machine the plane itself runs on (no Kubernetes)
    telemetry: PrometheusTelemetry | None = None  # None: the plane's own agent (plane.telemetry)
    quotas: KubernetesQuotas | None = None  # None: the quota file (PLANE_QUOTAS_FILE)

    def pool(self, gpu_type: str) -> GpuPool | None:
        return next((p for p in self.pools if p.gpu_type == gpu_type), None)

    def namespace(self, team: str) -> str:
        return self.namespace_template.format(team=team)


@dataclass(frozen=True)
class Fleet:
    """The clusters the plane places on: one name per cluster, one pool per GPU type in a
    cluster, and no pool named like the CPU candidates (refused here, whoever builds it)."""

    clusters: tuple[Cluster, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.clusters]
        for name in sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"fleet: two clusters are named {name!r}")
        for c in self.clusters:
            types = [p.gpu_type for p in c.pools]
            for t in types:
                if t.lower() == CPU:
                    raise ValueError(f"fleet: {c.name}: pool {t!r}: the name is reserved for CPU")
                if types.count(t) > 1:
                    raise ValueError(f"fleet: {c.name}: two pools of GPU type {t!r}")
            for p in c.pools:
                if not p.speed > 0:
                    raise ValueError(f"fleet: {c.name}/{p.gpu_type}: speed must be above 0")

    @cached_property
    def _by_name(self) -> dict[str, Cluster]:
        return {c.name: c for c in self.clusters}

    def get(self, name: str) -> Cluster | None:
        return self._by_name.get(name)


@dataclass(frozen=True)
class TeamQuota:
    """``spec.hard["requests.nvidia.com/gpu"]`` of a team's ResourceQuota (the quota file: one
    per team for the whole fleet), or, read live from a cluster (`live_quotas`), its
    ``status.hard`` and ``status.used`` in one namespace of that cluster."""

    team: str  # the namespace
    gpus: int
    source: str = ""  # file and quota name, for explanations
    used: int | None = None  # live: GPUs the cluster counts as used (+ the plane's unstarted)
    cluster: str | None = None  # live: the cluster it was read from


@dataclass(frozen=True)
class Budget:
    team: str
    limit_usd: float
    period: str = "monthly"


@dataclass(frozen=True)
class TeamUsage:
    """What a team holds now (active reservations) and has spent in the budget period."""

    team: str
    gpus_held: int = 0
    reserved_usd: float = 0.0
    spent_usd: float = 0.0


@dataclass(frozen=True)
class TelemetrySample:
    cluster: str
    gpu_type: str
    free_gpus: int
    utilisation: float  # 0..1
    observed_at: datetime  # by the sender's clock
    free_memory_gb: float | None = None  # per-GPU memory actually free (NVML), if known
    received_at: datetime | None = None  # by the plane's clock (plane.telemetry), if known
    node: str = ""  # the node that sent it; a pool's sample sums its nodes' (store)
    # Free memory of each GPU (NVML, per node as the agent reads it, a pool's nodes'
    # concatenated by the store). When known, a GPU is free for a request only if its free
    # memory meets the request's ``gpu_memory_gb`` (`constraints.free_gpus_for`); when None (a
    # telemetry file giving only ``free_gpus``) every reported free GPU counts, as before.
    free_memory_per_gpu_gb: tuple[float, ...] | None = None


@dataclass(frozen=True)
class WorkloadRequest:
    request_id: str
    workload: str  # e.g. the asset key "embeddings/support_tickets"
    team: str
    datasets: tuple[str, ...]
    gpu_count: int
    gpu_memory_gb: float  # per GPU
    estimated_duration_s: float  # on a reference GPU (speed 1.0)
    data_gb: float = 0.0
    latency_slo_ms: float | None = None
    priority: int = 100  # higher first; below the policy's threshold counts as low priority
    gpu_optional: bool = False  # may run on CPU instead
    cpu_duration_s: float | None = None  # duration on CPU when gpu_optional
    recurring: bool = False
    current_cluster: str | None = None  # where a recurring workload runs now
    last_moved_at: datetime | None = None
    exclude_clusters: tuple[str, ...] = ()  # clusters that failed this work (re-placement)
    attempt: int = 1


@dataclass(frozen=True)
class Snapshot:
    """Everything one decision (or one batch) reads, taken at one instant."""

    fleet: Fleet
    quotas: Mapping[str, TeamQuota]
    budgets: Mapping[str, Budget]
    usage: Mapping[str, TeamUsage]
    telemetry: Mapping[tuple[str, str], TelemetrySample]  # (cluster, gpu_type) -> sample
    catalog: Mapping[str, CatalogRecord]
    now: datetime
    # Live quotas of the clusters that read them from Kubernetes, by (cluster, namespace), and
    # why a cluster's (key: cluster) or a namespace's (key: cluster/namespace) is unknown.
    cluster_quotas: Mapping[tuple[str, str], TeamQuota] = field(default_factory=dict)
    quota_errors: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def derived(self) -> dict[str, Any]:
        """What is computed from this snapshot and kept while it lives (`index.fleet_index`)."""
        return {}

    def telemetry_hash(self) -> str:
        """Hash of the telemetry this snapshot saw (recorded with every decision)."""
        return self._telemetry_hash

    @cached_property
    def _telemetry_hash(self) -> str:
        rows = sorted(
            (
                c,
                g,
                s.free_gpus,
                round(s.utilisation, 6),
                s.observed_at.isoformat(),
                s.free_memory_gb,
                # only when known, so that hashes of snapshots without it stay as they were
                *([s.received_at.isoformat()] if s.received_at is not None else []),
                *([list(s.free_memory_per_gpu_gb)] if s.free_memory_per_gpu_gb is not None else []),
            )
            for (c, g), s in self.telemetry.items()
        )
        return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()[:16]

    def usage_of(self, team: str) -> TeamUsage:
        found = self.usage.get(team)
        return found if found is not None else TeamUsage(team=team)


@dataclass(frozen=True)
class Candidate:
    cluster: str
    gpu_type: str  # or CPU

    @property
    def label(self) -> str:
        return f"{self.cluster}/{self.gpu_type}"


@dataclass(frozen=True)
class Rejection:
    rule: str  # one of `rules.RULES`
    message: str


@dataclass(frozen=True)
class CostBreakdown:
    duration_s: float
    gpu_usd: float
    egress_usd: float
    data_moved_gb: float
    latency_ms: float

    @property
    def total_usd(self) -> float:
        return self.gpu_usd + self.egress_usd


@dataclass(frozen=True)
class Evaluation:
    """One candidate as the plane saw it: rejected with reasons, or feasible with its cost."""

    candidate: Candidate
    cost: CostBreakdown
    rejections: tuple[Rejection, ...] = ()
    score: float = 0.0  # lower is better; meaningful for feasible candidates

    @property
    def feasible(self) -> bool:
        return not self.rejections


class Evaluations(Sequence[Evaluation]):
    """Every candidate's `Evaluation` of one request, with what a decision and its log read
    of them without looking at each: where a candidate is, which are feasible, their scores,
    how many each rule rejected. The engine's (`index.LazyEvaluations`) builds an evaluation
    only when it is read; `EvaluationList` holds them built."""

    @abstractmethod
    def position_of(self, candidate: Candidate) -> int | None: ...

    @abstractmethod
    def candidate_at(self, k: int) -> Candidate: ...

    @abstractmethod
    def feasible_mask(self) -> np.ndarray: ...

    @abstractmethod
    def scores(self) -> np.ndarray: ...

    @abstractmethod
    def rule_counts(self) -> dict[str, int]: ...

    def latencies(self) -> np.ndarray:
        """Every candidate's latency (ms), as its cost breakdown says."""
        return np.array([e.cost.latency_ms for e in self], dtype=np.float64)

    def subset(self, positions: Sequence[int]) -> list[Evaluation]:
        return [self[k] for k in positions]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class EvaluationList(Evaluations):
    """`Evaluations` already built, e.g. read back or made one by one."""

    def __init__(self, evaluations: Sequence[Evaluation]) -> None:
        self._items = tuple(evaluations)
        self._position: dict[Candidate, int] = {}
        for k, e in enumerate(self._items):
            self._position.setdefault(e.candidate, k)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, k):  # type: ignore[override]
        return self._items[k]

    def __iter__(self) -> Iterator[Evaluation]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"EvaluationList({len(self)} candidates)"

    def position_of(self, candidate: Candidate) -> int | None:
        return self._position.get(candidate)

    def candidate_at(self, k: int) -> Candidate:
        return self._items[k].candidate

    def feasible_mask(self) -> np.ndarray:
        return np.array([e.feasible for e in self._items], dtype=bool)

    def scores(self) -> np.ndarray:
        return np.array([e.score for e in self._items], dtype=np.float64)

    def rule_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self._items:
            for rule in {r.rule for r in e.rejections}:
                counts[rule] = counts.get(rule, 0) + 1
        return counts


PLACED, DEFERRED, REJECTED = "placed", "deferred", "rejected"


@dataclass(frozen=True)
class Decision:
    decision_id: str
    request: WorkloadRequest
    status: str  # placed | deferred | rejected
    chosen: Candidate | None
    evaluations: Evaluations
    reason: str  # why this candidate, or why none
    policy_version: str
    snapshot_hash: str
    decided_at: datetime
    executor: str | None = None  # in_process | multiprocess | k8s_job_executor
    zone: str | None = None
    namespace: str | None = None

    @property
    def chosen_evaluation(self) -> Evaluation | None:
        if self.chosen is None:
            return None
        k = self.evaluations.position_of(self.chosen)
        return None if k is None else self.evaluations[k]
