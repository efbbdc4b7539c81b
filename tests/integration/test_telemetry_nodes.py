"""Telemetry with identity, per node (issue 13, item 4), on the real embedded PostgreSQL:

* two nodes of one pool used to overwrite each other (4 and 1 free GPUs read as 1): each node
  now has its own rows and the plane sums the pool over its nodes;
* the agent named pools from NVML (`NVIDIA-A10`) while the fleet says `A10`: it now maps the
  node's product (the `nvidia.com/gpu.product` label value) to the fleet's pool;
* `plane agent --cluster ""` (or a cluster the fleet does not have) was accepted: refused;
* telemetry rows are pruned, so the table does not grow without bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from reasoning_plane import store
from reasoning_plane.agent import pools_of, run_agent, samples_from_report
from reasoning_plane.gpu_telemetry import GpuInfo, NvmlReport
from reasoning_plane.inputs import load_fleet
from reasoning_plane.model import TelemetrySample

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed_scenario"
PLANE = str(Path(sys.executable).parent / "plane")


def a10s(free: int, used: int, at: datetime) -> NvmlReport:
    gpus = tuple(
        GpuInfo(i, "NVIDIA A10", f"GPU-{i}", 24.0, 23.5 if i < used else 0.5, 0.5)
        for i in range(free + used)
    )
    return NvmlReport(True, f"{len(gpus)} GPU(s)", at, "580.1", gpus)


def test_two_nodes_of_one_pool_are_summed_not_overwritten(plane_db: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample("eu-fra-a10", "A10", 4, 0.2, now, 24.0, node="node-a"),
                TelemetrySample("eu-fra-a10", "A10", 1, 0.8, now, 4.0, node="node-b"),
            ],
        )
        conn.commit()
        pool = store.latest_telemetry(conn)[("eu-fra-a10", "A10")]
    assert pool.free_gpus == 5
    assert 0.2 < pool.utilisation < 0.8


def test_a_node_that_stopped_reporting_drops_out_of_its_pool(plane_db: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample(
                    "eu-fra-a10", "A10", 6, 0.1, now - timedelta(minutes=10), 24.0, node="dead"
                ),
                TelemetrySample("eu-fra-a10", "A10", 2, 0.5, now, 24.0, node="alive"),
            ],
        )
        conn.commit()
        pool = store.latest_telemetry(conn)[("eu-fra-a10", "A10")]
    assert pool.free_gpus == 2 and pool.observed_at == now  # the dead node's GPUs are not free


def test_the_agent_names_pools_as_the_fleet_does() -> None:
    fleet = load_fleet(SEED / "fleet.yaml")
    pools = pools_of(fleet, "eu-fra-a10")
    assert pools == {"NVIDIA-A10": "A10"}
    (sample,) = samples_from_report(
        "eu-fra-a10", a10s(free=3, used=1, at=datetime.now(UTC)), node="node-a", pools=pools
    )
    assert (sample.gpu_type, sample.node, sample.free_gpus) == ("A10", "node-a", 3)


def test_the_agent_prunes_old_rows_of_its_node(plane_db: str) -> None:
    old = datetime.now(UTC) - timedelta(hours=3)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn, [TelemetrySample("eu-fra-a10", "A10", 1, 0.5, old, 24.0, node="node-a")]
        )
        conn.commit()
    run_agent(
        lambda: psycopg.connect(plane_db),
        "eu-fra-a10",
        iterations=1,
        node="node-a",
        reader=lambda: a10s(free=1, used=0, at=datetime.now(UTC)),
        log=lambda _: None,
        sleep=lambda _: None,
    )
    with psycopg.connect(plane_db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM plane.telemetry").fetchone()
    assert count == 1  # the 3-hour-old row is gone, the new one is there


def _agent(*args: str, fleet: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if fleet:
        env["PLANE_FLEET_FILE"] = str(SEED / "fleet.yaml")
    return subprocess.run(
        [PLANE, "agent", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_an_agent_must_name_a_cluster_of_the_fleet() -> None:
    empty = _agent("--cluster", "", "--once")
    assert empty.returncode == 2 and "--cluster" in empty.stderr
    unknown = _agent("--cluster", "nowhere", "--once")
    assert unknown.returncode == 2 and "nowhere" in unknown.stderr and "fleet" in unknown.stderr
