"""Models of the reasoning plane's input files: fleet, quotas, budgets, requests, telemetry.

Each ``*File`` model is a whole file; ``build()`` returns the plain dataclasses of
`reasoning_plane.model`. Limits: values beyond these caps are typing mistakes, not workloads.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from data_plane.classification import ZONE_PATTERN
from data_plane.config import (
    DNS_LABEL,
    Bool,
    ConfigModel,
    Namespace,
    Timestamp,
    Zone,
    check_integer,
    check_text,
    checked,
    fail,
    integer,
    kind,
    name,
    number,
    one_of,
    text,
    under,
)
from data_plane.files import show
from reasoning_plane.model import (
    CPU,
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    KubernetesQuotas,
    PrometheusTelemetry,
    TeamQuota,
    TelemetrySample,
    Toleration,
    WorkloadRequest,
)

GPU_QUOTA_KEY = "requests.nvidia.com/gpu"
BUDGET_PERIODS = ("monthly", "weekly", "daily")
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

MAX_GPU_COUNT = 4096
MAX_DURATION_S = 30 * 24 * 3600.0  # 30 days
MAX_DATA_GB = 10_000_000.0  # 10 PB
MAX_GPUS_IN_POOL = 1_000_000
MAX_GPU_QUOTA_DIGITS = 9
MAX_PRICE = 1_000_000.0
MAX_LATENCY_MS = 86_400_000.0  # a day
MAX_MEMORY_GB = 100_000.0
MAX_SPEED = 1_000.0
MAX_USD = 1e12

_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_LABEL_RE = re.compile(DNS_LABEL)
_DNS_SUBDOMAIN_RE = re.compile(_DNS_SUBDOMAIN)
_LABEL_NAME_RE = re.compile(_LABEL_NAME)
_DIGITS = re.compile(r"[0-9]+")

ClusterName = name(DNS_LABEL, "a DNS-1123 label (a-z, 0-9, '-', at most 63 characters)")
GpuType = name(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
    "a GPU type name (letters, digits, '.', '_', '-', at most 63 characters)",
)
Region = name(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", "a region name such as eu-central-1")
Certification = name(ZONE_PATTERN, "an upper-case name such as GDPR or SOC2")
Image = name(r"[^\s]{1,512}", "a container image reference")


def _subdomain(value: Any) -> str:
    if isinstance(value, str) and len(value) > 253:
        fail("must be a DNS-1123 subdomain of at most 253 characters")
    if not isinstance(value, str) or not _DNS_SUBDOMAIN_RE.fullmatch(value):
        what = "a DNS-1123 subdomain (a-z, 0-9, '-', '.')"
        got = show(value) if isinstance(value, str) else f"{kind(value)} {show(value)}"
        fail(f"must be {what}, got {got}")
    return value


Subdomain = checked(
    str, _subdomain, {"type": "string", "maxLength": 253, "pattern": f"^(?:{_DNS_SUBDOMAIN})$"}
)


def _label_key(value: Any) -> str:
    """A Kubernetes label key: ``[prefix/]name`` (prefix a DNS subdomain)."""
    if not isinstance(value, str):
        fail(f"label keys must be text, got {show(value)}")
    prefix, slash, key = value.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.fullmatch(prefix)):
        fail(f"label key prefix must be a DNS subdomain, got {show(value)}")
    if not _LABEL_NAME_RE.fullmatch(key):
        fail(
            "label key name must be 1-63 characters (letters, digits, '-', '_', '.'), "
            f"starting and ending with a letter or digit, got {show(value)}"
        )
    return value


def _label_value(value: Any) -> str:
    if not isinstance(value, str):
        fail(f"label values must be text (quote it), got {show(value)}")
    if value and not _LABEL_NAME_RE.fullmatch(value):
        fail(
            "label values must be empty or 1-63 characters (letters, digits, '-', '_', '.'), "
            f"starting and ending with a letter or digit, got {show(value)}"
        )
    return value


LabelKey = checked(str, _label_key, {"type": "string", "maxLength": 317})
LabelValue = checked(str, _label_value, {"type": "string", "pattern": f"^(?:{_LABEL_NAME})?$"})
Labels = dict[LabelKey, LabelValue]


def _namespace_template(value: Any) -> str:
    template = check_text(value, max_len=63)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        fail(f"not a valid template: {exc}")
    fields = [(field, spec, conv) for _, field, spec, conv in parts if field is not None]
    for field, spec, conv in fields:
        if field != "team" or spec or conv:
            fail(f"may only contain the placeholder {{team}}, got {{{field}}}")
    rendered = template.format(team="team") if fields else template
    if not _DNS_LABEL_RE.fullmatch(rendered):
        fail(
            "must be a namespace name, or one once {team} is filled in "
            f"(a-z, 0-9, '-'), got {show(template)}"
        )
    return template


NamespaceTemplate = checked(
    str,
    _namespace_template,
    {"type": "string", "maxLength": 63, "description": "a namespace name; {team} is the team"},
)


def _unique(values: list[Any], where: str, field: str) -> None:
    """Refuse the second of two equal values (``where[i].field``)."""
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            fail(f"duplicate {value!r}", (where, i, field))
        seen.add(value)


# --------------------------------------------------------------------------------------------
# Fleet
# --------------------------------------------------------------------------------------------


class TolerationModel(ConfigModel):
    key: LabelKey
    operator: one_of(TOLERATION_OPERATORS) = "Exists"  # type: ignore[valid-type]
    value: LabelValue | None = None
    effect: one_of(TOLERATION_EFFECTS) | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _value(self) -> TolerationModel:
        if self.operator == "Equal":
            if self.value is None:
                fail("required when operator is Equal", ("value",))
        elif self.value is not None:
            fail("must be absent when operator is Exists", ("value",))
        return self

    def build(self) -> Toleration:
        return Toleration(
            key=self.key, operator=self.operator, value=self.value, effect=self.effect
        )


class PoolModel(ConfigModel):
    gpu_type: GpuType
    memory_gb: number(positive=True, maximum=MAX_MEMORY_GB)  # type: ignore[valid-type]
    total: integer(maximum=MAX_GPUS_IN_POOL)  # type: ignore[valid-type]
    price_per_hour: number(maximum=MAX_PRICE)  # type: ignore[valid-type]
    speed: number(positive=True, maximum=MAX_SPEED) = 1.0  # type: ignore[valid-type]
    inference_latency_ms: number(maximum=MAX_LATENCY_MS) = 20.0  # type: ignore[valid-type]
    node_labels: Labels | None = None
    tolerations: list[TolerationModel] | None = None

    def build(self) -> GpuPool:
        return GpuPool(
            gpu_type=self.gpu_type,
            memory_gb=self.memory_gb,
            total=self.total,
            price_per_hour=self.price_per_hour,
            speed=self.speed,
            inference_latency_ms=self.inference_latency_ms,
            node_labels=dict(self.node_labels or {}),
            tolerations=tuple(t.build() for t in self.tolerations or ()),
        )


_HTTP_URL = r"https?://[^\s/?#]+(/[^\s?#]*)?"
_PROM_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]{0,127}"
HttpUrl = name(_HTTP_URL, "an http:// or https:// URL without query or fragment")
PromLabel = name(_PROM_LABEL, "a Prometheus label name (letters, digits, '_')")
TELEMETRY_SOURCES = ("agent", "prometheus")
QUOTA_SOURCES = ("file", "kubernetes")


class TelemetrySourceModel(ConfigModel):
    """Where a cluster's GPU telemetry comes from: the plane's own agent (pushed into
    plane.telemetry), or the cluster's Prometheus (DCGM exporter and kube-state-metrics series,
    read at tick time: `reasoning_plane.prometheus_telemetry`)."""

    source: one_of(TELEMETRY_SOURCES) = "agent"  # type: ignore[valid-type]
    url: HttpUrl | None = None  # type: ignore[valid-type]
    # label matchers added to every selector (one Prometheus for several clusters)
    match_labels: dict[PromLabel, text(max_len=253)] | None = None  # type: ignore[valid-type]
    window_s: number(positive=True, maximum=3600.0) = 60.0  # type: ignore[valid-type]
    timeout_s: number(positive=True, maximum=60.0) = 5.0  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _url(self) -> TelemetrySourceModel:
        if self.source == "prometheus" and self.url is None:
            fail("required when source is prometheus", ("url",))
        if self.source == "agent":
            for key in ("url", "match_labels"):
                if getattr(self, key) is not None:
                    fail("only for source prometheus", (key,))
        return self

    def build(self) -> PrometheusTelemetry | None:
        if self.source == "agent" or self.url is None:
            return None
        return PrometheusTelemetry(
            url=self.url,
            labels=dict(self.match_labels or {}),
            window_s=self.window_s,
            timeout_s=self.timeout_s,
        )


class QuotaSourceModel(ConfigModel):
    """Where a cluster's GPU quotas come from: the quota file (PLANE_QUOTAS_FILE, one quota per
    team for the clusters without API access), or each team namespace's ResourceQuota
    ``status`` read live from the cluster's API server (`reasoning_plane.live_quotas`), with
    the cluster's ``kube_context``."""

    source: one_of(QUOTA_SOURCES) = "file"  # type: ignore[valid-type]
    kubeconfig: text(max_len=4096) | None = None  # type: ignore[valid-type]
    timeout_s: number(positive=True, maximum=60.0) = 5.0  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _kubeconfig(self) -> QuotaSourceModel:
        if self.source == "file" and self.kubeconfig is not None:
            fail("only for source kubernetes", ("kubeconfig",))
        return self

    def build(self) -> KubernetesQuotas | None:
        if self.source == "file":
            return None
        return KubernetesQuotas(kubeconfig=self.kubeconfig, timeout_s=self.timeout_s)


