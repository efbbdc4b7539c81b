"""Run-status sensors: link runs to decisions, meter finished runs, re-place capacity failures.

* a run that starts is linked to its decision (``plane explain RUN_ID`` then finds it);
* a run that succeeds settles its reservation at its actual cost (GPU cost scaled by the run's
  real duration, plus the estimated egress) in the team ledger;
* a run that fails releases its reservation; when the failure is a capacity refusal (the
  cluster could not schedule the GPU pods) the work is queued again in ``plane.requests`` with
  that cluster excluded, at most ``MAX_ATTEMPTS`` times in all.
"""

import re

import dagster as dg

from reasoning_plane import store
from resources.plane import PlaneResource

MAX_ATTEMPTS = 3
SYSTEM = "system:"  # requests the plane's own sensors queue (sensors.placement.SYSTEM_REQUESTER)
CAPACITY_ERRORS = re.compile(
    r"Insufficient nvidia\.com/gpu|FailedScheduling|Unschedulable|exceeded quota|"
    r"didn't have enough resource|capacity",
    re.IGNORECASE,
)


# A run-status sensor tick that sees several runs must not mix a SkipReason for one run with a
# reaction (None) for another: Dagster rejects the whole tick and, as the cursor does not move,
# every later tick too. So a run without a placement decision is answered with None as well.
def _decision_id(run: dg.DagsterRun) -> str | None:
    return run.tags.get("plane/decision_id")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    name="plane_run_started_sensor",
    description="Links each started run to the placement decision it carries out.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def plane_run_started_sensor(context: dg.RunStatusSensorContext, plane: PlaneResource):
    decision_id = _decision_id(context.dagster_run)
    if decision_id is None:
        return None  # not placed by the plane (see the note above _decision_id)
    with plane.connect() as conn:
        store.link_run(conn, decision_id, context.dagster_run.run_id)
        conn.commit()
    return None


def actual_cost(payload: dict, seconds: float) -> float:
    """GPU cost scaled from the estimated to the actual duration, plus the egress."""
    chosen = next((c for c in payload["candidates"] if c["chosen"]), None)
    if chosen is None:
        return 0.0
    estimated = max(chosen["duration_s"], 1e-9)
    return chosen["gpu_usd"] * (seconds / estimated) + chosen["egress_usd"]


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="plane_metering_sensor",
    description="Settles the reservation of each finished placed run at its actual cost.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def plane_metering_sensor(context: dg.RunStatusSensorContext, plane: PlaneResource):
    run = context.dagster_run
    decision_id = _decision_id(run)
    if decision_id is None:
        return None  # not placed by the plane (see the note above _decision_id)
    record = context.instance.get_run_record_by_id(run.run_id)
    seconds = 0.0
    if record is not None and record.start_time and record.end_time:
        seconds = record.end_time - record.start_time
    with plane.connect() as conn:
        store.link_run(conn, decision_id, run.run_id)
        logged = store.decision_for(conn, decision_id)
        usd = actual_cost(logged.payload, seconds) if logged else 0.0
        settled = store.close_reservation(
            conn, decision_id, run_id=run.run_id, kind="settle", usd=usd
        )
        conn.commit()
    context.log.info(
        f"run {run.run_id}: {seconds:.1f} s, ${usd:.4f} "
        f"{'settled' if settled else 'already settled'} for decision {decision_id}"
    )
    return None


@dg.run_failure_sensor(
    name="plane_failure_sensor",
    description="Releases the reservation of a failed placed run; re-places capacity failures "
    f"on the next feasible cluster (at most {MAX_ATTEMPTS} attempts).",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def plane_failure_sensor(context: dg.RunFailureSensorContext, plane: PlaneResource):
    run = context.dagster_run
    decision_id = _decision_id(run)
    if decision_id is None:
        return None  # not placed by the plane (see the note above _decision_id)
    message = context.failure_event.message or ""
    for event in context.get_step_failure_events():
        data = event.event_specific_data
        if data is not None and getattr(data, "error", None) is not None:
            message += "\n" + data.error.to_string()
    with plane.connect() as conn:
        store.link_run(conn, decision_id, run.run_id)
        store.close_reservation(conn, decision_id, run_id=run.run_id, kind="release")
        logged = store.decision_for(conn, decision_id)
        replaced = None
        if logged and CAPACITY_ERRORS.search(message):
            request = dict(logged.payload["request"])
            attempt = int(request.get("attempt", 1))
            if attempt < MAX_ATTEMPTS:
                base = request["request_id"].split("#attempt")[0]
                request["attempt"] = attempt + 1
                request["exclude_clusters"] = sorted(
                    set(request.get("exclude_clusters") or []) | {logged.cluster}
                )
                request["request_id"] = f"{base}#attempt{attempt + 1}"
                request["requested_by"] = f"{SYSTEM}plane_failure_sensor"
                store.add_request(conn, request["request_id"], request)
                replaced = request["request_id"]
        conn.commit()
    if replaced:
        context.log.warning(
            f"run {run.run_id} failed for capacity on {logged.cluster}; re-placing as {replaced}"
        )
    return None
