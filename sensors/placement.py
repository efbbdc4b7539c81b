"""Layer 2C in Dagster: the placement sensor and the recurring-workload schedule.

``placement_sensor`` turns pending work on governed data into placed runs. Pending work is (1)
every workload asset (one declaring ``plane/gpu_count``: GPU and CPU work alike) whose upstream
assets were materialized after it, and (2) explicit requests in ``plane.requests`` (from
``plane request``, the source-file sensor, or the run-failure sensor re-placing a run). A
request names a workload; everything else comes from the asset and the catalog
(`request_for`): its datasets from lineage, its team from the asset's owner, its GPU needs from
the asset's declaration. All of a tick's work is placed jointly by `reasoning_plane.tick.run_tick`
and each decision is signed;
each placed decision becomes a ``RunRequest`` whose tags carry the decision (cluster, zone, GPU,
executor, dagster-k8s pod configuration). Run keys make every request launch exactly once; the
cursor remembers, per asset, the upstream state already handled (deferred work is retried on the
next tick, rejected work waits for new upstream data).

``recurring_placement_schedule`` re-evaluates recurring workloads nightly with hysteresis.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg

from assets.workloads import WorkloadSpec
from data_plane import catalog_store
from data_plane.catalog import CatalogRecord
from reasoning_plane import store
from reasoning_plane.launch import run_config, run_tags
from reasoning_plane.model import DEFERRED, PLACED, REJECTED, WorkloadRequest
from reasoning_plane.replay import request_from_payload
from reasoning_plane.signing import signer
from reasoning_plane.tick import REQUEST_KEY, Pending, TickResult, run_tick
from resources.plane import PlaneResource


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].storage_id if records else None


def _request(spec: WorkloadSpec, request_id: str, **extra) -> WorkloadRequest:
    facts = {
        "datasets": spec.datasets,
        "latency_slo_ms": spec.latency_slo_ms,
        **extra,
    }
    return WorkloadRequest(
        request_id=request_id,
        workload=spec.key.to_user_string(),
        team=spec.team,
        gpu_count=spec.gpu_count,
        gpu_memory_gb=spec.gpu_memory_gb,
        estimated_duration_s=spec.est_duration_s,
        data_gb=spec.data_gb,
        priority=spec.priority,
        gpu_optional=spec.gpu_optional,
        recurring=spec.recurring,
        **facts,
    )


def request_for(spec: WorkloadSpec, asked: WorkloadRequest) -> tuple[WorkloadRequest, list[str]]:
    """The request the plane places for what a requester asked: the workload's facts from its
    asset and the catalog, tightened (never loosened) by the requester: more datasets, a
    stricter latency SLO. A re-placement keeps its attempt count and excluded clusters. Also
    what was ignored of the requester's description, to log."""
    ignored = []
    if asked.team != spec.team:
        ignored.append(f"team {asked.team!r} (the workload belongs to {spec.team!r})")
    for name in ("gpu_count", "gpu_memory_gb", "priority", "gpu_optional"):
        if getattr(asked, name) != getattr(spec, name):
            ignored.append(f"{name}={getattr(asked, name)!r} (declared {getattr(spec, name)!r})")
    dropped = sorted(set(spec.datasets) - set(asked.datasets))
    if dropped:
        ignored.append(f"datasets without {', '.join(dropped)} (lineage reads them)")
    slos = [s for s in (spec.latency_slo_ms, asked.latency_slo_ms) if s is not None]
    request = _request(
        spec,
        asked.request_id,
        datasets=tuple(sorted(set(spec.datasets) | set(asked.datasets))),
        latency_slo_ms=min(slos) if slos else None,
        exclude_clusters=asked.exclude_clusters,
        attempt=asked.attempt,
    )
    return request, ignored