class ClusterModel(ConfigModel):
    name: ClusterName
    zone: Zone
    region: Region
    location: text() | None = None  # type: ignore[valid-type]
    certifications: list[Certification] | None = None
    egress_per_gb: number(maximum=MAX_PRICE)  # type: ignore[valid-type]
    latency_ms: dict[Zone, number(maximum=MAX_LATENCY_MS)]  # type: ignore[valid-type]
    kube_context: text(max_len=253) | None = None  # type: ignore[valid-type]
    namespace_template: NamespaceTemplate = "{team}"
    service_account: Subdomain = "dagster-run"
    image: Image | None = None
    node_labels: Labels | None = None
    cpu_price_per_hour: number(maximum=MAX_PRICE) = 0.0  # type: ignore[valid-type]
    cpu_slots: integer(maximum=MAX_GPUS_IN_POOL) = 0  # type: ignore[valid-type]
    accepts_unknown_residency: Bool = False
    local: Bool = False
    telemetry: TelemetrySourceModel | None = None
    quotas: QuotaSourceModel | None = None
    pools: list[PoolModel]

    @model_validator(mode="after")
    def _pools(self) -> ClusterModel:
        _unique([p.gpu_type for p in self.pools], "pools", "gpu_type")
        for i, pool in enumerate(self.pools):
            if pool.gpu_type.lower() == CPU:
                fail(
                    f"{pool.gpu_type!r} is reserved for the CPU candidates of a cluster "
                    "(cpu_slots)",
                    ("pools", i, "gpu_type"),
                )
        return self

    def build(self) -> Cluster:
        return Cluster(
            name=self.name,
            zone=self.zone,
            region=self.region,
            location=self.location or "",
            certifications=frozenset(self.certifications or ()),
            pools=tuple(p.build() for p in self.pools),
            egress_per_gb=self.egress_per_gb,
            latency_ms=dict(self.latency_ms),
            kube_context=self.kube_context,
            namespace_template=self.namespace_template,
            service_account=self.service_account,
            image=self.image,
            node_labels=dict(self.node_labels or {}),
            cpu_price_per_hour=self.cpu_price_per_hour,
            cpu_slots=self.cpu_slots,
            accepts_unknown_residency=self.accepts_unknown_residency,
            local=self.local,
            telemetry=self.telemetry.build() if self.telemetry else None,
            quotas=self.quotas.build() if self.quotas else None,
        )


