"""A small code location for the launch-guard tests: one asset the reasoning plane places (it
declares ``plane/gpu_count``) and one plain CPU asset. Loaded into a real in-process workspace."""

import dagster as dg

from assets.workloads import workload_metadata

GPU_KEY = dg.AssetKey(["embeddings", "guarded"])
CPU_KEY = dg.AssetKey(["ingested", "guarded"])


@dg.asset(
    key=GPU_KEY,
    owners=["team:financial-ml"],
    metadata=workload_metadata(
        datasets=["customer_orders_eu"], gpu_count=1, gpu_memory_gb=2, est_duration_s=60
    ),
)
def gpu_workload() -> None:
    """Stands in for an embedding asset; never runs here."""


@dg.asset(key=CPU_KEY)
def cpu_asset() -> None:
    """Plain ingestion work: no placement needed."""


defs = dg.Definitions(assets=[gpu_workload, cpu_asset])
