"""The deployment files of Layers 2A/2B (deploy/): valid for their tools, and saying what we mean.

* every Kubernetes document under deploy/k8s/ validates against the Kubernetes 1.37 schemas in
  strict mode (kubernetes-validate, offline), and states the facts the plane relies on (quotas,
  RBAC, the telemetry agent on every GPU node);
* deploy/dagster.yaml validates against Dagster's instance schema and each block against the
  config schema of the class it names (postgres storage, QueuedRunCoordinator, the placement run
  launcher and, per cluster, dagster-k8s's K8sRunLauncher);
* the Kubernetes Job that dagster-k8s builds from that config for a placed decision is a valid
  Job in the team's namespace, which the team's quota admits;
* the Helm values carry the same launcher and coordinator, and the code location `-m stack_defs`;
* the Dockerfile installs torch before the project and ends with the code-server command.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster import DagsterRun
from dagster._cli import cli as dagster_cli
from dagster._config import process_config, validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._serdes.config_class import class_from_code_pointer
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import construct_dagster_k8s_job
from dagster_postgres import DagsterPostgresStorage

from data_plane.object_store import parse_zone_locations
from reasoning_plane.inputs import load_fleet, load_quotas
from reasoning_plane.launch import run_tags
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.telemetry_gateway import AUDIENCE
from resources.launcher import PlacementRunLauncher
from tests.unit.plane.factory import request, snapshot

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.37"
TEAMS = {"financial-ml": 16, "customer-support": 4, "media-ml": 8, "commerce-analytics": 8}
PLANE_NAMESPACE = "reasoning-plane"
DB_SECRET = "reasoning-plane-db"
S3_SECRET = "reasoning-plane-s3"
# what every Dagster pod and run worker is given as a value, the same everywhere
STORAGE_ENV = (
    "PLANE_LAKEHOUSE_ZONES",
    "PLANE_S3_ENDPOINT_URL",
    "PLANE_S3_REGION",
    "PLANE_COMPUTE_LOGS_BUCKET",
    "PLANE_COMPUTE_LOGS_REGION",
    "PLANE_LOG_FORMAT",
)
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
DOCUMENTS = [(path, doc) for path in MANIFESTS for doc in _documents(path)]


def _find(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in DOCUMENTS
        if doc["kind"] == kind
        and doc["metadata"]["name"] == name
        and doc["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


# -- deploy/k8s: schemas ---------------------------------------------------------------------


def test_every_manifest_file_is_there() -> None:
    names = {path.name for path in MANIFESTS}
    assert {"namespaces.yaml", "quotas.yaml", "rbac.yaml", "agent-daemonset.yaml"} <= names


@pytest.mark.parametrize(
    ("path", "doc"),
    DOCUMENTS,
    ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in DOCUMENTS],
)
def test_manifest_validates_strictly_against_kubernetes_schema(
    path: Path, doc: dict[str, Any]
) -> None:
    # strict: unknown fields are errors (a misspelt key would otherwise be silently dropped)
    kubernetes_validate.validate(doc, desired_version=K8S_VERSION, strict=True)


def test_strict_validation_refuses_an_unknown_field() -> None:
    quota = json.loads(json.dumps(_find("ResourceQuota", "gpu-quota", "media-ml")))
    quota["spec"]["hardd"] = quota["spec"].pop("hard")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(quota, desired_version=K8S_VERSION, strict=True)


# -- deploy/k8s: facts -----------------------------------------------------------------------


def test_namespaces_of_the_plane_and_the_teams() -> None:
    assert _find("Namespace", PLANE_NAMESPACE)
    for team in TEAMS:
        assert _find("Namespace", team)["metadata"]["labels"]["reasoning-plane/team"] == team


def test_gpu_quotas_as_kubernetes_and_the_plane_read_them() -> None:
    financial = _find("ResourceQuota", "ml-team-financial-models", "financial-ml")
    assert financial["spec"]["hard"]["requests.nvidia.com/gpu"] == "16"
    for team, gpus in TEAMS.items():
        quotas = [
            d
            for _, d in DOCUMENTS
            if d["kind"] == "ResourceQuota" and d["metadata"]["namespace"] == team
        ]
        assert [q["spec"]["hard"]["requests.nvidia.com/gpu"] for q in quotas] == [str(gpus)]
    # the same file is a valid PLANE_QUOTAS_FILE (its LimitRanges are skipped there)
    loaded = load_quotas(DEPLOY / "k8s" / "quotas.yaml")
    assert {team: quota.gpus for team, quota in loaded.items()} == TEAMS


def test_namespaces_with_a_cpu_or_memory_quota_give_default_requests() -> None:
    # the API server refuses a pod without CPU/memory requests in such a namespace; the
    # k8s_job_executor's step pods request only nvidia.com/gpu
    for _, doc in DOCUMENTS:
        if doc["kind"] != "ResourceQuota":
            continue
        hard = doc["spec"]["hard"]
        if {"requests.cpu", "requests.memory"} & set(hard):
            namespace = doc["metadata"]["namespace"]
            limits = _find("LimitRange", "default-requests", namespace)["spec"]["limits"]
            defaults = next(lim["defaultRequest"] for lim in limits if lim["type"] == "Container")
            assert {"cpu", "memory"} <= set(defaults)


def test_launcher_and_run_workers_may_manage_jobs_in_team_namespaces_only() -> None:
    role = _find("ClusterRole", "reasoning-plane-run-launcher")
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert {"create", "get", "list", "watch", "delete"} <= granted[("batch", "jobs")]
    assert {"get", "list", "watch"} <= granted[("", "pods")]
    assert "get" in granted[("", "pods/log")]
    assert "get" in granted[("batch", "jobs/status")]  # run monitoring reads the Job's status
    assert all("*" not in verbs for verbs in granted.values())
    # bound per team namespace, never cluster-wide; the only cluster-wide bindings let the
    # telemetry gateway review tokens (TokenReview is cluster-scoped) and the placement tick
    # read ResourceQuotas (live quotas list every namespace's), read only
    cluster_wide = [d for _, d in DOCUMENTS if d["kind"] == "ClusterRoleBinding"]
    assert sorted(d["roleRef"]["name"] for d in cluster_wide) == [
        "reasoning-plane-quota-reader",
        "system:auth-delegator",
    ]
    reader = _find("ClusterRole", "reasoning-plane-quota-reader", None)
    assert [(r["apiGroups"], r["resources"], sorted(r["verbs"])) for r in reader["rules"]] == [
        ([""], ["resourcequotas"], ["get", "list"])
    ]
    (quota_binding,) = [
        d for d in cluster_wide if d["roleRef"]["name"] == "reasoning-plane-quota-reader"
    ]
    assert quota_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "dagster", "namespace": PLANE_NAMESPACE}
    ]
    for team in TEAMS:
        assert _find("ServiceAccount", "dagster-run", team)
        binding = _find("RoleBinding", "reasoning-plane-run-launcher", team)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "reasoning-plane-run-launcher",
        }
        subjects = {(s["kind"], s["namespace"], s["name"]) for s in binding["subjects"]}
        assert ("ServiceAccount", PLANE_NAMESPACE, "dagster") in subjects
        assert ("ServiceAccount", team, "dagster-run") in subjects


def test_agent_runs_on_every_gpu_node_without_taking_a_gpu() -> None:
    ds = _find("DaemonSet", "plane-agent", PLANE_NAMESPACE)
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert GPU_TOLERATION in pod["tolerations"]
    assert pod["serviceAccountName"] == "plane-agent"
    assert _find("ServiceAccount", "plane-agent", PLANE_NAMESPACE)
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"][:2] == ["plane", "agent"]
    assert container["command"][2:] == [
        "--cluster",
        "$(CLUSTER_NAME)",
        "--node",
        "$(NODE_NAME)",
        "--interval",
        "1",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["PLANE_FLEET_FILE"]["value"] == "/etc/reasoning-plane/fleet/fleet.yaml"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert container["livenessProbe"]["exec"]["command"] == ["plane", "agent", "--check"]

    env = {e["name"]: e for e in container["env"]}
    # no database credential on GPU nodes: the agent proves its node to the cluster's gateway
    # with a projected token bound to its pod (audience of the gateway)
    assert "PLANE_DATABASE_URL" not in env
    assert env["PLANE_TELEMETRY_GATEWAY"]["value"].startswith("http://plane-telemetry-gateway.")
    token = Path(env["PLANE_TELEMETRY_TOKEN_FILE"]["value"])
    ref = env["CLUSTER_NAME"]["valueFrom"]["configMapKeyRef"]
    assert ref["key"] in _find("ConfigMap", ref["name"], PLANE_NAMESPACE)["data"]
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"]["value"] == "utility"

    # NVML through the runtime, not the device plugin: no GPU requested, none taken from a quota
    resources = container["resources"]
    assert all("nvidia.com/gpu" not in resources.get(k, {}) for k in ("requests", "limits"))
    assert {"cpu", "memory"} <= set(resources["limits"])
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # a read-only root: state goes to a writable emptyDir
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    state = Path(env["PLANE_STATE_DIR"]["value"])
    assert any(state.is_relative_to(path) for path in mounts)
    fleet = {m["name"]: m for m in container["volumeMounts"]}["fleet"]
    assert fleet["readOnly"] is True and "configMap" in volumes["fleet"]  # the fleet file
    (source,) = volumes["telemetry-token"]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == AUDIENCE
    assert mounts[str(token.parent)] == "telemetry-token"
    assert all(
        "emptyDir" in volumes[name]
        for name in mounts.values()
        if name not in ("fleet", "telemetry-token")
    )


def test_the_telemetry_gateway_reviews_tokens_and_holds_the_clusters_agent_role() -> None:
    deployment = _find("Deployment", "plane-telemetry-gateway", PLANE_NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:4] == [
        "plane",
        "telemetry-gateway",
        "--cluster",
        "$(CLUSTER_NAME)",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["PLANE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": DB_SECRET,
        "key": "url",
    }
    binding = _find("ClusterRoleBinding", "reasoning-plane-telemetry-gateway-token-review")
    assert binding["roleRef"]["name"] == "system:auth-delegator"  # may create TokenReviews
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": PLANE_NAMESPACE}
    ]
    service = _find("Service", "plane-telemetry-gateway", PLANE_NAMESPACE)
    agent = _find("DaemonSet", "plane-agent", PLANE_NAMESPACE)["spec"]["template"]["spec"]
    url = {e["name"]: e for e in agent["containers"][0]["env"]}["PLANE_TELEMETRY_GATEWAY"]
    port = service["spec"]["ports"][0]["port"]
    assert url["value"] == f"http://{service['metadata']['name']}.{PLANE_NAMESPACE}.svc:{port}"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_inference_gateway_serves_the_repositorys_config_with_probes_and_no_root(
    tmp_path: Path,
) -> None:
    """deploy/k8s/gateway.yaml: `plane serve` with the serving ConfigMap (config/serving.yaml,
    valid against the example fleet), the fleet, budgets, principals and Cedar policies mounted
    where its environment points, the database URL from a Secret, /healthz probes."""
    from plane_cli.main import build_parser
    from reasoning_plane.config.serving import load_serving
    from serving.gateway import Gateway, create_app

    deployment = _find("Deployment", "plane-gateway", PLANE_NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["command"][1:])
    assert container["command"][0] == "plane" and args.func.__name__ == "serve"
    env = {e["name"]: e for e in container["env"]}
    assert env["PLANE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = [env[name]["value"] for name in ("PLANE_BUDGETS_FILE", "PLANE_PRINCIPALS_FILE")]
    for path in [*files, env["PLANE_FLEET_FILE"]["value"], args.config, f"{args.policies}/x"]:
        folder = path.rpartition("/")[0]
        assert "configMap" in volumes[mounts[folder]], path
    assert volumes[mounts["/etc/reasoning-plane/fleet"]]["configMap"]["name"] == (
        "reasoning-plane-fleet"  # the one the agents mount
    )
    # the ConfigMap is the repository's serving.yaml, valid against the example fleet
    data = _find("ConfigMap", "reasoning-plane-serving", PLANE_NAMESPACE)["data"]["serving.yaml"]
    assert yaml.safe_load(data) == yaml.safe_load((REPO / "config" / "serving.yaml").read_text())
    (tmp_path / "serving.yaml").write_text(data)
    config = load_serving(
        tmp_path / "serving.yaml", load_fleet(REPO / "examples/seed_scenario/fleet.yaml")
    )
    port = container["ports"][0]["containerPort"]
    assert args.port == port == config.port
    # probes ask a route the gateway has; no root, no privilege, no API token
    app = create_app(
        Gateway(load_fleet(REPO / "examples/seed_scenario/fleet.yaml"), [], {}, str, dict, {})
    )
    paths = {route.path for route in app.routes}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    service = _find("Service", "plane-gateway", PLANE_NAMESPACE)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_serving_node_agent_runs_on_each_serving_node_with_its_node_name(
    tmp_path: Path,
) -> None:
    """deploy/k8s/serving-node-agent.yaml: `plane node-agent` on every serving node, named by
    the downward API (spec.nodeName), with the serving-nodes ConfigMap (a valid planner
    configuration whose nodes are on clusters of the example fleet, with an adapter each) where
    its --nodes points, the models read-only, no root; and each node's agent pinned to its node
    with a Secret of its own (its node's agent role), never the plane role's Secret nor one that
    another node's pods share."""
    from plane_cli.main import build_parser
    from reasoning_plane.serving.planner_config import load_planner_config
    from serving.residency import build_adapters

    daemonsets = [
        doc
        for _, doc in DOCUMENTS
        if doc["kind"] == "DaemonSet"
        and doc["metadata"]["labels"].get("app.kubernetes.io/name") == "plane-serving-node-agent"
    ]
    assert daemonsets
    secrets: dict[str, str] = {}  # node -> the Secret its agent logs in with
    for daemonset in daemonsets:
        pod = daemonset["spec"]["template"]["spec"]
        (node_agent,) = pod["containers"]
        url = {e["name"]: e for e in node_agent["env"]}["PLANE_DATABASE_URL"]["valueFrom"]
        assert url["secretKeyRef"]["key"] == "url"
        node = pod["nodeSelector"]["kubernetes.io/hostname"]
        assert node not in secrets, f"two serving node agent DaemonSets on {node}"
        secrets[node] = url["secretKeyRef"]["name"]
    assert len(set(secrets.values())) == len(secrets), secrets  # no Secret shared by two nodes
    assert not set(secrets.values()) & {"reasoning-plane-db-plane", DB_SECRET}
    daemonset = daemonsets[0]
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["command"][1:])
    assert container["command"][0] == "plane" and args.func.__name__ == "node_agent"
    env = {e["name"]: e for e in container["env"]}
    assert args.node == "$(NODE_NAME)"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    folder = args.nodes.rpartition("/")[0]
    config_map = volumes[mounts[folder]["name"]]["configMap"]["name"]
    data = _find("ConfigMap", config_map, PLANE_NAMESPACE)["data"]["serving_nodes.yaml"]
    (tmp_path / "serving_nodes.yaml").write_text(data)
    config = load_planner_config(tmp_path / "serving_nodes.yaml")
    fleet = load_fleet(REPO / "examples/seed_scenario/fleet.yaml")
    assert set(secrets) == {node.name for node in config.nodes}  # an agent on each, its own
    for node in config.nodes:
        assert fleet.get(node.cluster) is not None, node.cluster
        assert {r for n, r in build_adapters(config, node.name)} == set(node.runtimes)
    for model in config.raw.models:  # the GGUF files are on the node's read-only model mount
        folder = model.source.rpartition("/")[0]
        assert mounts[folder]["readOnly"] and "hostPath" in volumes[mounts[folder]["name"]]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert "memory" in container["resources"]["limits"]