class FleetFile(ConfigModel):
    """The GPU fleet: clusters, their zones, prices, latencies and GPU pools."""

    single_key: ClassVar[str | None] = "clusters"
    labels: ClassVar[Mapping[str, str]] = {"clusters": "name"}
    clusters: list[ClusterModel]

    @model_validator(mode="after")
    def _clusters(self) -> FleetFile:
        if not self.clusters:
            fail("must list at least one cluster", ("clusters",))
        _unique([c.name for c in self.clusters], "clusters", "name")
        local = [i for i, c in enumerate(self.clusters) if c.local]
        if len(local) > 1:
            fail("only one cluster can be the local machine", ("clusters", local[1], "local"))
        for i, c in enumerate(self.clusters):
            for key in ("telemetry", "quotas"):
                chosen = getattr(c, key)
                if c.local and chosen is not None and chosen.source in ("prometheus", "kubernetes"):
                    fail(
                        f"the local machine has no {chosen.source} source (NVML and the quota "
                        "file)",
                        ("clusters", i, key, "source"),
                    )
        return self

    def build(self) -> Fleet:
        return Fleet(clusters=tuple(c.build() for c in self.clusters))


# --------------------------------------------------------------------------------------------
# Quotas (Kubernetes ResourceQuota manifests)
# --------------------------------------------------------------------------------------------


