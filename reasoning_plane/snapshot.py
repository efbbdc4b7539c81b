"""Building the snapshot a tick decides on: fleet, quotas, budgets, ledger usage, telemetry,
governance, and the local machine's own GPUs sampled live from NVML."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN
from reasoning_plane import live_quotas, prometheus_telemetry, store
from reasoning_plane.agent import pool_name, samples_from_report
from reasoning_plane.gpu_telemetry import NvmlReport
from reasoning_plane.model import (
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    Snapshot,
    TeamQuota,
    TeamUsage,
    TelemetrySample,
)

LOCAL = "local"
LOCAL_ZONE_ENV = "PLANE_LOCAL_ZONE"
LOCAL_CERTS_ENV = "PLANE_LOCAL_CERTIFICATIONS"
LOCAL_CPU_SLOTS_ENV = "PLANE_LOCAL_CPU_SLOTS"


def local_place() -> tuple[str, frozenset[str]]:
    """(zone, certifications) the operator declared for this machine; UNKNOWN zone undeclared."""
    zone = (os.environ.get(LOCAL_ZONE_ENV) or UNKNOWN).strip().upper()
    certs = frozenset(
        c.strip().upper() for c in os.environ.get(LOCAL_CERTS_ENV, "").split(",") if c.strip()
    )
    return zone, certs


def local_fleet(report: NvmlReport) -> Fleet:
    """The fleet when no cluster is configured: this machine alone.

    Its zone and certifications are what the operator declares (``PLANE_LOCAL_ZONE``,
    ``PLANE_LOCAL_CERTIFICATIONS``); undeclared, the zone is UNKNOWN and regulated data is not
    placed here (fail closed). Its GPUs are the ones NVML reports (none without a driver).
    """
    zone, certs = local_place()
    slots = int(os.environ.get(LOCAL_CPU_SLOTS_ENV) or max((os.cpu_count() or 2) // 2, 1))
    by_name: dict[str, list[float]] = {}
    for gpu in report.gpus:
        by_name.setdefault(gpu.name, []).append(gpu.memory_total_gb)
    pools = tuple(
        GpuPool(
            gpu_type=pool_name(name),
            memory_gb=min(mems),
            total=len(mems),
            price_per_hour=0.0,
        )
        for name, mems in sorted(by_name.items())
    )
    return Fleet(
        clusters=(
            Cluster(
                name=LOCAL,
                zone=zone,
                region=LOCAL,
                location="this machine",
                certifications=certs,
                pools=pools,
                egress_per_gb=0.0,
                latency_ms={zone: 1.0},
                local=True,
                cpu_slots=slots,
            ),
        )
    )


def local_samples(fleet: Fleet, report: NvmlReport) -> dict[tuple[str, str], TelemetrySample]:
    """Live samples of the local cluster's pools; memory is what NVML says is actually free."""
    local = next((c for c in fleet.clusters if c.local), None)
    if local is None:
        return {}
    return {(s.cluster, s.gpu_type): s for s in samples_from_report(local.name, report)}


def period_start(period: str, now: datetime) -> datetime:
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _taken_by(sample: TelemetrySample) -> datetime:
    """The latest time ``sample`` can have been taken at, as far as the plane knows."""
    if sample.received_at is None:
        return sample.observed_at
    return min(sample.observed_at, sample.received_at)


def _less_held(sample: TelemetrySample, held: int) -> TelemetrySample:
    """``sample`` without ``held`` GPUs reserved after it was taken. Which GPUs those runs got
    is not known: they are taken to be the ones with the most free memory (of the per-GPU
    list, when the sample has one), so no request is placed on a GPU a reservation may use."""
    if not held:
        return sample
    per_gpu = sample.free_memory_per_gpu_gb
    if per_gpu is not None:
        per_gpu = tuple(sorted(per_gpu)[: max(len(per_gpu) - held, 0)])
    return replace(
        sample, free_gpus=max(sample.free_gpus - held, 0), free_memory_per_gpu_gb=per_gpu
    )


def fleet_telemetry(
    conn: psycopg.Connection,
    fleet: Fleet,
    now: datetime,
    prometheus_fetch: prometheus_telemetry.Fetch | None = None,
) -> dict[tuple[str, str], TelemetrySample]:
    """The remote pools' latest samples, each from its cluster's one source: what the agents
    pushed (``plane.telemetry``), or, for a cluster whose source is its Prometheus, read from it
    now (what its agents may have pushed is not used; a Prometheus that cannot be read leaves
    its cluster without samples, and the reason is logged). The tick and the metrics exporter
    read telemetry through this, so an alert on its age sees what placement sees."""
    agent_fed = {c.name for c in fleet.clusters if c.telemetry is None}
    telemetry = {k: v for k, v in store.latest_telemetry(conn).items() if k[0] in agent_fed}
    if len(agent_fed) < len(fleet.clusters):
        fetch = prometheus_fetch or prometheus_telemetry.http_get
        telemetry.update(prometheus_telemetry.read_fleet(fleet, now, fetch)[0])
    return telemetry


def build_snapshot(
    conn: psycopg.Connection,
    *,
    fleet: Fleet,
    quotas: Mapping[str, TeamQuota],
    budgets: Mapping[str, Budget],
    catalog: Mapping[str, CatalogRecord],
    now: datetime,
    local_report: NvmlReport | None = None,
    prometheus_fetch: prometheus_telemetry.Fetch | None = None,
) -> Snapshot:
    """Snapshot from the database (ledger, pushed telemetry) plus live local telemetry, and
    the telemetry of clusters whose source is their Prometheus, read now
    (`prometheus_telemetry`: what their agents may have pushed is not used; a Prometheus that
    cannot be read leaves its cluster without samples, and the reason is logged). Clusters
    whose quotas come from Kubernetes have them read now (`live_quotas`); ``quotas`` (the
    quota file) is for the others."""
    telemetry = fleet_telemetry(conn, fleet, now, prometheus_fetch)
    if local_report is not None:
        telemetry.update(local_samples(fleet, local_report))
    # GPUs reserved after a sample was taken are not in it yet: take them off. A sample is
    # taken no later than the plane received it, whatever its stamp says (a sender's clock may
    # run ahead: one stamped ahead of the reservations would otherwise hide them).
    oldest = min((_taken_by(s) for s in telemetry.values()), default=now)
    held = store.held_gpus_by_pool(conn, oldest)
    telemetry = {k: _less_held(s, held.get(k, 0)) for k, s in telemetry.items()}
    periods = {b.period for b in budgets.values()} or {"monthly"}
    usage_by_period = {p: store.usage(conn, period_start(p, now)) for p in periods}
    teams = set().union(*[set(u) for u in usage_by_period.values()])
    usage: dict[str, TeamUsage] = {}
    for team in teams:
        period = budgets[team].period if team in budgets else "monthly"
        usage[team] = usage_by_period.get(period, {}).get(team, TeamUsage(team))
    cluster_quotas, quota_errors = {}, {}
    if any(c.quotas is not None for c in fleet.clusters):
        cluster_quotas, quota_errors = live_quotas.read_fleet(fleet, store.unstarted_gpus(conn))
    return Snapshot(
        fleet=fleet,
        quotas=quotas,
        budgets=budgets,
        usage=usage,
        telemetry=telemetry,
        catalog=catalog,
        now=now,
        cluster_quotas=cluster_quotas,
        quota_errors=quota_errors,
    )
