"""NVML faults at the pynvml boundary (issue 8, item 3).

No GPU exists here, so the functions of the real ``pynvml`` module are replaced one by one with
ones that answer like a driver would, including its real error classes (``NVMLError_GpuIsLost``,
``NVMLError_DriverNotLoaded``...). Everything above them is the real code: the reader, the agent,
the local fleet and the placement rules. A fault never produces GPUs that are not there.
"""

import warnings
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from reasoning_plane.agent import run_agent, samples_from_report
from reasoning_plane.gpu_telemetry import GIB, read_gpus
from reasoning_plane.model import PLACED, TeamQuota, WorkloadRequest
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.snapshot import local_fleet

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import pynvml


class FakeDriver:
    """Two GPUs; ``fail`` maps an NVML function name to the error code it raises."""

    def __init__(self, **fail: int) -> None:
        self.fail = fail
        self.shutdowns = 0
        self.used = [10 * GIB, 20 * GIB]
        self.util = [30, 50]

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise pynvml.NVMLError(self.fail[name])

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def fn(name, result):
            def call(*args):
                self._maybe_fail(name)
                return result(*args)

            monkeypatch.setattr(pynvml, name, call)

        fn("nvmlInit", lambda: None)
        fn("nvmlSystemGetDriverVersion", lambda: "580.65")
        fn("nvmlDeviceGetCount", lambda: 2)
        fn("nvmlDeviceGetHandleByIndex", lambda i: i)
        fn(
            "nvmlDeviceGetMemoryInfo",
            lambda h: SimpleNamespace(total=80 * GIB, used=self.used[h], free=0),
        )
        fn("nvmlDeviceGetUtilizationRates", lambda h: SimpleNamespace(gpu=self.util[h], memory=0))
        fn("nvmlDeviceGetComputeRunningProcesses", lambda h: [])
        fn("nvmlDeviceGetName", lambda h: b"NVIDIA H100 80GB HBM3")
        fn("nvmlDeviceGetUUID", lambda h: f"GPU-{h}")

        def shutdown() -> None:
            self.shutdowns += 1

        monkeypatch.setattr(pynvml, "nvmlShutdown", shutdown)


def test_healthy_driver_reads_both_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver()
    driver.install(monkeypatch)
    report = read_gpus()
    assert report.available and len(report.gpus) == 2 and driver.shutdowns == 1
    assert report.gpus[1].memory_free_gb == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("function", "code", "said"),
    [
        ("nvmlInit", pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "no NVIDIA driver/NVML"),
        ("nvmlInit", pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver/NVML"),
        ("nvmlDeviceGetCount", pynvml.NVML_ERROR_UNKNOWN, "NVML error while reading"),
        ("nvmlDeviceGetMemoryInfo", pynvml.NVML_ERROR_GPU_IS_LOST, "GPU is lost"),
        ("nvmlDeviceGetUtilizationRates", pynvml.NVML_ERROR_TIMEOUT, "NVML error while reading"),
        ("nvmlDeviceGetHandleByIndex", pynvml.NVML_ERROR_NO_PERMISSION, "NVML error while reading"),
    ],
)
def test_nvml_errors_give_no_gpus_and_a_reason(
    monkeypatch: pytest.MonkeyPatch, function: str, code: int, said: str
) -> None:
    driver = FakeDriver(**{function: code})
    driver.install(monkeypatch)
    report = read_gpus()
    assert not report.available and said in report.reason
    assert report.gpus == ()  # never a partial list that would look like fewer busy GPUs
    assert samples_from_report("node", report) == []
    assert local_fleet(report).clusters[0].pools == ()
    assert driver.shutdowns == (0 if function == "nvmlInit" else 1)


def test_unsupported_process_query_keeps_the_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDriver(nvmlDeviceGetComputeRunningProcesses=pynvml.NVML_ERROR_NOT_SUPPORTED).install(
        monkeypatch
    )
    report = read_gpus()
    assert report.available and all(g.processes == () for g in report.gpus)


def test_nonsense_readings_are_clamped_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver()
    driver.used = [95 * GIB, 95 * GIB]  # more used than the card has
    driver.util = [250, 180]  # above 100 %
    driver.install(monkeypatch)
    (sample,) = samples_from_report("node", read_gpus())
    assert sample.free_gpus == 0 and sample.free_memory_gb == 0.0 and sample.utilisation == 1.0


def test_agent_survives_a_reader_that_raises_and_pushes_nothing() -> None:
    def broken():
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad GPU name from the driver")

    logs: list[str] = []
    stats = run_agent(
        lambda: pytest.fail("nothing may be written without a reading"),
        "gpu-node-1",
        interval_s=0,
        iterations=3,
        reader=broken,
        log=logs.append,
        sleep=lambda _: None,
    )
    assert stats.iterations == 3 and stats.samples == 0
    assert logs == [
        "plane agent: gpu-node-1: no GPU telemetry: telemetry reader failed: "
        "UnicodeDecodeError('utf-8', b'\\xff', 0, 1, 'bad GPU name from the driver')"
    ]


def test_a_lost_gpu_never_becomes_a_placement(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a single GPU box whose GPU fell off the bus, GPU work is not placed there."""
    from data_plane.catalog import CatalogRecord
    from reasoning_plane.model import Snapshot

    monkeypatch.setenv("PLANE_LOCAL_ZONE", "US")
    FakeDriver(nvmlDeviceGetMemoryInfo=pynvml.NVML_ERROR_GPU_IS_LOST).install(monkeypatch)
    report = read_gpus()
    talks = CatalogRecord("talks", "PUBLIC", "US", "1_year", (), False, "Level_0", "s", "")
    snapshot = Snapshot(
        fleet=local_fleet(report),
        quotas={"media-ml": TeamQuota("media-ml", 4)},
        budgets={},
        usage={},
        telemetry={},
        catalog={"talks": talks},
        now=datetime.now(UTC),
    )
    request = WorkloadRequest(
        request_id="r",
        workload="embeddings/x",
        team="media-ml",
        datasets=("talks",),
        gpu_count=1,
        gpu_memory_gb=4,
        estimated_duration_s=600,
    )
    decision = place(request, snapshot, PlacementPolicy())
    assert decision.status != PLACED and decision.chosen is None