# -- deploy/dagster.yaml ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance_yaml() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def _valid(config_type: Any, value: Any) -> None:
    result = validate_config(config_type, value)
    assert result.success, [error.message for error in result.errors or []]


def test_instance_config_validates_against_dagsters_schema() -> None:
    config, custom_instance_class = dagster_instance_config(str(DEPLOY))
    assert custom_instance_class is None
    assert {"storage", "run_coordinator", "run_launcher"} <= set(config)
    assert config["telemetry"] == {"enabled": False}


def test_storage_is_postgres_over_tls_from_the_environment(instance_yaml: dict) -> None:
    storage = instance_yaml["storage"]
    assert list(storage) == ["postgres"]
    _valid(DagsterPostgresStorage.config_type(), storage["postgres"])
    db = storage["postgres"]["postgres_db"]
    assert db["params"] == {"sslmode": "require"}
    for key, variable in {
        "hostname": "DAGSTER_PG_HOST",
        "username": "DAGSTER_PG_USERNAME",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }.items():
        assert db[key] == {"env": variable}  # never a literal credential


def test_queued_run_coordinator_limits_per_team_and_gpu_type(instance_yaml: dict) -> None:
    block = instance_yaml["run_coordinator"]
    assert class_from_code_pointer(block["module"], block["class"]) is QueuedRunCoordinator
    _valid(QueuedRunCoordinator.config_type(), block["config"])
    limits = {lim["key"]: lim for lim in block["config"]["tag_concurrency_limits"]}
    assert limits["plane/team"] == {
        "key": "plane/team",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 8,
    }
    assert limits["plane/gpu_type"]["value"] == {"applyLimitPerUniqueValue": True}
    assert block["config"]["max_concurrent_runs"] >= 8


