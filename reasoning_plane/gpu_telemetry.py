"""Local GPU telemetry from NVML (pynvml), safe on machines without NVIDIA drivers.

`read_gpus()` never raises for a missing driver or library: it returns a report with
``available=False`` and the reason, and the local cluster then has zero GPUs. Importing this
module does not touch NVML.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime

GIB = 1024**3


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory_gb: float | None


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    memory_total_gb: float
    memory_used_gb: float
    utilisation: float  # 0..1, GPU busy share over NVML's last sample period
    processes: tuple[GpuProcess, ...] = ()

    @property
    def memory_free_gb(self) -> float:
        return max(self.memory_total_gb - self.memory_used_gb, 0.0)


@dataclass(frozen=True)
class NvmlReport:
    available: bool
    reason: str
    observed_at: datetime
    driver_version: str | None = None
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)


def _nvml():
    with warnings.catch_warnings():  # pynvml 12+ warns that it wraps nvidia-ml-py
        warnings.simplefilter("ignore", FutureWarning)
        import pynvml
    return pynvml


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_gpus() -> NvmlReport:
    """One NVML sample of every local GPU (memory, utilisation, processes)."""
    now = datetime.now(UTC)
    try:
        nvml = _nvml()
    except ImportError as exc:
        return NvmlReport(False, f"pynvml is not installed: {exc}", now)
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return NvmlReport(False, f"no NVIDIA driver/NVML on this machine: {exc}", now)
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            try:
                procs = tuple(
                    GpuProcess(p.pid, (p.usedGpuMemory / GIB) if p.usedGpuMemory else None)
                    for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                )
            except nvml.NVMLError:  # not supported on some devices/containers
                procs = ()
            gpus.append(
                GpuInfo(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    memory_total_gb=memory.total / GIB,
                    memory_used_gb=memory.used / GIB,
                    utilisation=rates.gpu / 100.0,
                    processes=procs,
                )
            )
        return NvmlReport(True, f"{len(gpus)} GPU(s)", datetime.now(UTC), driver, tuple(gpus))
    except nvml.NVMLError as exc:  # an NVML error mid-read: report it, never guess
        return NvmlReport(False, f"NVML error while reading GPUs: {exc}", now)
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
