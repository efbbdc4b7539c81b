"""Placed runs become Kubernetes Jobs through the real dagster-k8s code paths.

No Kubernetes API server exists here, so the API client is the one thing replaced: it captures
the Job objects dagster-k8s would create. Every Job is validated against the Kubernetes 1.37
schema (kubernetes-validate, strict) and against its decision.
"""

import math
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import kubernetes
import kubernetes_validate
import psycopg
import pytest
import yaml
from dagster._core.launcher import LaunchRunContext
from dagster_k8s import K8sRunLauncher
from dagster_k8s import client as k8s_client

from reasoning_plane import store
from reasoning_plane.batch import place_batch
from reasoning_plane.inputs import (
    load_budgets,
    load_catalog_records,
    load_fleet,
    load_quotas,
    load_telemetry,
)
from reasoning_plane.launch import DECISION_LABEL, run_config, run_tags
from reasoning_plane.model import PLACED, Snapshot, WorkloadRequest
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.signing import signer
from resources.launcher import PlacementRefused, PlacementRunLauncher
from tests.integration.placed_jobs import placed_gpu_job

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed_scenario"
SERIALIZER = kubernetes.client.ApiClient()


class CapturingBatchApi:
    """Stands in for the Kubernetes API server's batch/v1 endpoint."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, dict]] = []

    def create_namespaced_job(self, body, namespace, **_):
        self.jobs.append((namespace, SERIALIZER.sanitize_for_serialization(body)))
        return body

    def read_namespaced_job_status(self, name, namespace, **_):
        return kubernetes.client.V1Job(
            metadata=kubernetes.client.V1ObjectMeta(name=name),
            status=kubernetes.client.V1JobStatus(failed=1),
        )

    def delete_namespaced_job(self, *_, **__):
        return None


class NoCoreApi:
    def __getattr__(self, name):
        raise AssertionError(f"unexpected Kubernetes core API call {name}")


def kubeconfig(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": name,
                "clusters": [{"name": name, "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": name, "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            }
        )
    )
    return str(path)


def seed_snapshot() -> Snapshot:
    return Snapshot(
        fleet=load_fleet(SEED / "fleet.yaml"),
        quotas=load_quotas(SEED / "quotas.yaml"),
        budgets=load_budgets(SEED / "budgets.yaml"),
        usage={},
        telemetry=load_telemetry(SEED / "telemetry.yaml"),
        catalog=load_catalog_records(SEED / "catalog.json"),
        now=datetime(2026, 11, 25, 12, 0, 2, tzinfo=UTC),
    )


def decisions():
    snapshot = seed_snapshot()
    common = dict(
        workload="placed_gpu_job",
        gpu_count=2,
        gpu_memory_gb=20,
        estimated_duration_s=1800,
        data_gb=10,
        priority=500,
    )
    requests = [
        WorkloadRequest(
            request_id="eu-run", team="financial-ml", datasets=("customer_orders_eu",), **common
        ),
        WorkloadRequest(
            request_id="us-run",
            team="commerce-analytics",
            datasets=("customer_orders_us",),
            **common,
        ),
    ]
    placed = place_batch(requests, snapshot, PlacementPolicy())
    assert all(d.status == PLACED for d in placed)
    return {d.request.request_id: d for d in placed}, snapshot.fleet


def deadline(decision) -> int:
    """The Job deadline of a placed run: its decision's duration x the default policy's
    runtime_limit_factor (1.5), in whole seconds."""
    return math.ceil(decision.chosen_evaluation.cost.duration_s * 1.5)


def validate(job: dict) -> None:
    kubernetes_validate.validate(job, "1.37", strict=True)


def log_decisions(url: str, *logged, snapshot: Snapshot | None = None) -> None:
    """Write decisions to plane.decisions, signed, as the placement tick does: the launcher
    verifies every placed run against this log. ``snapshot``: what they were decided on
    (default: the seed scenario's)."""
    snapshot = snapshot or seed_snapshot()
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        for decision in logged:
            store.record_decision(conn, decision, snapshot=snapshot, signer=signer())


def test_eu_and_us_runs_become_jobs_on_two_clusters(tmp_path: Path, plane_db: str) -> None:
    by_id, fleet = decisions()
    log_decisions(plane_db, *by_id.values())
    eu, us = by_id["eu-run"], by_id["us-run"]
    assert (eu.chosen.cluster, us.chosen.cluster) == ("eu-fra-a10", "us-east-a100")
    batch = {"eu-fra-a10": CapturingBatchApi(), "us-east-a100": CapturingBatchApi()}
    clusters = {
        name: {
            "kubeconfig_file": kubeconfig(tmp_path, name),
            "load_incluster_config": False,
            "service_account_name": "dagster-run",
            "instance_config_map": "dagster-instance",
            "dagster_home": "/opt/dagster/dagster_home",
            "job_image": f"registry.example.com/reasoning-plane:{name}",
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

    origin = dg.reconstructable(placed_gpu_job).get_python_origin()
    with dg.instance_for_test() as instance:
        launcher = PlacementRunLauncher(clusters=clusters, k8s_launcher_factory=factory)
        launcher.register_instance(instance)
        for decision in (eu, us):
            run = instance.create_run_for_job(
                job_def=placed_gpu_job,
                tags=run_tags(decision, fleet),
                run_config=run_config(decision, fleet),
                job_code_origin=origin,
            )
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))

    for decision, name in ((eu, "eu-fra-a10"), (us, "us-east-a100")):
        ((namespace, job),) = batch[name].jobs
        validate(job)
        assert namespace == decision.namespace == decision.request.team
        pod = job["spec"]["template"]
        assert job["metadata"]["labels"][DECISION_LABEL] == decision.decision_id
        assert pod["metadata"]["labels"][DECISION_LABEL] == decision.decision_id
        container = pod["spec"]["containers"][0]
        assert container["image"] == f"registry.example.com/reasoning-plane:{name}"
        assert "nvidia.com/gpu" not in str(container.get("resources"))  # run worker: no GPU
        assert {"name": "PLANE_CLUSTER", "value": name} in container["env"]
        # the reservation's duration (x the policy's runtime_limit_factor) is a hard limit
        assert job["spec"]["activeDeadlineSeconds"] == deadline(decision)
    assert eu.namespace != us.namespace


def test_gpu_steps_become_jobs_with_limits_selectors_and_tolerations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_id, fleet = decisions()
    captured = CapturingBatchApi()
    monkeypatch.setattr(
        k8s_client.DagsterKubernetesClient,
        "production_client",
        staticmethod(
            lambda batch_api_override=None, core_api_override=None: (
                k8s_client.DagsterKubernetesClient(
                    batch_api=captured,
                    core_api=NoCoreApi(),
                    logger=lambda *a: None,
                    sleeper=lambda *_: None,
                    timer=lambda: 0.0,
                )
            )
        ),
    )
    for request_id in ("eu-run", "us-run"):
        decision = by_id[request_id]
        cluster = fleet.get(decision.chosen.cluster)
        pool = cluster.pool(decision.chosen.gpu_type)
        config = run_config(decision, fleet)
        assert decision.executor == "k8s_job_executor" and "k8s" in config["execution"]["config"]
        # The run worker's instance is the production one: the routing launcher, whose settings
        # for the pod's own cluster (PLANE_CLUSTER) the step executor reads.
        monkeypatch.setenv("PLANE_CLUSTER", cluster.name)
        settings = {
            "load_incluster_config": False,
            "kubeconfig_file": kubeconfig(tmp_path, "c"),
            "service_account_name": "dagster-run",
            "instance_config_map": "dagster-instance",
            "dagster_home": "/opt/dagster/dagster_home",
            "env_secrets": ["reasoning-plane-db"],
            "job_image": "registry.example.com/rp:1",
        }
        overrides = {
            "run_launcher": {
                "module": "resources.launcher",
                "class": "PlacementRunLauncher",
                "config": {"clusters": {cluster.name: settings}},
            }
        }
        # Outside a cluster the step handler needs a kubeconfig (in a pod: in-cluster config).
        config["execution"]["config"]["k8s"].update(
            load_incluster_config=False, kubeconfig_file=kubeconfig(tmp_path, "c")
        )
        before = len(captured.jobs)
        with dg.instance_for_test(overrides=overrides) as instance:
            result = dg.execute_job(
                dg.reconstructable(placed_gpu_job),
                instance=instance,
                run_config=config,
                tags=run_tags(decision, fleet),
                raise_on_error=False,
            )
            assert not result.success  # the captured step Job never runs here
        ((namespace, job),) = captured.jobs[before:]
        validate(job)
        assert namespace == decision.request.team
        spec = job["spec"]["template"]["spec"]
        limits = spec["containers"][0]["resources"]["limits"]
        assert limits == {"nvidia.com/gpu": str(decision.request.gpu_count)}
        assert spec["nodeSelector"] == {**cluster.node_labels, **pool.node_labels}
        assert spec["tolerations"] == [t.to_k8s() for t in pool.tolerations]
        assert job["metadata"]["labels"][DECISION_LABEL] == decision.decision_id
        assert job["metadata"]["labels"]["dagster/op"] == "embed_on_gpu"
        pod = spec["containers"][0]
        assert spec["serviceAccountName"] == "dagster-run"  # the cluster's settings reached it
        assert pod["image"] == "registry.example.com/rp:1"
        assert {"secretRef": {"name": "reasoning-plane-db"}} in pod["envFrom"]
        assert job["spec"]["activeDeadlineSeconds"] == deadline(decision)
        # the step pod knows its cluster, so the data guard in it can check where it runs
        assert {"name": "PLANE_CLUSTER", "value": cluster.name} in pod["env"]


def test_runs_routed_locally_or_refused(tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        launcher = PlacementRunLauncher(clusters={}, default_cluster="")
        launcher.register_instance(instance)
        run = instance.create_run_for_job(job_def=placed_gpu_job, tags={})
        with pytest.raises(PlacementRefused, match="no placement decision"):
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        placed = instance.create_run_for_job(
            job_def=placed_gpu_job, tags={"plane/cluster": "mars-1", "plane/namespace": "t"}
        )
        # Hand-written placement tags are refused before routing (test_launch_guard.py) ...
        with pytest.raises(PlacementRefused, match="no plane/decision_id"):
            launcher.launch_run(LaunchRunContext(dagster_run=placed, workspace=None))
        # ... and a cluster without settings is refused when routing.
        with pytest.raises(PlacementRefused, match=r"run_launcher\.config\.clusters"):
            launcher.launcher_for(placed)
        local = PlacementRunLauncher()
        local.register_instance(instance)
        assert type(local.launcher_for(run)).__name__ == "DefaultRunLauncher"
    with pytest.raises(ValueError, match="job_namespace"):
        PlacementRunLauncher(clusters={"x": {"job_namespace": "a"}})
