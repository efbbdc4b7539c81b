"""``residency_sensor``: runs the residency planner on metered demand and requests
``serving/residency_plan`` when the plan would change what a runtime holds.

The asset's run plans again and applies (the plan may have moved on by then; the run's plan is
the one applied and shown). The same set of actions is requested at most once per
``REPEAT_S`` (the run key), so an apply that keeps failing is retried, not hammered.
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg

from assets.serving import ResidencyResource, pending_actions, residency_job
from resources.plane import PlaneResource

REPEAT_S = 600
INTERVAL_S = 60


@dg.sensor(
    name="residency_sensor",
    job=residency_job,
    minimum_interval_seconds=INTERVAL_S,
    description=(
        "Runs the model residency planner on the gateway's metered demand and materializes "
        "serving/residency_plan (which applies it) when the plan would load, sleep or unload a "
        "model."
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def residency_sensor(
    context: dg.SensorEvaluationContext, residency: ResidencyResource, plane: PlaneResource
):
    now = datetime.now(UTC)
    actions = pending_actions(context.instance, residency, plane, now)
    if not actions:
        return dg.SkipReason("the runtimes hold what the plan says")
    digest = hashlib.sha256("\n".join(actions).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=f"residency:{digest}:{int(now.timestamp()) // REPEAT_S}",
        tags={"plane/residency_actions": str(len(actions))},
    )
