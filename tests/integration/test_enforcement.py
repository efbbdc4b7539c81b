"""Enforcement where the data is read (issue 12): every asset on governed data runs only under a
signed placement decision for itself, in every execution path, and a request cannot describe its
own data or team.

Real Dagster execution (in-process, as ``dagster job execute`` and ``materialize()`` run), the
real embedded PostgreSQL, the real sample files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from assets.workloads import declared_records, workload_specs
from reasoning_plane import store
from reasoning_plane.gpu_telemetry import read_gpus
from reasoning_plane.launch import run_tags
from reasoning_plane.model import WorkloadRequest
from reasoning_plane.signing import signer
from reasoning_plane.snapshot import local_fleet
from reasoning_plane.tick import Pending, run_tick
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from sensors.placement import _request, request_for
from stack_defs.definitions import build_defs
from tests.placed import GDPR_EU, declared_zone, materialize_placed

REPO = Path(__file__).resolve().parents[2]
TICKETS = dg.AssetKey(["ingested", "support_tickets"])
TALKS = dg.AssetKey(["ingested", "conference_transcripts"])


@pytest.fixture
def world(tmp_path: Path, plane_db: str, fresh_schema: None):
    shutil.copytree(REPO / "data" / "samples", tmp_path / "samples")
    shutil.copy(REPO / "data" / "sources.yaml", tmp_path / "sources.yaml")
    lake = tmp_path / "lake"
    defs = build_defs(sources_file=tmp_path / "sources.yaml", lakehouse_root=str(lake))
    with dg.instance_for_test() as instance:
        yield defs, instance, lake, plane_db


def _execute(defs, instance, key: dg.AssetKey, tags: dict[str, str] | None = None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        asset_selection=[key], instance=instance, tags=tags or {}, raise_on_error=False
    )


def _failure(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "the step did not fail"
    return failures[0].event_specific_data.error.message


def _placed_tags(defs, instance, key: dg.AssetKey, zone=GDPR_EU) -> dict[str, str]:
    """Tags of the run `plane run` launched for ``key`` (its decision, claimed by that run)."""
    outcome = materialize_placed(defs, [key], instance=instance, zone=zone)[key.to_user_string()]
    return dict(instance.get_run_by_id(outcome.run_id).tags)


def test_in_process_execution_without_a_decision_reads_nothing(world) -> None:
    """`dagster job execute` / `materialize()` of EU personal data on a machine declared US:
    refused inside the step, before the source file is read."""
    defs, instance, lake, _ = world
    with declared_zone("US", "ISO27001"):
        result = _execute(defs, instance, TICKETS)
    assert not result.success
    message = _failure(result)
    assert "ingested/support_tickets reads governed data (support_tickets)" in message
    assert "no placement decision" in message and "plane run --select" in message
    assert not (lake / "ingested" / "support_tickets.parquet").exists()  # nothing read


def test_a_decision_for_other_data_cannot_be_borrowed(world) -> None:
    """The tags of a decision made for the public transcripts on a run of the EU tickets."""
    defs, instance, lake, _ = world
    talks = _placed_tags(defs, instance, TALKS, zone=("US", "ISO27001"))
    assert talks["plane/zone"] == "US"
    with declared_zone("US", "ISO27001"):
        result = _execute(defs, instance, TICKETS, talks)
    message = _failure(result)
    assert "placed ingested/conference_transcripts alone" in message
    assert not (lake / "ingested" / "support_tickets.parquet").exists()


def test_a_decision_runs_once(world) -> None:
    """A re-execution (or a launchpad copy) carrying a decision another run claimed."""
    defs, instance, _lake, url = world
    tags = _placed_tags(defs, instance, TICKETS)  # placed on this machine declared EU, ran
    with psycopg.connect(url) as conn:
        holder = store.signed_decision(conn, tags["plane/decision_id"]).claimed_by
    assert holder is not None
    with declared_zone(*GDPR_EU):
        again = _execute(defs, instance, TICKETS, tags)
    message = _failure(again)
    assert f"is claimed by run {holder}" in message and "carries out one run" in message


def test_a_decision_made_for_eu_is_refused_on_a_machine_now_declared_us(world) -> None:
    defs, instance, lake, _ = world
    plane = PlaneResource(postgres=PostgresResource())
    spec = next(s for s in workload_specs(defs.assets) if s.key == TICKETS)
    # Placed (not run) while this machine is declared EU ...
    with declared_zone("EU", "ISO27001,GDPR"):
        fleet = local_fleet(read_gpus())
        with plane.connect() as conn:
            result = run_tick(
                conn,
                [Pending(_request(spec, "tickets-eu"), "tickets-eu")],
                lambda c: plane.snapshot(c, fleet=fleet, declared=declared_records(defs.assets)),
                plane.policy(),
                signer(),
            )
            conn.commit()
    ((decision, _),) = result.decisions
    assert decision.status == "placed", decision.reason
    # ... and run after the machine was re-declared US: refused, nothing read.
    with declared_zone("US", "ISO27001"):
        refused = _execute(defs, instance, TICKETS, run_tags(decision, fleet))
    message = _failure(refused)
    assert "this machine is now declared US" in message
    assert not (lake / "ingested" / "support_tickets.parquet").exists()


def test_a_request_cannot_describe_its_own_data_or_team() -> None:
    """`plane request` naming the EU tickets' embedding with the public transcripts as its data,
    another team and more GPUs: the plane places the workload's real facts."""
    defs = build_defs()
    spec = next(
        s
        for s in workload_specs(defs.assets)
        if s.key == dg.AssetKey(["embeddings", "support_tickets"])
    )
    asked = WorkloadRequest(
        request_id="sneaky",
        workload="embeddings/support_tickets",
        team="media-ml",
        datasets=("conference_transcripts",),
        gpu_count=8,
        gpu_memory_gb=1,
        estimated_duration_s=60,
        latency_slo_ms=50,
        priority=1000,
    )
    request, ignored = request_for(spec, asked)
    assert request.team == "customer-support"  # charged to the owner, not the requester
    assert "support_tickets" in request.datasets  # lineage: the data it really reads
    assert "conference_transcripts" in request.datasets  # adding data only tightens
    assert (request.gpu_count, request.priority) == (spec.gpu_count, spec.priority)
    assert request.latency_slo_ms == 50  # a stricter SLO is kept
    assert any("team 'media-ml'" in i for i in ignored)
    assert any("datasets without support_tickets" in i for i in ignored)


