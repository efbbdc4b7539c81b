"""Scenarios: the fleet, trace, catalog, quotas and budgets one simulation replays."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from data_plane.catalog import CatalogRecord
from reasoning_plane.inputs import (
    load_budgets,
    load_catalog_records,
    load_fleet,
    load_quotas,
    load_requests,
    load_telemetry,
)
from reasoning_plane.model import (
    Budget,
    Fleet,
    Snapshot,
    TeamQuota,
    TelemetrySample,
    WorkloadRequest,
)

EPOCH = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # the simulated clock's zero
SEED_SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "seed_scenario"


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


# --------------------------------------------------------------------------------------------
# Scenario folders (examples/seed_scenario/ and any folder of the same files)


def recurring_trace(
    templates: Sequence[WorkloadRequest], repeats: int, hours: float, seed: int = 0
) -> list[TimedRequest]:
    """Each template recurs ``repeats`` times over ``hours``: occurrence ``k`` arrives at
    ``(k + u) x hours / repeats`` with ``u`` uniform in [0, 0.5) (seeded), as request
    ``<request_id>-<k:04d>``; everything else is the template's own."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    rng = np.random.default_rng([seed, 3])
    step = hours * 3600.0 / repeats
    out = []
    for k in range(repeats):
        for template in templates:
            arrival = (k + float(rng.uniform(0.0, 0.5))) * step
            request = dataclasses.replace(template, request_id=f"{template.request_id}-{k:04d}")
            out.append(TimedRequest(round(arrival, 3), request))
    return sorted(out, key=lambda tr: (tr.arrival_s, tr.request.request_id))


def _background(folder: Path, fleet: Fleet) -> dict[tuple[str, str], int]:
    """GPUs ``telemetry.yaml`` reports busy (total - free_gpus), held outside the trace."""
    path = folder / "telemetry.yaml"
    pools = {(c.name, p.gpu_type): p for c in fleet.clusters for p in c.pools}
    held = {}
    for i, (key, sample) in enumerate(load_telemetry(path).items()):
        if key not in pools:
            raise ValueError(f"{path}: samples[{i}]: pool {key[0]}/{key[1]} is not in fleet.yaml")
        if sample.free_gpus > pools[key].total:
            raise ValueError(
                f"{path}: samples[{i}].free_gpus: {sample.free_gpus} free GPUs but the pool "
                f"has {pools[key].total}"
            )
        held[key] = pools[key].total - sample.free_gpus
    return held


def load_scenario(
    folder: Path | str = SEED_SCENARIO,
    seed: int = 0,
    n_batches: int = 96,
    hours: float = 24.0,
) -> Scenario:
    """A scenario from a folder of the plane's own input files, read by ``inputs``.

    ``fleet.yaml``, ``quotas.yaml``, ``budgets.yaml`` and ``catalog.json`` as they are; the
    requests of ``requests.yaml`` each recur ``n_batches`` times over ``hours``
    (``recurring_trace``); the GPUs ``telemetry.yaml`` reports busy are held by work outside the
    trace for the whole period. Budgets cover the simulated period. Nothing is tuned to a result.
    """
    folder = Path(folder)
    fleet = load_fleet(folder / "fleet.yaml")
    templates = load_requests(folder / "requests.yaml")
    return Scenario(
        name=f"{folder.name}(requests x {n_batches}, hours={hours:g})",
        fleet=fleet,
        trace=tuple(recurring_trace(templates, n_batches, hours, seed)),
        catalog=load_catalog_records(folder / "catalog.json"),
        quotas=load_quotas(folder / "quotas.yaml"),
        budgets=load_budgets(folder / "budgets.yaml"),
        hours=hours,
        background=_background(folder, fleet),
    )


def seed_fleet() -> Fleet:
    """The seed scenario's fleet: ``examples/seed_scenario/fleet.yaml``."""
    return load_fleet(SEED_SCENARIO / "fleet.yaml")


def seed_like_trace(seed: int = 0, n_batches: int = 96, hours: float = 24.0) -> list[TimedRequest]:
    """The requests of ``examples/seed_scenario/requests.yaml``, each recurring ``n_batches``
    times over ``hours``."""
    return recurring_trace(load_requests(SEED_SCENARIO / "requests.yaml"), n_batches, hours, seed)


def seed_like_scenario(seed: int = 0, n_batches: int = 96, hours: float = 24.0) -> Scenario:
    """``load_scenario`` on ``examples/seed_scenario/``."""
    return load_scenario(SEED_SCENARIO, seed, n_batches, hours)
