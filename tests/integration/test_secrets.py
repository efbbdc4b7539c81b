"""Secrets never reach logs, tags or metadata (issue 8, item 7).

The whole path runs with a password-bearing database URL (a real role with a password on the
real PostgreSQL): ingestion, governance, chunking, embedding into the regional store, a
placement tick of the reasoning plane, the decision log; then every run's tags and config, the
job snapshots, every event of the event log (log lines and asset metadata included), the rows
the plane and the catalog wrote, the sensor's run requests and the CLI's messages are searched
for the password. The same for a kubeconfig token through a Kubernetes launch.
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest
from dagster._core.launcher import LaunchRunContext
from dagster._serdes import serialize_value
from dagster_k8s import K8sRunLauncher

from reasoning_plane import store
from reasoning_plane.launch import run_config, run_tags
from resources.launcher import PlacementRunLauncher
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from stack_defs.definitions import build_defs
from tests.integration.placed_jobs import placed_gpu_job
from tests.integration.test_k8s_launch import (
    CapturingBatchApi,
    NoCoreApi,
    decisions,
    kubeconfig,
    log_decisions,
)
from tests.integration.test_plane_dagster import SEED, _samples
from tests.placed import run_placed_result

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Zq9-leak-probe-S3cret"
ROLE = "plane_leak_probe"


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{ROLE}:{PASSWORD}@{host}"))


@pytest.fixture
def secret_url(database_url: str, monkeypatch: pytest.MonkeyPatch):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
        for schema in ("governance", "models", "plane", "vectors_eu", "vectors_us"):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    url = _with_password(database_url)
    with psycopg.connect(url) as conn:  # the URL works: the password is really in use
        assert conn.execute("SELECT current_user").fetchone()[0] == ROLE
    monkeypatch.setenv("PLANE_DATABASE_URL", url)
    monkeypatch.setenv("PLANE_FLEET_FILE", str(SEED / "fleet.yaml"))
    monkeypatch.setenv("PLANE_QUOTAS_FILE", str(SEED / "quotas.yaml"))
    monkeypatch.setenv("PLANE_BUDGETS_FILE", str(SEED / "budgets.yaml"))
    yield url
    with psycopg.connect(database_url, autocommit=True) as conn:
        for schema in ("governance", "models", "plane", "vectors_eu", "vectors_us"):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"DROP OWNED BY {ROLE} CASCADE")
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


def _everything_dagster_kept(instance: dg.DagsterInstance) -> str:
    texts = []
    for run in instance.get_runs():
        texts.append(json.dumps(run.tags) + json.dumps(run.run_config, default=str))
        if run.job_snapshot_id:
            texts.append(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
        texts += [serialize_value(event) for event in instance.all_logs(run.run_id)]
    return "\n".join(texts)


def _rows(url: str) -> str:
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema IN ('governance', 'plane', 'models')"
        ).fetchall()
        return "\n".join(
            str(
                conn.execute(
                    f"SELECT coalesce(string_agg(t::text, '|'), '') FROM {name} t"
                ).fetchone()[0]
            )
            for (name,) in tables
        )


def test_a_password_bearing_database_url_never_leaks(secret_url: str, tmp_path: Path) -> None:
    shutil.copytree(REPO / "data" / "samples", tmp_path / "samples")
    shutil.copy(REPO / "data" / "sources.yaml", tmp_path / "sources.yaml")
    defs = build_defs(sources_file=tmp_path / "sources.yaml", lakehouse_root=str(tmp_path / "l"))
    selection = [
        "ingested/customer_orders_eu",
        "catalog/customer_orders_eu",
        "ingested/support_tickets",
        "catalog/support_tickets",
        "chunks/support_tickets",
        "embeddings/support_tickets",
        "ingested/conference_transcripts",
        "catalog/conference_transcripts",
        "chunks/conference_transcripts",
    ]
    with dg.instance_for_test() as instance:
        result = run_placed_result(
            defs, [dg.AssetKey.from_user_string(k) for k in selection], instance=instance
        )
        assert result.success, result.outcomes
        with psycopg.connect(secret_url) as conn:
            store.ensure_schema(conn)
            store.insert_samples(conn, _samples(datetime.now(UTC)))
            conn.commit()
        sensor = defs.resolve_sensor_def("placement_sensor")
        with dg.build_sensor_context(
            instance=instance,
            definitions=defs,
            resources={"plane": PlaneResource(postgres=PostgresResource())},
        ) as context:
            tick = sensor(context)
        assert tick.run_requests  # the plane placed the due embedding work
        requests = "\n".join(
            json.dumps(r.tags) + json.dumps(r.run_config, default=str) for r in tick.run_requests
        )
        kept = _everything_dagster_kept(instance)

    assert "embeddings/support_tickets" in kept and "store" in kept  # the scan saw real content
    for where, text in (
        ("dagster", kept),
        ("run requests", requests),
        ("tables", _rows(secret_url)),
    ):
        assert PASSWORD not in text, f"the database password leaked into {where}"

    # The CLI shows the URL redacted, and its errors do not quote the password either.
    env = {**os.environ, "PLANE_DATABASE_URL": secret_url}
    shown = subprocess.run(
        [sys.executable, "-m", "plane_cli.main", "db-url"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert shown.returncode == 0 and ROLE in shown.stdout and PASSWORD not in shown.stdout
    down = {**env, "PLANE_DATABASE_URL": f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:1/plane"}
    failed = subprocess.run(
        [sys.executable, "-m", "plane_cli.main", "catalog"],
        env=down,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert failed.returncode == 5 and PASSWORD not in failed.stdout + failed.stderr


def test_kube_credentials_never_reach_jobs_tags_or_events(tmp_path: Path, plane_db: str) -> None:
    by_id, fleet = decisions()
    log_decisions(plane_db, *by_id.values())
    api = CapturingBatchApi()
    config = kubeconfig(tmp_path, "eu-fra-a10")
    token = "not-a-real-token"
    assert token in Path(config).read_text()
    cluster = {
        "kubeconfig_file": config,
        "load_incluster_config": False,
        "service_account_name": "dagster-run",
        "instance_config_map": "dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "job_image": "registry.example.com/rp:1",
    }
    with dg.instance_for_test() as instance:
        launcher = PlacementRunLauncher(
            clusters={"eu-fra-a10": cluster},
            k8s_launcher_factory=lambda **cfg: K8sRunLauncher(
                **cfg, k8s_client_batch_api=api, k8s_client_core_api=NoCoreApi()
            ),
        )
        launcher.register_instance(instance)
        eu = by_id["eu-run"]
        run = instance.create_run_for_job(
            job_def=placed_gpu_job,
            tags=run_tags(eu, fleet),
            run_config=run_config(eu, fleet),
            job_code_origin=dg.reconstructable(placed_gpu_job).get_python_origin(),
        )
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        kept = _everything_dagster_kept(instance)
    ((_, job),) = api.jobs
    assert "eu-fra-a10" in kept and job["metadata"]["labels"]
    assert token not in json.dumps(job) and token not in kept


def test_a_password_given_as_resource_config_is_refused(secret_url: str, tmp_path: Path) -> None:
    """A literal resource config value is kept in every job snapshot (and shown in the
    launchpad), so a password-bearing URL is refused there; an EnvVar is read at run time."""
    shutil.copytree(REPO / "data" / "samples", tmp_path / "samples")
    shutil.copy(REPO / "data" / "sources.yaml", tmp_path / "sources.yaml")
    with pytest.raises(ValueError, match="carries a password"):
        build_defs(sources_file=tmp_path / "sources.yaml", database_url=secret_url)
    defs = build_defs(
        sources_file=tmp_path / "sources.yaml", database_url=dg.EnvVar("PLANE_DATABASE_URL")
    )
    with dg.instance_for_test() as instance:
        result = run_placed_result(
            defs,
            [  # the catalog asset connects through the EnvVar's URL
                dg.AssetKey.from_user_string(k)
                for k in ("ingested/customer_orders_eu", "catalog/customer_orders_eu")
            ],
            instance=instance,
        )
        assert result.success, result.outcomes
        kept = _everything_dagster_kept(instance)
    assert "PLANE_DATABASE_URL" in kept and PASSWORD not in kept
