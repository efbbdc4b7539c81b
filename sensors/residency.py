"""``residency_sensor``: runs the residency planner on metered demand and requests
``serving/residency_plan`` when the plan differs from what the node agents report and from the
desired state they were last given.

It evaluates every ``INTERVAL_S`` and, within ``PROMPT_S``, as soon as the gateway records a
request that nothing loaded served (deferred, or refused for the SLO: re-plan on deferral). Its
cursor is the newest such record seen (``recorded_at``) and when it last planned. A prompt
evaluation only asks the planner: the planner's hysteresis (minimum residency, cool-down,
switch margin) decides whether that demand moves anything, so alternating demand does not
thrash whichever way the sensor is woken.

The asset's run plans again and records the desired state (the plan may have moved on by then;
the run's plan is the one recorded and shown); each node's agent applies it. The same set of
changes is requested at most once per ``REPEAT_S`` (the run key).
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.serving import ResidencyResource, build_plan, differences, residency_job
from reasoning_plane import store
from reasoning_plane.serving.planner import unserved_since
from resources.plane import PlaneResource

REPEAT_S = 600
INTERVAL_S = 60  # a plan at least this often
PROMPT_S = 5  # how soon unserved demand is seen (the sensor's minimum interval)


def _cursor(raw: str | None, now: datetime) -> tuple[datetime, datetime | None]:
    """(newest unserved record seen, when it last planned) from the sensor's cursor; without
    one, records of the last minute count as new (the first evaluation plans anyway)."""
    if not raw:
        return now - timedelta(seconds=INTERVAL_S), None
    data = json.loads(raw)
    planned = data.get("planned")
    return (
        datetime.fromisoformat(data["seen"]),
        datetime.fromisoformat(planned) if planned else None,
    )


@dg.sensor(
    name="residency_sensor",
    job=residency_job,
    minimum_interval_seconds=PROMPT_S,
    description=(
        "Runs the model residency planner on the gateway's metered demand (every minute, and "
        "within seconds of a request that nothing loaded served) and materializes "
        "serving/residency_plan (the desired state the node agents apply) when the plan would "
        "load, sleep or unload a model."
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def residency_sensor(
    context: dg.SensorEvaluationContext, residency: ResidencyResource, plane: PlaneResource
):
    now = datetime.now(UTC)
    seen, planned = _cursor(context.cursor, now)
    with plane.connect() as conn:
        unserved = unserved_since(conn, seen)
        conn.commit()
    due = planned is None or now - planned >= timedelta(seconds=INTERVAL_S)
    if not due and not unserved:
        return dg.SkipReason("no unserved demand since the last plan; next plan within a minute")
    newest = max([seen, *unserved.values()])
    context.update_cursor(json.dumps({"seen": newest.isoformat(), "planned": now.isoformat()}))
    result, _, actual = build_plan(context.instance, residency, plane, now)
    changes = differences(result, actual)
    why = f" (unserved demand for {', '.join(sorted(unserved))})" if unserved else ""
    if not changes:
        return dg.SkipReason(f"the runtimes hold what the plan says{why}")
    with plane.connect() as conn:
        desired = store.desired_states(conn)
    if desired == {(r.node, r.runtime, r.model): r.state for r in result.rows}:
        return dg.SkipReason(f"the node agents have this plan; waiting for them: {changes}")
    digest = hashlib.sha256("\n".join(changes).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=f"residency:{digest}:{int(now.timestamp()) // REPEAT_S}",
        tags={"plane/residency_actions": str(len(changes))},
    )
