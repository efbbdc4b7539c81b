"""Scenarios: the fleet, trace, catalog, quotas and budgets one simulation replays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from data_plane.catalog import CatalogRecord
from reasoning_plane.model import (
    Budget,
    Fleet,
    Snapshot,
    TeamQuota,
    TelemetrySample,
    WorkloadRequest,
)

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


def _records(catalog: Mapping[str, CatalogRecord], request: WorkloadRequest):
    return tuple(catalog[d] for d in request.datasets if d in catalog)


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
