"""``plane run``: run assets on this machine *through* the reasoning plane.

``dagster job execute`` and ``dagster asset materialize`` run assets in the calling process; the
data guard (`resources.guard`) refuses every asset that reads governed data there unless the run
carries a signed decision for it. ``plane run`` is the in-process path that obtains them: for
the selected assets, in dependency order (one level at a time), it

1. builds each workload's request from its asset and the catalog (`sensors.placement._request`:
   datasets from lineage, team from the owner, needs from the declaration);
2. places the level jointly with the same tick as ``placement_sensor``
   (`reasoning_plane.tick.run_tick`: one transaction, quota, budget, reservations, signed
   decisions), on the fleet of this machine alone whatever ``PLANE_FLEET_FILE`` says (its
   zone and certifications are what the operator declares in ``PLANE_LOCAL_ZONE`` /
   ``PLANE_LOCAL_CERTIFICATIONS``);
3. runs each placed asset in its own Dagster run carrying the decision's tags (the guard claims
   the decision for that run), then settles the reservation at the run's actual cost.

Work that is deferred (no free CPU slot) is placed again once a run has freed one; work the
plane rejects (e.g. EU personal data on a machine declared US) is not run, nor is anything
downstream of it, and the summary says why. Assets that read no governed data run as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
from dagster._core.utils import make_new_run_id

from assets.workloads import WorkloadSpec, declared_records, workload_specs
from reasoning_plane import store
from reasoning_plane.gpu_telemetry import read_gpus
from reasoning_plane.launch import run_tags
from reasoning_plane.model import DEFERRED, PLACED, Decision, Fleet
from reasoning_plane.signing import signer
from reasoning_plane.snapshot import local_fleet
from reasoning_plane.tick import Pending, run_tick
from resources.plane import PlaneResource
from sensors.ledger import held_seconds
from sensors.placement import _request

SUCCEEDED, FAILED, REJECTED, DEFERRED_OUT, SKIPPED = (
    "succeeded",
    "failed",
    "rejected",
    "deferred",
    "skipped",
)


@dataclass(frozen=True)
class Outcome:
    asset: str
    status: str  # succeeded | failed | rejected | deferred | skipped
    where: str  # cluster/pool, or "-"
    decision_id: str | None
    reason: str
    run_id: str | None = None


def _levels(graph, keys: set[dg.AssetKey]) -> list[list[dg.AssetKey]]:
    return [
        sorted(level & keys, key=lambda k: k.to_user_string())
        for level in graph.toposorted_asset_keys_by_level
        if level & keys
    ]


@dataclass
class _Session:
    """One ``plane run``: what its placements and runs share, and the outcomes so far."""

    job: dg.JobDefinition
    instance: dg.DagsterInstance
    plane: PlaneResource
    specs: dict[dg.AssetKey, WorkloadSpec]
    declared: dict
    log: Callable[[str], None]
    stamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f"))
    here: Fleet = field(default_factory=lambda: local_fleet(read_gpus()))  # this machine alone
    outcomes: dict[dg.AssetKey, Outcome] = field(default_factory=dict)

    def execute(
        self, key: dg.AssetKey, tags: dict[str, str], run_id: str | None = None
    ) -> dg.ExecuteInProcessResult:
        return self.job.execute_in_process(
            asset_selection=[key],
            tags=tags,
            instance=self.instance,
            raise_on_error=False,
            run_id=run_id,
        )


def run_placed(
    defs: dg.Definitions,
    selection: Iterable[dg.AssetKey],
    *,
    instance: dg.DagsterInstance,
    plane: PlaneResource,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """Place and run ``selection`` on this machine; one `Outcome` per selected asset, upstream
    first."""
    graph = defs.resolve_asset_graph()
    keys = set(selection)
    assets = [a for a in defs.assets or () if isinstance(a, dg.AssetsDefinition)]
    session = _Session(
        job=defs.resolve_implicit_global_asset_job_def(),
        instance=instance,
        plane=plane,
        specs={s.key: s for s in workload_specs(assets)},
        declared=declared_records(assets),
        log=log,
    )
    for level in _levels(graph, keys):
        waiting = _run_unplaced(session, graph, level)
        while waiting:
            waiting = _place_and_run(session, waiting)
    outcomes = session.outcomes
    order = {k: i for i, level in enumerate(_levels(graph, keys)) for k in level}
    return [outcomes[k] for k in sorted(outcomes, key=lambda k: (order[k], k.to_user_string()))]


def _run_unplaced(session: _Session, graph, level: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """Skip what an upstream that did not run blocks, run what reads no governed data; the
    workloads left to place."""
    waiting: list[dg.AssetKey] = []
    for key in level:
        blocker = next(
            (
                dep.to_user_string()
                for dep in graph.get(key).parent_keys
                if dep in session.outcomes and session.outcomes[dep].status != SUCCEEDED
            ),
            None,
        )
        if blocker is not None:
            session.outcomes[key] = Outcome(
                key.to_user_string(), SKIPPED, "-", None, f"upstream {blocker} did not run"
            )
        elif key not in session.specs:  # reads no governed data: nothing to place
            result = session.execute(key, {})
            session.outcomes[key] = Outcome(
                key.to_user_string(),
                SUCCEEDED if result.success else FAILED,
                "local",
                None,
                "reads no governed data",
                result.run_id,
            )
        else:
            waiting.append(key)
    return waiting


def _place_and_run(session: _Session, waiting: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """Place ``waiting`` jointly in one tick and run each placed one; what was deferred, to
    place again (nothing when nothing was placed: it would be deferred again)."""
    pending = [
        Pending(
            _request(session.specs[k], f"{k.to_user_string()}@plane-run-{session.stamp}"),
            f"plane-run:{k.to_user_string()}@{session.stamp}",
        )
        for k in waiting
    ]
    policy = session.plane.policy()
    with session.plane.connect() as conn:
        result = run_tick(
            conn,
            pending,
            lambda c: session.plane.snapshot(c, declared=session.declared, fleet=session.here),
            policy,
            signer(),
            source="plane_run",
        )
        conn.commit()
    placed: list[tuple[dg.AssetKey, Decision]] = []
    still: list[tuple[dg.AssetKey, Decision]] = []
    for decision, _ in result.decisions:
        key = dg.AssetKey.from_user_string(decision.request.workload)
        if decision.status == PLACED:
            placed.append((key, decision))
        elif decision.status == DEFERRED:
            still.append((key, decision))
        else:
            session.outcomes[key] = Outcome(
                key.to_user_string(), REJECTED, "-", result.logged_id(decision), decision.reason
            )
            session.log(
                f"{key.to_user_string()}: rejected ({result.logged_id(decision)}): "
                f"{decision.reason}"
            )
    if not placed:
        for key, decision in still:
            session.outcomes[key] = Outcome(
                key.to_user_string(), DEFERRED_OUT, "-", result.logged_id(decision), decision.reason
            )
            session.log(f"{key.to_user_string()}: deferred and not run: {decision.reason}")
        return []
    for key, decision in placed:
        # the tags from the fleet of the snapshot the tick decided on
        tags = run_tags(decision, result.snapshot.fleet, policy)
        where = decision.chosen.label if decision.chosen else "-"
        session.log(f"{key.to_user_string()}: placed on {where} ({decision.decision_id}); running")
        # claimed for this run before it starts, as the launcher does (the data guard in the
        # step checks the claim; a run worker's role may not claim)
        run_id = make_new_run_id()
        with session.plane.connect() as conn:
            store.claim_decision(conn, decision.decision_id, run_id)
            conn.commit()
        run = session.execute(key, tags, run_id)
        session.outcomes[key] = _settle(session.instance, session.plane, decision, run, where)
    return [key for key, _ in still]


def _settle(
    instance: dg.DagsterInstance,
    plane: PlaneResource,
    decision: Decision,
    run: dg.ExecuteInProcessResult,
    where: str,
) -> Outcome:
    """Link the run to its decision and close its reservation at what it used, as the metering
    sensors do for launched runs (succeeded or failed: its GPU time; never started: $0)."""
    seconds = held_seconds(instance.get_run_record_by_id(run.run_id))
    with plane.connect() as conn:
        store.close_ended_run(conn, decision.decision_id, run.run_id, seconds)
        conn.commit()
    name = decision.request.workload
    if run.success:
        return Outcome(name, SUCCEEDED, where, decision.decision_id, "", run.run_id)
    failure = next(
        (e.message for e in run.all_events if e.is_failure and e.message),
        "the run failed",
    )
    return Outcome(name, FAILED, where, decision.decision_id, failure, run.run_id)


def summary_table(outcomes: Sequence[Outcome]) -> str:
    rows = [("asset", "status", "where", "decision", "reason")] + [
        (o.asset, o.status, o.where, o.decision_id or "-", o.reason or "-") for o in outcomes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)