def _launcher_config(instance_yaml: dict) -> dict[str, Any]:
    block = instance_yaml["run_launcher"]
    assert class_from_code_pointer(block["module"], block["class"]) is PlacementRunLauncher
    return block["config"]


def test_run_launcher_routes_every_fleet_cluster_through_k8s(
    instance_yaml: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _launcher_config(instance_yaml)
    _valid(PlacementRunLauncher.config_type(), config)
    # one list of clusters: the fleet file's; none is copied into the instance or Helm values
    assert "clusters" not in config
    assert config["fleet_file"] == {"env": "PLANE_FLEET_FILE"}
    fleet_path = REPO / "examples" / "seed_scenario" / "fleet.yaml"
    monkeypatch.setenv("PLANE_FLEET_FILE", str(fleet_path))
    fleet = load_fleet(fleet_path)
    launcher = PlacementRunLauncher.from_config_value(
        None, {**config, "fleet_file": str(fleet_path)}
    )
    for cluster in [*fleet.clusters, None]:
        name = cluster.name if cluster else "control-plane"
        settings = dict(launcher.cluster_settings(name))
        context = settings.pop("kube_context", None)
        _valid(K8sRunLauncher.config_type(), settings)
        assert "job_namespace" not in settings, name  # the decision's namespace, per run
        if cluster is None:
            assert settings["load_incluster_config"] is True
            assert settings["job_image"] == config["job_image"]  # CPU build
        else:
            assert context == cluster.kube_context and context, name
            assert settings["kubeconfig_file"] == "/etc/reasoning-plane/kubeconfig/config"
            assert settings["load_incluster_config"] is False
            # GPU clusters run the CUDA build of the image, never CPU PyTorch
            assert settings["job_image"] == config["gpu_job_image"]
            assert settings["job_image"].endswith("-cuda")
        assert settings["service_account_name"] == "dagster-run"
        assert settings["env_secrets"] == [DB_SECRET, S3_SECRET]
        # run workers verify the signed decision they carry and read the fleet file
        assert "PLANE_VERIFY_KEYS=/etc/reasoning-plane/verify-keys" in settings["env_vars"]
        assert "PLANE_FLEET_FILE=/etc/reasoning-plane/fleet/fleet.yaml" in settings["env_vars"]
        mounts = {m["name"]: m["mountPath"] for m in settings["volume_mounts"]}
        assert mounts["fleet"] == "/etc/reasoning-plane/fleet"


def test_runs_without_a_placement_go_to_the_control_plane(instance_yaml: dict) -> None:
    """Only routing matters here: governed work without a decision is refused by `verify`
    (tests/integration/test_production_launch.py) before it gets a target."""
    launcher = PlacementRunLauncher.from_config_value(None, _launcher_config(instance_yaml))
    run = DagsterRun(job_name="team_spend_job", run_id="unplaced", tags={})
    assert launcher.target(run) == ("control-plane", "reasoning-plane")


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
            }
        )
    )
    return path


