"""Every sensor's and schedule's run requests, launched through the production launcher
configuration (`deploy/dagster.yaml`'s run launcher, with the project's real definitions in a
real in-process workspace and the real decision log): each is launched where it should be, or
refused for the right reason. Only the Kubernetes API servers are replaced: they capture the
run worker Jobs dagster-k8s creates.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.launcher import LaunchRunContext
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_k8s import K8sRunLauncher

from reasoning_plane import store
from reasoning_plane.explain import request_to_dict
from reasoning_plane.model import TelemetrySample, WorkloadRequest
from resources.launcher import PlacementRefused, PlacementRunLauncher
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from stack_defs.definitions import defs
from tests.integration.test_k8s_launch import CapturingBatchApi, NoCoreApi, kubeconfig

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed_scenario"


@pytest.fixture
def production(tmp_path: Path, plane_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The production launcher (every cluster of deploy/dagster.yaml, each behind a capturing
    API server), the real code location in a workspace, the seed fleet with fresh telemetry."""
    for name, file in (("FLEET", "fleet"), ("QUOTAS", "quotas"), ("BUDGETS", "budgets")):
        monkeypatch.setenv(f"PLANE_{name}_FILE", str(SEED / f"{file}.yaml"))
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())["run_launcher"]
    # the deployed launcher's clusters: the fleet file's, with the deployed run_defaults
    deployed = PlacementRunLauncher.from_config_value(
        None, {**config["config"], "fleet_file": str(SEED / "fleet.yaml")}
    )
    names = [c.name for c in deployed.fleet().clusters] + [config["config"]["default_cluster"]]
    clusters = {}
    for name in names:
        settings = deployed.cluster_settings(name)
        settings.pop("kube_context", None)
        clusters[name] = {
            **settings,
            "load_incluster_config": False,
            "kubeconfig_file": kubeconfig(tmp_path, name),
        }
    batch = {name: CapturingBatchApi() for name in clusters}

    def factory(**cfg):
        name = next(
            n for n, c in clusters.items() if c["kubeconfig_file"] == cfg["kubeconfig_file"]
        )
        return K8sRunLauncher(
            **cfg, k8s_client_batch_api=batch[name], k8s_client_core_api=NoCoreApi()
        )

    now = datetime.now(UTC) - timedelta(seconds=1)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample("us-east-a100", "A100-80GB", 24, 0.6, now),
                TelemetrySample("eu-fra-a10", "A10", 12, 0.6, now),
                TelemetrySample("eu-par-h100", "H100-80GB", 4, 0.6, now),
            ],
        )
        conn.commit()
    with dg.instance_for_test() as instance:
        launcher = PlacementRunLauncher(
            clusters=clusters,
            default_cluster=config["config"]["default_cluster"],
            default_namespace=config["config"]["default_namespace"],
            role_env_secrets=config["config"]["role_env_secrets"],
            k8s_launcher_factory=factory,
        )
        launcher.register_instance(instance)
        origin = LoadableTargetOrigin(module_name="stack_defs", working_directory=str(REPO))
        with in_process_test_workspace(instance, origin) as workspace:
            yield instance, launcher, workspace, batch, plane_db


def _launch(instance, launcher, workspace, request: dg.RunRequest, job_name: str | None = None):
    """Create the run Dagster would create for ``request`` and launch it."""
    job = (
        defs.resolve_job_def(job_name) if job_name else defs.resolve_implicit_global_asset_job_def()
    )
    entry = next(iter(workspace.get_code_location_entries().values()))
    (repo,) = entry.code_location.get_repositories().values()
    remote = repo.get_full_job(job.name)
    run = instance.create_run_for_job(
        job_def=job,
        asset_selection=frozenset(request.asset_selection) if request.asset_selection else None,
        tags=dict(request.tags),
        run_config=request.run_config or {},
        remote_job_origin=remote.get_remote_origin(),
        job_code_origin=remote.get_python_origin(),
    )
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=workspace))
    return run


def _jobs(batch) -> dict[str, list[tuple[str, dict]]]:
    return {name: api.jobs for name, api in batch.items() if api.jobs}


def _queue(url: str, request_id: str, workload: str, by: str) -> None:
    asked = WorkloadRequest(
        request_id=request_id,
        workload=workload,
        team="?",
        datasets=(),
        gpu_count=0,
        gpu_memory_gb=0,
        estimated_duration_s=600,
    )
    with psycopg.connect(url) as conn:
        store.add_request(conn, request_id, {**request_to_dict(asked), "requested_by": by})
        conn.commit()