def due_workloads(
    instance: dg.DagsterInstance, specs: list[WorkloadSpec], cursor: dict[str, str]
) -> list[tuple[WorkloadSpec, str]]:
    """(spec, upstream marker) of every GPU asset whose upstream changed since it ran."""
    due = []
    for spec in specs:
        upstream = [_latest_storage_id(instance, k) for k in spec.deps]
        if not upstream or any(u is None for u in upstream):
            continue  # an input was never materialized: nothing to do yet
        marker = str(max(u for u in upstream if u is not None))
        own = _latest_storage_id(instance, spec.key)
        key = spec.key.to_user_string()
        if (own is not None and own > int(marker)) or cursor.get(key) == marker:
            continue
        due.append((spec, marker))
    return due


def _run_requests(result: TickResult, policy) -> list[dg.RunRequest]:
    """A run request per placed decision, its tags and run config built from the fleet of the
    snapshot the tick decided on (never a second read of the fleet file, which may have
    changed since: the run's tags would then disagree with its signed decision)."""
    fleet = result.snapshot.fleet
    return [
        dg.RunRequest(
            run_key=run_key,
            asset_selection=[dg.AssetKey.from_user_string(decision.request.workload)],
            tags=run_tags(decision, fleet, policy),
            run_config=run_config(decision, fleet, policy),
        )
        for decision, run_key in result.placed()
    ]


def _log(context, result: TickResult) -> None:
    for decision, _ in result.decisions:
        where = decision.chosen.label if decision.chosen else "-"
        logged = result.logged_id(decision)
        same = f"unchanged since decision {logged}" if logged != decision.decision_id else ""
        context.log.info(
            f"{decision.request.workload}: {decision.status} {where} "
            f"({same or f'decision {decision.decision_id}'}): {decision.reason}"
        )


def unplaced_observations(result: TickResult) -> list[dg.AssetObservation]:
    """An observation on the asset of each deferred or rejected decision this tick logged (a new
    outcome: work deferred again for the same reason is not observed again), so the asset's
    page says what the plane decided about it and why."""
    return [
        dg.AssetObservation(
            asset_key=dg.AssetKey.from_user_string(decision.request.workload),
            description=f"{decision.status}: {decision.reason}",
            metadata={
                "plane/status": decision.status,
                "plane/reason": decision.reason,
                "plane/decision_id": decision.decision_id,
                "plane/explain": f"plane explain {decision.decision_id}",
                "plane/team": decision.request.team,
                "plane/request": run_key,
            },
        )
        for decision, run_key in result.changed()
        if decision.status in (DEFERRED, REJECTED)
    ]


def _explicit_requests(
    context: dg.SensorEvaluationContext,
    conn,
    plane: PlaneResource,
    by_key: Mapping[str, WorkloadSpec],
    declared: Mapping[str, CatalogRecord] | None,
) -> list[Pending]:
    """The queued requests to place this tick, each as the asset and the catalog describe its
    workload (`request_for`); a request for an unknown workload, or by a requester who may not
    ask for it, is marked rejected (committed by the caller)."""
    explicit = []
    stored = {e.dataset_id: e.record for e in catalog_store.list_entries(conn)}
    known = {**(declared or {}), **stored}
    for payload in store.pending_requests(conn):
        asked = request_from_payload(payload)
        spec = by_key.get(asked.workload)
        if spec is None:
            context.log.warning(
                f"request {asked.request_id}: {asked.workload} is not a workload of "
                "this code location; rejected"
            )
            store.mark_request(conn, asked.request_id, REJECTED, "")
            continue
        denied = plane.request_denied(
            payload.get("requested_by"),
            asked.workload,
            spec.team,
            [known[d] for d in spec.datasets if d in known],
        )
        if denied:
            context.log.warning(
                f"request {asked.request_id}: {payload.get('requested_by')!r} may not "
                f"request {asked.workload}: {denied}; rejected"
            )
            store.mark_request(conn, asked.request_id, REJECTED, "")
            continue
        request, ignored = request_for(spec, asked)
        if ignored:
            context.log.warning(
                f"request {asked.request_id}: the catalog and the asset say what "
                f"{asked.workload} is; ignored {'; '.join(ignored)}"
            )
        explicit.append(Pending(request, f"{REQUEST_KEY}{request.request_id}"))
    return explicit


