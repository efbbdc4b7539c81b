"""Spend is what was used: a placed run carries its reservation's duration as a hard limit
(Dagster's run monitoring ends it), and failed or cancelled runs are charged the GPU time they
held, so that no reservation holds quota and budget after its run has ended.

Real Dagster instances, real runs and real run-status sensors on the real embedded PostgreSQL;
the runs' start and end are events stored with the times they happened at, as the run worker
and the daemon store them.
"""

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.instance.config import dagster_instance_config
from dagster._daemon.monitoring.run_monitoring import check_run_timeout

from reasoning_plane import snapshot as snapshot_mod
from reasoning_plane import store
from reasoning_plane.launch import run_tags
from reasoning_plane.model import PLACED, Budget, TeamQuota, TelemetrySample
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.store import actual_cost
from reasoning_plane.tick import Pending, run_tick
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from stack_defs.definitions import build_defs
from tests.unit.plane.factory import CATALOG, NOW, fleet, request

REPO = Path(__file__).resolve().parents[2]
TEAM = "financial-ml"
EVER = datetime(2000, 1, 1, tzinfo=UTC)
LIMIT_S = 12000  # 3,600 s of reference work on an A10 (speed 0.45): 8,000 s, x 1.5


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_defs()


@dg.op
def work() -> None:
    """Never executed: the runs' lives are their stored events."""


@dg.job
def placed_job() -> None:
    work()


def _place(url: str, *ids: str) -> dict:
    """Place one 2-GPU run of EU personal data per id on eu-fra-a10 (decisions and reservations
    in the ledger, as the placement sensor's tick writes them)."""
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        at = NOW - timedelta(seconds=1)
        store.insert_samples(conn, [TelemetrySample("eu-fra-a10", "A10", 16, 0.5, at)])
        pending = [
            Pending(request(i, gpu_count=2, data_gb=1, latency_slo_ms=None), f"run:{i}")
            for i in ids
        ]
        result = run_tick(
            conn,
            pending,
            lambda c: snapshot_mod.build_snapshot(
                c,
                fleet=fleet(),
                quotas={TEAM: TeamQuota(TEAM, 16, "test")},
                budgets={TEAM: Budget(TEAM, 5000.0)},
                catalog=CATALOG,
                now=NOW,
            ),
            PlacementPolicy(),
        )
        conn.commit()
    placed = {d.request.request_id: d for d, _ in result.decisions if d.status == PLACED}
    assert set(placed) == set(ids)
    return placed


def _run(instance: dg.DagsterInstance, decision) -> dg.DagsterRun:
    return instance.create_run_for_job(job_def=placed_job, tags=run_tags(decision, fleet()))


def _event(instance: dg.DagsterInstance, run: dg.DagsterRun, kind, at: float) -> dg.DagsterEvent:
    event = dg.DagsterEvent(event_type_value=kind.value, job_name=run.job_name, message=kind.value)
    instance.report_dagster_event(event, run_id=run.run_id, timestamp=at)
    return event


def _sense(defs, name: str, instance, run: dg.DagsterRun, event: dg.DagsterEvent) -> None:
    sensor = defs.resolve_sensor_def(name)
    plane = PlaneResource(postgres=PostgresResource())
    run = instance.get_run_by_id(run.run_id)
    with dg.build_run_status_sensor_context(
        name, event, instance, run, resources={"plane": plane}
    ) as ctx:
        sensor(ctx.for_run_failure() if name == "plane_failure_sensor" else ctx)


def _closed(url: str, decision_id: str) -> tuple[str, float, str]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT kind, usd, run_id FROM plane.ledger WHERE decision_id = %s"
            " AND kind <> 'reserve'",
            (decision_id,),
        ).fetchone()


def _payload(url: str, decision_id: str) -> dict:
    with psycopg.connect(url) as conn:
        return store.decision_for(conn, decision_id).payload


def _usage(url: str):
    with psycopg.connect(url) as conn:
        return store.usage(conn, EVER)[TEAM]


