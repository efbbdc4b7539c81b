"""The model residency planner: which model is loaded, sleeping or cold on which node and runtime.

One memory accountant per node across its runtimes (`memory.py`): a loaded model takes its
footprint (weights + KV cache for the configured context x parallel slots + runtime overhead), a
sleeping one only its process (``sleep_gb``: vLLM's sleep mode offloads weights and frees the KV
cache), a cold one nothing; the node gives its budget (total less the OS reserve). No plan ever
exceeds a node's budget.

What to keep, from the demand the gateway metered (`metered_demand`) and each model's reload
cost. A model's *score* is requests per hour x reload seconds / GB: the reload time its residency
saves per hour for each GB it holds. Models are placed greedily by score, one replica each, on a
node whose cluster may serve the data the model serves (the governance rules of the batch
engine, `rules.residency_reasons` and `rules.compliance_reasons`: unknown data goes nowhere).

Hysteresis, so that alternating demand does not thrash:

* a model loaded less than ``min_residency_s`` ago is not evicted for another; only memory can
  force it out (a node's budget shrank), and its row says so;
* a model that stays where it is (loaded or sleeping on that node) counts ``switch_margin`` times
  its score: a newcomer displaces it only with clearly more demand;
* a model unloaded less than ``cooldown_s`` ago is not reloaded for marginal demand (fewer than
  ``marginal_requests`` in the window), and otherwise competes at its score / ``switch_margin``;
* with ``reload_multiple`` = k set, thrash avoidance is priced in the model's reload time, the
  only thing a swap costs: its minimum residency and cool-down are min(configured, k x its cold
  load), the switch margin's excess over 1 shrinks in the same proportion, and a loaded model
  idle for min(``idle_s``, k x its cold load) no longer defends its place with the window's
  demand. Each load then buys at least k reload times of residency, so a node spends at most
  1/(k + 1) of its time loading however demand alternates (the costly model keeps the
  configured holds; a 1.3 s llama.cpp load with k = 10 holds 13 s, not 10 minutes);
* a loaded model idle for ``idle_s`` sleeps where its runtime can and its process is small
  (``sleep_gb`` <= ``max_sleep_gb``) when it was used within ``back_soon_s`` (likely back soon);
  otherwise it stays loaded while no one needs the memory.

Plain data and pure functions: no Dagster, no I/O except `metered_demand` (one SQL query over a
connection given to it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from data_plane.catalog import CatalogRecord
from reasoning_plane import rules
from reasoning_plane.model import Fleet
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.memory import (
    Footprint,
    ModelShape,
    NodeMemory,
    ServingConfig,
    footprint,
)

LOADED = "loaded"
SLEEPING = "sleeping"
COLD = "cold"
STATES = (LOADED, SLEEPING, COLD)
RUNTIMES = ("llama.cpp", "vllm", "ollama")
SLEEPING_RUNTIMES = frozenset({"vllm"})  # sleep mode: POST /sleep, POST /wake_up


@dataclass(frozen=True)
class ServingNode:
    """A machine serving models: its cluster of the fleet, its memory, the runtimes it runs."""

    name: str
    cluster: str
    memory: NodeMemory
    runtimes: frozenset[str]


@dataclass(frozen=True)
class ServedModel:
    """A model as one runtime serves it, with what loading it costs and what data it serves."""

    name: str
    shape: ModelShape
    serving: ServingConfig
    runtime: str
    cold_load_s: float
    wake_s: float | None = None  # None: the runtime cannot sleep it
    sleep_gb: float | None = None  # memory a sleeping process keeps; default: the overhead
    datasets: tuple[str, ...] = ()  # the data it serves (RAG stores, fine-tuning data, ...)

    def footprint(self) -> Footprint:
        return footprint(self.shape, self.serving)

    @property
    def can_sleep(self) -> bool:
        return self.runtime in SLEEPING_RUNTIMES and self.wake_s is not None

    @property
    def asleep_gb(self) -> float:
        return self.serving.runtime_overhead_gb if self.sleep_gb is None else self.sleep_gb


@dataclass(frozen=True)
class Demand:
    """What the gateway metered for a model over the recent window."""

    model: str
    requests: int
    tokens: int
    window_s: float
    last_request_at: datetime | None = None

    @property
    def per_hour(self) -> float:
        return self.requests * 3600.0 / self.window_s if self.window_s > 0 else 0.0


@dataclass(frozen=True)
class Residency:
    """What a runtime holds now, and since when (``since``: when it entered that state; a cold
    entry is kept only to remember when a model was unloaded, for the cool-down)."""

    node: str
    runtime: str
    model: str
    state: str
    since: datetime


@dataclass(frozen=True)
class PlannerSettings:
    """The hysteresis and sleep thresholds (see the module)."""

    min_residency_s: float = 600.0
    cooldown_s: float = 300.0
    switch_margin: float = 2.0
    marginal_requests: int = 3
    idle_s: float = 300.0
    back_soon_s: float = 3600.0
    max_sleep_gb: float = 4.0
    # Hysteresis in units of the model's reload time (None: in plain seconds, as configured):
    # see `hold_s` and `margin`.
    reload_multiple: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_residency_s", "cooldown_s", "idle_s", "back_soon_s", "max_sleep_gb"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"planner settings: {name}: must be a number >= 0, got {value!r}")
        if not (math.isfinite(self.switch_margin) and self.switch_margin >= 1):
            raise ValueError(
                f"planner settings: switch_margin: must be >= 1, got {self.switch_margin!r}"
            )
        if self.marginal_requests < 0:
            raise ValueError("planner settings: marginal_requests: must be >= 0")
        k = self.reload_multiple
        if k is not None and not (isinstance(k, int | float) and math.isfinite(k) and k > 0):
            raise ValueError(f"planner settings: reload_multiple: must be a number > 0, got {k!r}")

    def hold_s(self, configured_s: float, reload_s: float) -> float:
        """A minimum residency or cool-down for a model that reloads in ``reload_s``: the
        configured seconds, capped at ``reload_multiple`` x its reload time. Holding a model
        ``k`` x its reload time before it may be swapped out keeps the time a node spends
        loading under 1 / (k + 1) of its time however demand alternates, which is all the
        hysteresis is for; holding it longer only defers requests a cheap swap would serve."""
        if self.reload_multiple is None:
            return configured_s
        return min(configured_s, self.reload_multiple * reload_s)

    def margin(self, reload_s: float) -> float:
        """The switch margin for a model that reloads in ``reload_s``: the configured margin's
        excess over 1 in the proportion its minimum residency keeps of the configured one
        (a swap that costs nothing needs no margin; one that costs the full hold, all of it)."""
        if self.reload_multiple is None or self.min_residency_s <= 0:
            return self.switch_margin
        share = self.hold_s(self.min_residency_s, reload_s) / self.min_residency_s
        return 1.0 + (self.switch_margin - 1.0) * share


@dataclass(frozen=True)
class PlanRow:
    """One (node, runtime, model) of the plan, as a person reads it."""

    node: str
    runtime: str
    model: str
    state: str
    memory_gb: float
    memory: str  # the footprint's explanation
    why: str
    score: float = 0.0


@dataclass(frozen=True)
class Plan:
    """The residency plan at ``at``: every (node, runtime, model) the models could run on."""

    at: datetime
    rows: tuple[PlanRow, ...]
    budgets_gb: Mapping[str, float] = field(default_factory=dict)

    def state(self, node: str, runtime: str, model: str) -> str:
        for r in self.rows:
            if (r.node, r.runtime, r.model) == (node, runtime, model):
                return r.state
        return COLD

    def loaded(self, model: str) -> list[tuple[str, str]]:
        """(node, runtime) pairs where ``model`` is loaded: the endpoints that serve it now."""
        return [(r.node, r.runtime) for r in self.rows if r.model == model and r.state == LOADED]

    def used_gb(self, node: str) -> float:
        return sum(r.memory_gb for r in self.rows if r.node == node)

    def as_records(self) -> list[dict[str, Any]]:
        return [
            {
                "node": r.node,
                "runtime": r.runtime,
                "model": r.model,
                "state": r.state,
                "memory_gb": round(r.memory_gb, 3),
                "memory": r.memory,
                "why": r.why,
            }
            for r in self.rows
        ]


# -- demand, from the gateway's decision records ----------------------------------------------

# Demand is every request a loaded model could serve: placed and deferred ones (429: no slot or
# no trusted endpoint now, e.g. its model is cold), and rejected ones that some endpoint refused
# for the SLO (a cold endpoint is priced with its reload time, so a request too urgent to wait
# for a load is refused: loading the model is what would serve the next one). Requests refused
# only by governance or other lasting rules are not: loading a model changes none of those.
UNSERVED = "(status = 'deferred' OR (status = 'rejected' AND rejected_by_rule ? 'slo'))"
DEMAND_SQL = f"""
SELECT model, count(*), coalesce(sum(coalesce(prompt_tokens, 0)
                                     + coalesce(completion_tokens, 0)), 0), max(decided_at)
