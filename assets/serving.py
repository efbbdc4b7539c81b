"""Layer 2B at rest: ``serving/residency_plan``, which model is loaded, sleeping or cold where.

The residency planner (`reasoning_plane.serving.planner`) runs on the nodes and models of
``config/serving_nodes.yaml`` (`ResidencyResource`), the demand the gateway metered
(``plane.serving_decisions``), the governance catalog and the fleet (`PlaneResource`), and what
each runtime holds now (its adapter's ``states()``). Since when a model holds its state (for the
minimum residency and the cool-down) is kept in the asset's own last materialization
(``residency_state``); a state the runtime reports that the record does not know counts from now,
which is the cautious reading (a model that just appeared is protected, not evicted).

The materialization applies the plan through the adapters (`serving.residency.apply_plan`) and
shows it as a table a person reads: node x model, state, memory, why. ``residency_sensor``
requests it when the plan would change something.
"""

import importlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.tags import governance_tags
from data_plane import catalog_store
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
from serving.residency import Action, apply_plan, planned_actions
from serving.runtimes.base import ModelSpec, RuntimeAdapter

SERVING_GROUP = "serving"
RESIDENCY_KEY = dg.AssetKey(["serving", "residency_plan"])
STATE_KEY = "residency_state"


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
        """One adapter per (node, runtime), as each node's ``adapters`` entry names it
        (``class: "module:Class"`` and its keyword arguments)."""
        out: dict[tuple[str, str], RuntimeAdapter] = {}
        for node in config.raw.nodes:
            for runtime, entry in node.adapters.items():
                kwargs = dict(entry)
                target = str(kwargs.pop("class", ""))
                module, _, name = target.partition(":")
                if not module or not name:
                    raise ValueError(
                        f"{config.path}: nodes ({node.name}).adapters.{runtime}.class: "
                        f"'module:Class' expected, got {target!r}"
                    )
                out[(node.name, runtime)] = getattr(importlib.import_module(module), name)(**kwargs)
        return out

    def specs(self, config: PlannerConfig) -> dict[tuple[str, str], ModelSpec]:
        return {
            (m.name, m.runtime): ModelSpec(
                m.name, m.source, m.context_tokens, m.parallel_slots, tuple(m.args)
            )
            for m in config.raw.models
        }


class ServingResource(dg.ConfigurableResource):
    """The gateway's serving configuration (``config/serving.yaml``, as `plane serve` reads)."""

    serving_file: str = Field(
        default="config/serving.yaml",
        description="Endpoints, models and teams of the gateway (relative: to the project root).",
    )

    @property
    def path(self) -> Path:
        path = Path(self.serving_file).expanduser()
        return path if path.is_absolute() else project_root() / path

    def config(self, fleet: Fleet | None = None) -> ServingConfig:
        """The file, checked against ``fleet`` when given (every endpoint on a pool of it)."""
        return load_serving(self.path, fleet)


def recorded_state(instance: dg.DagsterInstance) -> list[Residency]:
    """(node, runtime, model, state, since) as the last materialization recorded it."""
    event = instance.get_latest_materialization_event(RESIDENCY_KEY)
    if event is None or event.asset_materialization is None:
        return []
    value = event.asset_materialization.metadata.get(STATE_KEY)
    if value is None:
        return []
    return [
        Residency(
            e["node"], e["runtime"], e["model"], e["state"], datetime.fromisoformat(e["since"])
        )
        for e in json.loads(value.value)
    ]


def current_state(
    adapters: Mapping[tuple[str, str], RuntimeAdapter], recorded: list[Residency], now: datetime
) -> list[Residency]:
    """What the runtimes hold now, with since-when from the record where it agrees; models the
    record knew that the runtimes no longer hold are cold (since when they went, or now)."""
    known = {(r.node, r.runtime, r.model): r for r in recorded}
    out: list[Residency] = []
    seen = set()
    for (node, runtime), adapter in adapters.items():
        for model, state in adapter.states().items():
            key = (node, runtime, model)
            seen.add(key)
            was = known.get(key)
            since = was.since if was is not None and was.state == state else now
            out.append(Residency(node, runtime, model, state, since))
    for key, was in known.items():
        if key not in seen and key[:2] in adapters:
            out.append(
                Residency(*key, COLD, was.since if was.state == COLD else now)  # type: ignore[misc]
            )
    return out


