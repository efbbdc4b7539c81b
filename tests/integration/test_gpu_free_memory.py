"""Free GPUs by free memory, end to end (issue 13, item 4): NVML readings (synthetic, as no GPU
exists here) through the telemetry agent into ``plane.telemetry``, summed per pool by the store,
into a snapshot the plane decides on. A GPU with 20 of 24 GB in use counted as free: a 2 x 20 GB
request was placed on a pool where only one GPU had 20 GB free.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from reasoning_plane import batch, store
from reasoning_plane.agent import run_agent
from reasoning_plane.gpu_telemetry import GpuInfo, NvmlReport
from reasoning_plane.model import (
    DEFERRED,
    PLACED,
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    Snapshot,
    TeamQuota,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import CATALOG

FLEET = Fleet(
    (
        Cluster(
            name="edge",
            zone="US",
            region="us-east-1",
            location="x",
            certifications=frozenset({"SOC2", "ISO27001"}),
            pools=(
                GpuPool("A10", 24, 2, 1.10, node_labels={"nvidia.com/gpu.product": "NVIDIA-A10"}),
            ),
            egress_per_gb=0.0,
            latency_ms={"US": 5},
        ),
    )
)


def busy_and_idle(at: datetime) -> NvmlReport:
    """GPU0 with 20 of 24 GB in use (4 GB free), GPU1 idle (24 GB free)."""
    return NvmlReport(
        True,
        "2 GPU(s)",
        at,
        "580.1",
        (
            GpuInfo(0, "NVIDIA A10", "GPU-0", 24.0, 20.0, 0.9),
            GpuInfo(1, "NVIDIA A10", "GPU-1", 24.0, 0.0, 0.0),
        ),
    )


def _request(rid: str, gpus: int, memory_gb: float) -> WorkloadRequest:
    return WorkloadRequest(
        request_id=rid,
        workload="embeddings/talks",
        team="media-ml",
        datasets=("conference_transcripts",),
        gpu_count=gpus,
        gpu_memory_gb=memory_gb,
        estimated_duration_s=600,
    )


def _snapshot(conn: psycopg.Connection) -> Snapshot:
    return Snapshot(
        fleet=FLEET,
        quotas={"media-ml": TeamQuota("media-ml", 8)},
        budgets={"media-ml": Budget("media-ml", 5000.0)},
        usage={},
        telemetry=store.latest_telemetry(conn),
        catalog=CATALOG,
        now=datetime.now(UTC),
    )


def test_a_gpu_with_20_of_24_gb_in_use_is_not_placed_as_free(plane_db: str) -> None:
    stats = run_agent(
        lambda: psycopg.connect(plane_db),
        "edge",
        iterations=1,
        node="node-a",
        pools={"NVIDIA-A10": "A10"},
        reader=lambda: busy_and_idle(datetime.now(UTC)),
        log=lambda _: None,
        sleep=lambda _: None,
    )
    assert stats.samples == 1
    with psycopg.connect(plane_db) as conn:
        snapshot = _snapshot(conn)
    sample = snapshot.telemetry[("edge", "A10")]
    assert sample.free_gpus == 2 and sorted(sample.free_memory_per_gpu_gb) == [4.0, 24.0]

    policy = PlacementPolicy()
    two = place(_request("two", 2, 20), snapshot, policy)
    assert two.status == DEFERRED and two.chosen is None
    assert "gpu_capacity" in two.reason
    assert "1 of 2 reported free GPUs on edge/A10 have >= 20 GB free" in two.reason
    one = place(_request("one", 1, 20), snapshot, policy)
    assert one.status == PLACED, one.reason
    assert one.chosen.label == "edge/A10"
    tick = batch.place_batch([_request("two", 2, 20), _request("one", 1, 20)], snapshot, policy)
    assert {d.request.request_id: d.status for d in tick} == {"two": DEFERRED, "one": PLACED}


def test_a_pool_concatenates_its_nodes_per_gpu_memory(plane_db: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample(
                    "edge", "A10", 2, 0.5, now, 24.0, node="a", free_memory_per_gpu_gb=(4.0, 24.0)
                ),
                TelemetrySample(
                    "edge", "A10", 1, 0.5, now, 22.0, node="b", free_memory_per_gpu_gb=(22.0,)
                ),
                TelemetrySample("edge", "H100", 3, 0.5, now, 80.0, node="c"),
            ],
        )
        conn.commit()
        latest = store.latest_telemetry(conn)
    a10 = latest[("edge", "A10")]
    assert a10.free_gpus == 3 and sorted(a10.free_memory_per_gpu_gb) == [4.0, 22.0, 24.0]
    assert latest[("edge", "H100")].free_memory_per_gpu_gb is None  # not reported: old meaning


def test_a_node_without_per_gpu_memory_leaves_its_pool_on_the_old_meaning(plane_db: str) -> None:
    """An agent of an older version in the pool: the pool's per-GPU list would be incomplete,
    so the pool's sample has none (every reported free GPU counts, as before)."""
    now = datetime.now(UTC)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample(
                    "edge", "A10", 2, 0.5, now, 24.0, node="a", free_memory_per_gpu_gb=(4.0, 24.0)
                ),
                TelemetrySample("edge", "A10", 1, 0.5, now, 22.0, node="old"),
            ],
        )
        conn.commit()
        pool = store.latest_telemetry(conn)[("edge", "A10")]
    assert pool.free_gpus == 3 and pool.free_memory_per_gpu_gb is None


def test_an_existing_telemetry_table_gets_the_column(plane_db: str) -> None:
    """A database of a release before the column (and before versions were recorded in
    ``plane_meta``, `data_plane.migrations.Schema`) gets it."""
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        conn.execute("ALTER TABLE plane.telemetry DROP COLUMN free_memory_per_gpu_gb")
        conn.execute("DELETE FROM plane_meta.schema_versions WHERE unit = 'plane'")
        conn.commit()
        store.ensure_schema(conn)
        conn.commit()
        (found,) = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'plane'"
            " AND table_name = 'telemetry' AND column_name = 'free_memory_per_gpu_gb'"
        ).fetchone()
    assert found == 1
