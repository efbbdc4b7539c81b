"""The reasoning plane in Dagster, on a real instance and the real embedded PostgreSQL."""

import json
import math
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from reasoning_plane import store
from reasoning_plane.model import TelemetrySample
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.tick import Pending, run_tick
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from stack_defs.definitions import build_defs
from tests.placed import materialize_placed
from tests.unit.plane.factory import request as make_request

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed_scenario"
SCHEMAS = (
    "governance",
    "models",
    "plane",
    "vectors_eu",
    "vectors_us",
    "vectors_uk",
    "vectors_apac",
)


def _drop(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in SCHEMAS:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _samples(now: datetime, age_s: float = 0.5) -> list[TelemetrySample]:
    at = now - timedelta(seconds=age_s)
    return [
        TelemetrySample("us-east-a100", "A100-80GB", 24, 0.6, at),
        TelemetrySample("eu-fra-a10", "A10", 12, 0.6, at),
        TelemetrySample("eu-par-h100", "H100-80GB", 4, 0.6, at),
    ]


@pytest.fixture
def plane_env(monkeypatch: pytest.MonkeyPatch, database_url: str):
    monkeypatch.setenv("PLANE_FLEET_FILE", str(SEED / "fleet.yaml"))
    monkeypatch.setenv("PLANE_QUOTAS_FILE", str(SEED / "quotas.yaml"))
    monkeypatch.setenv("PLANE_BUDGETS_FILE", str(SEED / "budgets.yaml"))
    _drop(database_url)
    yield database_url
    _drop(database_url)


@pytest.fixture
def world(plane_env: str, tmp_path: Path):
    shutil.copytree(REPO / "data" / "samples", tmp_path / "samples")
    shutil.copy(REPO / "data" / "sources.yaml", tmp_path / "sources.yaml")
    defs = build_defs(sources_file=tmp_path / "sources.yaml", lakehouse_root=str(tmp_path / "l"))
    with dg.instance_for_test() as instance:
        keys = [
            dg.AssetKey.from_user_string(k)
            for k in (
                "ingested/support_tickets",
                "catalog/support_tickets",
                "chunks/support_tickets",
                "ingested/conference_transcripts",
                "catalog/conference_transcripts",
                "chunks/conference_transcripts",
            )
        ]
        materialize_placed(defs, keys, instance=instance)
        # the tests below count the plane's rows: start them from the materialized data alone
        with psycopg.connect(plane_env, autocommit=True) as conn:
            conn.execute("DROP SCHEMA plane CASCADE")
        yield defs, instance, plane_env


def _tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("placement_sensor")
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"plane": PlaneResource(postgres=PostgresResource())},
    ) as context:
        return sensor(context)