def build_placement_sensor(
    specs: list[WorkloadSpec], declared: Mapping[str, CatalogRecord] | None = None
) -> dg.SensorDefinition:
    """``declared``: governance the source catalog declares for datasets not tagged yet."""
    by_key = {s.key.to_user_string(): s for s in specs}

    @dg.sensor(
        name="placement_sensor",
        description=(
            "Reasoning plane: places due work on governed data and queued requests jointly "
            "(governance, quotas, budgets, fresh telemetry, cost) and launches each placed run "
            "with its signed decision in the run tags."
        ),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        target=dg.AssetSelection.assets(*[s.key for s in specs]) if specs else None,
    )
    def placement_sensor(context: dg.SensorEvaluationContext, plane: PlaneResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        pending = [
            Pending(
                _request(spec, f"{spec.key.to_user_string()}@{marker}"),
                f"{spec.key.to_user_string()}@{marker}",
            )
            for spec, marker in due_workloads(context.instance, specs, cursor)
        ]
        with plane.connect() as conn:
            explicit = _explicit_requests(context, conn, plane, by_key, declared)
            conn.commit()
            if not pending and not explicit:
                return dg.SkipReason("no work on governed data is due and no request is pending")
            policy = plane.policy()
            result = run_tick(
                conn,
                pending + explicit,
                lambda c: plane.snapshot(c, declared=declared),
                policy,
                signer(),
                source="placement_sensor",
            )
            for decision, run_key in result.decisions:
                if run_key.startswith(REQUEST_KEY):
                    continue  # marked in the tick's own transaction
                if decision.status != DEFERRED:  # deferred: retried next tick
                    workload, _, marker = run_key.rpartition("@")
                    cursor[workload] = marker
            conn.commit()
        _log(context, result)
        return dg.SensorResult(
            run_requests=_run_requests(result, policy),
            asset_events=unplaced_observations(result),
            cursor=json.dumps(cursor, sort_keys=True),
        )

    return placement_sensor


def build_recurring_schedule(
    specs: list[WorkloadSpec], declared: Mapping[str, CatalogRecord] | None = None
) -> dg.ScheduleDefinition:
    recurring = [s for s in specs if s.recurring]

    @dg.schedule(
        name="recurring_placement_schedule",
        cron_schedule="0 2 * * *",
        execution_timezone="UTC",
        description=(
            "Nightly re-evaluation of recurring GPU workloads: each keeps its cluster unless "
            "moving saves more than it costs and its cluster is outside the stable band."
        ),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        target=dg.AssetSelection.assets(*[s.key for s in recurring]) if recurring else None,
    )
    def recurring_placement_schedule(context: dg.ScheduleEvaluationContext, plane: PlaneResource):
        tick = (context.scheduled_execution_time or datetime.now(UTC)).strftime("%Y%m%dT%H%M")
        with plane.connect() as conn:
            pending = []
            for spec in recurring:
                current, moved_at = store.last_placement(conn, spec.key.to_user_string())
                rid = f"{spec.key.to_user_string()}@schedule-{tick}"
                pending.append(
                    Pending(
                        _request(spec, rid, current_cluster=current, last_moved_at=moved_at), rid
                    )
                )
            if not pending:
                return dg.SkipReason("no recurring GPU workload")
            conn.commit()  # the tick runs in a transaction of its own (and anchors the heads)
            policy = plane.policy()
            result = run_tick(
                conn,
                pending,
                lambda c: plane.snapshot(c, declared=declared),
                policy,
                signer(),
                source="recurring_placement_schedule",
            )
            conn.commit()
        _log(context, result)
        requests = _run_requests(result, policy)
        return requests or dg.SkipReason(
            "; ".join(
                f"{d.request.workload}: {d.status}: {d.reason}"
                for d, _ in result.decisions
                if d.status != PLACED
            )
        )

    return recurring_placement_schedule
