"""Applying a residency plan through the runtime adapters (`serving.runtimes.base`).

The plan says, per (node, runtime, model), ``loaded``, ``sleeping`` or ``cold``; each adapter
says what its runtime holds now. `apply_plan` makes the few calls that close the gap, in an
order that never needs more memory than the node has: first every unload, then every sleep
(both free memory), then every wake and load (they take it). An action that fails does not
stop the others (a model that could not be unloaded must not keep a different node's model from
loading), except that nothing is loaded on a node whose unload or sleep failed (the memory
it counts on is still taken); the failures are raised together at the end.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass

from reasoning_plane.serving.planner import COLD, LOADED, SLEEPING, Plan
from reasoning_plane.serving.planner_config import PlannerConfig
from serving.runtimes.base import ModelSpec, RuntimeAdapter

_ORDER = {COLD: 0, SLEEPING: 1, LOADED: 2}  # free memory before taking it


@dataclass(frozen=True)
class Action:
    """One call made to a runtime: (node, runtime, model) from one state to another."""

    node: str
    runtime: str
    model: str
    was: str
    to: str

    def __str__(self) -> str:
        return f"{self.node}/{self.runtime}: {self.model} {self.was} -> {self.to}"


class ApplyError(RuntimeError):
    """Some actions failed; ``done`` holds those that succeeded."""

    def __init__(self, done: list[Action], failed: list[tuple[Action, str]]) -> None:
        self.done = done
        self.failed = failed
        super().__init__(
            "residency plan: "
            + "; ".join(f"{a} failed: {why}" for a, why in failed)
            + f" ({len(done)} other actions done)"
        )


def planned_actions(
    plan: Plan, adapters: Mapping[tuple[str, str], RuntimeAdapter]
) -> list[tuple[Action, RuntimeAdapter]]:
    """The calls ``plan`` needs, ordered: unloads, then sleeps, then loads (each by node, model).

    A (node, runtime) in the plan without an adapter is an error before any call: a half-known
    node could not be trusted to free memory it is counted on to free."""
    missing = sorted({(r.node, r.runtime) for r in plan.rows} - set(adapters))
    if missing:
        names = ", ".join(f"{n}/{r}" for n, r in missing)
        raise ValueError(f"residency plan: no runtime adapter for {names}")
    held: dict[tuple[str, str], dict[str, str]] = {k: a.states() for k, a in adapters.items()}
    out = []
    for row in plan.rows:
        adapter = adapters[(row.node, row.runtime)]
        was = held[(row.node, row.runtime)].get(row.model, COLD)
        to = row.state
        if to == SLEEPING and not adapter.supports_sleep:
            to = COLD  # the adapter would unload it anyway; say so
        if was != to:
            out.append((Action(row.node, row.runtime, row.model, was, to), adapter))
    out.sort(key=lambda p: (_ORDER[p[0].to], p[0].node, p[0].runtime, p[0].model))
    return out


def apply_plan(
    plan: Plan,
    adapters: Mapping[tuple[str, str], RuntimeAdapter],
    specs: Mapping[tuple[str, str], ModelSpec],
) -> list[Action]:
    """Make the runtimes hold what ``plan`` says; the actions done, in order.

    ``adapters``: per (node, runtime); ``specs``: per (model, runtime), what a load needs."""
    done: list[Action] = []
    failed: list[tuple[Action, str]] = []
    unfreed: set[str] = set()  # nodes where memory the plan counts on was not freed
    for action, adapter in planned_actions(plan, adapters):
        if action.to == LOADED and action.node in unfreed:
            failed.append((action, f"not tried: memory on {action.node} was not freed"))
            continue
        try:
            if action.to == COLD:
                adapter.unload(action.model)
            elif action.to == SLEEPING:
                adapter.sleep(action.model)
            else:
                spec = specs.get((action.model, action.runtime))
                if spec is None:
                    raise ValueError(f"no model spec for {action.model} on {action.runtime}")
                adapter.load(spec)
        except Exception as exc:  # every failure is reported, none stops the rest
            failed.append((action, f"{type(exc).__name__}: {exc}"))
            if action.to != LOADED:
                unfreed.add(action.node)
            continue
        done.append(action)
    if failed:
        raise ApplyError(done, failed)
    return done


def build_adapters(
    config: PlannerConfig, node: str | None = None
) -> dict[tuple[str, str], RuntimeAdapter]:
    """One adapter per (node, runtime) (only ``node``'s when given), as each node's
    ``adapters`` entry names it (``class: "module:Class"`` and its keyword arguments)."""
    out: dict[tuple[str, str], RuntimeAdapter] = {}
    for entry_node in config.raw.nodes:
        if node is not None and entry_node.name != node:
            continue
        for runtime, entry in entry_node.adapters.items():
            kwargs = dict(entry)
            target = str(kwargs.pop("class", ""))
            module, _, name = target.partition(":")
            if not module or not name:
                raise ValueError(
                    f"{config.path}: nodes ({entry_node.name}).adapters.{runtime}.class: "
                    f"'module:Class' expected, got {target!r}"
                )
            out[(entry_node.name, runtime)] = getattr(importlib.import_module(module), name)(
                **kwargs
            )
    return out


def model_specs(config: PlannerConfig) -> dict[tuple[str, str], ModelSpec]:
    """What a load needs, per (model, runtime), from the configuration's models."""
    return {
        (m.name, m.runtime): ModelSpec(
            m.name, m.source, m.context_tokens, m.parallel_slots, tuple(m.args)
        )
        for m in config.raw.models
    }
