"""No bypass of the reasoning plane at launch (issue 8, item 4) and cluster API faults (item 3).

A real `DagsterInstance` with the routing `PlacementRunLauncher`, a real in-process workspace and
the real decision log in PostgreSQL; only the Kubernetes API server is replaced (it captures the
Jobs, or answers with the errors a real one gives).
"""

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import kubernetes
import psycopg
import pytest
from dagster._core.launcher import LaunchRunContext
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_k8s import K8sRunLauncher
from dagster_k8s import client as k8s_client

from reasoning_plane.launch import run_config, run_tags
from reasoning_plane.model import WorkloadRequest
from resources.launcher import ClusterRejected, PlacementRefused, PlacementRunLauncher
from sensors.ledger import CAPACITY_ERRORS
from tests.integration.guarded_defs import CPU_KEY, GPU_KEY, defs
from tests.integration.placed_jobs import placed_gpu_job
from tests.integration.test_k8s_launch import (
    CapturingBatchApi,
    NoCoreApi,
    decisions,
    kubeconfig,
    log_decisions,
)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ORIGIN = dg.reconstructable(placed_gpu_job).get_python_origin()
K8S = "dagster-k8s/config"


@pytest.fixture
def workspace_instance() -> Iterator[tuple[dg.DagsterInstance, object]]:
    overrides = {
        "run_launcher": {
            "module": "resources.launcher",
            "class": "PlacementRunLauncher",
            "config": {"default_cluster": "local"},
        }
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        origin = LoadableTargetOrigin(
            module_name="tests.integration.guarded_defs", working_directory=str(REPO)
        )
        with in_process_test_workspace(instance, origin) as workspace:
            yield instance, workspace


def _ui_run(
    instance: dg.DagsterInstance, workspace, keys: set[dg.AssetKey] | None
) -> dg.DagsterRun:
    """A run as the UI's Materialize button creates it: the asset job of the loaded code
    location, no plane/* tags."""
    job = defs.resolve_implicit_global_asset_job_def()
    entry = next(iter(workspace.get_code_location_entries().values()))
    (repo,) = entry.code_location.get_repositories().values()
    remote = repo.get_full_job(job.name)
    return instance.create_run_for_job(
        job_def=job,
        asset_selection=frozenset(keys) if keys else None,
        tags={},
        remote_job_origin=remote.get_remote_origin(),
        job_code_origin=remote.get_python_origin(),
    )


def test_materialize_button_on_a_gpu_workload_is_refused(workspace_instance) -> None:
    instance, workspace = workspace_instance
    run = _ui_run(instance, workspace, {GPU_KEY})
    # The UI submits the run; the queue's daemon then launches it through the run launcher.
    instance.submit_run(run.run_id, workspace)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.QUEUED
    with pytest.raises(PlacementRefused, match="carries no placement decision"):
        instance.launch_run(run.run_id, workspace)
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    messages = [e.message or "" for e in instance.all_logs(run.run_id)]
    assert any(
        "embeddings/guarded" in m and "placement_sensor" in m and "plane request" in m
        for m in messages
    ), messages
    # The whole asset job (no selection) holds the workload too: refused.
    whole = _ui_run(instance, workspace, None)
    with pytest.raises(PlacementRefused, match="embeddings/guarded"):
        instance.launch_run(whole.run_id, workspace)


def test_cpu_work_without_placement_runs_locally(workspace_instance) -> None:
    instance, workspace = workspace_instance
    run = _ui_run(instance, workspace, {CPU_KEY})
    launcher = instance.run_launcher
    assert isinstance(launcher, PlacementRunLauncher)
    launcher.verify(run, workspace)  # no GPU workload: nothing to refuse
    assert type(launcher.launcher_for(run)).__name__ == "DefaultRunLauncher"
    # Without a workspace the launcher cannot tell: refused (fail closed).
    with pytest.raises(PlacementRefused, match="cannot tell"):
        launcher.verify(run, None)


@pytest.fixture
def k8s(tmp_path: Path, plane_db: str):
    """Two clusters behind capturing API servers, the seed decisions logged (in a fresh plane
    schema: decision ids are deterministic across tests, and claims are append-only)."""
    by_id, fleet = decisions()
    log_decisions(plane_db, *by_id.values())
    batch = {"eu-fra-a10": CapturingBatchApi(), "us-east-a100": CapturingBatchApi()}
    clusters = {
        name: {
            "kubeconfig_file": kubeconfig(tmp_path, name),
            "load_incluster_config": False,
            "service_account_name": "dagster-run",
            "instance_config_map": "dagster-instance",
            "dagster_home": "/opt/dagster/dagster_home",
            "job_image": "registry.example.com/rp:1",
        }
        for name in batch
    }

    def factory(**cfg):
        name = next(
            n for n, c in clusters.items() if c["kubeconfig_file"] == cfg["kubeconfig_file"]
        )
        return K8sRunLauncher(
            **cfg, k8s_client_batch_api=batch[name], k8s_client_core_api=NoCoreApi()
        )

    with dg.instance_for_test() as instance:
        launcher = PlacementRunLauncher(clusters=clusters, k8s_launcher_factory=factory)
        launcher.register_instance(instance)
        yield instance, launcher, batch, by_id, fleet


def _launch(instance, launcher, tags: dict, config: dict | None = None) -> dg.DagsterRun:
    run = instance.create_run_for_job(
        job_def=placed_gpu_job, tags=tags, run_config=config or {}, job_code_origin=ORIGIN
    )
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def _k8s_config(tags: dict, **changes) -> dict:
    config = json.loads(tags["dagster-k8s/config"])
    config.update(changes)
    return {**tags, "dagster-k8s/config": json.dumps(config)}


def test_forged_or_stale_placement_tags_are_refused(k8s, database_url: str) -> None:
    instance, launcher, batch, by_id, fleet = k8s
    eu = by_id["eu-run"]
    tags, config = run_tags(eu, fleet), run_config(eu, fleet)
    genuine = _launch(instance, launcher, tags, config)
    assert len(batch["eu-fra-a10"].jobs) == 1  # the genuine one launches

    us_tags = run_tags(by_id["us-run"], fleet)
    forged = {
        "unknown decision": ({**tags, "plane/decision_id": "f" * 20}, "not in plane.decisions"),
        "moved to another cluster": (
            {**tags, "plane/cluster": "us-east-a100", "plane/namespace": "commerce-analytics"},
            "plane/cluster='us-east-a100' but the decision says 'eu-fra-a10'",
        ),
        "more GPUs": ({**tags, "plane/gpu_count": "8"}, "plane/gpu_count='8'"),
        "other team": ({**tags, "plane/team": "media-ml"}, "plane/team"),
        "tags without a decision id": (
            {k: v for k, v in tags.items() if k != "plane/decision_id"},
            "no plane/decision_id",
        ),
        "only a hand-written cluster": ({"plane/cluster": "eu-fra-a10"}, "no plane/decision_id"),
        "privileged pod": (
            _k8s_config(tags, pod_spec_config={"security_context": {"privileged": True}}),
            "pod_spec_config.security_context",
        ),
        "another decision's labels": (
            _k8s_config(
                tags, job_metadata=json.loads(us_tags["dagster-k8s/config"])["job_metadata"]
            ),
            "job_metadata labels name decision",
        ),
        "GPU on the run worker": (
            _k8s_config(tags, container_config={"resources": {"limits": {"nvidia.com/gpu": "4"}}}),
            "gives the run worker a GPU",
        ),
    }
    for name, (bad_tags, expected) in forged.items():
        with pytest.raises(PlacementRefused, match="refused") as refused:
            _launch(instance, launcher, bad_tags, config)
        assert expected in str(refused.value), (name, str(refused.value))

    # Run config asking for more GPUs per step, or another namespace, than the decision.
    greedy = json.loads(json.dumps(config))
    step = greedy["execution"]["config"]["k8s"]["step_k8s_config"]["container_config"]
    step["resources"]["limits"]["nvidia.com/gpu"] = "8"
    with pytest.raises(PlacementRefused, match="asks for 8 GPUs per step"):
        _launch(instance, launcher, tags, greedy)
    elsewhere = json.loads(json.dumps(config))
    elsewhere["execution"]["config"]["k8s"]["job_namespace"] = "media-ml"
    with pytest.raises(PlacementRefused, match="job_namespace='media-ml'"):
        _launch(instance, launcher, tags, elsewhere)

    # A decision claimed at launch by a run is not reused by a copy of its tags (a re-execution,
    # a launchpad copy): the claim in PostgreSQL names the run that holds it.
    with pytest.raises(PlacementRefused, match=f"already claimed by run {genuine.run_id}"):
        _launch(instance, launcher, tags, config)

    assert len(batch["eu-fra-a10"].jobs) == 1 and not batch["us-east-a100"].jobs
    assert launcher._local is None  # nothing fell back to this machine either


def test_a_rejected_decision_cannot_be_launched(k8s, database_url: str) -> None:
    instance, launcher, batch, by_id, fleet = k8s
    from datetime import UTC, datetime

    from reasoning_plane.batch import place_batch
    from reasoning_plane.inputs import load_budgets, load_catalog_records, load_quotas
    from reasoning_plane.model import Snapshot
    from reasoning_plane.policy import PlacementPolicy

    seed = REPO / "examples" / "seed_scenario"
    snapshot = Snapshot(
        fleet=fleet,
        quotas=load_quotas(seed / "quotas.yaml"),
        budgets=load_budgets(seed / "budgets.yaml"),
        usage={},
        telemetry={},
        catalog=load_catalog_records(seed / "catalog.json"),
        now=datetime(2026, 11, 25, 12, 0, 2, tzinfo=UTC),
    )
    request = WorkloadRequest(
        request_id="unknown-data",
        team="financial-ml",
        workload="placed_gpu_job",
        datasets=("no_such_dataset",),
        gpu_count=1,
        gpu_memory_gb=1,
        estimated_duration_s=60,
    )
    (rejected,) = place_batch([request], snapshot, PlacementPolicy())
    assert rejected.status != "placed"
    log_decisions(database_url, rejected, snapshot=snapshot)
    tags = {**run_tags(by_id["eu-run"], fleet), "plane/decision_id": rejected.decision_id}
    with pytest.raises(PlacementRefused, match=f"is '{rejected.status}', not 'placed'"):
        _launch(instance, launcher, tags)
    assert not batch["eu-fra-a10"].jobs


def test_a_cpu_placement_on_this_machine_is_verified_and_runs_locally(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPU-optional work the plane placed on this machine's CPU (no GPU here): its tags say
    ``plane/gpu_type: cpu``, ``plane/gpu_count: 0``, ``plane/device: cpu`` and must verify."""
    from datetime import UTC, datetime

    from data_plane.catalog import CatalogRecord
    from reasoning_plane.batch import place_batch
    from reasoning_plane.gpu_telemetry import read_gpus
    from reasoning_plane.model import CPU, PLACED, Snapshot
    from reasoning_plane.policy import PlacementPolicy
    from reasoning_plane.snapshot import local_fleet

    monkeypatch.setenv("PLANE_LOCAL_ZONE", "US")
    talks = CatalogRecord("talks", "PUBLIC", "US", "1_year", (), False, "Level_0", "s", "")
    fleet = local_fleet(read_gpus())
    snapshot = Snapshot(
        fleet=fleet,
        quotas={},
        budgets={},
        usage={},
        telemetry={},
        catalog={"talks": talks},
        now=datetime.now(UTC),
    )
    request = WorkloadRequest(
        request_id="cpu-run",
        team="media-ml",
        workload="placed_gpu_job",
        datasets=("talks",),
        gpu_count=1,
        gpu_memory_gb=2,
        estimated_duration_s=60,
        gpu_optional=True,
    )
    (decision,) = place_batch([request], snapshot, PlacementPolicy())
    assert decision.status == PLACED and decision.chosen.gpu_type == CPU
    log_decisions(database_url, decision, snapshot=snapshot)
    with dg.instance_for_test() as instance:
        launcher = PlacementRunLauncher()
        launcher.register_instance(instance)
        tags = run_tags(decision, fleet)
        run = instance.create_run_for_job(job_def=placed_gpu_job, tags=tags)
        launcher.verify(run)  # the genuine CPU placement passes
        assert type(launcher.launcher_for(run)).__name__ == "DefaultRunLauncher"
        forged = instance.create_run_for_job(
            job_def=placed_gpu_job, tags={**tags, "plane/device": "cuda"}
        )
        with pytest.raises(PlacementRefused, match="plane/device='cuda'"):
            launcher.verify(forged)


def test_unreachable_decision_log_refuses_without_leaking_the_password(k8s) -> None:
    instance, _, batch, by_id, fleet = k8s
    launcher = PlacementRunLauncher(database_url="postgresql://plane:s3cret-pw@127.0.0.1:1/plane")
    launcher.register_instance(instance)
    with pytest.raises(PlacementRefused, match="unavailable after 3 attempts") as refused:
        _launch(instance, launcher, run_tags(by_id["eu-run"], fleet))
    assert "s3cret-pw" not in str(refused.value) and "***" in str(refused.value)
    assert not batch["eu-fra-a10"].jobs


class RejectingBatchApi(CapturingBatchApi):
    """A Kubernetes API server that answers Job creation with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__()
        self.status, self.reason, self.message = status, reason, message
        self.calls = 0

    def create_namespaced_job(self, body, namespace, **_):
        self.calls += 1
        raise kubernetes.client.ApiException(
            http_resp=_Response(
                self.status, self.reason, {"kind": "Status", "message": self.message}
            )
        )


class _Response:
    def __init__(self, status: int, reason: str, body: dict) -> None:
        self.status, self.reason, self.data = status, reason, json.dumps(body).encode()

    def getheaders(self) -> dict:
        return {}


QUOTA = (
    'jobs.batch "dagster-run-x" is forbidden: exceeded quota: gpu-quota, requested: '
    "requests.nvidia.com/gpu=2, used: requests.nvidia.com/gpu=16, limited: "
    "requests.nvidia.com/gpu=16"
)
INVALID = 'Job.batch "dagster-run-x" is invalid: spec.template.spec.containers[0].image: Required'


@pytest.mark.parametrize(
    ("status", "reason", "message", "capacity"),
    [(403, "Forbidden", QUOTA, True), (422, "Unprocessable Entity", INVALID, False)],
)
def test_cluster_rejecting_the_job_fails_clearly_and_nowhere_else(
    k8s, status: int, reason: str, message: str, capacity: bool
) -> None:
    instance, launcher, batch, by_id, fleet = k8s
    rejecting = RejectingBatchApi(status, reason, message)
    launcher._factory = lambda **cfg: K8sRunLauncher(
        **cfg, k8s_client_batch_api=rejecting, k8s_client_core_api=NoCoreApi()
    )
    eu = by_id["eu-run"]
    with pytest.raises(ClusterRejected) as rejected:
        _launch(instance, launcher, run_tags(eu, fleet), run_config(eu, fleet))
    text = str(rejected.value)
    assert "cluster eu-fra-a10 rejected" in text and f"HTTP {status}" in text
    assert message in text and "not launched anywhere else" in text
    assert rejecting.calls == 1  # a refusal is not retried
    # A quota refusal is what the failure sensor re-places elsewhere (bounded, 3 attempts);
    # an invalid Job is not: it would fail anywhere.
    assert bool(CAPACITY_ERRORS.search(text)) is capacity
    assert not batch["us-east-a100"].jobs and launcher._local is None


def test_unavailable_cluster_api_is_retried_a_bounded_number_of_times(
    k8s, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, launcher, _, by_id, fleet = k8s
    waits: list[float] = []
    monkeypatch.setattr(k8s_client.time, "sleep", waits.append)
    down = RejectingBatchApi(503, "Service Unavailable", "etcdserver: leader changed")
    launcher._factory = lambda **cfg: K8sRunLauncher(
        **cfg, k8s_client_batch_api=down, k8s_client_core_api=NoCoreApi()
    )
    eu = by_id["eu-run"]
    with pytest.raises(ClusterRejected, match=r"HTTP 503 .*after dagster-k8s's retries"):
        _launch(instance, launcher, run_tags(eu, fleet), run_config(eu, fleet))
    assert down.calls == 4 and waits == [10.0, 10.0, 10.0]


def test_a_decision_row_the_plane_did_not_sign_is_refused(k8s, plane_db: str) -> None:
    """An insider with the database URL writes a 'placed' row, or copies a signed one with the
    cluster changed: neither verifies, so nothing launches on it."""
    instance, launcher, batch, by_id, fleet = k8s
    eu, us = by_id["eu-run"], by_id["us-run"]
    with psycopg.connect(plane_db) as conn:
        # a fabricated decision: the US run's decision under a new id, without a signature
        conn.execute(
            "INSERT INTO plane.decisions (decision_id, request_id, run_key, workload, team, status,"
            " cluster, gpu_type, executor, est_cost_usd, policy_version, snapshot_hash, payload,"
            " explanation, decided_at) SELECT 'forged-unsigned', request_id, run_key, workload,"
            " team, status, cluster, gpu_type, executor, est_cost_usd, policy_version,"
            " snapshot_hash, payload, explanation, decided_at FROM plane.decisions"
            " WHERE decision_id = %s",
            (us.decision_id,),
        )
        # a copy of the EU decision's signed binding, moved to the US cluster
        conn.execute(
            "INSERT INTO plane.decisions (decision_id, request_id, run_key, workload, team, status,"
            " cluster, gpu_type, executor, est_cost_usd, policy_version, snapshot_hash, payload,"
            " explanation, decided_at, binding, signature, key_id) SELECT 'forged-moved',"
            " request_id, run_key, workload, team, status, 'us-east-a100', gpu_type, executor,"
            " est_cost_usd, policy_version, snapshot_hash, payload, explanation, decided_at,"
            " jsonb_set(jsonb_set(binding, '{decision_id}', '\"forged-moved\"'), '{cluster}',"
            " '\"us-east-a100\"'), signature, key_id FROM plane.decisions"
            " WHERE decision_id = %s",
            (eu.decision_id,),
        )
        conn.commit()
    unsigned = {**run_tags(us, fleet), "plane/decision_id": "forged-unsigned"}
    with pytest.raises(PlacementRefused, match="carries no signature of the reasoning plane"):
        _launch(instance, launcher, unsigned, run_config(us, fleet))
    moved = {
        **run_tags(eu, fleet),
        "plane/decision_id": "forged-moved",
        "plane/cluster": "us-east-a100",
    }
    with pytest.raises(PlacementRefused, match=r"signature \(key \w+\) does not match its content"):
        _launch(instance, launcher, moved, run_config(eu, fleet))
    assert not batch["us-east-a100"].jobs and not batch["eu-fra-a10"].jobs


def test_a_decision_for_one_workload_cannot_launch_another(workspace_instance, plane_db) -> None:
    """A run of the EU workload carrying the tags of a decision made for other work (here the
    plain job's decision) is refused: the run's asset selection must be the decision's
    workload."""
    instance, workspace = workspace_instance
    by_id, fleet = decisions()  # decisions for the workload "placed_gpu_job"
    log_decisions(plane_db, *by_id.values())
    eu = by_id["eu-run"]
    job = defs.resolve_implicit_global_asset_job_def()
    entry = next(iter(workspace.get_code_location_entries().values()))
    (repo,) = entry.code_location.get_repositories().values()
    remote = repo.get_full_job(job.name)
    run = instance.create_run_for_job(
        job_def=job,
        asset_selection=frozenset({GPU_KEY}),
        tags=run_tags(eu, fleet),
        remote_job_origin=remote.get_remote_origin(),
        job_code_origin=remote.get_python_origin(),
    )
    with pytest.raises(PlacementRefused, match="placed placed_gpu_job alone"):
        instance.run_launcher.verify(run, workspace)