def test_every_sensor_and_schedule_run_launches_or_is_refused_for_the_right_reason(
    production,
) -> None:
    instance, launcher, workspace, batch, url = production
    plane = PlaneResource(postgres=PostgresResource())

    # team_spend_schedule: work on no governed data goes to the control plane's default target.
    schedule = defs.resolve_schedule_def("team_spend_schedule")
    with dg.build_schedule_context(instance=instance) as context:
        (spend,) = schedule.evaluate_tick(context).run_requests
    _launch(instance, launcher, workspace, spend, job_name=schedule.job_name)
    ((namespace, body),) = batch["control-plane"].jobs
    assert namespace == "reasoning-plane" and body["kind"] == "Job"

    # source_files_sensor: launches nothing itself; it queues ingestion for placement.
    sensor = defs.resolve_sensor_def("source_files_sensor")
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"plane": plane}
    ) as context:
        assert sensor(context).run_requests == []
    with psycopg.connect(url) as conn:
        queued = sorted(p["workload"] for p in store.pending_requests(conn))
    assert queued == [
        "ingested/conference_transcripts",
        "ingested/customer_orders_eu",
        "ingested/customer_orders_us",
        "ingested/support_tickets",
    ]

    # placement_sensor: every placed decision launches on its cluster in its team's namespace.
    _queue(url, "tickets-embedding", "embeddings/support_tickets", "support-copilot")
    sensor = defs.resolve_sensor_def("placement_sensor")
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"plane": plane}
    ) as context:
        placed = sensor(context).run_requests
    by_asset = {r.asset_selection[0].to_user_string(): r for r in placed}
    # the EU sources go to the EU cluster with CPU slots; no US cluster takes CPU work
    assert set(by_asset) == {
        "embeddings/support_tickets",
        "ingested/conference_transcripts",
        "ingested/customer_orders_eu",
        "ingested/support_tickets",
    }
    for request in placed:
        _launch(instance, launcher, workspace, request)
    launched = {
        (cluster, namespace)
        for cluster, jobs in _jobs(batch).items()
        if cluster != "control-plane"
        for namespace, _ in jobs
    }
    for request in placed:
        assert (request.tags["plane/cluster"], request.tags["plane/namespace"]) in launched
    assert all(r.tags["plane/zone"] == "EU" for r in placed if "conference" not in r.run_key)
    with psycopg.connect(url) as conn:
        status = dict(conn.execute("SELECT request_id, status FROM plane.requests").fetchall())
    us = [s for r, s in status.items() if r.startswith("ingested/customer_orders_us")]
    assert us == ["rejected"]  # no US cluster with CPU slots: not launched anywhere

    # A copy of a placed run (a re-execution): refused, the decision is claimed.
    with pytest.raises(PlacementRefused, match="already claimed by run"):
        _launch(instance, launcher, workspace, placed[0])

    # recurring_placement_schedule: re-placed recurring work launches like the sensor's.
    schedule = defs.resolve_schedule_def("recurring_placement_schedule")
    before = sum(len(api.jobs) for api in batch.values())
    with dg.build_schedule_context(
        instance=instance, resources={"plane": plane}, scheduled_execution_time=datetime.now(UTC)
    ) as context:
        recurring = schedule.evaluate_tick(context).run_requests
    assert recurring and all(r.tags.get("plane/decision_id") for r in recurring)
    for request in recurring:
        _launch(instance, launcher, workspace, request)
    assert sum(len(api.jobs) for api in batch.values()) == before + len(recurring)

    # The UI's Materialize button on governed data: refused, with how to get it placed.
    button = dg.RunRequest(asset_selection=[dg.AssetKey(["ingested", "support_tickets"])])
    with pytest.raises(PlacementRefused, match="carries no placement decision"):
        _launch(instance, launcher, workspace, button)


def test_only_the_runs_that_write_the_catalog_get_the_stewards_credentials(production) -> None:
    """Least privilege on Kubernetes: every run worker loads its cluster's Secret (rp_worker)
    and the object store's;
    the launcher adds the steward's (PLANE_DATABASE_URL_STEWARD) to the runs of assets that
    declare plane/db_role: steward, those that write the catalog, and to no other."""
    instance, launcher, workspace, batch, url = production
    plane = PlaneResource(postgres=PostgresResource())
    _queue(url, "tickets-catalog", "catalog/support_tickets", "support-copilot")
    _queue(url, "tickets-embedding", "embeddings/support_tickets", "support-copilot")
    sensor = defs.resolve_sensor_def("placement_sensor")
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"plane": plane}
    ) as context:
        placed = {r.asset_selection[0].to_user_string(): r for r in sensor(context).run_requests}
    secrets = {}
    for asset in ("catalog/support_tickets", "embeddings/support_tickets"):
        request = placed[asset]
        before = {name: len(api.jobs) for name, api in batch.items()}
        _launch(instance, launcher, workspace, request)
        cluster = request.tags["plane/cluster"]
        ((_, job),) = batch[cluster].jobs[before[cluster] :]
        (container,) = job["spec"]["template"]["spec"]["containers"]
        secrets[asset] = [e["secretRef"]["name"] for e in container.get("envFrom", [])]
    # every run worker: its cluster's database Secret (rp_worker) and the object store's
    assert secrets["catalog/support_tickets"] == [
        "reasoning-plane-db",
        "reasoning-plane-s3",
        "reasoning-plane-db-steward",
    ]
    assert secrets["embeddings/support_tickets"] == ["reasoning-plane-db", "reasoning-plane-s3"]