@pytest.fixture
def placed_run_job(instance_yaml: dict, tmp_path: Path):
    """Build a Job for a placed run, as dagster-k8s would, from deploy/dagster.yaml."""
    fleet = load_fleet(REPO / "examples" / "seed_scenario" / "fleet.yaml")
    decision = place(request(), snapshot(fleet=fleet), PlacementPolicy())
    assert decision.chosen is not None and decision.chosen.cluster == "eu-fra-a10"
    tags = run_tags(decision, fleet)
    config = _launcher_config(instance_yaml)
    launcher = PlacementRunLauncher.from_config_value(
        None, {**config, "fleet_file": str(REPO / "examples" / "seed_scenario" / "fleet.yaml")}
    )
    cluster = dict(launcher.cluster_settings(tags["plane/cluster"]))
    cluster.pop("kube_context")

    def build(extra_tags: dict[str, str] | None = None) -> dict[str, Any]:
        launcher = K8sRunLauncher(
            **{**cluster, "kubeconfig_file": str(_kubeconfig(tmp_path))},
            job_namespace=tags["plane/namespace"],
        )
        run = DagsterRun(
            job_name="embeddings_job", run_id="0f1e2d3c4b5a", tags={**tags, **(extra_tags or {})}
        )
        context = launcher.get_container_context_for_run(run)
        job = construct_dagster_k8s_job(
            job_config=context.get_k8s_job_config(job_image=None, run_launcher=launcher),
            args=["dagster", "api", "execute_run", "{}"],
            job_name="dagster-run-0f1e2d3c4b5a",
            pod_name="dagster-run-0f1e2d3c4b5a",
            component="run_worker",
            user_defined_k8s_config=context.run_k8s_config,
            labels={"dagster/run-id": run.run_id},
        )
        body = kubernetes.client.ApiClient().sanitize_for_serialization(job)
        return {"apiVersion": "batch/v1", "kind": "Job", **body, "namespace": context.namespace}

    return decision, build


