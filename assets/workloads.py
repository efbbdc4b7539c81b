"""Workload requirements declared on assets, read by the reasoning plane's sensors.

Every asset that reads governed data is a workload the plane places: GPU work (embeddings) and
CPU work (ingestion, tagging, derived datasets, chunking, model training and tagging) alike.
Each carries its needs as metadata (visible in the UI) so that the plane reads everything from
the asset, never from a requester: ``plane/gpu_count`` (0: CPU work), ``plane/gpu_memory_gb``,
``plane/est_duration_s`` (on the reference GPU), ``plane/data_gb``, ``plane/latency_slo_ms``,
``plane/priority``, ``plane/gpu_optional``, ``plane/recurring`` and ``plane/datasets`` (the
governed datasets it reads). A workload's datasets are its own plus, through lineage, those of
every workload upstream of it; its team is the asset's ``team:`` owner.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import dagster as dg

from data_plane.catalog import CatalogRecord
from data_plane.roles import DB_ROLE_METADATA

STEWARD_ROLE = "steward"

# Asset metadata of a workload the plane places (`workload_metadata`); its presence on an asset
# (`WORKLOAD_KEY`) makes the asset a workload. The run tags are `reasoning_plane.launch`'s.
DATASETS_KEY = "plane/datasets"
WORKLOAD_KEY = "plane/gpu_count"
GPU_MEMORY_KEY = "plane/gpu_memory_gb"
DURATION_KEY = "plane/est_duration_s"
DATA_GB_KEY = "plane/data_gb"
PRIORITY_KEY = "plane/priority"
GPU_OPTIONAL_KEY = "plane/gpu_optional"
RECURRING_KEY = "plane/recurring"
SLO_KEY = "plane/latency_slo_ms"


def workload_metadata(
    *,
    datasets: Sequence[str],
    gpu_count: int,
    gpu_memory_gb: float,
    est_duration_s: float,
    data_gb: float = 0.0,
    latency_slo_ms: float | None = None,
    priority: int = 100,
    gpu_optional: bool = False,
    recurring: bool = False,
) -> dict[str, object]:
    meta: dict[str, object] = {
        DATASETS_KEY: ",".join(datasets),
        WORKLOAD_KEY: gpu_count,
        GPU_MEMORY_KEY: gpu_memory_gb,
        DURATION_KEY: est_duration_s,
        DATA_GB_KEY: data_gb,
        PRIORITY_KEY: priority,
        GPU_OPTIONAL_KEY: gpu_optional,
        RECURRING_KEY: recurring,
    }
    if latency_slo_ms is not None:
        meta[SLO_KEY] = latency_slo_ms
    return meta


DECLARED_KEY = "plane/declared_record"  # on ingestion assets: the source's declared governance


def declared_records(assets: Iterable[dg.AssetsDefinition]) -> dict[str, CatalogRecord]:
    """The governance each source's declaration implies (`data_plane.catalog.declared_record`),
    from the ingestion assets' metadata: what the plane decides on for a dataset the governance
    catalog does not hold yet."""
    found = {}
    for assets_def in assets:
        for spec in assets_def.specs_by_key.values():
            raw = (spec.metadata or {}).get(DECLARED_KEY)
            if raw is not None:
                record = CatalogRecord.from_dict(_value({"v": raw}, "v"), where=DECLARED_KEY)
                found[record.dataset_id] = record
    return found


def cpu_workload_metadata(
    *,
    datasets: Sequence[str],
    est_duration_s: float = 120.0,
    data_gb: float = 0.1,
    writes_catalog: bool = False,
) -> dict[str, object]:
    """Metadata of CPU work on governed data (placed on a CPU slot of a compliant cluster);
    ``writes_catalog``: the asset writes the governance catalog, which only the steward role
    may (`data_plane.roles`): its runs get that role's credentials."""
    metadata = workload_metadata(
        datasets=datasets,
        gpu_count=0,
        gpu_memory_gb=0.0,
        est_duration_s=est_duration_s,
        data_gb=data_gb,
    )
    return {**metadata, DB_ROLE_METADATA: STEWARD_ROLE} if writes_catalog else metadata