def gpu_quota(value: Any) -> int:
    """``spec.hard["requests.nvidia.com/gpu"]``: a whole number of GPUs (int or digit string)."""
    whole = "GPU quotas must be whole GPUs"
    if isinstance(value, bool):
        fail(f'{whole}, such as "16"; got the boolean {show(value)}')
    if isinstance(value, int):
        if value < 0:
            fail(f"{whole}; a quota cannot be negative, got {value}")
        if value >= 10**MAX_GPU_QUOTA_DIGITS:
            fail(f"is implausibly large: {show(value)}")
        return value
    if isinstance(value, float):
        fail(f'{whole}, such as "16"; got {show(value)}')
    if not isinstance(value, str):
        fail(f'{whole}, such as "16"; got {kind(value)} {show(value)}')
    if _DIGITS.fullmatch(value):
        if len(value) > MAX_GPU_QUOTA_DIGITS:
            fail(f"is implausibly large: {show(value)}")
        return int(value)
    if value.startswith("-"):
        fail(f"{whole}; a quota cannot be negative, got {show(value)}")
    if re.fullmatch(r"[0-9.]+m", value):
        hint = "'m' means thousandths"
    elif re.fullmatch(r"[0-9.]+(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)", value):
        hint = "a unit suffix is not a GPU count"
    elif re.fullmatch(r"[0-9]*\.[0-9]*|[0-9.]+[eE][-+]?[0-9]+", value):
        hint = "fractions are not allowed"
    else:
        hint = "write only the number of GPUs"
    fail(f'{whole}, such as "16"; got {show(value)} ({hint})')


def _hard(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        fail(f"must be a mapping, got {kind(value)}")
    for key in value:
        if not isinstance(key, str):
            fail(f"keys must be text, got {show(key)}")
    hard = dict(value)
    if GPU_QUOTA_KEY in hard:
        hard[GPU_QUOTA_KEY] = under((GPU_QUOTA_KEY,), gpu_quota, hard[GPU_QUOTA_KEY])
    return hard


Hard = checked(
    dict,
    _hard,
    {
        "type": "object",
        "properties": {
            GPU_QUOTA_KEY: {
                "description": 'whole GPUs, such as "16"',
                "anyOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "pattern": "^[0-9]{1,9}$"},
                ],
            }
        },
    },
)


