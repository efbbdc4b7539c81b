"""The Ollama adapter against a loopback server implementing Ollama's documented API
(`tests/integration/runtime_stubs.py`): load with ``keep_alive: -1``, unload with ``0``,
``/api/ps`` as the truth of what is loaded, and no download of a model that is not pulled."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serving.runtimes import adapter_for
from serving.runtimes.base import LOADED, ModelSpec, RuntimeAdapter
from serving.runtimes.ollama import OllamaAdapter, tag
from tests.integration.runtime_stubs import OllamaState, serve


@pytest.fixture
def ollama() -> Iterator[tuple[OllamaAdapter, OllamaState]]:
    state = OllamaState(pulled=["llama3.2", "qwen3:8b"])
    with serve(state) as url:
        yield adapter_for("ollama", url=url), state


def test_the_factory_gives_an_ollama_adapter_that_keeps_the_interface(ollama) -> None:
    adapter, _ = ollama
    assert isinstance(adapter, OllamaAdapter) and isinstance(adapter, RuntimeAdapter)
    assert not adapter.supports_sleep


def test_load_keeps_the_model_with_the_planned_context_and_unload_drops_it(ollama) -> None:
    adapter, state = ollama
    assert adapter.states() == {} and adapter.url("qwen3:8b") is None
    adapter.load(ModelSpec("qwen3:8b", "qwen3:8b", context_tokens=8192))
    assert state.requests[-1] == {
        "model": "qwen3:8b",
        "keep_alive": -1,
        "stream": False,
        "options": {"num_ctx": 8192},
    }
    assert "prompt" not in state.requests[-1]  # an empty prompt loads, generates nothing
    assert state.loaded == {"qwen3:8b": 8192}
    assert adapter.states() == {"qwen3:8b": LOADED}
    assert adapter.url("qwen3:8b") == adapter.base

    adapter.sleep("qwen3:8b")  # no sleep in Ollama: unloaded
    assert state.requests[-1]["keep_alive"] == 0
    assert state.loaded == {} and adapter.states() == {}


def test_a_name_without_a_tag_is_latest_and_reported_under_its_name(ollama) -> None:
    adapter, state = ollama
    adapter.load(ModelSpec("llama", "llama3.2"))
    assert state.loaded.keys() == {"llama3.2:latest"}
    assert adapter.states() == {"llama": LOADED}
    adapter.unload("llama")
    assert state.loaded == {}


def test_a_model_not_pulled_is_refused_and_nothing_is_sent(ollama) -> None:
    adapter, state = ollama
    with pytest.raises(
        ValueError,
        match=r"model m: source: 'mistral' is not pulled .*pulled: llama3.2:latest, qwen3:8b.*"
        r"ollama pull mistral",
    ):
        adapter.load(ModelSpec("m", "mistral"))
    assert state.requests == [] and adapter.states() == {}  # no load, so no pull either


def test_ollama_refusing_a_load_is_an_error_with_its_answer(ollama) -> None:
    adapter, state = ollama
    adapter.pulled = lambda: ["mistral:latest"]  # pulled, then deleted before the load
    with pytest.raises(RuntimeError, match=r"refused to load 'mistral': 404 .*not found"):
        adapter.load(ModelSpec("m", "mistral"))
    assert [r["model"] for r in state.requests] == ["mistral"] and state.loaded == {}


def test_a_model_loaded_by_someone_else_is_seen_and_unloading_a_cold_one_is_a_noop(
    ollama,
) -> None:
    adapter, state = ollama
    state.loaded["llama3.2:latest"] = 2048  # `ollama run` by hand on the node
    assert adapter.states() == {"llama3.2:latest": LOADED}
    adapter.unload("qwen3:8b")  # not loaded: nothing sent
    adapter.unload("never-pulled")
    assert state.requests == []


def test_an_ollama_that_does_not_answer_holds_nothing() -> None:
    state = OllamaState(pulled=["llama3.2"])
    with serve(state) as url:
        adapter = OllamaAdapter(url)
        adapter.load(ModelSpec("llama3.2", "llama3.2"))
        assert adapter.states() == {"llama3.2": LOADED}
    assert adapter.states() == {} and adapter.url("llama3.2") is None


def test_tags() -> None:
    assert tag("llama3.2") == "llama3.2:latest"
    assert tag("qwen3:8b") == "qwen3:8b"
    assert tag("example/model") == "example/model:latest"
    assert tag("registry:5000/model") == "registry:5000/model:latest"
