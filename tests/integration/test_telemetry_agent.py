"""NVML telemetry: the reader without a driver, the push agent, and single-node packing.

A GPU cannot exist here, so NVML readings are synthetic `NvmlReport`s; everything they flow
through (the agent's database writes, the snapshot, the placement rules) is real.
"""

from datetime import UTC, datetime

import psycopg
import pytest

from reasoning_plane import store
from reasoning_plane.agent import run_agent
from reasoning_plane.gpu_telemetry import GpuInfo, NvmlReport, read_gpus
from reasoning_plane.model import PLACED, WorkloadRequest
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.snapshot import build_snapshot, local_fleet


def spark(used_gb: float, util: float = 0.5, at: datetime | None = None) -> NvmlReport:
    """A DGX Spark-like box: one GPU with 128 GB of (unified) memory."""
    return NvmlReport(
        True,
        "1 GPU(s)",
        at or datetime.now(UTC),
        "580.1",
        (GpuInfo(0, "NVIDIA GB10", "GPU-0", 128.0, used_gb, util),),
    )


def test_reader_without_driver_reports_instead_of_raising() -> None:
    report = read_gpus()
    assert report.available is False and "NVML" in report.reason
    assert report.gpus == () and report.observed_at.tzinfo is not None
    fleet = local_fleet(report)
    assert fleet.clusters[0].pools == ()  # the local cluster has zero GPUs


def test_agent_pushes_samples_and_survives_database_errors(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")
    attempts = {"n": 0}

    def connect() -> psycopg.Connection:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise psycopg.OperationalError("database restarting")
        return psycopg.connect(database_url)

    logs: list[str] = []
    stats = run_agent(
        connect,
        "gpu-node-1",
        interval_s=0,
        iterations=3,
        reader=lambda: spark(used_gb=30),
        log=logs.append,
        sleep=lambda _: None,
    )
    assert stats.errors == 1 and stats.samples == 2  # first tick lost to the outage, then pushed
    assert any("could not write telemetry" in line for line in logs)
    with psycopg.connect(database_url) as conn:
        latest = store.latest_telemetry(conn)
    sample = latest[("gpu-node-1", "NVIDIA-GB10")]
    assert sample.free_gpus == 1 and sample.free_memory_gb == pytest.approx(98.0)

    no_gpu = run_agent(
        connect,
        "cpu-node",
        iterations=2,
        interval_s=0,
        reader=read_gpus,
        log=logs.append,
        sleep=lambda _: None,
    )
    assert no_gpu.samples == 0  # without NVML nothing is pushed, and it says why
    assert sum("no GPU telemetry" in line for line in logs) == 1  # said once, not every second


def _request(mem: float) -> WorkloadRequest:
    return WorkloadRequest(
        request_id=f"r{mem}",
        workload="embeddings/x",
        team="media-ml",
        datasets=("talks",),
        gpu_count=1,
        gpu_memory_gb=mem,
        estimated_duration_s=600,
    )


def test_single_node_packing_admits_by_memory_actually_free(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from data_plane.catalog import CatalogRecord
    from reasoning_plane.model import TeamQuota

    monkeypatch.setenv("PLANE_LOCAL_ZONE", "US")
    talks = CatalogRecord("talks", "PUBLIC", "US", "1_year", (), False, "Level_0", "s", "")
    serving = spark(used_gb=100)  # a model server already holds 100 of 128 GB
    fleet = local_fleet(serving)
    assert fleet.clusters[0].pools[0].memory_gb == 128.0
    with psycopg.connect(database_url) as conn:
        store.ensure_schema(conn)
        snapshot = build_snapshot(
            conn,
            fleet=fleet,
            quotas={"media-ml": TeamQuota("media-ml", 4)},
            budgets={},
            catalog={"talks": talks},
            now=datetime.now(UTC),
            local_report=serving,
        )
    small = place(_request(20), snapshot, PlacementPolicy())
    assert small.status == PLACED and small.chosen.cluster == "local"
    assert "GPU memory: 128 GB per GPU, 28.0 GB free per NVML >= 20 GB needed" in small.reason
    big = place(_request(40), snapshot, PlacementPolicy())
    assert big.status != PLACED
    message = next(
        r.message for e in big.evaluations for r in e.rejections if r.rule == "gpu_memory"
    )
    assert "NVML reports 28 GB free per GPU" in message and "40 GB needed" in message