def test_placed_run_becomes_a_valid_job_in_the_team_namespace(placed_run_job) -> None:
    decision, build = placed_run_job
    job = build()
    assert job.pop("namespace") == decision.request.team == "financial-ml"
    kubernetes_validate.validate(job, desired_version=K8S_VERSION, strict=True)
    assert job["metadata"]["labels"]["reasoning-plane/decision-id"] == decision.decision_id
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "dagster-run"
    assert pod["nodeSelector"]["topology.kubernetes.io/region"] == "eu-central-1"
    # the reservation's duration is a hard limit: the allowlist lets the decision set it
    limit = math.ceil(decision.chosen_evaluation.cost.duration_s * 1.5)
    assert job["spec"]["activeDeadlineSeconds"] == limit
    (container,) = pod["containers"]
    assert {"secretRef": {"name": DB_SECRET}} in container["envFrom"]
    assert {"secretRef": {"name": S3_SECRET}} in container["envFrom"]  # lakehouse, step logs
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PLANE_LAKEHOUSE_ZONES"] and env["PLANE_LOG_FORMAT"] == "json"
    assert container["securityContext"]["runAsNonRoot"] is True
    # the team's quota also limits requests.cpu and requests.memory: the run worker requests both
    financial = _find("ResourceQuota", "ml-team-financial-models", "financial-ml")["spec"]["hard"]
    assert {
        k.removeprefix("requests.") for k in financial if k != "requests.nvidia.com/gpu"
    } <= set(container["resources"]["requests"])


def test_run_tags_may_not_change_the_image_or_mount_volumes(placed_run_job) -> None:
    _, build = placed_run_job
    for sneaky in (
        {"container_config": {"image": "attacker/image:latest"}},
        {"pod_spec_config": {"volumes": [{"name": "h", "host_path": {"path": "/"}}]}},
        {"pod_spec_config": {"service_account_name": "default"}},
    ):
        with pytest.raises(Exception, match="allowed list"):
            build({"dagster-k8s/config": json.dumps(sneaky)})


# -- deploy/helm/values.yaml -----------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_helm_code_location_is_stack_defs(helm_values: dict) -> None:
    user = helm_values["dagster-user-deployments"]
    assert user["enabled"] is True
    (deployment,) = user["deployments"]
    assert deployment["name"] == "reasoning-plane"
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "stack_defs"]
    assert deployment["port"] == 3030
    assert {"name": DB_SECRET} in deployment["envSecrets"]
    assert {e["name"] for e in deployment["env"]} >= {"PLANE_FLEET_FILE", "PLANE_QUOTAS_FILE"}
    # the chart would otherwise give every run this deployment's namespace (reasoning-plane)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    # the chart runs `dagster api grpc -h 0.0.0.0 -p PORT ARGS`: the arguments must parse
    grpc = dagster_cli.commands["api"].commands["grpc"]
    args = ["-h", "0.0.0.0", "-p", str(deployment["port"]), *deployment["dagsterApiGrpcArgs"]]
    assert grpc.make_context("grpc", args).params["module_name"] == "stack_defs"


def test_helm_uses_external_postgres_and_no_telemetry(helm_values: dict) -> None:
    assert helm_values["postgresql"]["enabled"] is False
    assert helm_values["postgresql"]["postgresqlHost"]
    assert helm_values["postgresql"]["postgresqlParams"] == {"sslmode": "require"}
    assert helm_values["global"]["postgresqlSecretName"] == DB_SECRET
    assert helm_values["generatePostgresqlPasswordSecret"] is False
    assert helm_values["telemetry"]["enabled"] is False
    # the launcher's service account, which rbac.yaml binds in the team namespaces
    assert helm_values["serviceAccount"]["name"] == "dagster"