def _queue(url: str, request_id: str, requested_by: str, **overrides) -> None:
    from reasoning_plane.explain import request_to_dict

    asked = WorkloadRequest(
        request_id=request_id,
        workload="embeddings/support_tickets",
        team="media-ml",
        datasets=("conference_transcripts",),
        gpu_count=0,
        gpu_memory_gb=0,
        estimated_duration_s=60,
        **overrides,
    )
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        store.add_request(
            conn, request_id, {**request_to_dict(asked), "requested_by": requested_by}
        )
        conn.commit()


def test_the_placement_sensor_places_the_catalog_facts_for_allowed_requesters(
    world, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack end to end: a request for the EU tickets' embedding that names the public
    transcripts and another team. Asked by a principal outside the owning team it is rejected
    (Cedar `workload-owner`); asked by the owner team's agent it is placed in the EU, for the
    tickets, charged to their owner."""
    defs, instance, _, url = world
    monkeypatch.setenv("PLANE_LOCAL_CPU_SLOTS", "4")
    _queue(url, "by-outsider", "media-tagger")
    _queue(url, "by-owner", "support-copilot")
    _queue(url, "by-nobody", "mallory")
    sensor = defs.resolve_sensor_def("placement_sensor")
    with (
        declared_zone(*GDPR_EU),
        dg.build_sensor_context(
            instance=instance,
            definitions=defs,
            resources={"plane": PlaneResource(postgres=PostgresResource())},
        ) as context,
    ):
        result = sensor(context)
    (run,) = result.run_requests
    assert run.tags["plane/request_id"] == "by-owner"
    assert run.tags["plane/team"] == "customer-support" and run.tags["plane/zone"] == "EU"
    assert [k.to_user_string() for k in run.asset_selection] == ["embeddings/support_tickets"]
    with psycopg.connect(url) as conn:
        status = dict(conn.execute("SELECT request_id, status FROM plane.requests").fetchall())
        logged = store.decision_for(conn, run.tags["plane/decision_id"])
        reserved_team = conn.execute(
            "SELECT team FROM plane.ledger WHERE decision_id = %s", (logged.decision_id,)
        ).fetchone()
    assert status == {"by-outsider": "rejected", "by-owner": "placed", "by-nobody": "rejected"}
    assert set(logged.payload["request"]["datasets"]) == {
        "support_tickets",
        "conference_transcripts",
    }
    assert reserved_team == ("customer-support",)


def test_a_queued_request_is_decided_once_by_ticks_that_both_read_it(world) -> None:
    """Two ticks read the same pending request; the first decides it (and marks it in its own
    transaction); the second, run after, drops it instead of deciding it again and releasing
    the first decision's reservation as superseded."""
    defs, _, _, url = world
    _queue(url, "once", "support-copilot")
    plane = PlaneResource(postgres=PostgresResource())
    spec = next(
        s
        for s in workload_specs(defs.assets)
        if s.key == dg.AssetKey(["embeddings", "support_tickets"])
    )
    pending = [Pending(_request(spec, "once"), "request:once")]
    ticks = []
    with declared_zone(*GDPR_EU):
        fleet = local_fleet(read_gpus())
        for _ in range(2):
            with plane.connect() as conn:
                ticks.append(
                    run_tick(
                        conn,
                        pending,
                        lambda c: plane.snapshot(
                            c, fleet=fleet, declared=declared_records(defs.assets)
                        ),
                        plane.policy(),
                        signer(),
                    )
                )
                conn.commit()
    first, second = ticks
    ((decision, _),) = first.decisions
    assert decision.status == "placed" and second.decisions == ()
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status, decision_id FROM plane.requests WHERE request_id = 'once'"
        ).fetchone()
        kinds = [k for (k,) in conn.execute("SELECT kind FROM plane.ledger ORDER BY id")]
    assert row == ("placed", decision.decision_id)
    assert kinds == ["reserve"]  # nothing released as superseded