FROM plane.serving_decisions
WHERE decided_at >= %s AND decided_at <= %s AND (status = 'placed' OR {UNSERVED})
GROUP BY model
"""
UNSERVED_SQL = f"""
SELECT model, max(recorded_at)
FROM plane.serving_decisions
WHERE recorded_at > %s AND {UNSERVED}
GROUP BY model
"""


def unserved_since(conn: Any, after: datetime) -> dict[str, datetime]:
    """Models with requests recorded after ``after`` that nothing loaded served (deferred, or
    refused for the SLO), each with its newest record's time: what the residency sensor reacts
    to at once (re-plan on deferral)."""
    if after.tzinfo is None:
        raise ValueError("unserved_since: after: must be timezone-aware")
    with conn.cursor() as cur:
        cur.execute(UNSERVED_SQL, (after,))
        return {model: at for model, at in cur.fetchall()}


def metered_demand(conn: Any, now: datetime, window_s: float) -> dict[str, Demand]:
    """Demand per model over the ``window_s`` seconds before ``now``, from the gateway's
    decision records (``plane.serving_decisions``; ``conn``: a psycopg connection)."""
    if now.tzinfo is None:
        raise ValueError("metered_demand: now: must be timezone-aware")
    if not window_s > 0:
        raise ValueError(f"metered_demand: window_s: must be above 0, got {window_s!r}")
    since = now - timedelta(seconds=window_s)
    with conn.cursor() as cur:
        cur.execute(DEMAND_SQL, (since, now))
        rows = cur.fetchall()
    return {
        model: Demand(model, int(n), int(tokens), float(window_s), last)
        for model, n, tokens, last in rows
    }


# -- the plan ----------------------------------------------------------------------------------


@dataclass
class _NodeRoom:
    node: ServingNode
    used: float = 0.0

    @property
    def free(self) -> float:
        return self.node.memory.budget_gb - self.used

    def fits(self, gb: float) -> bool:
        return self.used + gb <= self.node.memory.budget_gb + 1e-9


def governance_reasons(
    model: ServedModel,
    node: ServingNode,
    fleet: Fleet,
    catalog: Mapping[str, CatalogRecord],
    policy: PlacementPolicy,
) -> list[str]:
    """Why ``node`` may not load ``model`` (the data it serves): the placement rules' residency
    and compliance, as the batch engine applies them to the node's cluster."""
    cluster = fleet.get(node.cluster)
    assert cluster is not None  # checked by plan()
    residency, compliance = rules.governance_on(model.datasets, catalog, cluster, policy)
    return [r.message for r in (*residency, *compliance)]