def test_due_gpu_assets_are_placed_once_with_decision_tags(
    world, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defs, instance, url = world
    policy = tmp_path / "placement-policy.yaml"
    policy.write_text("runtime_limit_factor: 2\n")
    monkeypatch.setenv("PLANE_PLACEMENT_POLICY", str(policy))
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        store.insert_samples(conn, _samples(datetime.now(UTC)))
        conn.commit()
    result = _tick(defs, instance)
    by_asset = {r.asset_selection[0].to_user_string(): r for r in result.run_requests}
    assert set(by_asset) == {"embeddings/support_tickets", "embeddings/conference_transcripts"}
    tickets = by_asset["embeddings/support_tickets"]
    assert tickets.tags["plane/zone"] == "EU"  # EU PII stays in the EU
    assert tickets.tags["plane/cluster"] in {"eu-fra-a10", "eu-par-h100"}
    assert tickets.tags["plane/namespace"] == "customer-support"
    assert tickets.tags["plane/executor"] == "k8s_job_executor"
    assert "nvidia.com/gpu" not in tickets.tags["dagster-k8s/config"]  # run worker: no GPU
    step = tickets.run_config["execution"]["config"]["k8s"]
    assert step["job_namespace"] == "customer-support"
    assert step["step_k8s_config"]["container_config"]["resources"]["limits"] == {
        "nvidia.com/gpu": "1"
    }
    assert tickets.run_key.startswith("embeddings/support_tickets@")

    with psycopg.connect(url) as conn:
        logged = store.decision_for(conn, tickets.tags["plane/decision_id"])
        assert logged is not None and logged.status == "placed"
        assert "us-east-a100/A100-80GB" in logged.explanation  # every candidate is explained
        # the reservation's duration is the run's hard limit, x the policy's factor (2 here)
        chosen = next(c for c in logged.payload["candidates"] if c["chosen"])
        limit = math.ceil(chosen["duration_s"] * 2)
        assert tickets.tags["dagster/max_runtime"] == str(limit)
        deadline = {"active_deadline_seconds": limit}
        assert json.loads(tickets.tags["dagster-k8s/config"])["job_spec_config"] == deadline
        assert step["step_k8s_config"]["job_spec_config"] == deadline
        reserved = conn.execute("SELECT count(*) FROM plane.ledger WHERE kind = 'reserve'")
        assert reserved.fetchone()[0] == 2

    again = _tick(defs, instance, result.cursor)  # same upstream state: nothing new
    assert isinstance(again, dg.SkipReason)


def test_stale_telemetry_is_never_trusted(world) -> None:
    defs, instance, url = world
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        store.insert_samples(conn, _samples(datetime.now(UTC), age_s=600))
        conn.commit()
    result = _tick(defs, instance)
    # Every GPU pool is ineligible; the GPU-optional work falls back to a CPU slot.
    assert result.run_requests and all(
        r.tags["plane/gpu_type"] == "cpu" and r.tags["plane/device"] == "cpu"
        for r in result.run_requests
    )
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT payload FROM plane.decisions").fetchall()
    for (payload,) in rows:
        gpu = [c for c in payload["candidates"] if not c["candidate"].endswith("/cpu")]
        assert gpu and all(not c["feasible"] for c in gpu)
        assert all(any(r["rule"] == "telemetry_stale" for r in c["reasons"]) for c in gpu)


def _run_with_tags(instance, tags: dict[str, str], fail_with: str | None = None):
    @dg.op
    def work() -> None:
        if fail_with:
            raise RuntimeError(fail_with)

    @dg.job
    def placed_job() -> None:
        work()

    return placed_job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def test_success_settles_and_capacity_failure_re_places(world) -> None:
    defs, instance, url = world
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        store.insert_samples(conn, _samples(datetime.now(UTC)))
        conn.commit()
    result = _tick(defs, instance)
    ids = [r.tags["plane/decision_id"] for r in result.run_requests]
    plane = PlaneResource(postgres=PostgresResource())

    ok = _run_with_tags(instance, {"plane/decision_id": ids[0]})
    success = next(e for e in ok.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    with dg.build_run_status_sensor_context(
        "plane_metering_sensor", success, instance, ok.dagster_run, resources={"plane": plane}
    ) as ctx:
        defs.resolve_sensor_def("plane_metering_sensor")(ctx)

    bad = _run_with_tags(
        instance,
        {"plane/decision_id": ids[1]},
        fail_with="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    )
    failure = next(e for e in bad.all_events if e.event_type_value == "PIPELINE_FAILURE")
    with dg.build_run_status_sensor_context(
        "plane_failure_sensor", failure, instance, bad.dagster_run, resources={"plane": plane}
    ) as ctx:
        defs.resolve_sensor_def("plane_failure_sensor")(ctx.for_run_failure())

    with psycopg.connect(url) as conn:
        kinds = dict(
            conn.execute(
                "SELECT decision_id, kind FROM plane.ledger WHERE kind <> 'reserve'"
            ).fetchall()
        )
        # the failed run is charged the GPU time it held, as the finished one is
        assert kinds == {ids[0]: "settle", ids[1]: "settle"}
        usage = store.usage(conn, datetime(2000, 1, 1, tzinfo=UTC))
        assert all(u.gpus_held == 0 for u in usage.values())  # nothing held after both ended
        pending = store.pending_requests(conn)
        assert len(pending) == 1 and pending[0]["attempt"] == 2
        failed_on = store.decision_for(conn, ids[1]).cluster
        assert pending[0]["exclude_clusters"] == [failed_on]
        assert store.decision_for(conn, bad.dagster_run.run_id).decision_id == ids[1]

    retry = _tick(defs, instance, result.cursor)  # the re-placement goes elsewhere
    assert len(retry.run_requests) == 1
    assert retry.run_requests[0].tags["plane/cluster"] != failed_on, [
        (r.run_key, r.tags["plane/cluster"], r.tags["plane/gpu_type"]) for r in retry.run_requests
    ]


def test_concurrent_ticks_never_exceed_a_sixteen_gpu_quota(plane_env: str) -> None:
    url = plane_env
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        from data_plane import catalog_store
        from data_plane.catalog import tag_dataset
        from data_plane.policy import load_policy

        catalog_store.ensure_schema(conn)
        catalog_store.upsert_entry(
            conn,
            tag_dataset(
                dataset_id="customer_orders_eu",
                storage_endpoints=["s3://eu-central-1/x"],
                source_system="SAP_ERP",
                owner_team="financial-ml",
                declared_classification="PII",
                declared_retention="7_years",
                pii_columns={"email": ["email"]},
                last_updated=now,
                policy=load_policy(REPO / "config" / "governance.yaml"),
            ),
        )
        store.insert_samples(
            conn,
            [
                TelemetrySample("eu-fra-a10", "A10", 16, 0.5, now),
                TelemetrySample("eu-par-h100", "H100-80GB", 8, 0.5, now),
            ],
        )
        conn.commit()
    plane = PlaneResource(postgres=PostgresResource())
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with psycopg.connect(url) as conn:
                pending = [
                    Pending(
                        make_request(f"w{n}-{i}", gpu_count=3, data_gb=1, latency_slo_ms=None),
                        f"w{n}-{i}",
                    )
                    for i in range(4)
                ]
                run_tick(
                    conn,
                    pending,
                    lambda c: plane.snapshot(c, now=now + timedelta(seconds=1)),
                    PlacementPolicy(max_telemetry_age_s=3600),
                )
                conn.commit()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with psycopg.connect(url) as conn:
        held = store.usage(conn, now - timedelta(days=1))["financial-ml"].gpus_held
        placed = conn.execute("SELECT count(*) FROM plane.decisions WHERE status = 'placed'")
        n_placed = placed.fetchone()[0]
    assert held <= 16 and held == 3 * n_placed
    assert n_placed == 5  # 16 GPUs of quota hold five 3-GPU runs
