"""Layer 2B at rest: ``serving/residency_plan``, which model is loaded, sleeping or cold where.

The residency planner (`reasoning_plane.serving.planner`) runs on the nodes and models of
``config/serving_nodes.yaml`` (`ResidencyResource`), the demand the gateway metered
(``plane.serving_decisions``), the governance catalog and the fleet (`PlaneResource`), and what
each node's runtimes hold now as its serving node agent last reported it
(``plane.residency_actual``, with since-when for the minimum residency and the cool-down).

The materialization does not touch a runtime: it records the plan as the desired state
(``plane.residency_desired``), which each node's agent (`serving.node_agent`, ``plane
node-agent --node NAME``) applies through the adapters it holds for its lifetime, and shows
desired against actual as a table a person reads: node x model, planned state, actual state,
memory, why, the agent's last error. ``residency_sensor`` requests it when the plan differs from
what the runtimes hold.
"""

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.tags import governance_tags
from data_plane import catalog_store
from reasoning_plane import store
from reasoning_plane.config.serving import ServingConfig, load_serving
from reasoning_plane.model import Fleet
from reasoning_plane.serving.planner import (
    COLD,
    Plan,
    Residency,
    metered_demand,
    plan,
)
from reasoning_plane.serving.planner_config import PlannerConfig, load_planner_config
from resources.database import project_root
from resources.plane import PlaneResource
from serving.residency import build_adapters, model_specs
from serving.runtimes.base import ModelSpec, RuntimeAdapter

SERVING_GROUP = "serving"
RESIDENCY_KEY = dg.AssetKey(["serving", "residency_plan"])


class ResidencyResource(dg.ConfigurableResource):
    """The planner's nodes, models and runtime adapters (``config/serving_nodes.yaml``)."""

    nodes_file: str = Field(
        default="config/serving_nodes.yaml",
        description="Serving nodes, models and adapters (relative: to the project root).",
    )

    def config(self) -> PlannerConfig:
        path = Path(self.nodes_file).expanduser()
        return load_planner_config(path if path.is_absolute() else project_root() / path)

    def adapters(self, config: PlannerConfig) -> dict[tuple[str, str], RuntimeAdapter]:
        """One adapter per (node, runtime) (`serving.residency.build_adapters`): what a node
        agent holds; the asset itself calls none."""
        return build_adapters(config)

    def specs(self, config: PlannerConfig) -> dict[tuple[str, str], ModelSpec]:
        return model_specs(config)


class ServingResource(dg.ConfigurableResource):
    """The gateway's serving configuration (``config/serving.yaml``, as `plane serve` reads)."""

    serving_file: str = Field(
        default="config/serving.yaml",
        description="Endpoints, models and teams of the gateway (relative: to the project root).",
    )

    nodes_file: str = Field(
        default="config/serving_nodes.yaml",
        description=(
            "Serving nodes (relative: to the project root): the cluster and pool of an endpoint "
            "that names a node; read only when one does."
        ),
    )

    @property
    def path(self) -> Path:
        path = Path(self.serving_file).expanduser()
        return path if path.is_absolute() else project_root() / path

    def config(self, fleet: Fleet | None = None) -> ServingConfig:
        """The file, checked against ``fleet`` when given (every endpoint on a pool of it)."""
        nodes = Path(self.nodes_file).expanduser()
        return load_serving(
            self.path, fleet, nodes if nodes.is_absolute() else project_root() / nodes
        )


def actual_residency(actual: list[Mapping]) -> list[Residency]:
    """The node agents' reports as the planner reads them: (node, runtime, model, state,
    since); a model no agent reports is cold on that node (held nowhere, never unloaded)."""
    return [Residency(r["node"], r["runtime"], r["model"], r["state"], r["since"]) for r in actual]


def build_plan(
    instance: dg.DagsterInstance | None,
    residency: ResidencyResource,
    plane: PlaneResource,
    now: datetime,
) -> tuple[Plan, PlannerConfig, list[dict]]:
    """The plan at ``now`` from the configured nodes, metered demand, catalog and what the node
    agents report; and that report (``plane.residency_actual``)."""
    config = residency.config()
    with plane.connect() as conn:
        catalog = {e.dataset_id: e.record for e in catalog_store.list_entries(conn)}
        demand = metered_demand(conn, now, config.demand_window_s)
        actual = store.actual_state(conn)
    result = plan(
        config.nodes,
        config.models,
        demand,
        actual_residency(actual),
        now,
        fleet=plane.fleet(),
        catalog=catalog,
        policy=plane.policy(),
        settings=config.settings,
    )
    return result, config, actual


