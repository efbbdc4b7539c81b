"""The launcher's clusters come from the fleet file, and each cluster's API client uses that
cluster's `kube_context`.

Two real HTTP servers on loopback stand in for two clusters' API servers (a Kubernetes API server
cannot run here); one kubeconfig names a context per cluster and a current-context pointing at
neither. A run placed on eu-fra-a10 must reach the first, a run on us-east-a100 the second: the
process-wide kubeconfig default (which every K8sRunLauncher loads) must not decide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster import DagsterRun

from resources.launcher import PlacementRefused, PlacementRunLauncher
from tests.loopback import FixedServer

REPO = Path(__file__).resolve().parents[2]
FLEET = REPO / "examples" / "seed_scenario" / "fleet.yaml"
CPU_IMAGE = "registry.example.com/reasoning-plane:0.1.0"
CUDA_IMAGE = "registry.example.com/reasoning-plane:0.1.0-cuda"
DEFAULTS = {
    "service_account_name": "dagster-run",
    "instance_config_map": "dagster-instance",
    "dagster_home": "/opt/dagster/dagster_home",
    "env_secrets": ["reasoning-plane-db"],
}


# what a Kubernetes API server answers for an object it does not have
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}


@pytest.fixture
def api_servers() -> Iterator[dict[str, FixedServer]]:
    """Loopback API servers answering every request with a Kubernetes 404 Status, recording the
    paths they were asked for."""
    names = ("eu-prod", "us-prod", "elsewhere")
    servers = {name: FixedServer(NOT_FOUND, status=404) for name in names}
    yield servers
    for server in servers.values():
        server.stop()


def _kubeconfig(tmp_path: Path, servers: dict[str, FixedServer]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "elsewhere",  # what a plain load_kube_config would use
                "clusters": [{"name": n, "cluster": {"server": s.url}} for n, s in servers.items()],
                "contexts": [
                    {"name": n, "context": {"cluster": n, "user": "dagster"}} for n in servers
                ],
                "users": [{"name": "dagster", "user": {"token": "not-a-secret"}}],
            }
        )
    )
    return path


def _launcher(kubeconfig: Path, **extra) -> PlacementRunLauncher:
    return PlacementRunLauncher.from_config_value(
        None,
        {
            "fleet_file": str(FLEET),
            "kubeconfig_file": str(kubeconfig),
            "job_image": CPU_IMAGE,
            "gpu_job_image": CUDA_IMAGE,
            "default_cluster": "control-plane",
            "default_namespace": "reasoning-plane",
            "run_defaults": DEFAULTS,
            **extra,
        },
    )


def _run(cluster: str, namespace: str = "financial-ml") -> DagsterRun:
    return DagsterRun(
        job_name="embeddings_job",
        run_id=f"run-{cluster}",
        tags={"plane/cluster": cluster, "plane/namespace": namespace},
    )


def test_each_cluster_talks_to_its_kube_context(
    tmp_path: Path, api_servers: dict[str, FixedServer]
) -> None:
    launcher = _launcher(_kubeconfig(tmp_path, api_servers))
    with dg.instance_for_test() as instance:
        launcher.register_instance(instance)
        for cluster in ("eu-fra-a10", "us-east-a100"):
            health = launcher.launcher_for(_run(cluster)).check_run_worker_health(_run(cluster))
            assert "could not be found" in (health.msg or ""), health  # a 404 from the server
    job = "/apis/batch/v1/namespaces/financial-ml/jobs/dagster-run-run-"
    assert api_servers["eu-prod"].paths == [job + "eu-fra-a10/status"]
    assert api_servers["us-prod"].paths == [job + "us-east-a100/status"]
    assert api_servers["elsewhere"].paths == []  # the current-context decides nothing


def test_settings_come_from_the_fleet_file(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path / "kubeconfig")
    eu = launcher.cluster_settings("eu-fra-a10")
    assert eu == {
        **DEFAULTS,
        "job_image": CUDA_IMAGE,  # a cluster with GPU pools runs the CUDA build
        "load_incluster_config": False,
        "kubeconfig_file": str(tmp_path / "kubeconfig"),
        "kube_context": "eu-prod",
    }
    assert launcher.cluster_settings("eu-par-h100")["kube_context"] == "eu-prod-2"
    assert launcher.cluster_settings("us-east-a100")["kube_context"] == "us-prod"
    # runs on no governed data: the launcher's own cluster, CPU image, in-cluster config
    assert launcher.cluster_settings("control-plane") == {
        **DEFAULTS,
        "job_image": CPU_IMAGE,
        "load_incluster_config": True,
    }
    # a cluster the fleet does not list is not a target
    assert launcher.cluster_settings("ap-tokyo-h100") is None
    with pytest.raises(PlacementRefused, match="not in the fleet file"):
        launcher.launcher_for(_run("ap-tokyo-h100"))


def test_the_step_executor_reads_its_home_clusters_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = _launcher(tmp_path / "kubeconfig")
    monkeypatch.setenv("PLANE_CLUSTER", "eu-par-h100")
    assert launcher.job_image == CUDA_IMAGE
    assert launcher.service_account_name == "dagster-run"
    assert launcher.env_secrets == ["reasoning-plane-db"]


def test_a_context_missing_from_the_kubeconfig_is_named(
    tmp_path: Path, api_servers: dict[str, FixedServer]
) -> None:
    kubeconfig = _kubeconfig(tmp_path, {"us-prod": api_servers["us-prod"]})
    launcher = _launcher(kubeconfig)
    with dg.instance_for_test() as instance:
        launcher.register_instance(instance)
        with pytest.raises(PlacementRefused) as error:
            launcher.launcher_for(_run("eu-fra-a10"))
    assert str(error.value).startswith(f"{kubeconfig}: contexts: no usable context 'eu-prod'")


def test_a_second_cluster_list_in_the_launcher_config_is_refused(tmp_path: Path) -> None:
    launcher = _launcher(
        tmp_path / "kubeconfig",
        clusters={"eu-frankfurt-old": {"job_image": CPU_IMAGE}},
    )
    with pytest.raises(PlacementRefused, match=r"clusters\.eu-frankfurt-old: no cluster"):
        launcher.cluster_settings("eu-fra-a10")


def test_per_cluster_overrides_merge_over_the_fleet(tmp_path: Path) -> None:
    launcher = _launcher(
        tmp_path / "kubeconfig",
        clusters={"eu-par-h100": {"resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}},
    )
    settings = launcher.cluster_settings("eu-par-h100")
    assert settings["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}}
    assert settings["kube_context"] == "eu-prod-2"