def _check(
    nodes: Sequence[ServingNode],
    models: Sequence[ServedModel],
    current: Iterable[Residency],
    fleet: Fleet,
    now: datetime,
) -> list[Residency]:
    """Bad input is an error naming it: a plan on a misread input would load the wrong thing."""
    if now.tzinfo is None:
        raise ValueError("planner: now: must be timezone-aware")
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise ValueError(f"planner: nodes: {n.name}: named twice")
        seen.add(n.name)
        if fleet.get(n.cluster) is None:
            raise ValueError(f"planner: nodes: {n.name}: cluster {n.cluster!r} is not in the fleet")
        for r in n.runtimes:
            if r not in RUNTIMES:
                raise ValueError(
                    f"planner: nodes: {n.name}: runtime {r!r} is not one of {', '.join(RUNTIMES)}"
                )
    names: set[tuple[str, str]] = set()
    for m in models:
        if (m.name, m.runtime) in names:
            raise ValueError(f"planner: models: {m.name}: named twice for runtime {m.runtime}")
        names.add((m.name, m.runtime))
        if m.runtime not in RUNTIMES:
            raise ValueError(
                f"planner: models: {m.name}: runtime {m.runtime!r} is not one of "
                f"{', '.join(RUNTIMES)}"
            )
        if not (math.isfinite(m.cold_load_s) and m.cold_load_s >= 0):
            raise ValueError(f"planner: models: {m.name}: cold_load_s: must be a number >= 0")
        if m.wake_s is not None and not (math.isfinite(m.wake_s) and m.wake_s >= 0):
            raise ValueError(f"planner: models: {m.name}: wake_s: must be a number >= 0")
        if m.sleep_gb is not None and not (math.isfinite(m.sleep_gb) and m.sleep_gb >= 0):
            raise ValueError(f"planner: models: {m.name}: sleep_gb: must be a number >= 0")
    out = []
    for c in current:
        if c.state not in STATES:
            raise ValueError(
                f"planner: current: {c.node}/{c.runtime}/{c.model}: state {c.state!r} is not one "
                f"of {', '.join(STATES)}"
            )
        if c.since.tzinfo is None:
            raise ValueError(f"planner: current: {c.node}/{c.runtime}/{c.model}: since: naive")
        out.append(c)
    return out