def build_plan(
    instance: dg.DagsterInstance,
    residency: ResidencyResource,
    plane: PlaneResource,
    now: datetime,
) -> tuple[Plan, PlannerConfig, dict[tuple[str, str], RuntimeAdapter], list[Residency]]:
    """The plan at ``now`` from the configured nodes, metered demand, catalog and runtimes."""
    config = residency.config()
    adapters = residency.adapters(config)
    current = current_state(adapters, recorded_state(instance), now)
    with plane.connect() as conn:
        catalog = {e.dataset_id: e.record for e in catalog_store.list_entries(conn)}
        present = conn.execute("SELECT to_regclass('plane.serving_decisions')").fetchone()
        demand = metered_demand(conn, now, config.demand_window_s) if present and present[0] else {}
    result = plan(
        config.nodes,
        config.models,
        demand,
        current,
        now,
        fleet=plane.fleet(),
        catalog=catalog,
        policy=plane.policy(),
        settings=config.settings,
    )
    return result, config, adapters, current


def _state_after(plan_: Plan, current: list[Residency], now: datetime) -> str:
    before = {(r.node, r.runtime, r.model): r for r in current}
    entries = []
    for row in plan_.rows:
        was = before.get((row.node, row.runtime, row.model))
        if row.state == COLD and was is None:
            continue  # never held: nothing to remember
        since = was.since if was is not None and was.state == row.state else now
        entries.append(
            {
                "node": row.node,
                "runtime": row.runtime,
                "model": row.model,
                "state": row.state,
                "since": since.isoformat(),
            }
        )
    return json.dumps(entries, sort_keys=True)


_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("node", "string"),
        dg.TableColumn("runtime", "string"),
        dg.TableColumn("model", "string"),
        dg.TableColumn("state", "string"),
        dg.TableColumn("memory_gb", "float"),
        dg.TableColumn("memory", "string", description="the footprint: weights + KV + runtime"),
        dg.TableColumn("why", "string"),
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
        "hysteresis and residency rules, applied through the runtime adapters."
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
    result, config, adapters, current = build_plan(context.instance, residency, plane, now)
    done: list[Action] = apply_plan(result, adapters, residency.specs(config))
    for action in done:
        context.log.info(str(action))
    rows = result.as_records()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "plan": dg.MetadataValue.table([dg.TableRecord(r) for r in rows], schema=_SCHEMA),
            "plan_by_node": dg.MetadataValue.md(plan_markdown(result)),
            "models_loaded": sum(r["state"] == "loaded" for r in rows),
            "models_sleeping": sum(r["state"] == "sleeping" for r in rows),
            "memory_planned_gb": round(sum(r["memory_gb"] for r in rows), 3),
            "memory_budget_gb": round(sum(result.budgets_gb.values()), 3),
            "actions": dg.MetadataValue.md("\n".join(f"- {a}" for a in done) or "none"),
            "actions_done": len(done),
            STATE_KEY: dg.MetadataValue.text(_state_after(result, current, now)),
            "as_of": now.isoformat(),
        }
    )


residency_job = dg.define_asset_job(
    "residency_job",
    selection=[RESIDENCY_KEY],
    description="Plan and apply which models are loaded where (serving/residency_plan).",
)


def pending_actions(
    instance: dg.DagsterInstance, residency: ResidencyResource, plane: PlaneResource, now: datetime
) -> list[str]:
    """What applying the plan at ``now`` would do (empty: the runtimes already hold it)."""
    result, _, adapters, _ = build_plan(instance, residency, plane, now)
    return [str(a) for a, _ in planned_actions(result, adapters)]
