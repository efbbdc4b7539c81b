"""Run-status sensors: link runs to decisions, meter ended runs, re-place capacity failures.

* a run that starts is linked to its decision (``plane explain RUN_ID`` then finds it);
* a run that ends (succeeds, fails or is cancelled; also when Dagster's run monitoring ends it
  past its ``dagster/max_runtime``) settles its reservation at what it used: the GPU cost scaled
  by the time it held them (its run record's start to end), plus the estimated egress. A run
  that never started (e.g. cancelled in the queue) releases it at $0. Either way the
  reservation stops holding the team's quota and budget;
* when a failure is a capacity refusal (the cluster could not schedule the GPU pods) the work is
  queued again in ``plane.requests`` with that cluster excluded, at most ``MAX_ATTEMPTS`` times
  in all.
"""

import re
import time

import dagster as dg
import psycopg

from reasoning_plane import store
from reasoning_plane.launch import DECISION_ID
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
    return run.tags.get(DECISION_ID)


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


def held_seconds(record: dg.RunRecord | None, now: float | None = None) -> float | None:
    """Seconds an ended run held what it was placed on: its record's start to end (to ``now``
    when no end is recorded); None when it never started."""
    if record is None or not record.start_time:
        return None
    end = record.end_time or (time.time() if now is None else now)
    return max(end - record.start_time, 0.0)


def _close_ended(
    context: dg.RunStatusSensorContext, conn: psycopg.Connection, decision_id: str
) -> None:
    """Close the reservation of the context's ended run at what it used (see the module)."""
    run = context.dagster_run
    seconds = held_seconds(context.instance.get_run_record_by_id(run.run_id))
    closed, usd = store.close_ended_run(conn, decision_id, run.run_id, seconds)
    what = (
        "never started: $0.0000 released"
        if seconds is None or usd is None
        else f"{seconds:.1f} s, ${usd:.4f} settled"
    )
    context.log.info(
        f"run {run.run_id} {run.status.value.lower()}: "
        + (what if closed else "reservation already closed")
        + f" for decision {decision_id}"
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="plane_metering_sensor",
    description="Settles the reservation of each finished placed run at its actual cost.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def plane_metering_sensor(context: dg.RunStatusSensorContext, plane: PlaneResource):
    decision_id = _decision_id(context.dagster_run)
    if decision_id is None:
        return None  # not placed by the plane (see the note above _decision_id)
    with plane.connect() as conn:
        _close_ended(context, conn, decision_id)
        conn.commit()
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="plane_cancel_sensor",
    description="Settles the reservation of each cancelled placed run at the GPU time it held "
    "($0 when it never started), so that it stops holding the team's quota and budget.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def plane_cancel_sensor(context: dg.RunStatusSensorContext, plane: PlaneResource):
    decision_id = _decision_id(context.dagster_run)
    if decision_id is None:
        return None  # not placed by the plane (see the note above _decision_id)
    with plane.connect() as conn:
        _close_ended(context, conn, decision_id)
        conn.commit()
    return None


@dg.run_failure_sensor(
    name="plane_failure_sensor",
    description="Settles the reservation of a failed placed run at the GPU time it held; "
    "re-places capacity failures on the next feasible cluster "
    f"(at most {MAX_ATTEMPTS} attempts).",
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
        _close_ended(context, conn, decision_id)
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