def test_a_failed_run_is_charged_the_gpu_time_it_held(plane_db: str, defs) -> None:
    decision = _place(plane_db, "failed")["failed"]
    started = time.time() - 3600
    with dg.instance_for_test() as instance:
        run = _run(instance, decision)
        _event(instance, run, dg.DagsterEventType.RUN_START, started)
        failure = _event(instance, run, dg.DagsterEventType.RUN_FAILURE, started + 600)
        _sense(defs, "plane_failure_sensor", instance, run, failure)
    kind, usd, run_id = _closed(plane_db, decision.decision_id)
    expected = actual_cost(_payload(plane_db, decision.decision_id), 600)
    assert expected == pytest.approx(1.10 * 2 * 600 / 3600)  # 2 A10s for 10 minutes, no egress
    assert (kind, run_id) == ("settle", run.run_id)
    assert usd == pytest.approx(expected) and usd > 0
    usage = _usage(plane_db)
    assert (usage.gpus_held, usage.reserved_usd) == (0, 0)
    assert usage.spent_usd == pytest.approx(expected)


def test_a_cancelled_run_is_charged_and_stops_holding_quota_and_budget(plane_db: str, defs) -> None:
    placed = _place(plane_db, "ran", "queued")
    started = time.time() - 3600
    with dg.instance_for_test() as instance:
        ran, queued = _run(instance, placed["ran"]), _run(instance, placed["queued"])
        _event(instance, ran, dg.DagsterEventType.RUN_START, started)
        assert _usage(plane_db).gpus_held == 4  # both reservations hold quota and budget
        cancelled = _event(instance, ran, dg.DagsterEventType.RUN_CANCELED, started + 300)
        _sense(defs, "plane_cancel_sensor", instance, ran, cancelled)
        # cancelled while queued: it never started, so it used nothing
        never = _event(instance, queued, dg.DagsterEventType.RUN_CANCELED, started + 300)
        _sense(defs, "plane_cancel_sensor", instance, queued, never)
        assert instance.get_run_by_id(ran.run_id).status == dg.DagsterRunStatus.CANCELED
    kind, usd, _ = _closed(plane_db, placed["ran"].decision_id)
    expected = actual_cost(_payload(plane_db, placed["ran"].decision_id), 300)
    assert kind == "settle" and usd == pytest.approx(expected) and usd > 0
    assert _closed(plane_db, placed["queued"].decision_id)[:2] == ("release", 0)
    usage = _usage(plane_db)
    assert (usage.gpus_held, usage.reserved_usd) == (0, 0)
    assert usage.spent_usd == pytest.approx(expected)


def test_a_run_past_its_reservation_is_ended_by_dagster_and_charged(plane_db: str, defs) -> None:
    """The run holds its GPUs longer than its decision reserved them for (x the policy's
    runtime_limit_factor): Dagster's run monitoring ends it, and it is charged what it held."""
    decision = _place(plane_db, "overrun")["overrun"]
    assert decision.chosen_evaluation.cost.duration_s == pytest.approx(8000)
    with dg.instance_for_test() as instance:
        run = _run(instance, decision)
        _event(instance, run, dg.DagsterEventType.RUN_START, time.time() - LIMIT_S - 60)
        # one pass of the daemon's run monitoring over this run, with no instance-wide limit
        record = instance.get_run_record_by_id(run.run_id)
        check_run_timeout(instance, record, logging.getLogger("test"), 0.0)
        record = instance.get_run_record_by_id(run.run_id)
        assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
        held = record.end_time - record.start_time
        assert held > LIMIT_S
        canceling = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELING)
        assert "Canceling due to exceeding maximum runtime of 12000 seconds." in [
            e.dagster_event.message for e in canceling
        ]
        (failure,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        _sense(defs, "plane_failure_sensor", instance, run, failure.dagster_event)
    kind, usd, _ = _closed(plane_db, decision.decision_id)
    assert kind == "settle"
    assert usd == pytest.approx(actual_cost(_payload(plane_db, decision.decision_id), held))
    assert usd > decision.chosen_evaluation.cost.total_usd  # it used more than reserved
    assert _usage(plane_db).gpus_held == 0


def test_run_monitoring_is_on_in_the_checkout_instance() -> None:
    """Without the daemon's run monitoring nothing enforces dagster/max_runtime."""
    config, _ = dagster_instance_config(str(REPO))
    assert config["run_monitoring"]["enabled"] is True