def test_helm_launcher_and_coordinator_match_the_instance_file(
    helm_values: dict, instance_yaml: dict
) -> None:
    launcher = helm_values["runLauncher"]
    assert launcher["type"] == "CustomRunLauncher"
    custom = launcher["config"]["customRunLauncher"]
    assert (custom["module"], custom["class"]) == ("resources.launcher", "PlacementRunLauncher")
    assert custom["config"] == instance_yaml["run_launcher"]["config"]

    coordinator = helm_values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    rendered = {_snake(key): value for key, value in queued.items()}
    _valid(QueuedRunCoordinator.config_type(), rendered)
    assert rendered == instance_yaml["run_coordinator"]["config"]


def test_helm_runs_one_image_everywhere(helm_values: dict, instance_yaml: dict) -> None:
    def image(values: dict) -> str:
        return f"{values['image']['repository']}:{values['image']['tag']}"

    images = {
        image(helm_values["dagsterWebserver"]),
        image(helm_values["dagsterDaemon"]),
        image(helm_values["dagster-user-deployments"]["deployments"][0]),
        instance_yaml["run_launcher"]["config"]["job_image"],
    }
    agent = _find("DaemonSet", "plane-agent", PLANE_NAMESPACE)["spec"]["template"]["spec"]
    images.add(agent["containers"][0]["image"])
    assert len(images) == 1, images
    # GPU clusters: the same tag's CUDA build (deploy/Dockerfile, TORCH_FLAVOUR=cuda)
    cpu = images.pop()
    assert instance_yaml["run_launcher"]["config"]["gpu_job_image"] == f"{cpu}-cuda"
    # the image runs as a non-root user: no privileged port for the webserver
    assert helm_values["dagsterWebserver"]["service"]["port"] > 1024


def test_helm_database_secret_reaches_daemon_webserver_and_code_server(
    helm_values: dict,
) -> None:
    """The daemon runs the routing launcher; without PLANE_DATABASE_URL it would have started
    an embedded PostgreSQL in its pod and found no decisions (now refused there)."""
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    for name, values in (
        ("dagsterDaemon", helm_values["dagsterDaemon"]),
        ("dagsterWebserver", helm_values["dagsterWebserver"]),
        ("code server", deployment),
    ):
        assert {"name": DB_SECRET} in values["envSecrets"], name
        env = {e["name"]: e["value"] for e in values["env"]}
        assert env["PLANE_FLEET_FILE"] == "/etc/reasoning-plane/fleet/fleet.yaml", name
        mounts = {m["mountPath"] for m in values["volumeMounts"]}
        volumes = {v["name"]: v for v in values["volumes"]}
        # every file an env var names is on a mounted ConfigMap
        for variable in ("PLANE_FLEET_FILE", "PLANE_QUOTAS_FILE", "PLANE_BUDGETS_FILE"):
            assert str(Path(env[variable]).parent) in mounts, (name, variable)
        assert volumes["fleet"]["configMap"]["name"] == "reasoning-plane-fleet", name
        assert volumes["plane-files"]["configMap"]["name"] == "reasoning-plane-files", name
    for name in ("dagsterDaemon", "dagsterWebserver"):
        volumes = {v["name"]: v for v in helm_values[name]["volumes"]}
        assert volumes["kubeconfig"]["secret"]["secretName"] == "reasoning-plane-kubeconfig"
    # the chart's storage password key
    assert helm_values["global"]["postgresqlSecretName"] == DB_SECRET


def _chart_compute_logs(values: dict) -> dict[str, Any]:
    """The instance's compute_logs as the chart renders `computeLogManager` (its template
    helpers/instance/_compute-log-manager.tpl, type S3ComputeLogManager): each key set is
    written in snake case, `verify` always (true unless false)."""
    manager = values["computeLogManager"]
    assert manager["type"] == "S3ComputeLogManager"
    given = manager["config"]["s3ComputeLogManager"]
    config = {_snake(key): value for key, value in given.items() if value and key != "verify"}
    config["verify"] = given.get("verify") is not False
    return {
        "module": "dagster_aws.s3.compute_log_manager",
        "class": "S3ComputeLogManager",
        "config": config,
    }


def _chart_python_logs(values: dict) -> dict[str, Any]:
    """The instance's python_logs as the chart renders `pythonLogs` (configmap-instance.yaml)."""
    return {_snake(key): value for key, value in values["pythonLogs"].items() if value}


def _pod_env(values: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in values["env"] if "value" in e}


def _dagster_pods(helm_values: dict, instance_yaml: dict) -> dict[str, dict[str, Any]]:
    """(env values, Secrets loaded whole) of each Dagster pod: webserver, daemon, code server and
    the run workers of every fleet cluster and of the control plane."""
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    pods = {
        name: {
            "env": _pod_env(values),
            "secrets": [secret["name"] for secret in values["envSecrets"]],
        }
        for name, values in (
            ("webserver", helm_values["dagsterWebserver"]),
            ("daemon", helm_values["dagsterDaemon"]),
            ("code server", deployment),
        )
    }
    fleet_path = REPO / "examples" / "seed_scenario" / "fleet.yaml"
    launcher = PlacementRunLauncher.from_config_value(
        None, {**_launcher_config(instance_yaml), "fleet_file": str(fleet_path)}
    )
    for cluster in [*(c.name for c in load_fleet(fleet_path).clusters), "control-plane"]:
        settings = launcher.cluster_settings(cluster)
        pods[f"run worker ({cluster})"] = {
            "env": dict(var.split("=", 1) for var in settings["env_vars"] if "=" in var),
            "secrets": list(settings["env_secrets"]),
        }
    return pods


