"""The oracle's cost and latency model, one candidate at a time.

* duration: the request's reference-GPU duration divided by the pool's relative speed (CPU: the
  request's CPU duration, or ``policy.cpu_slowdown`` times the GPU duration);
* GPU cost: price per GPU-hour x GPUs x hours (CPU: the cluster's CPU price per hour x hours);
* egress: every GB of input whose residency zone differs from the cluster's zone is moved, at the
  cluster's per-GB price (the request's ``data_gb`` is split evenly over its inputs);
* latency: network latency from the data's zone to the cluster, plus the GPU's inference latency
  stretched by congestion ``1 / (1 - utilisation)`` from the latest telemetry.
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.catalog import CatalogRecord
from data_plane.classification import UNKNOWN, residency_parts
from reasoning_plane.model import Cluster, CostBreakdown, GpuPool, Snapshot, WorkloadRequest
from reasoning_plane.policy import PlacementPolicy

UNKNOWN_LATENCY_MS = 10_000.0  # a zone the cluster does not list a latency for


def duration_s(request: WorkloadRequest, pool: GpuPool | None, policy: PlacementPolicy) -> float:
    if pool is None:
        return request.cpu_duration_s or request.estimated_duration_s * policy.cpu_slowdown
    return request.estimated_duration_s / pool.speed


def estimate(
    request: WorkloadRequest,
    cluster: Cluster,
    pool: GpuPool | None,
    records: Sequence[CatalogRecord],
    snapshot: Snapshot,
    policy: PlacementPolicy,
) -> CostBreakdown:
    seconds = float(duration_s(request, pool, policy))  # the model computes in floats
    hours = seconds / 3600
    if pool is None:
        compute = cluster.cpu_price_per_hour * hours
    else:
        compute = pool.price_per_hour * request.gpu_count * hours
    n_inputs = max(len(request.datasets), 1)
    share = request.data_gb / n_inputs
    moved = 0.0
    data_zones: set[str] = set()
    for record in records:
        zones = residency_parts(record.data_residency)
        data_zones |= zones
        if zones != {cluster.zone}:
            moved += share
    moved += share * (n_inputs - len(records))  # inputs without a record: assume they move
    network = max(
        (cluster.latency_ms.get(z, UNKNOWN_LATENCY_MS) for z in data_zones if z != UNKNOWN),
        default=cluster.latency_ms.get(cluster.zone, 0.0),
    )
    if pool is None:
        model_latency = policy.cpu_inference_latency_ms
    else:
        sample = snapshot.telemetry.get((cluster.name, pool.gpu_type))
        utilisation = min(sample.utilisation, policy.congestion_cap) if sample else 0.0
        model_latency = pool.inference_latency_ms / (1 - utilisation)
    return CostBreakdown(
        duration_s=seconds,
        gpu_usd=compute,
        egress_usd=moved * cluster.egress_per_gb,
        data_moved_gb=moved,
        latency_ms=float(network + model_latency),
    )