class QuotaMetadata(ConfigModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    open_keys: ClassVar[bool] = True  # kubectl adds uid, resourceVersion, labels ...
    name: Subdomain
    namespace: Namespace


class QuotaSpec(ConfigModel):
    hard: Hard | None = None
    scopes: Any = None
    scopeSelector: Any = None


def _v1(value: Any) -> str:
    if value != "v1":
        fail(f"a ResourceQuota must be apiVersion v1, got {show(value)}")
    return value


class ResourceQuotaModel(ConfigModel):
    """A Kubernetes ResourceQuota; only ``spec.hard["requests.nvidia.com/gpu"]`` is used."""

    apiVersion: checked(str, _v1, {"const": "v1"})  # type: ignore[valid-type]
    kind: one_of(("ResourceQuota",))  # type: ignore[valid-type]
    metadata: QuotaMetadata
    spec: QuotaSpec | None = None
    status: Any = None

    @property
    def gpus(self) -> int | None:
        hard = self.spec.hard if self.spec is not None else None
        return None if hard is None else hard.get(GPU_QUOTA_KEY)

    def build(self, source: str) -> TeamQuota | None:
        gpus = self.gpus
        if gpus is None:
            return None
        return TeamQuota(team=self.metadata.namespace, gpus=gpus, source=source)


# --------------------------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------------------------


class BudgetModel(ConfigModel):
    team: Namespace
    limit_usd: number(maximum=MAX_USD)  # type: ignore[valid-type]
    period: one_of(BUDGET_PERIODS) = "monthly"  # type: ignore[valid-type]

    def build(self) -> Budget:
        return Budget(team=self.team, limit_usd=self.limit_usd, period=self.period)


class BudgetsFile(ConfigModel):
    """Spending limit per team and period."""

    single_key: ClassVar[str | None] = "budgets"
    labels: ClassVar[Mapping[str, str]] = {"budgets": "team"}
    budgets: list[BudgetModel]

    @model_validator(mode="after")
    def _teams(self) -> BudgetsFile:
        seen: set[str] = set()
        for i, budget in enumerate(self.budgets):
            if budget.team in seen:
                fail(f"duplicate team {budget.team!r}", ("budgets", i, "team"))
            seen.add(budget.team)
        return self

    def build(self) -> dict[str, Budget]:
        return {b.team: b.build() for b in self.budgets}


# --------------------------------------------------------------------------------------------
# Workload requests
# --------------------------------------------------------------------------------------------


def _gpu_count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        fail(f"must not be negative (0 means CPU work), got {value}")
    return check_integer(value, maximum=MAX_GPU_COUNT)


class RequestModel(ConfigModel):
    request_id: name(  # type: ignore[valid-type]
        r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}",
        "an id of letters, digits and . _ : / - (at most 128 characters)",
    )
    workload: name(  # type: ignore[valid-type]
        r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,254}",
        "a workload name such as embeddings/support_tickets",
    )
    team: Namespace
    datasets: Annotated[list[text()], Field(min_length=1)]  # type: ignore[valid-type]
    gpu_count: checked(  # type: ignore[valid-type]
        int, _gpu_count, {"type": "integer", "minimum": 0, "maximum": MAX_GPU_COUNT}
    )
    gpu_memory_gb: number(maximum=MAX_MEMORY_GB) | None = None  # type: ignore[valid-type]
    estimated_duration_s: number(positive=True, maximum=MAX_DURATION_S)  # type: ignore[valid-type]
    data_gb: number(maximum=MAX_DATA_GB) = 0.0  # type: ignore[valid-type]
    latency_slo_ms: number(positive=True, maximum=MAX_LATENCY_MS) | None = None  # type: ignore[valid-type]
    priority: integer(maximum=1000) = 100  # type: ignore[valid-type]
    gpu_optional: Bool = False
    cpu_duration_s: number(positive=True, maximum=MAX_DURATION_S) | None = None  # type: ignore[valid-type]
    recurring: Bool = False
    current_cluster: ClusterName | None = None
    last_moved_at: Timestamp | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RequestModel:
        seen: set[str] = set()
        for i, dataset in enumerate(self.datasets):
            if dataset in seen:
                fail(f"{dataset!r} is listed twice", ("datasets", i))
            seen.add(dataset)
        if self.gpu_count > 0 and self.gpu_memory_gb is None:
            fail("required when gpu_count is above 0", ("gpu_memory_gb",))
        return self

    def build(self) -> WorkloadRequest:
        return WorkloadRequest(
            request_id=self.request_id,
            workload=self.workload,
            team=self.team,
            datasets=tuple(self.datasets),
            gpu_count=self.gpu_count,
            gpu_memory_gb=self.gpu_memory_gb or 0.0,
            estimated_duration_s=self.estimated_duration_s,
            data_gb=self.data_gb,
            latency_slo_ms=self.latency_slo_ms,
            priority=self.priority,
            gpu_optional=self.gpu_optional,
            cpu_duration_s=self.cpu_duration_s,
            recurring=self.recurring,
            current_cluster=self.current_cluster,
            last_moved_at=self.last_moved_at,
        )