def plan(
    nodes: Sequence[ServingNode],
    models: Sequence[ServedModel],
    demand: Mapping[str, Demand],
    current: Iterable[Residency],
    now: datetime,
    *,
    fleet: Fleet,
    catalog: Mapping[str, CatalogRecord],
    policy: PlacementPolicy | None = None,
    settings: PlannerSettings | None = None,
) -> Plan:
    """The residency plan at ``now`` (see the module for the rules, in order)."""
    policy = policy or PlacementPolicy()
    settings = settings or PlannerSettings()
    held = _check(nodes, models, current, fleet, now)
    for name, d in demand.items():
        if d.requests < 0 or d.tokens < 0 or not d.window_s > 0:
            raise ValueError(
                f"planner: demand: {name}: requests and tokens must be >= 0 and window_s > 0"
            )
    by_node = {n.name: n for n in nodes}
    now_of: dict[tuple[str, str, str], Residency] = {}
    for c in held:
        if c.node in by_node:  # a node no longer configured is not planned (nothing to move)
            now_of[(c.node, c.runtime, c.model)] = c
    rooms = {n.name: _NodeRoom(n) for n in nodes}
    rows: dict[tuple[str, str, str], PlanRow] = {}

    def age(c: Residency) -> float:
        return (now - c.since).total_seconds()

    # Where each model may run, and why not elsewhere.
    eligible: dict[ServedModel, list[ServingNode]] = {}
    refused: dict[tuple[str, ServedModel], list[str]] = {}
    for m in models:
        eligible[m] = []
        for n in nodes:
            if m.runtime not in n.runtimes:
                continue
            reasons = governance_reasons(m, n, fleet, catalog, policy)
            if reasons:
                refused[(n.name, m)] = reasons
            else:
                eligible[m].append(n)

    def incumbent(m: ServedModel) -> Residency | None:
        """Where ``m`` is loaded or sleeping now (the longest-held place, if several)."""
        found = [
            now_of[(n.name, m.runtime, m.name)]
            for n in eligible[m]
            if (n.name, m.runtime, m.name) in now_of
            and now_of[(n.name, m.runtime, m.name)].state in (LOADED, SLEEPING)
        ]
        return min(found, key=lambda c: (c.since, c.node)) if found else None

    def last_unloaded(m: ServedModel) -> Residency | None:
        found = [
            c
            for (node, runtime, name), c in now_of.items()
            if runtime == m.runtime and name == m.name and c.state == COLD
        ]
        return max(found, key=lambda c: c.since) if found else None

    # Hysteresis per model, in units of its reload time where configured (`PlannerSettings`):
    # the minimum residency of a loaded model, the cool-down of an unloaded one (both priced
    # with the cold load that undoes them), and the switch margin at the reload it would cost.
    def residency_s(m: ServedModel) -> float:
        return settings.hold_s(settings.min_residency_s, m.cold_load_s)

    def cooldown_s(m: ServedModel) -> float:
        return settings.hold_s(settings.cooldown_s, m.cold_load_s)

    margins: dict[tuple[str, str], float] = {}
    entries = []  # (priority class, key, model, incumbent, score, note)
    for m in models:
        d = demand.get(m.name)
        rate = d.per_hour if d else 0.0
        fp = m.footprint()
        inc = incumbent(m)
        reload_s = m.wake_s if (inc and inc.state == SLEEPING and m.wake_s is not None) else None
        reload_s = m.cold_load_s if reload_s is None else reload_s
        margin = margins[(m.name, m.runtime)] = settings.margin(reload_s)
        score = rate * reload_s / max(fp.total_gb, 1e-9)
        why_score = (
            f"{rate:.0f} req/h x {reload_s:.1f} s reload / {fp.total_gb:.2f} GB = {score:.0f}"
        )
        idle_for = (
            (now - d.last_request_at).total_seconds() if d and d.last_request_at else math.inf
        )
        protected = inc is not None and inc.state == LOADED and age(inc) < residency_s(m)
        if protected:
            entries.append((0, -score, m, inc, score, why_score, idle_for))
            continue
        if inc is not None:
            # Idle for longer than its hold, a cheap model no longer defends its place with
            # the demand of the window: a newcomer with demand takes the memory if it needs it.
            stale = (
                settings.reload_multiple is not None
                and inc.state == LOADED
                and idle_for >= settings.hold_s(settings.idle_s, m.cold_load_s)
            )
            key = 0.0 if stale else -score * margin
            entries.append((1, key, m, inc, score, why_score, idle_for))
            continue
        if rate <= 0:
            continue  # cold, no demand: stays cold (rows below)
        gone = last_unloaded(m)
        if gone is not None and age(gone) < cooldown_s(m):
            if d is None or d.requests < settings.marginal_requests:
                continue  # marginal demand within the cool-down: stays cold
            entries.append((1, -score / margin, m, None, score, why_score, idle_for))
            continue
        entries.append((1, -score, m, None, score, why_score, idle_for))
    entries.sort(key=lambda e: (e[0], e[1], e[2].name, e[2].runtime))

    placed: set[tuple[str, str]] = set()

    def hold(node: str, m: ServedModel, state: str, gb: float, memory: str, why: str, score: float):
        """``m`` takes ``gb`` of ``node``'s memory in ``state``: its row of the plan."""
        rooms[node].used += gb
        placed.add((m.name, m.runtime))
        rows[(node, m.runtime, m.name)] = PlanRow(
            node, m.runtime, m.name, state, gb, memory, why, score
        )

    for klass, _, m, inc, score, why_score, idle_for in entries:
        fp = m.footprint()
        idle = idle_for >= settings.idle_s
        # An idle model: sleep where possible (likely back soon, small process), else keep.
        if (
            inc is not None
            and idle
            and klass != 0
            and m.can_sleep
            and m.asleep_gb <= settings.max_sleep_gb
            and idle_for < settings.back_soon_s
            and rooms[inc.node].fits(m.asleep_gb)
        ):
            hold(
                inc.node,
                m,
                SLEEPING,
                m.asleep_gb,
                f"{m.asleep_gb:.2f} GB (process asleep; {fp.explain()} when awake)",
                f"idle {_dur(idle_for)} but used within {_dur(settings.back_soon_s)}: "
                f"sleeps (wake {m.wake_s:.1f} s vs cold load {m.cold_load_s:.1f} s)",
                score,
            )
            continue
        if inc is not None and inc.state == SLEEPING and idle:
            if rooms[inc.node].fits(m.asleep_gb):  # asleep and still idle: stays asleep
                hold(
                    inc.node,
                    m,
                    SLEEPING,
                    m.asleep_gb,
                    f"{m.asleep_gb:.2f} GB (process asleep; {fp.explain()} when awake)",
                    f"idle {_dur(idle_for)}: stays asleep (wake {m.wake_s or 0:.1f} s)",
                    score,
                )
            continue
        if inc is not None and rooms[inc.node].fits(fp.total_gb):
            if klass == 0:
                why = (
                    f"loaded {_dur(age(inc))} ago, under the minimum residency of "
                    f"{_dur(residency_s(m))}{_per_reload(settings, m)}: kept ({why_score})"
                )
            elif inc.state == SLEEPING and not idle:
                why = f"demand is back: woken ({why_score})"
            elif idle:
                why = f"idle {_dur(idle_for)}; kept loaded while no one needs its memory"
            else:
                why = (
                    f"kept: demand x reload cost per GB {why_score}, counted x"
                    f"{margins[(m.name, m.runtime)]:.3g} as it is already here"
                )
            hold(inc.node, m, LOADED, fp.total_gb, fp.explain(), why, score)
            continue
        if score <= 0:
            continue  # no demand: not worth loading anywhere else
        # A newcomer (or an incumbent that no longer fits where it is): the eligible node with
        # the most free memory that fits it.
        fitting = [n for n in eligible[m] if rooms[n.name].fits(fp.total_gb)]
        if not fitting:
            continue
        n = max(fitting, key=lambda n: (rooms[n.name].free, n.name))
        hold(
            n.name,
            m,
            LOADED,
            fp.total_gb,
            fp.explain(),
            f"loaded: demand x reload cost per GB {why_score}, highest that fits "
            f"({rooms[n.name].free:.2f} GB free on {n.name})",
            score,
        )

    # A model displaced from a node where it was loaded or sleeping sleeps there rather than
    # going cold when its runtime can and its process fits beside what was kept: its next
    # return then costs a wake, not a cold load (vLLM: ~2 s instead of ~30 s).
    for m in sorted(models, key=lambda m: (m.asleep_gb, m.name)):
        inc = incumbent(m)
        if inc is None or (m.name, m.runtime) in placed or not m.can_sleep:
            continue
        if m.asleep_gb <= settings.max_sleep_gb and rooms[inc.node].fits(m.asleep_gb):
            hold(
                inc.node,
                m,
                SLEEPING,
                m.asleep_gb,
                f"{m.asleep_gb:.2f} GB (process asleep; {m.footprint().explain()} when awake)",
                f"its memory went to models with more demand x reload cost per GB; sleeps "
                f"(wake {m.wake_s or 0:.1f} s vs cold load {m.cold_load_s:.1f} s)",
                0.0,
            )

    # Every other (node, runtime, model) the model could run on: cold, and why.
    for m in models:
        fp = m.footprint()
        d = demand.get(m.name)
        for n in nodes:
            key = (n.name, m.runtime, m.name)
            if m.runtime not in n.runtimes or key in rows:
                continue
            was = now_of.get(key)
            if (n.name, m) in refused:
                why = "may not be loaded here: " + "; ".join(refused[(n.name, m)])
            elif was is not None and was.state == LOADED and age(was) < residency_s(m):
                why = (
                    f"memory forces it out: loaded {_dur(age(was))} ago (under the minimum "
                    f"residency) but {fp.total_gb:.2f} GB does not fit the "
                    f"{n.memory.budget_gb:.2f} GB budget beside models kept with more demand"
                )
                if (m.name, m.runtime) in placed:
                    why += "; served on another node"
            elif (m.name, m.runtime) in placed:
                why = "served on another node (one replica per model)"
            elif d is None or d.requests == 0:
                why = "no demand in the window"
            elif (
                (gone := last_unloaded(m)) is not None
                and age(gone) < cooldown_s(m)
                and d.requests < settings.marginal_requests
            ):
                why = (
                    f"unloaded {_dur(age(gone))} ago (cool-down {_dur(cooldown_s(m))}"
                    f"{_per_reload(settings, m)}): "
                    f"{d.requests} requests is marginal demand"
                )
            else:
                why = (
                    f"{fp.total_gb:.2f} GB does not fit beside models with more demand x reload "
                    f"cost per GB (free {rooms[n.name].free:.2f} GB)"
                )
            rows[key] = PlanRow(n.name, m.runtime, m.name, COLD, 0.0, fp.explain(), why)

    ordered = tuple(sorted(rows.values(), key=lambda r: (r.node, r.runtime, r.model)))
    return Plan(now, ordered, {n.name: n.memory.budget_gb for n in nodes})


def _per_reload(settings: PlannerSettings, m: ServedModel) -> str:
    """How a hold was priced, where it is priced in reload times."""
    if settings.reload_multiple is None:
        return ""
    return f", {settings.reload_multiple:g} x its {m.cold_load_s:.1f} s cold load at most"


def _dur(seconds: float) -> str:
    if math.isinf(seconds):
        return "ever"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