@dataclass(frozen=True)
class WorkloadSpec:
    key: dg.AssetKey
    team: str
    datasets: tuple[str, ...]
    gpu_count: int
    gpu_memory_gb: float
    est_duration_s: float
    data_gb: float
    latency_slo_ms: float | None
    priority: int
    gpu_optional: bool
    recurring: bool
    deps: tuple[dg.AssetKey, ...]


def _value(meta: dict, key: str, default: object = None) -> object:
    raw = meta.get(key, default)
    return getattr(raw, "value", raw)


def workload_specs(assets: Iterable[dg.AssetsDefinition]) -> list[WorkloadSpec]:
    """Every asset that declares ``plane/gpu_count``, as a workload the plane places, with the
    datasets of its lineage (its own and those of every workload upstream)."""
    specs = _declared_specs(assets)
    by_key = {s.key: s for s in specs}
    lineage: dict[dg.AssetKey, tuple[str, ...]] = {}

    def datasets_of(key: dg.AssetKey, seen: frozenset[dg.AssetKey]) -> tuple[str, ...]:
        if key in lineage:
            return lineage[key]
        spec = by_key.get(key)
        if spec is None or key in seen:
            return ()
        found = set(spec.datasets)
        for dep in spec.deps:
            found.update(datasets_of(dep, seen | {key}))
        lineage[key] = tuple(sorted(found))
        return lineage[key]

    return [replace(s, datasets=datasets_of(s.key, frozenset())) for s in specs]


def _declared_specs(assets: Iterable[dg.AssetsDefinition]) -> list[WorkloadSpec]:
    specs = []
    for assets_def in assets:
        for key in assets_def.keys:
            spec = assets_def.specs_by_key[key]
            meta = dict(spec.metadata or {})
            if WORKLOAD_KEY not in meta:
                continue
            owners = [o for o in spec.owners or [] if o.startswith("team:")]
            if not owners:
                raise ValueError(f"{key.to_user_string()}: a workload needs an owner team")
            datasets = str(_value(meta, DATASETS_KEY, "")).split(",")
            slo = _value(meta, SLO_KEY)
            specs.append(
                WorkloadSpec(
                    key=key,
                    team=owners[0].removeprefix("team:"),
                    datasets=tuple(d for d in datasets if d),
                    gpu_count=int(_value(meta, WORKLOAD_KEY)),
                    gpu_memory_gb=float(_value(meta, GPU_MEMORY_KEY, 0.0)),
                    est_duration_s=float(_value(meta, DURATION_KEY, 600.0)),
                    data_gb=float(_value(meta, DATA_GB_KEY, 0.0)),
                    latency_slo_ms=float(slo) if slo is not None else None,
                    priority=int(_value(meta, PRIORITY_KEY, 100)),
                    gpu_optional=bool(_value(meta, GPU_OPTIONAL_KEY, False)),
                    recurring=bool(_value(meta, RECURRING_KEY, False)),
                    deps=tuple(dep.asset_key for dep in spec.deps),
                )
            )
    return specs


def placement_metadata(run_tags: dict[str, str], conn) -> dict[str, object]:
    """The run's placement decision as materialization metadata (EXPLAIN table and summary)."""
    from reasoning_plane import launch, store

    decision_id = run_tags.get(launch.DECISION_ID)
    if not decision_id:
        return {"placement": "not placed by the reasoning plane (launched directly)"}
    store.ensure_schema(conn)
    logged = store.decision_for(conn, decision_id)
    if logged is None:
        return {"placement": f"decision {decision_id} not found in plane.decisions"}
    return {
        "placement_summary": run_tags.get(launch.SUMMARY, ""),
        "placement": dg.MetadataValue.md(f"```\n{logged.explanation}\n```"),
        "placement_explain": f"plane explain {decision_id}",
        "placement_decision_id": decision_id,
        "placement_cluster": run_tags.get(launch.CLUSTER, ""),
        "placement_zone": run_tags.get(launch.ZONE, ""),
        "placement_gpu_type": run_tags.get(launch.GPU_TYPE, ""),
        "placement_est_cost_usd": float(run_tags.get(launch.EST_COST_USD, "0") or 0),
    }
