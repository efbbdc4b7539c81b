"""The residency planner's file (``config/serving_nodes.yaml``): serving nodes, the models they
may hold, the planner's thresholds, and the adapter driving each (node, runtime).

Named apart from ``config/serving.yaml`` (the gateway's endpoints): this file says what *may* be
loaded where and what it costs; the plan says what *is*. A bad entry is an error naming the file
and the field (`data_plane.config.validate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from data_plane.config import ConfigModel, validate
from data_plane.errors import InputFileError
from data_plane.files import read_document
from reasoning_plane.serving.memory import ModelShape, NodeMemory, ServingConfig
from reasoning_plane.serving.planner import PlannerSettings, ServedModel, ServingNode

Runtime = Literal["llama.cpp", "vllm", "ollama"]
Positive = Field(gt=0, le=100_000)
NonNegative = Field(ge=0, le=100_000)


class NodeMemoryEntry(ConfigModel):
    total_gb: float = Positive  # the node's memory for models (unified: all of it)
    reserve_gb: float = NonNegative  # kept for the OS and everything else
    source: Literal["/proc/meminfo", "nvml", "declared"] = "declared"


class NodeEntry(ConfigModel):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
    cluster: str = Field(min_length=1)  # a cluster of the fleet (its zone, certifications)
    # the GPU pool of that cluster it is one of (its price per GPU-hour): the gateway's
    # endpoints on this node (config/serving.yaml, endpoints[].node) are priced by it
    gpu_type: str | None = Field(default=None, min_length=1, max_length=64)
    memory: NodeMemoryEntry
    runtimes: list[Runtime] = Field(min_length=1)
    # (runtime -> adapter): "module:Class" and its keyword arguments (serving.residency)
    adapters: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ShapeEntry(ConfigModel):
    weights_gb: float = Positive
    layers: int = Field(ge=1, le=10_000)
    kv_heads: int = Field(ge=1, le=10_000)
    head_dim: int = Field(ge=1, le=100_000)
    kv_dtype: Literal["f32", "f16", "bf16", "q8_0", "q4_0"] = "f16"


class ModelEntry(ConfigModel):
    name: str = Field(min_length=1, max_length=200)
    runtime: Runtime
    source: str = Field(min_length=1)  # GGUF path, Hugging Face id, Ollama tag
    shape: ShapeEntry
    context_tokens: int = Field(default=4096, ge=1, le=10_000_000)
    parallel_slots: int = Field(default=1, ge=1, le=4096)
    runtime_overhead_gb: float = Field(default=0.5, ge=0, le=100_000)
    cold_load_s: float = NonNegative
    wake_s: float | None = Field(default=None, ge=0, le=100_000)
    sleep_gb: float | None = Field(default=None, ge=0, le=100_000)
    datasets: list[str] = Field(default_factory=list)  # the data it serves (governance catalog)
    args: list[str] = Field(default_factory=list)  # extra runtime arguments

    @model_validator(mode="after")
    def _sleep(self) -> ModelEntry:
        if self.wake_s is not None and self.runtime != "vllm":
            raise ValueError(f"wake_s: {self.runtime} has no sleep mode (only vllm)")
        return self


class SettingsEntry(ConfigModel):
    min_residency_s: float = Field(default=600.0, ge=0, le=86_400 * 30)
    cooldown_s: float = Field(default=300.0, ge=0, le=86_400 * 30)
    switch_margin: float = Field(default=2.0, ge=1, le=1000)
    marginal_requests: int = Field(default=3, ge=0, le=1_000_000)
    idle_s: float = Field(default=300.0, ge=0, le=86_400 * 30)
    back_soon_s: float = Field(default=3600.0, ge=0, le=86_400 * 30)
    max_sleep_gb: float = Field(default=4.0, ge=0, le=100_000)
    demand_window_s: float = Field(default=900.0, gt=0, le=86_400 * 30)
    # hysteresis in reload times: holds capped at this x a model's cold load (unset: seconds)
    reload_multiple: float | None = Field(default=None, gt=0, le=100_000)


class ServingNodesFile(ConfigModel):
    labels = {"nodes": "name", "models": "name"}
    settings: SettingsEntry = Field(default_factory=SettingsEntry)
    nodes: list[NodeEntry] = Field(min_length=1)
    models: list[ModelEntry] = Field(default_factory=list)


class PlannerConfig:
    """The file, built into the planner's plain data."""

    def __init__(self, raw: ServingNodesFile, path: Path) -> None:
        self.raw = raw
        self.path = path
        s = raw.settings
        self.demand_window_s = s.demand_window_s
        self.settings = PlannerSettings(
            s.min_residency_s,
            s.cooldown_s,
            s.switch_margin,
            s.marginal_requests,
            s.idle_s,
            s.back_soon_s,
            s.max_sleep_gb,
            s.reload_multiple,
        )
        self.nodes = [
            ServingNode(
                n.name,
                n.cluster,
                NodeMemory(n.memory.total_gb, n.memory.reserve_gb, n.memory.source),
                frozenset(n.runtimes),
            )
            for n in raw.nodes
        ]
        self.models = [
            ServedModel(
                m.name,
                ModelShape(m.name, **m.shape.model_dump()),
                ServingConfig(m.context_tokens, m.parallel_slots, m.runtime_overhead_gb),
                m.runtime,
                m.cold_load_s,
                m.wake_s,
                m.sleep_gb,
                tuple(m.datasets),
            )
            for m in raw.models
        ]

    def model_entry(self, name: str, runtime: str) -> ModelEntry:
        return next(m for m in self.raw.models if m.name == name and m.runtime == runtime)


def load_planner_config(path: Path | str) -> PlannerConfig:
    """``config/serving_nodes.yaml`` (or another), checked: names unique, adapters only for a
    runtime the node runs."""
    path = Path(path)
    raw = validate(ServingNodesFile, read_document(path), path)
    seen: set[str] = set()
    for i, n in enumerate(raw.nodes):
        if n.name in seen:
            raise InputFileError(path, f"nodes[{i}] ({n.name}).name", "named twice")
        seen.add(n.name)
        for runtime in n.adapters:
            if runtime not in n.runtimes:
                raise InputFileError(
                    path, f"nodes[{i}] ({n.name}).adapters", f"{runtime!r} is not a runtime here"
                )
    pairs: set[tuple[str, str]] = set()
    for i, m in enumerate(raw.models):
        if (m.name, m.runtime) in pairs:
            raise InputFileError(path, f"models[{i}] ({m.name})", f"named twice for {m.runtime}")
        pairs.add((m.name, m.runtime))
    try:
        return PlannerConfig(raw, path)
    except ValueError as exc:
        raise InputFileError(path, "(models)", str(exc)) from None
