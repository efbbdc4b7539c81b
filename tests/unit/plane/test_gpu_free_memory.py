"""A GPU counts as free for a request only if its free memory meets the request's memory
(issue 13, item 4): a GPU with 20 of 24 GB in use is not free for a 20 GB request.

A pool's sample may carry the free memory of each of its GPUs (``free_memory_per_gpu_gb``, as
the telemetry agent reports it from NVML). Then the GPUs free for a request are those reported
free whose free memory is at least the request's ``gpu_memory_gb``. A sample without it (a
telemetry file that gives only ``free_gpus``) keeps the old meaning: every reported free GPU
counts. Every copy of the rule is checked: the fast path (`placement`, `batch`) and the
reference (`reference`).
"""

from datetime import UTC, datetime, timedelta

import pytest

from reasoning_plane import batch, placement
from reasoning_plane.agent import samples_from_report
from reasoning_plane.gpu_telemetry import GpuInfo, NvmlReport
from reasoning_plane.model import (
    DEFERRED,
    PLACED,
    Cluster,
    Fleet,
    GpuPool,
    TeamQuota,
    TelemetrySample,
)
from reasoning_plane.policy import PlacementPolicy
from tests.oracle import reference
from tests.unit.plane import factory
from tests.unit.plane.factory import NOW

POLICY = PlacementPolicy()


def _snapshot(per_gpu: tuple[float, ...] | None, free_gpus: int = 2):
    """One cluster, one pool of 2 A10s (24 GB each), public US data, quota and budget to spare."""
    cluster = Cluster(
        name="edge",
        zone="US",
        region="us-east-1",
        location="x",
        certifications=frozenset({"SOC2", "ISO27001"}),
        pools=(GpuPool("A10", 24, 2, 1.10),),
        egress_per_gb=0.0,
        latency_ms={"US": 5},
    )
    sample = TelemetrySample(
        "edge",
        "A10",
        free_gpus,
        0.5,
        NOW - timedelta(seconds=1),
        max(per_gpu) if per_gpu else None,
        free_memory_per_gpu_gb=per_gpu,
    )
    return factory.snapshot(
        fleet=Fleet((cluster,)),
        telemetry={("edge", "A10"): sample},
        quotas={"media-ml": TeamQuota("media-ml", 16)},
    )


def _request(rid: str, gpus: int, memory_gb: float):
    return factory.request(
        rid,
        workload="embeddings/talks",
        team="media-ml",
        datasets=("conference_transcripts",),
        gpu_count=gpus,
        gpu_memory_gb=memory_gb,
        latency_slo_ms=None,
    )


def _place_one(path: str, request, snapshot):
    if path == "fast":
        return placement.place(request, snapshot, POLICY)
    if path == "reference":
        return reference.place(request, snapshot, POLICY)
    if path == "batch":
        return batch.place_batch([request], snapshot, POLICY)[0]
    return reference.place_batch([request], snapshot, POLICY)[0]


PATHS = ["fast", "reference", "batch", "reference_batch"]


@pytest.mark.parametrize("path", PATHS)
def test_a_gpu_with_20_of_24_gb_in_use_is_not_free_for_a_20_gb_request(path: str) -> None:
    snapshot = _snapshot((4.0, 24.0))  # GPU0: 20 of 24 GB in use; GPU1: idle
    two = _place_one(path, _request("two", 2, 20), snapshot)
    assert two.status == DEFERRED and two.chosen is None
    (evaluation,) = two.evaluations
    assert [r.rule for r in evaluation.rejections] == ["gpu_capacity"]
    assert "1 of 2 reported free GPUs on edge/A10 have >= 20 GB free" in (
        evaluation.rejections[0].message
    )
    assert "2 needed" in evaluation.rejections[0].message
    one = _place_one(path, _request("one", 1, 20), snapshot)
    assert one.status == PLACED and one.chosen.label == "edge/A10"


@pytest.mark.parametrize("path", PATHS)
def test_small_requests_still_use_both_gpus(path: str) -> None:
    """A 4 GB request fits on the busy GPU too: shared GPUs keep being packed."""
    small = _place_one(path, _request("small", 2, 4), _snapshot((4.0, 24.0)))
    assert small.status == PLACED


@pytest.mark.parametrize("path", PATHS)
def test_a_sample_without_per_gpu_memory_keeps_the_old_meaning(path: str) -> None:
    """Telemetry files may give only free_gpus: then every reported free GPU counts."""
    two = _place_one(path, _request("two", 2, 20), _snapshot(None))
    assert two.status == PLACED


@pytest.mark.parametrize("place_batch", [batch.place_batch, reference.place_batch])
def test_a_tick_takes_only_the_gpus_with_enough_memory(place_batch) -> None:
    snapshot = _snapshot((4.0, 24.0))
    requests = [_request("a", 1, 20), _request("b", 1, 20), _request("c", 2, 20)]
    decisions = {d.request.request_id: d for d in place_batch(requests, snapshot, POLICY)}
    assert sorted(r for r, d in decisions.items() if d.status == PLACED) == ["a"]
    assert decisions["b"].status == DEFERRED and decisions["c"].status == DEFERRED
    assert "1 taken by this batch" in decisions["b"].reason


def test_the_agent_records_the_free_memory_of_each_gpu() -> None:
    report = NvmlReport(
        True,
        "2 GPU(s)",
        datetime.now(UTC),
        "580.1",
        (
            GpuInfo(0, "NVIDIA A10", "GPU-0", 24.0, 20.0, 0.9),  # 20 of 24 GB in use
            GpuInfo(1, "NVIDIA A10", "GPU-1", 24.0, 0.0, 0.0),
        ),
    )
    (sample,) = samples_from_report("edge", report, pools={"NVIDIA-A10": "A10"})
    assert sample.free_gpus == 2 and sample.free_memory_gb == 24.0
    assert sample.free_memory_per_gpu_gb == (4.0, 24.0)


def test_gpus_reserved_since_the_sample_are_taken_to_be_the_roomiest() -> None:
    """A reservation made after the sample was taken is not in it yet: the snapshot takes it
    off the free GPUs and, not knowing which GPU the run got, off the one with the most free
    memory, so no request is placed on a GPU the reserved run may be using."""
    from reasoning_plane.rules import free_gpus_for
    from reasoning_plane.snapshot import _less_held

    sample = TelemetrySample("edge", "A10", 3, 0.5, NOW, 24.0, free_memory_per_gpu_gb=(24.0, 4, 22))
    after = _less_held(sample, 1)
    assert after.free_gpus == 2 and after.free_memory_per_gpu_gb == (4, 22)
    assert free_gpus_for(after, 20) == 1 and free_gpus_for(after, 4) == 2
    assert _less_held(sample, 5).free_memory_per_gpu_gb == ()
    legacy = _less_held(TelemetrySample("edge", "A10", 3, 0.5, NOW), 1)
    assert legacy.free_gpus == 2 and legacy.free_memory_per_gpu_gb is None
