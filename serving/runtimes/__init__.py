"""Runtime adapters: how the residency planner's plan is applied to llama.cpp, vLLM and Ollama.

`adapter_for` builds the adapter of a runtime named as the endpoint registry names it
(`reasoning_plane.serving.endpoints.RUNTIMES`), with that runtime's configuration.
"""

from __future__ import annotations

from typing import Any

from serving.runtimes.base import COLD, LOADED, SLEEPING, STATES, ModelSpec, RuntimeAdapter

__all__ = [
    "COLD",
    "LOADED",
    "SLEEPING",
    "STATES",
    "ModelSpec",
    "RuntimeAdapter",
    "adapter_for",
]


def adapter_for(runtime: str, **config: Any) -> RuntimeAdapter:
    """The adapter of ``runtime`` (``llama.cpp``, ``vllm`` or ``ollama``) built with
    ``config``; an unknown runtime is an error naming the known ones, never a default."""
    if runtime == "llama.cpp":
        from serving.runtimes.llamacpp import LlamaCppAdapter

        return LlamaCppAdapter(**config)
    if runtime == "vllm":
        from serving.runtimes.vllm import VllmAdapter

        return VllmAdapter(**config)
    if runtime == "ollama":
        from serving.runtimes.ollama import OllamaAdapter

        return OllamaAdapter(**config)
    raise ValueError(f"runtime: must be one of llama.cpp, vllm, ollama, got {runtime!r}")