def test_every_dagster_pod_has_the_same_object_storage_and_log_settings(
    helm_values: dict, instance_yaml: dict
) -> None:
    """The lakehouse zones and the step logs' bucket reach the webserver, the daemon, the code
    server and every run worker with one value each, credentials only through the Secret: a
    zone missing on one pod would have its runs write that zone's data nowhere (or fail), and
    the code server's EnvVars are read again in the run worker."""
    pods = _dagster_pods(helm_values, instance_yaml)
    for name, pod in pods.items():
        assert S3_SECRET in pod["secrets"], name
        assert pod["env"].get("PLANE_LOG_FORMAT") == "json", name
        assert "PLANE_LAKEHOUSE_ZONES" in pod["env"], name
        for secret in ("PLANE_S3_ACCESS_KEY_ID", "PLANE_S3_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
            assert secret not in pod["env"], (name, secret)  # never a literal credential
    for variable in STORAGE_ENV:
        values = {name: pod["env"].get(variable) for name, pod in pods.items()}
        assert len(set(values.values())) == 1, (variable, values)
    env = pods["daemon"]["env"]
    zones = parse_zone_locations(env["PLANE_LAKEHOUSE_ZONES"], "PLANE_LAKEHOUSE_ZONES")
    assert {"EU", "US"} <= set(zones) and len(set(zones.values())) == len(zones)
    # the chart's compute-log region is written out (see values.yaml): the same as the env's
    s3_logs = helm_values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert s3_logs["region"] == env["PLANE_COMPUTE_LOGS_REGION"]


def test_helm_compute_logs_and_python_logs_match_the_instance_file(
    helm_values: dict, instance_yaml: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the chart the instance is rendered from the values, not read from
    deploy/dagster.yaml: both must give Dagster the same step-log storage and the same JSON
    log handler (that of deploy/observability/dagster-json-logs.yaml)."""
    rendered = _chart_compute_logs(helm_values)
    block = instance_yaml["compute_logs"]
    assert (block["module"], block["class"]) == (rendered["module"], rendered["class"])
    assert class_from_code_pointer(block["module"], block["class"]) is S3ComputeLogManager
    # as S3ComputeLogManager gets them in the pods: defaults filled in, {env: X} read from
    # the env the values give every pod
    for name, value in _pod_env(helm_values["dagsterDaemon"]).items():
        monkeypatch.setenv(name, value)
    processed = []
    for config in (rendered["config"], block["config"]):
        result = process_config(S3ComputeLogManager.config_type(), config)
        assert result.success, [error.message for error in result.errors or []]
        processed.append(result.value)
    assert processed[0] == processed[1]
    assert processed[0]["bucket"] == "reasoning-plane-compute-logs"

    fragment = yaml.safe_load((DEPLOY / "observability" / "dagster-json-logs.yaml").read_text())
    assert _chart_python_logs(helm_values) == instance_yaml["python_logs"]
    assert instance_yaml["python_logs"] == fragment["python_logs"]


def test_compute_log_comparison_sees_a_difference(
    helm_values: dict, instance_yaml: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = json.loads(json.dumps(helm_values))
    changed["computeLogManager"]["config"]["s3ComputeLogManager"]["prefix"] = "logs"
    with pytest.raises(AssertionError):
        test_helm_compute_logs_and_python_logs_match_the_instance_file(
            changed, instance_yaml, monkeypatch
        )
    changed = json.loads(json.dumps(helm_values))
    changed["pythonLogs"]["pythonLogLevel"] = "DEBUG"
    with pytest.raises(AssertionError):
        test_helm_compute_logs_and_python_logs_match_the_instance_file(
            changed, instance_yaml, monkeypatch
        )


# -- deploy/observability and the README's steps -----------------------------------------------


def _referenced(node: Any) -> set[tuple[str, str]]:
    """(Secret|ConfigMap, name) of every Secret and ConfigMap a manifest or values file uses."""
    found: set[tuple[str, str]] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secret",) and isinstance(value, dict) and "secretName" in value:
                found.add(("Secret", value["secretName"]))
            elif key in ("configMap",) and isinstance(value, dict) and "name" in value:
                found.add(("ConfigMap", value["name"]))
            elif key in ("secretRef", "secretKeyRef") and isinstance(value, dict):
                found.add(("Secret", value["name"]))
            elif key == "configMapKeyRef" and isinstance(value, dict):
                found.add(("ConfigMap", value["name"]))
            elif key in ("envSecrets",) and isinstance(value, list):
                found |= {("Secret", item["name"]) for item in value}
            elif key in ("env_secrets",) and isinstance(value, list):
                found |= {("Secret", item) for item in value}
            elif key == "role_env_secrets" and isinstance(value, dict):
                found |= {("Secret", item) for items in value.values() for item in items}
            found |= _referenced(value)
    elif isinstance(node, list):
        for item in node:
            found |= _referenced(item)
    return found


def test_the_metrics_exporter_mounts_the_releases_configmaps(helm_values: dict) -> None:
    """deploy/observability/metrics-exporter.yaml reads the quota and budget files from the
    ConfigMap the Dagster pods mount, at the same paths: no second copy to keep in step."""
    (exporter,) = [
        doc
        for doc in _documents(DEPLOY / "observability" / "metrics-exporter.yaml")
        if doc["kind"] == "Deployment"
    ]
    pod = exporter["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    daemon = helm_values["dagsterDaemon"]
    ours = {_pod_env(daemon)[name] for name in ("PLANE_QUOTAS_FILE", "PLANE_BUDGETS_FILE")}
    assert {env["PLANE_QUOTAS_FILE"], env["PLANE_BUDGETS_FILE"]} == ours
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    daemon_volumes = {v["name"]: v for v in daemon["volumes"]}
    daemon_mounts = {m["mountPath"]: daemon_volumes[m["name"]] for m in daemon["volumeMounts"]}
    for path in ("/etc/reasoning-plane/plane", "/etc/reasoning-plane/fleet"):
        assert mounts[path]["configMap"] == daemon_mounts[path]["configMap"], path
    assert ("ConfigMap", "reasoning-plane-files") in _referenced(exporter)
    assert env["PLANE_LOG_FORMAT"] == "json"


def _kubernetes_steps() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run on Kubernetes", 1)[1].split("\n## ", 1)[0]
    return section.split("Step by step", 1)[1]


def test_the_readme_steps_create_every_secret_and_configmap_the_deploy_uses(
    helm_values: dict, instance_yaml: dict
) -> None:
    """A platform engineer following the README's numbered steps creates each Secret and
    ConfigMap the release, the run workers and the observability manifests refer to (the chart
    renders its own dagster-instance), and applies deploy/observability/."""
    steps = _kubernetes_steps()
    created = {
        ("Secret" if kind.startswith("secret") else "ConfigMap", name)
        for kind, name in re.findall(
            r"create (secret generic|configmap) ([a-z0-9][a-z0-9-]*)", steps
        )
    }
    used = _referenced(helm_values) | _referenced(instance_yaml)
    for path in sorted((DEPLOY / "observability").glob("*.yaml")):
        for doc in _documents(path):
            used |= _referenced(doc)
    assert used - created == set(), sorted(used - created)
    applied = " ".join(re.findall(r"kubectl[^\n]* apply (?:[^\n]*\\\n)*[^\n]*", steps))
    for manifest in ("metrics-exporter.yaml", "prometheusrule.yaml"):
        assert f"-f deploy/observability/{manifest}" in applied, manifest
    # the chart creates the instance ConfigMap in reasoning-plane: a second one would make the
    # install fail (a resource not owned by the release)
    assert not re.search(r"-n reasoning-plane create configmap dagster-instance", steps)


# -- deploy/Dockerfile -----------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_installs_cpu_torch_first_then_the_project() -> None:
    steps = _instructions(DEPLOY / "Dockerfile")
    froms = [arg for kind, arg in steps if kind == "FROM"]
    assert froms == [
        "python:3.11-slim AS base",
        "base AS torch-cpu",
        "base AS torch-cuda",
        "torch-${TORCH_FLAVOUR}",
    ]
    args = [arg for kind, arg in steps if kind == "ARG"]
    assert "TORCH_FLAVOUR=cpu" in args and "TORCH_VERSION=2.13.0" in args
    # the default build is the CPU one; TORCH_FLAVOUR=cuda gives the GPU clusters' image
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in args
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128" in args
    runs = [arg for kind, arg in steps if kind == "RUN"]
    torch = next(i for i, r in enumerate(runs) if "pip install" in r and "torch==" in r)
    assert '--index-url "${TORCH_INDEX_URL}"' in runs[torch]
    project = next(i for i, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r))
    assert torch < project

    copied = {
        source.rstrip("/") for kind, arg in steps if kind == "COPY" for source in arg.split()[:-1]
    }
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert set(pyproject["tool"]["setuptools"]["packages"]) <= copied
    assert {"pyproject.toml", "README.md", "config", "data"} <= copied

    env = " ".join(arg for kind, arg in steps if kind == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "TRANSFORMERS_OFFLINE=1" in env


def test_dockerfile_runs_the_code_server_as_a_non_root_user() -> None:
    steps = _instructions(DEPLOY / "Dockerfile")
    kinds = [kind for kind, _ in steps]
    # the chart, dagster-k8s and the DaemonSet pass full command lines: no ENTRYPOINT
    assert "ENTRYPOINT" not in kinds
    user = [arg for kind, arg in steps if kind == "USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert ("EXPOSE", "3030") in steps
    kind, cmd = steps[-1]
    assert kind == "CMD"
    argv = json.loads(cmd)
    assert shlex.join(argv) == "dagster code-server start -h 0.0.0.0 -p 3030 -m stack_defs"
    start = dagster_cli.commands["code-server"].commands["start"]
    params = start.make_context("start", argv[3:]).params
    assert (params["host"], params["port"], params["module_name"]) == (
        "0.0.0.0",
        3030,
        "stack_defs",
    )


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".plane", ".git", "data/generated", "benchmarks/out"} <= ignored
    assert "**/__pycache__" in ignored