class RequestsFile(ConfigModel):
    """Workload requests to place, in file order."""

    single_key: ClassVar[str | None] = "requests"
    labels: ClassVar[Mapping[str, str]] = {"requests": "request_id"}
    requests: list[RequestModel]

    @model_validator(mode="after")
    def _ids(self) -> RequestsFile:
        _unique([r.request_id for r in self.requests], "requests", "request_id")
        return self

    def build(self) -> list[WorkloadRequest]:
        return [r.build() for r in self.requests]


# --------------------------------------------------------------------------------------------
# Telemetry
# --------------------------------------------------------------------------------------------

Memory = number(maximum=MAX_MEMORY_GB)


class SampleModel(ConfigModel):
    cluster: ClusterName
    gpu_type: GpuType
    free_gpus: integer(maximum=MAX_GPUS_IN_POOL)  # type: ignore[valid-type]
    utilisation: number(maximum=1.0)  # type: ignore[valid-type]
    observed_at: Timestamp
    free_memory_gb: Memory | None = None  # type: ignore[valid-type]
    # the free memory of each GPU of the pool (see `load_telemetry`)
    free_memory_per_gpu_gb: (
        Annotated[list[Memory], Field(max_length=MAX_GPUS_IN_POOL)] | None  # type: ignore[valid-type]
    ) = None

    def build(self) -> TelemetrySample:
        per_gpu = self.free_memory_per_gpu_gb
        return TelemetrySample(
            cluster=self.cluster,
            gpu_type=self.gpu_type,
            free_gpus=self.free_gpus,
            utilisation=self.utilisation,
            observed_at=self.observed_at,
            free_memory_gb=self.free_memory_gb,
            free_memory_per_gpu_gb=None if per_gpu is None else tuple(per_gpu),
        )


class TelemetryFile(ConfigModel):
    """GPU telemetry samples per (cluster, gpu_type)."""

    single_key: ClassVar[str | None] = "samples"
    samples: list[SampleModel]

    def build(self) -> dict[tuple[str, str], TelemetrySample]:
        samples: dict[tuple[str, str], TelemetrySample] = {}
        for model in self.samples:
            sample = model.build()
            key = (sample.cluster, sample.gpu_type)
            if key not in samples or sample.observed_at >= samples[key].observed_at:
                samples[key] = sample
        return samples


__all__ = [
    "BudgetsFile",
    "FleetFile",
    "RequestsFile",
    "ResourceQuotaModel",
    "TelemetryFile",
]
