"""The one interface every runtime adapter implements.

The residency planner (`reasoning_plane.serving.planner`) decides, per node and runtime, which
models are ``loaded``, ``sleeping`` or ``cold``. An adapter reports what its runtime holds now and
moves a model from one state to another; `apply` turns a plan into the few calls that reach it.

* llama.cpp: a server process per model, started and stopped by the node agent (no sleep: a model
  asked to sleep is stopped, i.e. cold);
* vLLM: its OpenAI server per model, ``POST /sleep`` and ``POST /wake_up`` (sleep mode), started and
  stopped as a process or a Kubernetes Deployment;
* Ollama: ``POST /api/generate`` with ``keep_alive`` to load (``-1``) or unload (``0``), ``GET
  /api/ps`` for what is loaded (no sleep: sleeping is unloaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

LOADED = "loaded"
SLEEPING = "sleeping"  # weights offloaded, process kept: wakes in a fraction of a cold load
COLD = "cold"
STATES = (LOADED, SLEEPING, COLD)


@dataclass(frozen=True)
class ModelSpec:
    """A model as a runtime loads it."""

    name: str  # the name requests use (``model`` in the OpenAI body)
    source: str  # a GGUF path (llama.cpp), a Hugging Face id or path (vLLM), an Ollama tag
    context_tokens: int = 4096
    parallel_slots: int = 1
    args: tuple[str, ...] = ()  # extra runtime arguments, e.g. ("--chat_format", "gemma")


@runtime_checkable
class RuntimeAdapter(Protocol):
    """One runtime on one node."""

    runtime: str  # "llama.cpp", "vllm" or "ollama"
    supports_sleep: bool

    def states(self) -> dict[str, str]:
        """Model name -> ``loaded`` or ``sleeping`` for what the runtime holds; absent is cold."""
        ...

    def url(self, model: str) -> str | None:
        """Where the OpenAI-compatible API serving ``model`` answers, when it is loaded."""
        ...

    def load(self, model: ModelSpec) -> None:
        """Make ``model`` loaded (from cold, or by waking it when sleeping)."""
        ...

    def sleep(self, model: str) -> None:
        """Make ``model`` sleeping (an adapter without sleep unloads it)."""
        ...

    def unload(self, model: str) -> None:
        """Make ``model`` cold."""
        ...
