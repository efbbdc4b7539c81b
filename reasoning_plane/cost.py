"""The cost and latency model, for every candidate of a request at once.

* duration: the request's reference-GPU duration divided by the pool's relative speed (CPU: the
  request's CPU duration, or ``policy.cpu_slowdown`` times the GPU duration);
* GPU cost: price per GPU-hour x GPUs x hours (CPU: the cluster's CPU price per hour x hours);
* egress: every GB of input whose residency zone differs from the cluster's zone is moved, at the
  cluster's per-GB price (the request's ``data_gb`` is split evenly over its inputs; an input
  without a catalog record is taken to move);
* latency: network latency from the data's zones (the worst of them) to the cluster, plus the
  GPU's inference latency stretched by congestion ``1 / (1 - utilisation)`` from the latest
  telemetry (utilisation capped at ``policy.congestion_cap``; CPU: the policy's CPU latency);
* score: the policy's objective, lower is better: cost, with latency only breaking ties, or
  ``cost_weight x cost + latency_weight x latency`` (``objective: weighted``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from reasoning_plane.model import WorkloadRequest
from reasoning_plane.policy import PlacementPolicy

if TYPE_CHECKING:
    from reasoning_plane.index import CandidateTable, Inputs

UNKNOWN_LATENCY_MS = 10_000.0  # a zone the cluster does not list a latency for


@dataclass(frozen=True)
class Costs:
    """The cost model of every candidate of a request, as arrays in candidate order."""

    seconds: np.ndarray
    gpu_usd: np.ndarray
    egress_usd: np.ndarray
    moved_gb: np.ndarray
    latency_ms: np.ndarray
    total_usd: np.ndarray
    score: np.ndarray
    priced: np.ndarray  # bool: costs money (the budget rule's concern)


def estimate(
    request: WorkloadRequest,
    table: CandidateTable,
    inputs: Inputs,
    latency_ms: np.ndarray,
    latency_part: np.ndarray,
    policy: PlacementPolicy,
) -> Costs:
    """`Costs` of ``request`` on each candidate of ``table``. ``latency_ms``: the latency for
    the request's data, network plus model, and ``latency_part`` its `latency_score`; both
    depend on the request only through the data's zones (`FleetIndex.latency`)."""
    seconds = request.estimated_duration_s / table.speed
    if table.cpu_idx.size:
        seconds[table.cpu_idx] = (
            request.cpu_duration_s or request.estimated_duration_s * policy.cpu_slowdown
        )
    hours = seconds / 3600
    if table.cpu_idx.size:  # a CPU slot is priced per hour, a GPU pool per GPU-hour
        gpu_usd = table.rate * np.where(table.gpu, float(request.gpu_count), 1.0)
    else:
        gpu_usd = table.rate * request.gpu_count
    gpu_usd *= hours  # in place: the same arithmetic, one array fewer
    moved = moved_gb(request, inputs, table)
    egress_usd = moved * table.egress
    total = gpu_usd + egress_usd
    if policy.objective == "weighted":
        score = policy.cost_weight * total
        score += latency_part
    else:
        score = total + latency_part
    return Costs(seconds, gpu_usd, egress_usd, moved, latency_ms, total, score, ~(total <= 0))


def latency_score(latency_ms: np.ndarray, policy: PlacementPolicy) -> np.ndarray:
    """The latency's part of the score: ``latency_weight x ms`` (objective ``weighted``), else
    a tie-break of 1e-9 per ms."""
    if policy.objective == "weighted":
        return policy.latency_weight * latency_ms
    return latency_ms * 1e-9  # latency only breaks ties


def moved_gb(request: WorkloadRequest, inputs: Inputs, table: CandidateTable) -> np.ndarray:
    """GB of input moved into each candidate's cluster: the share of every input whose
    residency is not exactly the cluster's zone, and of every input without a record."""
    n_inputs = max(len(request.datasets), 1)
    share = request.data_gb / n_inputs
    by_zone = []
    for zone in table.zones:
        own = {zone}
        moved = sum(share for zones in inputs.zone_sets if zones != own)
        by_zone.append(moved + share * (n_inputs - len(inputs.records)))
    return np.array(by_zone, dtype=np.float64)[table.zone]