def plan_id_of(plan_: Plan) -> str:
    """The plan's identity: when, and a digest of what it asks (node, runtime, model, state)."""
    asked = "\n".join(f"{r.node}/{r.runtime}/{r.model}={r.state}" for r in plan_.rows)
    return f"{plan_.at:%Y%m%dT%H%M%SZ}-{hashlib.sha256(asked.encode()).hexdigest()[:12]}"


def differences(plan_: Plan, actual: list[Mapping]) -> list[str]:
    """Where what the runtimes hold is not what ``plan_`` asks: ``node/runtime: model actual
    -> planned`` (empty: the runtimes hold the plan)."""
    held = {(r["node"], r["runtime"], r["model"]): r["state"] for r in actual}
    return [
        f"{r.node}/{r.runtime}: {r.model} {held.get((r.node, r.runtime, r.model), COLD)} -> "
        f"{r.state}"
        for r in plan_.rows
        if held.get((r.node, r.runtime, r.model), COLD) != r.state
    ]


_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("node", "string"),
        dg.TableColumn("runtime", "string"),
        dg.TableColumn("model", "string"),
        dg.TableColumn("state", "string", description="planned (desired)"),
        dg.TableColumn("actual", "string", description="as the node agent last reported it"),
        dg.TableColumn("memory_gb", "float"),
        dg.TableColumn("memory", "string", description="the footprint: weights + KV + runtime"),
        dg.TableColumn("why", "string"),
        dg.TableColumn("agent", "string", description="the node agent's last error, or when"),
    ]
)


def plan_markdown(plan_: Plan) -> str:
    """The plan per node: what each model takes and why it is in its state."""
    lines = []
    for node, budget in sorted(plan_.budgets_gb.items()):
        lines.append(f"**{node}**: {plan_.used_gb(node):.2f} of {budget:.2f} GB planned\n")
        lines.append("| model | runtime | state | memory | why |\n|---|---|---|---|---|")
        for r in plan_.rows:
            if r.node == node:
                why = r.why.replace("|", "/")
                lines.append(f"| {r.model} | {r.runtime} | {r.state} | {r.memory} | {why} |")
        lines.append("")
    return "\n".join(lines) or "No serving node is configured."


@dg.asset(
    key=RESIDENCY_KEY,
    group_name=SERVING_GROUP,
    description=(
        "Which model is loaded, sleeping or cold on which serving node and runtime, with the "
        "memory it takes and why: the residency planner on metered demand, reload cost, "
        "hysteresis and residency rules; recorded as the desired state that each node's serving "
        "agent (plane node-agent) applies, shown against what the agents report."
    ),
    kinds={"python", "postgres"},
    owners=["team:platform"],
    # The plan names models and nodes, no governed data; where it is kept is not declared.
    tags=governance_tags("UNKNOWN", "INTERNAL"),
)
def residency_plan_asset(
    context: dg.AssetExecutionContext, residency: ResidencyResource, plane: PlaneResource
) -> dg.MaterializeResult:
    now = datetime.now(UTC)
    result, _config, actual = build_plan(context.instance, residency, plane, now)
    plan_id = plan_id_of(result)
    with plane.connect() as conn:
        store.write_desired(
            conn,
            [(r.node, r.runtime, r.model, r.state, r.why) for r in result.rows],
            plan_id,
            now,
        )
        conn.commit()
    pending = differences(result, actual)
    for line in pending:
        context.log.info(f"for the node agent: {line}")
    reported = {(r["node"], r["runtime"], r["model"]): r for r in actual}
    rows = []
    for r in result.as_records():
        got = reported.get((r["node"], r["runtime"], r["model"]))
        if got is None:
            r["actual"], r["agent"] = COLD, "no report"
        else:
            r["actual"] = got["state"]
            age = (now - min(got["reported_at"], got["received_at"])).total_seconds()
            r["agent"] = got["error"] or f"reported {age:.0f} s ago"
        rows.append(r)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "plan": dg.MetadataValue.table([dg.TableRecord(r) for r in rows], schema=_SCHEMA),
            "plan_by_node": dg.MetadataValue.md(plan_markdown(result)),
            "plan_id": plan_id,
            "models_loaded": sum(r["state"] == "loaded" for r in rows),
            "models_sleeping": sum(r["state"] == "sleeping" for r in rows),
            "memory_planned_gb": round(sum(r["memory_gb"] for r in rows), 3),
            "memory_budget_gb": round(sum(result.budgets_gb.values()), 3),
            "pending": dg.MetadataValue.md("\n".join(f"- {p}" for p in pending) or "none"),
            "pending_actions": len(pending),
            "agent_errors": sum(1 for r in actual if r["error"]),
            "as_of": now.isoformat(),
        }
    )


residency_job = dg.define_asset_job(
    "residency_job",
    selection=[RESIDENCY_KEY],
    description="Plan and apply which models are loaded where (serving/residency_plan).",
)
