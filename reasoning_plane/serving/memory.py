"""The memory accountant of a serving node: what a loaded model takes, and what a node can give.

One accountant per node, across runtimes (llama.cpp, vLLM, Ollama): a model loaded for serving
takes

* its weights (the file on disk, or the runtime's report once loaded);
* its KV cache: 2 (keys and values) x layers x KV heads x head dimension x bytes per element, per
  token, times the configured context, times the parallel slots (each slot holds a full context);
* the runtime's own overhead (CUDA context, compute buffers, the server process).

A node gives its memory less a reserve for the operating system and everything else. On a
unified-memory machine (a DGX Spark: CPU and GPU share 128 GB) NVML's free memory misleads, so the
budget comes from ``/proc/meminfo`` (``MemAvailable`` plus what the loaded models already hold);
elsewhere from NVML's total per GPU.

Plain data and pure functions: the residency planner decides with them, and a test can check that
no plan ever exceeds a node's budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
_DTYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 1.0625, "q4_0": 0.5625}


@dataclass(frozen=True)
class ModelShape:
    """What a model's memory depends on (from its GGUF or ``config.json``)."""

    name: str
    weights_gb: float  # the weights as loaded (quantised size for a GGUF)
    layers: int
    kv_heads: int  # key/value heads (grouped-query attention: fewer than attention heads)
    head_dim: int
    kv_dtype: str = "f16"  # the KV cache's element type

    def __post_init__(self) -> None:
        if not self.weights_gb > 0:
            raise ValueError(f"{self.name}: weights_gb must be above 0, got {self.weights_gb}")
        for field in ("layers", "kv_heads", "head_dim"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {field} must be a whole number >= 1, got {value!r}")
        if self.kv_dtype not in _DTYPE_BYTES:
            known = ", ".join(sorted(_DTYPE_BYTES))
            raise ValueError(f"{self.name}: kv_dtype must be one of {known}, got {self.kv_dtype!r}")

    def kv_bytes_per_token(self) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * _DTYPE_BYTES[self.kv_dtype]


@dataclass(frozen=True)
class ServingConfig:
    """How a runtime serves a model: the context it allocates and how many requests at once."""

    context_tokens: int = 4096
    parallel_slots: int = 1
    runtime_overhead_gb: float = 0.5  # CUDA context, compute buffers, the server process

    def __post_init__(self) -> None:
        if self.context_tokens < 1 or self.parallel_slots < 1:
            raise ValueError("context_tokens and parallel_slots must be at least 1")
        if self.runtime_overhead_gb < 0:
            raise ValueError("runtime_overhead_gb must be at least 0")


@dataclass(frozen=True)
class Footprint:
    """The memory a loaded model takes, in GB, by part (shown in the residency plan)."""

    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb + self.overhead_gb

    def explain(self) -> str:
        return (
            f"{self.total_gb:.2f} GB = weights {self.weights_gb:.2f} + KV cache "
            f"{self.kv_cache_gb:.2f} + runtime {self.overhead_gb:.2f}"
        )


def footprint(model: ModelShape, serving: ServingConfig) -> Footprint:
    """What ``model`` takes when loaded as ``serving`` says (every slot's full context)."""
    kv = model.kv_bytes_per_token() * serving.context_tokens * serving.parallel_slots / GIB
    return Footprint(model.weights_gb, kv, serving.runtime_overhead_gb)


@dataclass(frozen=True)
class NodeMemory:
    """What a node can give to loaded models, and where the figure came from."""

    total_gb: float
    reserve_gb: float  # kept for the OS and everything that is not a served model
    source: str  # "/proc/meminfo" (unified memory) or "nvml"

    @property
    def budget_gb(self) -> float:
        return max(self.total_gb - self.reserve_gb, 0.0)

    def fits(self, loaded: Iterable[Footprint], extra: Footprint | None = None) -> bool:
        """Whether ``loaded`` (and ``extra``) together stay within the budget."""
        used = sum(f.total_gb for f in loaded) + (extra.total_gb if extra else 0.0)
        return used <= self.budget_gb + 1e-9


def read_meminfo(path: Path | str = "/proc/meminfo") -> Mapping[str, float]:
    """``/proc/meminfo``: GB per field given in kB (counts, e.g. huge pages, as they are). A
    line that is neither ``Name: N kB`` nor ``Name: N`` is an error naming the line: a misread
    budget must not pass as a small one."""
    out: dict[str, float] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or not parts[0].isdigit() or parts[1:] not in ([], ["kB"]):
            raise ValueError(f"{path}: line {number}: not 'Name: N kB': {line!r}")
        value = int(parts[0])
        out[name.strip()] = value * 1024 / GIB if parts[1:] == ["kB"] else float(value)
    return out


def unified_node_memory(
    meminfo: Mapping[str, float], held_by_models_gb: float, reserve_gb: float
) -> NodeMemory:
    """A unified-memory node's budget: what the kernel says is available now plus what the
    loaded models already hold (they are the accountant's to move), capped at the total."""
    for key in ("MemTotal", "MemAvailable"):
        if key not in meminfo:
            raise ValueError(f"/proc/meminfo: {key}: missing (needed on a unified-memory node)")
    total = min(meminfo["MemAvailable"] + held_by_models_gb, meminfo["MemTotal"])
    return NodeMemory(total, reserve_gb, "/proc/meminfo")
