"""Seeded fleets, catalogs and multi-team traces (``generated_scenario``)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_plane.catalog import CatalogRecord
from reasoning_plane.inputs import load_fleet
from reasoning_plane.model import Budget, Cluster, Fleet, TeamQuota, WorkloadRequest
from reasoning_plane.placement import evaluate
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.simulation.scenario import Scenario, TimedRequest, _static_snapshot

PUBLIC_PRICES = Path(__file__).resolve().parents[2] / "examples" / "public_prices" / "fleet.yaml"


def generate_fleet(seed: int, n_clusters: int = 6, base: Path | str = PUBLIC_PRICES) -> Fleet:
    """A fleet of ``n_clusters`` clusters built from the clusters of ``base`` (a fleet file; by
    default ``examples/public_prices/fleet.yaml``, public on-demand list prices with their
    sources).

    The file's clusters are used in order, then copies with a numeric suffix; prices, egress,
    memory, speeds and certifications are the file's; the seed varies pool sizes (+-25%, at least
    4 GPUs), the own-zone latency (+-20%) and the other zone's (90-110 ms).
    """
    if n_clusters < 2:
        raise ValueError("n_clusters must be at least 2 (one EU and one US cluster)")
    templates = load_fleet(base).clusters
    rng = np.random.default_rng(seed)
    clusters: list[Cluster] = []
    for i in range(n_clusters):
        template = templates[i % len(templates)]
        name = template.name
        if i >= len(templates):
            name = f"{name}-{i // len(templates) + 1}"
        zone = template.zone
        other = "US" if zone == "EU" else "EU"
        own = round(template.latency_ms[zone] * float(rng.uniform(0.8, 1.2)), 1)
        far = round(90.0 + float(rng.uniform(0.0, 20.0)), 1)
        pools = tuple(
            dataclasses.replace(p, total=max(4, round(p.total * float(rng.uniform(0.75, 1.25)))))
            for p in template.pools
        )
        clusters.append(
            dataclasses.replace(
                template,
                name=name,
                pools=pools,
                latency_ms={zone: own, other: far},
                kube_context=name,
            )
        )
    return Fleet(clusters=tuple(clusters))


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


def team_quotas() -> dict[str, TeamQuota]:
    """The GPU quota of every team of ``TEAMS``."""
    return {t: TeamQuota(t, q, "simulation") for t, _, _, q in TEAMS}


def team_budgets(
    fleet: Fleet,
    quotas: Mapping[str, TeamQuota],
    catalog: Mapping[str, CatalogRecord],
    trace: Sequence[TimedRequest],
    budget_factors: Mapping[str, float] | None = None,
) -> dict[str, Budget]:
    """Each team's budget for the simulated period: ``budget_factors[team]`` (default 1.5; 0.85
    for ``research``, so its budget binds) times what its requests would cost, each on its
    cheapest candidate allowed by the static rules."""
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
    return {t: Budget(t, round(need[t] * factors[t], 2), "simulated period") for t in quotas}


def generated_scenario(
    seed: int = 0,
    n_requests: int = 2000,
    hours: float = 24.0,
    n_clusters: int = 6,
    budget_factors: Mapping[str, float] | None = None,
) -> Scenario:
    """A generated fleet and trace, the teams' quotas (``team_quotas``) and budgets
    (``team_budgets``)."""
    fleet = generate_fleet(seed, n_clusters)
    catalog = generate_catalog(seed)
    trace = generate_trace(seed, n_requests, hours, catalog)
    quotas = team_quotas()
    budgets = team_budgets(fleet, quotas, catalog, trace, budget_factors)
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
