"""Cost lens: seeded workload traces and fleets, replayed through placement policies over time.

A trace is a list of ``TimedRequest(arrival_s, request)``. ``simulate`` advances a clock in ticks
of 30 s, as the placement sensor does: each tick it releases the GPUs of jobs that finished,
builds a fresh snapshot from its own state (telemetry observed *now*: free GPUs and utilisation of
every pool; the ledger: GPUs held, reserved and spent per team), asks a policy to place the
pending requests, and starts the placed ones, which hold their GPUs for ``duration / pool speed``.
Requests a policy defers are retried every tick until ``deadline_s`` (6 h) after their arrival,
then expire; the same for every policy.

Policies:

* ``naive``: the fastest pool (highest ``speed``) with enough free GPUs and memory, ignoring
  governance, SLOs, quotas, budgets and telemetry age; it is what "route to the fastest available
  GPU" does.
* ``greedy``: requests one by one in arrival order, each on its cheapest candidate passing every
  hard rule of ``placement.evaluate`` (no joint optimisation, no hysteresis).
* ``plane``: exactly what the sensors run: ``batch.place_batch`` on the requests pending in the
  tick, with the default ``PlacementPolicy``.
* ``hindsight``: what the requests ``plane`` placed could have cost with the whole trace known in
  advance: one integer program (scipy HiGHS ``milp``) over the whole trace. Each such request is
  assigned one option: a (cluster, pool) allowed by the static rules (residency, compliance,
  memory, pool size, quota and budget size, and the SLO on an idle pool) and a start time (its
  arrival, its arrival plus each of ``HINDSIGHT_DELAYS_S``, or the time ``plane`` started it).
  Capacity and quotas are enforced as GPU-seconds per 5-minute slot per pool and per team,
  budgets as total spend per team (the full limit for every priority); the objective is the
  total cost. ``plane``'s own schedule is one feasible point of this program, so its LP
  relaxation's optimum (``SimResult.lower_bound_usd``) is a proven lower bound on ``plane``'s
  cost. The integer schedule is found by fixing what the LP decides and solving the MILP over
  the rest within ``HINDSIGHT_TIME_LIMIT_S`` (its status is in ``notes``); it is never above
  ``plane`` when solved to optimality. The program relaxes time (slot averages) and congestion
  (SLO on an idle pool), so hindsight's schedule itself may briefly overbook a pool or a quota
  or miss an SLO; its metrics say how often: it is a bound, not a policy. Above
  ``HINDSIGHT_MAX_VARIABLES`` options the program is solved in consecutive time windows
  (occupancy and spend carried over, no bound), and ``notes`` says so; a window that cannot
  place all its requests maximises placements first, then minimises cost.

Metrics (``SimResult``), all computed the same way from the placements every policy made:

* placed / deferred (deferred at least once) / expired (still deferred at its deadline) /
  rejected (refused for good: no compliant candidate, or a hard rule that waiting cannot fix);
* total cost (GPU + egress per ``cost.estimate``) and cost per 1,000 requests: total cost /
  (placed workload requests x ``requests_per_workload``) x 1,000. For a generated trace one
  workload request is one request (``requests_per_workload = 1``): the figure is the cost of
  1,000 placed workloads. For the seed-like trace each workload request is a batch serving 1,000
  inference requests (``requests_per_workload = 1000``), the seed article's unit;
* residency violations: an input classified as strict by the policy (PII, CONFIDENTIAL, UNKNOWN)
  processed outside its residency zone; compliance violations: PII on a cluster lacking a
  ``pii_certifications`` certification, or ``gdpr_compliant`` data on a cluster without GDPR;
  both counted per placement by an audit written independently of ``constraints``;
* SLO misses: the cost model's latency on the chosen pool at its start, with the pool's
  utilisation then (GPUs held by jobs started earlier, plus background), above the SLO;
* quota violations: placements after which the team holds more GPUs than its quota (a team
  without a quota has quota 0); budget overruns: placements after which the team's spend
  exceeds its budget (the budget covers the simulated period); capacity overbooked: placements
  after which a pool holds more GPUs than it has;
* utilisation per pool: GPU-seconds held (trace jobs and background) within the trace horizon /
  (pool GPUs x horizon);
* decide_s: wall time spent inside the policy (for hindsight: building and solving the program).

A tick in which nothing changed (no arrival, no finished job, no expiry, nothing placed by the
previous tick) would decide exactly as the previous one, so the clock jumps over it; this is the
same for every policy.

Prices of ``generate_fleet`` (approximate public on-demand list prices as of 2025, USD per
GPU-hour = instance price / GPUs; they change often and differ by region: plug in your own, or
your amortised cost for GPUs you own):

================================  ===========  ============  ====  =========  ===================
instance (region)                 GPU          USD/inst-h    GPUs  USD/GPU-h  source
================================  ===========  ============  ====  =========  ===================
AWS p4d.24xlarge (us-east-1)      A100 40 GB   32.77         8     4.10       [aws-ec2]
AWS p5.48xlarge (us-east-1)       H100 80 GB   98.32         8     12.29      [aws-ec2] pre-6/2025
AWS p5.48xlarge after June 2025   H100 80 GB   ~55.04        8     ~6.88      [aws-p5-cut]
AWS g5.xlarge (us-east-1)         A10G 24 GB   1.006         1     1.01       [aws-ec2]
AWS g5.xlarge (eu-central-1)      A10G 24 GB   ~1.21         1     ~1.21      [aws-ec2]
GCP a2-highgpu-1g (us-central1)   A100 40 GB   ~3.67         1     ~3.67      [gcp-gpu]
GCP a3-highgpu-8g (europe-west4)  H100 80 GB   ~88.5         8     ~11.06     [gcp-gpu]
GCP g2-standard-4 (us/eu)         L4 24 GB     ~0.71 / 0.78  1     0.71/0.78  [gcp-gpu]
Azure NC24ads A100 v4             A100 80 GB   ~3.67         1     ~3.67      [azure-vm]
Azure NC40ads H100 v5             H100 94 GB   ~6.98         1     ~6.98      [azure-vm]
on-premises (assumption)          A100 80 GB   -             -     1.60       amortised, not a
                                                                              list price
================================  ===========  ============  ====  =========  ===================

Egress into a cluster from the other zone: AWS inter-region transfer $0.02/GB [aws-ec2 data
transfer], GCP inter-continental ~$0.08/GB [gcp-network], Azure inter-continental ~$0.05/GB
[azure-bandwidth], internet egress to an on-premises site ~$0.09/GB (first 10 TB) [aws-ec2].

[aws-ec2] https://aws.amazon.com/ec2/pricing/on-demand/ ;
[aws-p5-cut] AWS, June 2025: On-Demand price reduction of up to 45% for P4d/P4de/P5/P5en ;
[gcp-gpu] https://cloud.google.com/compute/gpus-pricing ;
[gcp-network] https://cloud.google.com/vpc/network-pricing ;
[azure-vm] https://azure.microsoft.com/pricing/details/virtual-machines/linux/ ;
[azure-bandwidth] https://azure.microsoft.com/pricing/details/bandwidth/

Pools of ``generate_fleet`` (USD/GPU-h): aws-use1 A100-40GB 4.10, A10G 1.01; aws-euc1 A10G 1.21,
H100-80GB 6.88; azure-eus A100-80GB 3.67, H100-94GB 6.98; gcp-euw4 L4 0.78, H100-80GB 11.06;
aws-usw2-lab A10G 1.01, H100-80GB 6.88; onprem-muc A100-80GB 1.60 (assumed amortised cost);
gcp-usc1 L4 0.71, A100-40GB 3.67; azure-weu A100-80GB 3.67, H100-94GB 6.98. ``seed_fleet`` keeps
the seed scenario's own prices (A100-80GB 3.67, A10 1.10, H100-80GB 6.98).

Relative speeds (throughput against an A100, the requests' reference GPU) are rough public
benchmark ratios: H100 2.0 (1.9 for the seed's), A100 1.0, A10/A10G 0.45, L4 0.40.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN, residency_parts
from reasoning_plane.batch import place_batch
from reasoning_plane.model import (
    CPU,
    DEFERRED,
    PLACED,
    REJECTED,
    Budget,
    Candidate,
    Cluster,
    Fleet,
    GpuPool,
    Snapshot,
    TeamQuota,
    TeamUsage,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.placement import cost_of, evaluate, status_of
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState

POLICIES = ("naive", "greedy", "plane", "hindsight")
TICK_S = 30.0
DEADLINE_S = 6 * 3600.0
SLOT_S = 300.0  # hindsight's time slot
HINDSIGHT_DELAYS_S = (0.0,)  # start choices besides plane's own start (seconds after arrival)
HINDSIGHT_MAX_VARIABLES = 150_000  # above this, the program is solved in time windows
HINDSIGHT_WINDOW_S = 4 * 3600.0
HINDSIGHT_TIME_LIMIT_S = 30.0
EPOCH = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # the simulated clock's zero


class TimedRequest(NamedTuple):
    arrival_s: float  # seconds after the start of the trace
    request: WorkloadRequest


@dataclass(frozen=True)
class Scenario:
    """Everything one simulation needs besides the policy."""

    name: str
    fleet: Fleet
    trace: tuple[TimedRequest, ...]
    catalog: Mapping[str, CatalogRecord]
    quotas: Mapping[str, TeamQuota]
    budgets: Mapping[str, Budget]
    hours: float
    background: Mapping[tuple[str, str], int] = field(default_factory=dict)  # GPUs held outside
    requests_per_workload: int = 1  # end-user requests one workload request serves
    unit: str = "1,000 placed workload requests"


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


# --------------------------------------------------------------------------------------------
# Fleets


def _pool(gpu_type: str, memory_gb: float, total: int, price: float, speed: float, latency: float):
    return GpuPool(
        gpu_type=gpu_type,
        memory_gb=memory_gb,
        total=total,
        price_per_hour=price,
        speed=speed,
        inference_latency_ms=latency,
    )


# name, zone, region, location, certifications, egress/GB, own-zone latency,
# pools: (gpu_type, memory GB, base GPUs, USD/GPU-h, speed, inference latency ms)
_CLUSTER_TEMPLATES: tuple[tuple[Any, ...], ...] = (
    ("aws-use1", "US", "us-east-1", "N. Virginia", ("SOC2", "ISO27001", "HIPAA"), 0.02, 6.0,
     (("A100-40GB", 40, 40, 4.10, 1.0, 18), ("A10G", 24, 48, 1.01, 0.45, 45))),
    ("aws-euc1", "EU", "eu-central-1", "Frankfurt", ("GDPR", "ISO27001", "SOC2"), 0.02, 8.0,
     (("A10G", 24, 48, 1.21, 0.45, 45), ("H100-80GB", 80, 24, 6.88, 2.0, 12))),
    ("azure-eus", "US", "eastus", "Virginia", ("SOC2", "ISO27001", "HIPAA"), 0.05, 6.0,
     (("A100-80GB", 80, 32, 3.67, 1.0, 18), ("H100-94GB", 94, 16, 6.98, 1.9, 12))),
    ("gcp-euw4", "EU", "europe-west4", "Eemshaven", ("GDPR", "ISO27001", "SOC2"), 0.08, 9.0,
     (("L4", 24, 48, 0.78, 0.40, 50), ("H100-80GB", 80, 16, 11.06, 2.0, 12))),
    # A research account with SOC2 only: no PII may run here.
    ("aws-usw2-lab", "US", "us-west-2", "Oregon", ("SOC2",), 0.02, 12.0,
     (("A10G", 24, 32, 1.01, 0.45, 45), ("H100-80GB", 80, 16, 6.88, 2.0, 12))),
    # GPUs the company owns: amortised cost, small, GDPR-certified.
    ("onprem-muc", "EU", "on-prem-munich", "Munich", ("GDPR", "ISO27001"), 0.09, 5.0,
     (("A100-80GB", 80, 24, 1.60, 1.0, 18),)),
    ("gcp-usc1", "US", "us-central1", "Iowa", ("SOC2", "ISO27001"), 0.08, 7.0,
     (("L4", 24, 48, 0.71, 0.40, 50), ("A100-40GB", 40, 24, 3.67, 1.0, 18))),
    ("azure-weu", "EU", "westeurope", "Amsterdam", ("GDPR", "ISO27001", "SOC2"), 0.05, 9.0,
     (("A100-80GB", 80, 32, 3.67, 1.0, 18), ("H100-94GB", 94, 16, 6.98, 1.9, 12))),
)  # fmt: skip


def generate_fleet(seed: int, n_clusters: int = 6) -> Fleet:
    """A fleet of ``n_clusters`` clusters in EU and US regions, list prices from the table above.

    The eight templates are used in order (US and EU alternate over the first six), then copies
    with a numeric suffix; the seed varies pool sizes (+-25%) and latencies.
    """
    if n_clusters < 2:
        raise ValueError("n_clusters must be at least 2 (one EU and one US cluster)")
    rng = np.random.default_rng(seed)
    clusters: list[Cluster] = []
    for i in range(n_clusters):
        name, zone, region, location, certs, egress, own_ms, pools = _CLUSTER_TEMPLATES[
            i % len(_CLUSTER_TEMPLATES)
        ]
        if i >= len(_CLUSTER_TEMPLATES):
            name = f"{name}-{i // len(_CLUSTER_TEMPLATES) + 1}"
        other = "US" if zone == "EU" else "EU"
        own = round(own_ms * float(rng.uniform(0.8, 1.2)), 1)
        far = round(90.0 + float(rng.uniform(0.0, 20.0)), 1)
        built = tuple(
            _pool(g, mem, max(4, round(total * float(rng.uniform(0.75, 1.25)))), p, s, lat)
            for g, mem, total, p, s, lat in pools
        )
        clusters.append(
            Cluster(
                name=name,
                zone=zone,
                region=region,
                location=location,
                certifications=frozenset(certs),
                pools=built,
                egress_per_gb=egress,
                latency_ms={zone: own, other: far},
                kube_context=name,
            )
        )
    return Fleet(clusters=tuple(clusters))


def seed_fleet(capacity: int = 64) -> Fleet:
    """The seed scenario's fleet (examples/seed_scenario/fleet.yaml) with generous capacity.

    Same clusters, certifications, prices, speeds, latencies and egress; the A100 and A10 pools
    have ``capacity`` GPUs each (the H100 pool keeps its 8).
    """
    return Fleet(
        clusters=(
            Cluster(
                name="us-east-a100",
                zone="US",
                region="us-east-1",
                location="Ashburn",
                certifications=frozenset({"SOC2", "ISO27001"}),
                pools=(_pool("A100-80GB", 80, capacity, 3.67, 1.0, 18),),
                egress_per_gb=0.08,
                latency_ms={"US": 5, "EU": 95},
                kube_context="us-prod",
            ),
            Cluster(
                name="eu-fra-a10",
                zone="EU",
                region="eu-central-1",
                location="Frankfurt",
                certifications=frozenset({"GDPR", "ISO27001", "SOC2"}),
                pools=(_pool("A10", 24, capacity, 1.10, 0.45, 45),),
                egress_per_gb=0.02,
                latency_ms={"EU": 8, "US": 95},
                kube_context="eu-prod",
                cpu_price_per_hour=0.4,
                cpu_slots=8,
            ),
            Cluster(
                name="eu-par-h100",
                zone="EU",
                region="eu-west-3",
                location="Paris",
                certifications=frozenset({"GDPR", "ISO27001"}),
                pools=(_pool("H100-80GB", 80, 8, 6.98, 1.9, 12),),
                egress_per_gb=0.02,
                latency_ms={"EU": 12, "US": 100},
                kube_context="eu-prod-2",
            ),
        )
    )


# --------------------------------------------------------------------------------------------
# Catalogs and traces


def _record(dataset: str, classification: str, residency: str, gdpr: bool) -> CatalogRecord:
    level = {"PUBLIC": "Level_0", "INTERNAL": "Level_1", "CONFIDENTIAL": "Level_2"}
    return CatalogRecord(
        dataset_id=dataset,
        classification=classification,
        data_residency=residency,
        retention_policy="7_years" if classification in ("PII", "CONFIDENTIAL") else "1_year",
        storage_endpoints=(f"s3://{residency.lower()}/{dataset}",),
        gdpr_compliant=gdpr,
        data_classification=level.get(classification, "Level_3"),
        source_system="SIMULATION",
        last_updated="2025-01-01T00:00:00Z",
    )


# dataset, classification, residency, gdpr_compliant, (min GB, max GB)
_DATASETS: tuple[tuple[str, str, str, bool, tuple[float, float]], ...] = (
    ("customer_orders_eu", "PII", "EU", True, (20, 120)),
    ("customer_orders_us", "PII", "US", False, (20, 120)),
    ("transactions_eu", "CONFIDENTIAL", "EU", True, (50, 300)),
    ("market_data", "PUBLIC", "US", False, (10, 200)),
    ("support_tickets_eu", "PII", "EU", True, (5, 60)),
    ("support_tickets_us", "PII", "US", False, (5, 60)),
    ("kb_articles", "PUBLIC", "EU", False, (1, 20)),
    ("conference_transcripts", "PUBLIC", "US", False, (50, 400)),
    ("video_frames", "INTERNAL", "US", False, (100, 500)),
    ("podcast_audio_eu", "INTERNAL", "EU", True, (50, 300)),
    ("clickstream_eu", "INTERNAL", "EU", True, (30, 250)),
    ("product_catalog", "PUBLIC", "US", False, (2, 30)),
    ("web_crawl", "PUBLIC", "US", False, (100, 500)),
    ("papers_corpus", "PUBLIC", "EU", False, (10, 80)),
    ("patient_notes_us", "PII", "US", False, (10, 80)),
)

# team, share of requests, datasets it reads, GPU quota
TEAMS: tuple[tuple[str, float, tuple[str, ...], int], ...] = (
    (
        "financial-ml",
        0.25,
        ("customer_orders_eu", "customer_orders_us", "transactions_eu", "market_data"),
        48,
    ),
    ("customer-support", 0.20, ("support_tickets_eu", "support_tickets_us", "kb_articles"), 32),
    ("media-ml", 0.20, ("conference_transcripts", "video_frames", "podcast_audio_eu"), 40),
    ("commerce-analytics", 0.15, ("clickstream_eu", "product_catalog", "customer_orders_eu"), 24),
    ("research", 0.20, ("web_crawl", "papers_corpus", "patient_notes_us"), 40),
)

# kind, share, GPU counts and weights, memory GB choices and weights, duration range (s),
# share with an SLO, SLO choices (ms), priorities and weights
_KINDS: tuple[tuple[Any, ...], ...] = (
    ("inference", 0.45, (1, 2), (0.9, 0.1), (16, 24), (0.6, 0.4), (300, 1800), 0.7,
     (200, 300, 500), (300, 500), (0.6, 0.4)),
    ("embed", 0.30, (1, 2), (0.6, 0.4), (16, 24), (0.5, 0.5), (600, 3600), 0.0,
     (), (100, 300), (0.7, 0.3)),
    ("fine-tune", 0.10, (2, 4), (0.5, 0.5), (40, 70), (0.5, 0.5), (1800, 7200), 0.0,
     (), (100, 300), (0.8, 0.2)),
    ("experiment", 0.15, (1, 2, 3, 4), (0.4, 0.3, 0.1, 0.2), (16, 40, 70), (0.5, 0.3, 0.2),
     (300, 3600), 0.0, (), (50,), (1.0,)),
)  # fmt: skip


def generate_catalog(seed: int) -> dict[str, CatalogRecord]:
    """The governance records of the generated datasets (the sizes come from ``dataset_sizes``)."""
    del seed  # records are fixed; only sizes vary with the seed
    return {d: _record(d, c, r, g) for d, c, r, g, _ in _DATASETS}


def dataset_sizes(seed: int) -> dict[str, float]:
    rng = np.random.default_rng([seed, 1])
    return {d: round(float(rng.uniform(lo, hi)), 1) for d, _, _, _, (lo, hi) in _DATASETS}


def _arrivals(rng: np.random.Generator, n: int, hours: float) -> np.ndarray:
    """``n`` arrival times over ``hours`` with a diurnal rate peaking at 14:00 (x2.3 the trough)."""
    grid = np.linspace(0.0, hours * 3600.0, 2049)
    rate = 1.0 + 0.4 * np.cos(2 * np.pi * (grid / 3600.0 - 14.0) / 24.0)
    cdf = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2)])
    cdf /= cdf[-1]
    return np.sort(np.interp(rng.uniform(0.0, 1.0, n), cdf, grid))


def generate_trace(
    seed: int,
    n_requests: int = 2000,
    hours: float = 24.0,
    catalog: Mapping[str, CatalogRecord] | None = None,
) -> list[TimedRequest]:
    """A deterministic multi-team trace: inference with SLOs, embeddings, fine-tunes, experiments.

    Teams read their own datasets (EU/US, PII/CONFIDENTIAL/INTERNAL/PUBLIC); 1-4 GPUs of 16-70 GB;
    5 min-2 h on the reference GPU (an A100); priorities 50 (low) to 500. ~4% of the requests
    join two datasets of different residency, which no cluster may process when one is strict.
    """
    catalog = catalog or generate_catalog(seed)
    sizes = dataset_sizes(seed)
    rng = np.random.default_rng([seed, 2])
    arrivals = _arrivals(rng, n_requests, hours)
    team_p = np.array([t[1] for t in TEAMS])
    kind_p = np.array([k[1] for k in _KINDS])
    out: list[TimedRequest] = []
    for i, arrival in enumerate(arrivals):
        team, _, datasets, _ = TEAMS[rng.choice(len(TEAMS), p=team_p / team_p.sum())]
        (kind, _, counts, count_p, mems, mem_p, (lo, hi), slo_share, slos, prios, prio_p) = _KINDS[
            rng.choice(len(_KINDS), p=kind_p / kind_p.sum())
        ]
        first = datasets[rng.integers(len(datasets))]
        chosen = [first]
        if rng.uniform() < 0.12:
            second = datasets[rng.integers(len(datasets))]
            if second != first:
                chosen.append(second)
        gb = sum(sizes[d] for d in chosen if d in catalog) * float(rng.uniform(0.1, 0.6))
        duration = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        slo = float(rng.choice(slos)) if slos and rng.uniform() < slo_share else None
        request = WorkloadRequest(
            request_id=f"req-{i:05d}",
            workload=f"{kind}/{first}",
            team=team,
            datasets=tuple(chosen),
            gpu_count=int(rng.choice(counts, p=count_p)),
            gpu_memory_gb=float(rng.choice(mems, p=mem_p)),
            estimated_duration_s=round(duration, 1),
            data_gb=round(gb, 2),
            latency_slo_ms=slo,
            priority=int(rng.choice(prios, p=prio_p)),
        )
        out.append(TimedRequest(round(float(arrival), 3), request))
    return out


def generated_scenario(
    seed: int = 0,
    n_requests: int = 2000,
    hours: float = 24.0,
    n_clusters: int = 6,
    budget_factors: Mapping[str, float] | None = None,
) -> Scenario:
    """A generated fleet and trace, the teams' quotas (``TEAMS``) and budgets.

    Each team's budget for the simulated period is ``budget_factors[team]`` (default 1.5; 0.85
    for ``research``, so its budget binds) times what its requests would cost, each on its
    cheapest candidate allowed by the static rules.
    """
    fleet = generate_fleet(seed, n_clusters)
    catalog = generate_catalog(seed)
    trace = generate_trace(seed, n_requests, hours, catalog)
    quotas = {t: TeamQuota(t, q, "simulation") for t, _, _, q in TEAMS}
    factors = {t: 1.5 for t, *_ in TEAMS} | {"research": 0.85}
    factors |= dict(budget_factors or {})
    generous = {t: Budget(t, 1e12, "simulated period") for t in quotas}
    snapshot = _static_snapshot(fleet, quotas, generous, catalog, {})
    policy = PlacementPolicy()
    need: dict[str, float] = defaultdict(float)
    for tr in trace:
        feasible = [e for e in evaluate(tr.request, snapshot, policy) if e.feasible]
        if feasible:
            need[tr.request.team] += min(e.cost.total_usd for e in feasible)
    budgets = {t: Budget(t, round(need[t] * factors[t], 2), "simulated period") for t in quotas}
    return Scenario(
        name=f"generated(seed={seed}, requests={n_requests}, hours={hours:g}, "
        f"clusters={n_clusters})",
        fleet=fleet,
        trace=tuple(trace),
        catalog=catalog,
        quotas=quotas,
        budgets=budgets,
        hours=hours,
    )


# The seed article's cost table: naive (US A100 + $0.08/GB egress) ~$2.50 per 1,000 inference
# requests, the EU A10 ~$1.20. With the seed fleet's prices one batch of 1,000 requests is
# SEED_BATCH_REF_S seconds of reference-GPU (A100) work: 1.20 = 1.10 $/h x (s / 0.45) / 3600 on
# the A10, and 3.67 $/h x s / 3600 = $1.80 on the A100, so the egress must be $0.70: 8.75 GB.
SEED_BATCH_REF_S = 1.20 * 3600 * 0.45 / 1.10  # 1767.3 s
SEED_BATCH_GB = (2.50 - 3.67 * SEED_BATCH_REF_S / 3600) / 0.08  # 8.74 GB


def seed_like_trace(
    seed: int = 0,
    n_batches: int = 96,
    hours: float = 24.0,
    data_gb: float = SEED_BATCH_GB,
) -> list[TimedRequest]:
    """The seed scenario: inference batches of 1,000 requests over EU customer-order PII.

    One batch every ``hours / n_batches`` (jittered by the seed): 1 GPU, 16 GB, an SLO of 250 ms
    (the A10 meets it), ``SEED_BATCH_REF_S`` s on an A100, reading ``data_gb`` GB of EU data.
    """
    rng = np.random.default_rng([seed, 3])
    step = hours * 3600.0 / n_batches
    out = []
    for i in range(n_batches):
        arrival = (i + float(rng.uniform(0.0, 0.5))) * step
        request = WorkloadRequest(
            request_id=f"batch-{i:04d}",
            workload="inference/customer_orders_eu",
            team="financial-ml",
            datasets=("customer_orders_eu",),
            gpu_count=1,
            gpu_memory_gb=16,
            estimated_duration_s=SEED_BATCH_REF_S,
            data_gb=data_gb,
            latency_slo_ms=250,
            priority=500,
        )
        out.append(TimedRequest(round(arrival, 3), request))
    return out


def seed_like_scenario(seed: int = 0, n_batches: int = 96, hours: float = 24.0) -> Scenario:
    """``seed_like_trace`` on ``seed_fleet`` with the seed's quota (16 GPUs) and budget ($5,000).

    The EU H100 pool is held by work outside the trace (background: a training reservation), as
    in the seed article where the choice is between the US A100 and the EU A10.
    """
    catalog = {
        "customer_orders_eu": _record("customer_orders_eu", "PII", "EU", True),
    }
    return Scenario(
        name=f"seed-like(batches={n_batches}, hours={hours:g})",
        fleet=seed_fleet(),
        trace=tuple(seed_like_trace(seed, n_batches, hours)),
        catalog=catalog,
        quotas={"financial-ml": TeamQuota("financial-ml", 16, "quotas.yaml#ml-team")},
        budgets={"financial-ml": Budget("financial-ml", 5000.0)},
        hours=hours,
        background={("eu-par-h100", "H100-80GB"): 8},
        requests_per_workload=1000,
        unit="1,000 inference requests (one batch)",
    )


# --------------------------------------------------------------------------------------------
# Snapshots and policies


def _static_snapshot(
    fleet: Fleet,
    quotas: Mapping[str, TeamQuota],
    budgets: Mapping[str, Budget],
    catalog: Mapping[str, CatalogRecord],
    background: Mapping[tuple[str, str], int],
) -> Snapshot:
    """An idle fleet (all GPUs but the background free, utilisation 0) with an empty ledger."""
    telemetry = {}
    for c in fleet.clusters:
        for p in c.pools:
            bg = background.get((c.name, p.gpu_type), 0)
            telemetry[(c.name, p.gpu_type)] = TelemetrySample(
                c.name, p.gpu_type, p.total - bg, 0.0, EPOCH
            )
    return Snapshot(fleet, quotas, budgets, {}, telemetry, catalog, EPOCH)


class _Outcome(NamedTuple):
    status: str
    candidate: Candidate | None


BatchPolicy = Callable[[Sequence[WorkloadRequest], Snapshot, PlacementPolicy], list[_Outcome]]


def naive_choice(
    request: WorkloadRequest, snapshot: Snapshot, taken: Mapping[tuple[str, str], int]
) -> Candidate | None:
    """The fastest pool with enough free GPUs (telemetry minus ``taken``) and memory per GPU."""
    best: tuple[float, str, Candidate] | None = None
    for c in snapshot.fleet.clusters:
        for p in c.pools:
            sample = snapshot.telemetry.get((c.name, p.gpu_type))
            free = (sample.free_gpus if sample else p.total) - taken.get((c.name, p.gpu_type), 0)
            if p.memory_gb < request.gpu_memory_gb or free < request.gpu_count:
                continue
            key = (-p.speed, f"{c.name}/{p.gpu_type}", Candidate(c.name, p.gpu_type))
            if best is None or key[:2] < best[:2]:
                best = key
    return best[2] if best else None


def _naive(requests, snapshot, policy) -> list[_Outcome]:
    taken: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for r in requests:
        chosen = naive_choice(r, snapshot, taken)
        if chosen is not None:
            taken[(chosen.cluster, chosen.gpu_type)] += r.gpu_count
            out.append(_Outcome(PLACED, chosen))
            continue
        possible = any(
            p.memory_gb >= r.gpu_memory_gb and p.total >= r.gpu_count
            for c in snapshot.fleet.clusters
            for p in c.pools
        )
        out.append(_Outcome(DEFERRED if possible else REJECTED, None))
    return out


def greedy_choice(
    request: WorkloadRequest, snapshot: Snapshot, policy: PlacementPolicy, state: BatchState
):
    """(status, evaluation): the cheapest candidate passing every hard rule, or why none."""
    status, evaluations, hints = status_of(request, snapshot, policy, state)
    if hints.feasible:
        best = min(
            evaluations.subset(hints.feasible),
            key=lambda e: (e.cost.total_usd, e.cost.latency_ms, e.candidate.label),
        )
        return status, best
    return status, None


def _greedy(requests, snapshot, policy) -> list[_Outcome]:
    state = BatchState()
    out = []
    for r in requests:
        status, picked = greedy_choice(r, snapshot, policy, state)
        if picked is not None:
            c = picked.candidate
            state.take(r, c.cluster, c.gpu_type, picked.cost.total_usd)
            out.append(_Outcome(status, c))
        else:
            out.append(_Outcome(status, None))
    return out


def _plane(requests, snapshot, policy) -> list[_Outcome]:
    by_id = {d.request.request_id: d for d in place_batch(requests, snapshot, policy)}
    return [_Outcome(by_id[r.request_id].status, by_id[r.request_id].chosen) for r in requests]


BATCH_POLICIES: dict[str, BatchPolicy] = {"naive": _naive, "greedy": _greedy, "plane": _plane}


# --------------------------------------------------------------------------------------------
# The clock


@dataclass
class _Pending:
    arrival_s: float
    request: WorkloadRequest


def _records(catalog: Mapping[str, CatalogRecord], request: WorkloadRequest):
    return tuple(catalog[d] for d in request.datasets if d in catalog)


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


def _run_clock(
    scenario: Scenario, batch_policy: BatchPolicy, policy: PlacementPolicy, tick_s, deadline_s
):
    """(placements, deferred ids, expired ids, rejected ids, decide seconds)."""
    fleet, catalog = scenario.fleet, scenario.catalog
    trace = sorted(scenario.trace, key=lambda tr: (tr.arrival_s, tr.request.request_id))
    by_id = {tr.request.request_id: tr for tr in trace}
    pools = {(c.name, p.gpu_type): (c, p) for c in fleet.clusters for p in c.pools}
    held = {key: scenario.background.get(key, 0) for key in pools}
    team_gpus: dict[str, int] = defaultdict(int)
    reserved: dict[str, float] = defaultdict(float)
    spent: dict[str, float] = defaultdict(float)
    running: list[tuple[float, int, Placement]] = []  # heap by end
    placements: list[Placement] = []
    pending: list[_Pending] = []
    deferred: set[str] = set()
    expired: set[str] = set()
    rejected: set[str] = set()
    decide_s = 0.0
    nxt = 0
    t = 0.0
    changed = True
    while nxt < len(trace) or pending:
        while running and running[0][0] <= t:
            _, _, job = heapq.heappop(running)
            held[(job.cluster, job.gpu_type)] -= job.gpu_count
            team_gpus[job.team] -= job.gpu_count
            reserved[job.team] -= job.cost_usd
            spent[job.team] += job.cost_usd
            changed = True
        while nxt < len(trace) and trace[nxt].arrival_s <= t:
            pending.append(_Pending(trace[nxt].arrival_s, trace[nxt].request))
            nxt += 1
            changed = True
        alive = [p for p in pending if t <= p.arrival_s + deadline_s]
        if len(alive) < len(pending):
            expired.update(p.request.request_id for p in pending if p not in alive)
            pending = alive
            changed = True
        if pending and changed:
            now = EPOCH + timedelta(seconds=t)
            telemetry = {
                key: TelemetrySample(c.name, p.gpu_type, p.total - held[key], held[key] / p.total,
                                     now)
                for key, (c, p) in pools.items()
            }  # fmt: skip
            teams = set(team_gpus) | set(spent) | set(scenario.quotas) | set(scenario.budgets)
            usage = {
                team: TeamUsage(team, team_gpus[team], max(reserved[team], 0.0), spent[team])
                for team in teams
            }
            snapshot = Snapshot(
                fleet, scenario.quotas, scenario.budgets, usage, telemetry, catalog, now
            )
            requests = [p.request for p in pending]
            started = time.perf_counter()
            outcomes = batch_policy(requests, snapshot, policy)
            decide_s += time.perf_counter() - started
            still: list[_Pending] = []
            placed_any = False
            for p, outcome in zip(pending, outcomes, strict=True):
                rid = p.request.request_id
                if outcome.status == PLACED and outcome.candidate is not None:
                    key = (outcome.candidate.cluster, outcome.candidate.gpu_type)
                    cluster, pool = pools[key]
                    job = _make_placement(by_id[rid], cluster, pool, t, catalog, snapshot, policy)
                    placements.append(job)
                    heapq.heappush(running, (job.end_s, len(placements), job))
                    held[key] += job.gpu_count
                    team_gpus[job.team] += job.gpu_count
                    reserved[job.team] += job.cost_usd
                    placed_any = True
                elif outcome.status == REJECTED:
                    rejected.add(rid)
                else:
                    deferred.add(rid)
                    still.append(p)
            pending = still
            changed = placed_any
        if changed and pending:
            t += tick_s
            continue
        # Nothing to decide anew: jump to the first tick at or after the next event.
        if not pending and nxt == len(trace):
            break  # nothing left to place; running jobs only release GPUs
        events = [trace[nxt].arrival_s] if nxt < len(trace) else []
        if running:
            events.append(running[0][0])
        if pending:
            events.append(min(p.arrival_s for p in pending) + deadline_s + 1e-6)
        t = max(t + tick_s, math.ceil(min(events) / tick_s) * tick_s)
    return placements, deferred, expired, rejected, decide_s


# --------------------------------------------------------------------------------------------
# Hindsight


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
    from scipy.sparse import coo_array

    fleet, catalog = scenario.fleet, scenario.catalog
    pools = {(c.name, p.gpu_type): (c, p) for c in fleet.clusters for p in c.pools}
    static = _static_snapshot(
        fleet, scenario.quotas, scenario.budgets, catalog, scenario.background
    )
    by_id = {tr.request.request_id: tr for tr in scenario.trace}
    targets = sorted(reference, key=lambda p: (p.arrival_s, p.request_id))
    requests = [by_id[t.request_id].request for t in targets]
    options: list[_Option] = []
    for i, ref in enumerate(targets):
        arrival = ref.arrival_s
        starts = sorted({arrival + d for d in delays if d <= deadline_s} | {ref.start_s})
        for e in evaluate(requests[i], static, policy):
            if e.feasible and e.candidate.gpu_type != CPU:
                key = (e.candidate.cluster, e.candidate.gpu_type)
                for s in starts:
                    options.append(_Option(i, key, s, s + e.cost.duration_s, e.cost.total_usd))
    if not options:
        return [], 0.0, "hindsight: nothing to place"
    if len(options) <= max_variables:
        windows = [(-math.inf, math.inf)]
    else:
        last = max(t.arrival_s for t in targets)
        windows = [(k * window_s, (k + 1) * window_s) for k in range(int(last // window_s) + 1)]
        windows[0] = (-math.inf, windows[0][1])
    capacity = {k: p.total - scenario.background.get(k, 0) for k, (_, p) in pools.items()}
    quota = {t: float(q.gpus) for t, q in scenario.quotas.items()}
    n_slots = math.ceil(max(o.end_s for o in options) / slot_s) + 1
    # GPU-slots and spend taken by earlier windows.
    pool_load = {k: np.zeros(n_slots) for k in pools}
    team_load: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(n_slots))
    spend: dict[str, float] = defaultdict(float)

    def occupancy(o: _Option) -> list[tuple[int, float]]:
        """(slot, GPUs x share of the slot) the option holds."""
        gpus = requests[o.target].gpu_count
        first, last = int(o.start_s // slot_s), math.ceil(o.end_s / slot_s)
        return [
            (j, gpus * (min(o.end_s, (j + 1) * slot_s) - max(o.start_s, j * slot_s)) / slot_s)
            for j in range(first, last)
        ]

    chosen: list[_Option] = []
    bound, statuses, fallback = 0.0, [], False
    started = time.perf_counter()
    for lo, hi in windows:
        local = [o for o in options if lo <= targets[o.target].arrival_s < hi]
        if not local:
            continue
        members = sorted({o.target for o in local})
        row_of_target = {t: r for r, t in enumerate(members)}
        rows, cols, vals, lower, upper = [], [], [], [1.0] * len(members), [1.0] * len(members)
        pool_rows: dict[tuple[tuple[str, str], int], int] = {}
        team_rows: dict[tuple[str, int], int] = {}
        budget_rows: dict[str, int] = {}
        cells: list[tuple[str, Any, int, float]] = []
        for j, o in enumerate(local):
            rows.append(row_of_target[o.target])
            cols.append(j)
            vals.append(1.0)
            team = requests[o.target].team
            for slot, share in occupancy(o):
                cells.append(("pool", (o.pool, slot), j, share))
                if team in quota:
                    cells.append(("team", (team, slot), j, share))
            if team in scenario.budgets:
                cells.append(("budget", team, j, o.cost_usd))
        for kind, key, j, value in cells:
            table = {"pool": pool_rows, "team": team_rows, "budget": budget_rows}[kind]
            if key not in table:
                table[key] = len(lower)
                if kind == "pool":
                    limit = capacity[key[0]] - pool_load[key[0]][key[1]]
                elif kind == "team":
                    limit = quota[key[0]] - team_load[key[0]][key[1]]
                else:
                    limit = scenario.budgets[key].limit_usd - spend[key]
                lower.append(-np.inf)
                upper.append(limit + 1e-9)
            rows.append(table[key])
            cols.append(j)
            vals.append(value)
        a = coo_array((vals, (rows, cols)), shape=(len(lower), len(local))).tocsr()
        # A tie-break of 1e-7 $/s of delay (between equal costs, start earlier), taken out of
        # the bound again at its largest.
        ties = np.array([1e-7 * (o.start_s - targets[o.target].arrival_s) for o in local])
        costs = np.array([o.cost_usd for o in local]) + ties
        solved = _solve_window(
            costs, a, np.array(lower), np.array(upper), len(members), time_limit_s
        )
        most_ties: dict[int, float] = defaultdict(float)
        for o, tie in zip(local, ties, strict=True):
            most_ties[o.target] = max(most_ties[o.target], float(tie))
        bound += solved.lp_bound - sum(most_ties.values())
        statuses.append(solved.status)
        fallback = fallback or solved.fallback
        for j in solved.chosen:
            o = local[j]
            chosen.append(o)
            team = requests[o.target].team
            for slot, share in occupancy(o):
                pool_load[o.pool][slot] += share
                if team in quota:
                    team_load[team][slot] += share
            spend[team] += o.cost_usd
    solve_s = time.perf_counter() - started
    placements = []
    for o in sorted(chosen, key=lambda o: o.target):
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
    notes = (
        f"hindsight: {len(options)} options ({len(targets)} requests x feasible pools x starts "
        f"at +{', +'.join(f'{d / 60:g}' for d in delays)} min and plane's own start), "
        f"{slot_s / 60:g}-min slots, {windowed}; {'; '.join(sorted(set(statuses)))}"
        f"{'; could not place every request: placements maximised first' if fallback else ''}"
        f"; LP lower bound ${bound:,.2f}; solved in {solve_s:.1f} s"
    )
    return placements, (bound if len(windows) == 1 else math.nan), notes


# --------------------------------------------------------------------------------------------
# Metrics


def _audit(
    request: WorkloadRequest,
    cluster: Cluster,
    catalog: Mapping[str, CatalogRecord],
    policy: PlacementPolicy,
) -> tuple[bool, bool]:
    """(residency violated, compliance violated) of running ``request`` on ``cluster``."""
    residency = compliance = False
    for name in request.datasets:
        record = catalog.get(name)
        if record is None:
            residency = residency or not cluster.accepts_unknown_residency
            continue
        zones = residency_parts(record.data_residency)
        strict = record.classification in policy.strict_classifications or UNKNOWN in zones
        if (
            strict
            and zones != {cluster.zone}
            and not (UNKNOWN in zones and cluster.accepts_unknown_residency)
        ):
            residency = True
        if record.classification in ("PII", UNKNOWN) and not set(policy.pii_certifications) <= set(
            cluster.certifications
        ):
            compliance = True
        if record.gdpr_compliant and policy.gdpr_certification not in cluster.certifications:
            compliance = True
    return residency, compliance


def _held_at(starts: np.ndarray, ends: np.ndarray, gpus: np.ndarray, at: float, strict: bool):
    began = starts < at if strict else starts <= at
    return float(gpus[began & (ends > at)].sum())


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
    fleet, catalog = scenario.fleet, scenario.catalog
    by_id = {tr.request.request_id: tr.request for tr in scenario.trace}
    pools = {(c.name, p.gpu_type): (c, p) for c in fleet.clusters for p in c.pools}
    placements = sorted(placements, key=lambda p: (p.start_s, p.request_id))
    starts = np.array([p.start_s for p in placements])
    ends = np.array([p.end_s for p in placements])
    gpus = np.array([p.gpu_count for p in placements], dtype=float)
    keys = [(p.cluster, p.gpu_type) for p in placements]
    teams = np.array([p.team for p in placements])
    residency = compliance = slo = quota_v = budget_v = overbooked = 0
    spend: dict[str, float] = defaultdict(float)
    horizon = scenario.hours * 3600.0
    use: dict[tuple[str, str], float] = {k: 0.0 for k in pools}
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
        use[(p.cluster, p.gpu_type)] += p.gpu_count * max(
            0.0, min(p.end_s, horizon) - min(p.start_s, horizon)
        )
    utilisation = {}
    for key, (_, pool) in pools.items():
        bg = scenario.background.get(key, 0) * horizon
        utilisation[f"{key[0]}/{key[1]}"] = (use[key] + bg) / (pool.total * horizon)
    total = sum(p.cost_usd for p in placements)
    units = len(placements) * scenario.requests_per_workload
    placed_ids = {p.request_id for p in placements}
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
        residency_violations=residency,
        compliance_violations=compliance,
        slo_misses=slo,
        quota_violations=quota_v,
        budget_overruns=budget_v,
        capacity_overbooked=overbooked,
        mean_wait_s=float(np.mean(starts - np.array([p.arrival_s for p in placements])))
        if placements
        else 0.0,
        utilisation=utilisation,
        decide_s=decide_s,
        wall_s=wall_s,
        placements=tuple(placements),
        lower_bound_usd=lower_bound_usd,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# Entry points


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


__all__ = [
    "POLICIES",
    "Placement",
    "Scenario",
    "SimResult",
    "TimedRequest",
    "compare",
    "generate_catalog",
    "generate_fleet",
    "generate_trace",
    "generated_scenario",
    "greedy_choice",
    "naive_choice",
    "seed_fleet",
    "seed_like_scenario",
    "seed_like_trace",
    "simulate",
    "simulate_scenario",
    "summary",
]
