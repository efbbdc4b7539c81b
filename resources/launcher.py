"""`PlacementRunLauncher`: one Dagster instance, runs launched on the cluster each decision chose.

Stock Dagster has one run launcher per instance. This launcher routes every run by its placement
tags (`reasoning_plane.launch.run_tags`):

* ``plane/cluster: local`` (or no placement and ``default_cluster: local``): the run is launched
  on this machine by Dagster's `DefaultRunLauncher` (the code server runs it);
* any other cluster: a dagster-k8s `K8sRunLauncher` configured for that cluster (its kubeconfig
  or in-cluster config, service account, image, instance ConfigMap...) launches the run worker
  as a Kubernetes Job in the decision's namespace (``plane/namespace``, the team's); the
  ``dagster-k8s/config`` tag adds the decision's labels and node selector.

One `K8sRunLauncher` is created per (cluster, namespace) on first use. A run that names a cluster
this launcher has no configuration for is refused with an error saying which key to add.

No bypass. Before anything is launched:

* a run carrying a routing tag (`reasoning_plane.launch.ROUTING_TAGS`: decision, request, team,
  cluster, zone, GPU type and count, executor, namespace, device) or ``dagster-k8s/config`` must
  name a decision (``plane/decision_id``) that ``plane.decisions`` holds, **signed by the
  plane** (`reasoning_plane.signing`; a row written by anything else does not verify),
  ``placed``, for exactly the run's asset selection (`reasoning_plane.binding.run_problems`),
  with every routing tag equal to the signed decision's (`reasoning_plane.launch`, the one owner
  of the run-tag contract, builds the tags and checks them); the run config's k8s executor must
  ask for the decision's namespace and GPU count; ``dagster-k8s/config`` may only carry the node
  selector, tolerations, GPU resources, labels and deadline of that decision. The launcher then
  **claims** the decision for the run in ``plane.decision_claims`` (atomic): a decision launches
  one run, and a copy (a re-execution, the launchpad) is refused with the id of the run that
  holds it. Otherwise the run is **refused** (hand-written tags are not trusted). Other
  ``plane/*`` tags (summary, explain, estimated cost) only describe a placement and claim
  nothing;
* a run with no placement that would materialize a workload the plane places (an asset declaring
  ``plane/gpu_count``: everything that reads governed data, e.g. ``ingested/*`` or
  ``embeddings/*`` launched from the UI's Materialize button) is **refused** with a message
  saying how to get it placed (``placement_sensor``, ``plane request`` or ``plane run``): it is
  not placed on launch, because a placement needs the tick's ledger transaction (quota, budget,
  reservations). When the launcher cannot tell (no workspace), an unplaced run is refused too;
* any other run without placement (work on no governed data, e.g. ``plane/team_spend``) goes to
  ``default_cluster`` (in ``default_namespace`` when that is a Kubernetes cluster; refused when
  ``default_cluster`` is empty).

The same checks run again inside every governed step (`resources.guard`), so a run that never
passed through this launcher (``dagster job execute``, ``materialize()``) reads nothing either.

The decision is read from PostgreSQL (``database_url``, default the project database) with a
bounded retry; when the database cannot be reached the run is refused, never launched unchecked.

One source of truth for clusters: the fleet file (``fleet_file``, e.g. ``{env:
PLANE_FLEET_FILE}``, the file the placement core reads, `reasoning_plane.inputs.load_fleet`).
Every cluster of the fleet (but the ``local`` one) gets a K8sRunLauncher built from
``run_defaults`` (K8sRunLauncher keys shared by all clusters: instance ConfigMap, Secrets,
volumes, security context...) and the fleet's own facts about it:

* ``kube_context``: the context of ``kubeconfig_file`` whose API server, credentials and CA this
  cluster's API client uses (one kubeconfig holding a context per cluster); a cluster without
  ``kube_context`` is the one the launcher runs in (in-cluster service-account config);
* ``service_account``: the run workers' service account (K8sRunLauncher
  ``service_account_name``);
* ``image``, else ``gpu_job_image`` for a cluster with GPU pools (the CUDA build of the image),
  else ``job_image`` (the CPU build).

``default_cluster``, when it is not in the fleet and not ``local``, is the launcher's own cluster
(in-cluster config, ``job_image``): where runs on no governed data go. ``clusters`` may add
K8sRunLauncher settings for one cluster by name (merged over the generated ones); a name that is
neither in the fleet nor the default cluster is refused. Without ``fleet_file``, ``clusters`` is
the whole list (tests, local use).

``dagster.yaml``::

    run_launcher:
      module: resources.launcher
      class: PlacementRunLauncher
      config:
        fleet_file: {env: PLANE_FLEET_FILE}
        kubeconfig_file: /etc/reasoning-plane/kubeconfig/config
        job_image: registry.example.com/reasoning-plane:0.1.0
        gpu_job_image: registry.example.com/reasoning-plane:0.1.0-cuda
        default_cluster: control-plane
        default_namespace: reasoning-plane
        run_defaults:            # K8sRunLauncher config keys, except job_namespace
          service_account_name: dagster-run
          instance_config_map: dagster-instance
          dagster_home: /opt/dagster/dagster_home
          env_secrets: [reasoning-plane-db]
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes
import psycopg
from dagster import Field, Map, Noneable, Permissive, StringSource
from dagster._core.launcher import (
    CheckRunHealthResult,
    LaunchRunContext,
    ResumeRunContext,
    RunLauncher,
)
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster_k8s import K8sRunLauncher
from dagster_k8s.client import (
    DagsterK8sAPIRetryLimitExceeded,
    DagsterK8sUnrecoverableAPIError,
    PatchedApiClient,
)
from kubernetes.client.exceptions import ApiException

from assets.workloads import WORKLOAD_KEY
from data_plane.roles import DB_ROLE_METADATA
from reasoning_plane import store
from reasoning_plane.binding import SignedDecision, run_problems
from reasoning_plane.inputs import load_fleet
from reasoning_plane.launch import (
    CLUSTER,
    DECISION_ID,
    DECISION_LABEL,
    GPU_COUNT,
    K8S_CONFIG_TAG,
    NAMESPACE,
    claims_placement,
    expected_tags,
    routing_problems,
)
from reasoning_plane.model import Fleet
from reasoning_plane.signing import SigningError, verifier
from resources.database import database_url, redact_url
from resources.guard import HOME_CLUSTER_ENV

LOCAL = "local"


class PlacementRefused(Exception):
    """The run cannot be launched: no (valid) placement decision, or configuration missing."""


class ClusterRejected(Exception):
    """The chosen cluster's API refused the run worker Job (quota, admission, validation...).

    The run fails with this message; it is never launched on another cluster or locally instead:
    only a new placement decision (the plane's re-placement) may send the work elsewhere."""


def _api_error(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status, message) of a Kubernetes API error, as raised directly or wrapped by
    dagster-k8s's retry helpers."""
    api = getattr(exc, "k8s_api_exception", None) or exc
    status = getattr(api, "status", None)
    reason = getattr(api, "reason", None) or ""
    message = ""
    body = getattr(api, "body", None)
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = str(body)[:300]
    return status, "; ".join(x for x in (reason, message) if x) or _first_line(exc)


@dataclass(frozen=True)
class LoggedPlacement:
    """A logged decision as the launcher checks it: its signed binding, verified."""

    decision: SignedDecision
    problems: tuple[str, ...]  # why it is not a decision the plane signed (empty: it is)

    @property
    def decision_id(self) -> str:
        return self.decision.decision_id

    @property
    def status(self) -> str:
        return self.decision.status

    @property
    def binding(self) -> Mapping[str, Any]:
        return self.decision.binding or {}

    @property
    def namespace(self) -> str | None:
        return self.binding.get("namespace")


def read_placement(url: str, decision_id: str, *, attempts: int = 3) -> LoggedPlacement | None:
    """The logged decision ``decision_id`` (None when absent) with its signature checked, read
    with a bounded retry.

    Raises `PlacementRefused` when the database cannot be reached after ``attempts`` tries or
    holds no decision log: an unverifiable run is never launched."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                logged = store.signed_decision(conn, decision_id)
            break
        except psycopg.errors.UndefinedTable:
            raise PlacementRefused(
                f"decision {decision_id} cannot be verified: the database "
                f"{redact_url(url)} holds no plane.decisions table"
            ) from None
        except psycopg.OperationalError as exc:
            if attempt == attempts:
                raise PlacementRefused(
                    f"decision {decision_id} cannot be verified: the database {redact_url(url)} "
                    f"is unavailable after {attempts} attempts ({_first_line(exc)}); the run is "
                    "not launched unchecked"
                ) from None
            time.sleep(delay)
            delay *= 2
    if logged is None:
        return None
    try:
        problems = tuple(logged.verify(verifier()))
    except SigningError as exc:
        problems = (f"decision {decision_id} cannot be verified: {exc}",)
    return LoggedPlacement(logged, problems)


def claim(url: str, decision_id: str, run_id: str) -> str:
    """Claim the decision for the run (`reasoning_plane.store.claim_decision`): the holder."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return store.claim_decision(conn, decision_id, run_id)
    except psycopg.OperationalError as exc:
        raise PlacementRefused(
            f"decision {decision_id} cannot be claimed: the database {redact_url(url)} is "
            f"unavailable ({_first_line(exc)}); the run is not launched unchecked"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


_K8S_CONFIG_KEYS = {
    "container_config": {"resources"},
    "pod_spec_config": {"node_selector", "tolerations"},
    "job_metadata": {"labels"},
    "pod_template_spec_metadata": {"labels"},
    "job_spec_config": {"active_deadline_seconds"},
}


def _gpu_limit(container_config: Any) -> str | None:
    if not isinstance(container_config, dict):
        return None
    resources = container_config.get("resources") or {}
    limits = resources.get("limits") or {} if isinstance(resources, dict) else {}
    value = limits.get("nvidia.com/gpu") if isinstance(limits, dict) else None
    return None if value is None else str(value)


def placement_problems(run: DagsterRun, logged: LoggedPlacement | None) -> list[str]:
    """Why the run's placement tags and run config do not match its logged decision (empty when
    they do)."""
    decision_id = run.tags.get(DECISION_ID, "")
    if not decision_id:
        return [f"it carries placement tags but no {DECISION_ID}"]
    if logged is None:
        return [f"decision {decision_id} is not in plane.decisions"]
    if logged.problems:
        return list(logged.problems)  # nothing of an unsigned row is trusted
    problems = []
    if logged.status != "placed":
        problems.append(f"decision {decision_id} is {logged.status!r}, not 'placed'")
    problems += routing_problems(run.tags, logged.binding)
    selected = (
        [k.to_user_string() for k in run.asset_selection]
        if run.asset_selection is not None
        else [run.job_name]  # a job of ops: the workload is the job
        if run.job_name == logged.binding.get("workload")
        else None
    )
    if selected is not None:
        problems += [
            p
            for p in run_problems(
                logged.binding, asset_keys=selected, partition=run.tags.get("dagster/partition")
            )
            if not p.startswith(f"decision {decision_id} is ")
        ]
    else:
        problems.append(
            f"the run materializes all of job {run.job_name}, but decision {decision_id} "
            f"placed {logged.binding.get('workload')} alone"
        )
    if logged.decision.claimed_by not in (None, run.run_id):
        problems.append(
            f"decision {decision_id} is already claimed by run {logged.decision.claimed_by}"
        )
    raw = run.tags.get(K8S_CONFIG_TAG)
    if raw is not None:
        try:
            config = json.loads(raw)
        except ValueError:
            config = None
        if not isinstance(config, dict):
            problems.append(f"tag {K8S_CONFIG_TAG} is not a JSON object")
        else:
            for key, value in config.items():
                allowed = _K8S_CONFIG_KEYS.get(key)
                extra = sorted(set(value) - allowed) if allowed and isinstance(value, dict) else []
                if allowed is None or not isinstance(value, dict) or extra:
                    problems.append(
                        f"tag {K8S_CONFIG_TAG} sets {key}{'.' + extra[0] if extra else ''}, which"
                        " a placement never does"
                    )
            for key in ("job_metadata", "pod_template_spec_metadata"):
                labels = (config.get(key) or {}).get("labels") or {}
                label = labels.get(DECISION_LABEL) if isinstance(labels, dict) else 0
                if label != decision_id:
                    problems.append(f"tag {K8S_CONFIG_TAG} {key} labels name decision {label!r}")
            if _gpu_limit(config.get("container_config")) is not None:
                problems.append(f"tag {K8S_CONFIG_TAG} gives the run worker a GPU")
    execution = (run.run_config or {}).get("execution") or {}
    k8s = ((execution.get("config") or {}) if isinstance(execution, dict) else {}).get("k8s")
    if isinstance(k8s, dict):
        if k8s.get("job_namespace") != logged.namespace:
            problems.append(
                f"run config k8s.job_namespace={k8s.get('job_namespace')!r} but the decision "
                f"says {logged.namespace!r}"
            )
        step = k8s.get("step_k8s_config") or {}
        limit = _gpu_limit(step.get("container_config") if isinstance(step, dict) else None)
        want = expected_tags(logged.binding)[GPU_COUNT]
        if (limit or "0") != want:
            problems.append(f"run config asks for {limit or 0} GPUs per step, decision {want}")
    return problems


def db_role_of(run: DagsterRun, workspace: Any) -> str | None:
    """The database role the run's assets declare beyond a run worker's (``plane/db_role``:
    the steward for assets that write the catalog); None without a workspace or a declaration."""
    if workspace is None:
        return None
    graph = workspace.asset_graph
    keys = run.asset_selection or graph.asset_keys_for_job(run.job_name)
    declared = set()
    for key in keys:
        value = (graph.get(key).metadata or {}).get(DB_ROLE_METADATA) if graph.has(key) else None
        if value is not None:  # a workspace holds metadata values (TextMetadataValue)
            declared.add(str(getattr(value, "value", value)))
    return sorted(declared)[0] if declared else None


def workloads_in(run: DagsterRun, workspace: Any) -> list[str] | None:
    """Asset keys of the run that the plane places (declare ``plane/gpu_count``); None when the
    launcher cannot tell (no workspace)."""
    if workspace is None:
        return None
    graph = workspace.asset_graph
    keys = run.asset_selection or graph.asset_keys_for_job(run.job_name)
    found = []
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        if graph.has(key) and WORKLOAD_KEY in (graph.get(key).metadata or {}):
            found.append(key.to_user_string())
    return found


def cluster_apis(kubeconfig_file: str | None, context: str) -> dict[str, Any]:
    """The K8sRunLauncher API overrides (batch and core) of one cluster: the kubeconfig context
    ``context`` (its server, credentials, CA), loaded into a configuration of its own, never the
    process-wide default that other clusters' launchers share."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(
            config_file=kubeconfig_file,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise PlacementRefused(
            f"{kubeconfig_file or '~/.kube/config'}: contexts: no usable context {context!r} "
            f"({_first_line(exc)})"
        ) from None
    api = PatchedApiClient(configuration=configuration)
    return {
        "k8s_client_batch_api": kubernetes.client.BatchV1Api(api_client=api),
        "k8s_client_core_api": kubernetes.client.CoreV1Api(api_client=api),
    }


class PlacementRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(
        self,
        clusters: Mapping[str, Mapping[str, Any]] | None = None,
        default_cluster: str = LOCAL,
        default_namespace: str = "",
        database_url: str | None = None,
        role_env_secrets: Mapping[str, Sequence[str]] | None = None,
        fleet_file: str | None = None,
        kubeconfig_file: str | None = None,
        job_image: str | None = None,
        gpu_job_image: str | None = None,
        run_defaults: Mapping[str, Any] | None = None,
        inst_data: ConfigurableClassData | None = None,
        k8s_launcher_factory: Callable[..., K8sRunLauncher] | None = None,
    ) -> None:
        self._inst_data = inst_data
        self._fleet_file = fleet_file or None
        self._fleet: Fleet | None = None
        self._kubeconfig = kubeconfig_file or None
        self._job_image = job_image or None
        self._gpu_job_image = gpu_job_image or None
        self._run_defaults = dict(run_defaults or {})
        for key in ("job_namespace", "kubeconfig_file", "load_incluster_config"):
            if key in self._run_defaults:
                raise ValueError(
                    f"run_launcher.config.run_defaults.{key}: remove it; it is per cluster, from "
                    "the fleet file (kube_context) and the decision (namespace)"
                )
        self._database_url = database_url
        self._clusters = {name: dict(cfg) for name, cfg in (clusters or {}).items()}
        for name, cfg in self._clusters.items():
            if "job_namespace" in cfg:
                raise ValueError(
                    f"run_launcher.config.clusters.{name}.job_namespace: remove it; the namespace "
                    "of each run is the team namespace chosen by its placement decision"
                )
        self._default = default_cluster
        self._default_namespace = default_namespace or None
        self._factory = k8s_launcher_factory or K8sRunLauncher
        self._role_secrets = {role: list(v) for role, v in (role_env_secrets or {}).items()}
        self._k8s: dict[tuple[str, str, str | None], K8sRunLauncher] = {}
        self._local: DefaultRunLauncher | None = None
        self._lock = threading.Lock()
        super().__init__()

    # -- configuration -------------------------------------------------------------------------
    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "clusters": Field(Map(str, Permissive()), is_required=False, default_value={}),
            "default_cluster": Field(
                StringSource,
                is_required=False,
                default_value=LOCAL,
                description="Where runs that need no decision go (work on no governed data).",
            ),
            "default_namespace": Field(
                StringSource,
                is_required=False,
                default_value="",
                description="Namespace of those runs when default_cluster is a Kubernetes one.",
            ),
            "database_url": Field(
                Noneable(StringSource),
                is_required=False,
                default_value=None,
                description="Where plane.decisions is (default: the project database).",
            ),
            "fleet_file": Field(
                Noneable(StringSource),
                is_required=False,
                default_value=None,
                description=(
                    "The fleet file (PLANE_FLEET_FILE): one K8sRunLauncher per cluster in it, "
                    "its kube_context picking the context of kubeconfig_file."
                ),
            ),
            "kubeconfig_file": Field(
                Noneable(StringSource),
                is_required=False,
                default_value=None,
                description="The kubeconfig holding one context per fleet cluster (kube_context).",
            ),
            "job_image": Field(
                Noneable(StringSource),
                is_required=False,
                default_value=None,
                description="Run worker image (CPU build) of clusters without GPU pools.",
            ),
            "gpu_job_image": Field(
                Noneable(StringSource),
                is_required=False,
                default_value=None,
                description="Run worker image (CUDA build) of clusters with GPU pools.",
            ),
            "run_defaults": Field(
                Permissive(),
                is_required=False,
                default_value={},
                description="K8sRunLauncher settings shared by every cluster.",
            ),
            "role_env_secrets": Field(
                Map(str, [str]),
                is_required=False,
                default_value={},
                description=(
                    "Secrets added to the runs of assets that declare a database role "
                    "(plane/db_role), e.g. steward: [reasoning-plane-db-steward] for the assets "
                    "that write the catalog; every other run gets only its cluster's env_secrets."
                ),
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PlacementRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    # -- routing -------------------------------------------------------------------------------
    def target(self, run: DagsterRun) -> tuple[str, str | None]:
        """(cluster, namespace) a run goes to, from its placement tags."""
        cluster = run.tags.get(CLUSTER)
        if cluster:
            return cluster, run.tags.get(NAMESPACE)
        if not self._default:
            raise PlacementRefused(
                f"run {run.run_id} has no placement decision (no plane/cluster tag) and no "
                "default_cluster is configured: launch it through the placement sensor"
            )
        return self._default, self._default_namespace

    def launcher_for(self, run: DagsterRun, role: str | None = None) -> RunLauncher:
        """The launcher of the run's cluster and namespace; ``role``: the database role its
        assets declare, whose Secrets (``role_env_secrets``) its pods get."""
        cluster, namespace = self.target(run)
        with self._lock:
            if cluster == LOCAL:
                if self._local is None:
                    self._local = DefaultRunLauncher()
                    self._local.register_instance(self._instance)
                return self._local
            settings = self.cluster_settings(cluster)
            if settings is None:
                raise PlacementRefused(
                    f"run {run.run_id} is placed on cluster {cluster!r}, which is "
                    + (
                        f"not in the fleet file {self._fleet_file}"
                        if self._fleet_file
                        else "not under run_launcher.config.clusters in dagster.yaml"
                    )
                )
            if not namespace:
                raise PlacementRefused(f"run {run.run_id} on {cluster} has no plane/namespace tag")
            key = (cluster, namespace, role)
            if key not in self._k8s:
                settings = dict(settings)
                context = settings.pop("kube_context", None)
                if context is not None:
                    settings.update(cluster_apis(settings.get("kubeconfig_file"), context))
                # The run worker learns which cluster it is on (see home_settings).
                settings["env_vars"] = [
                    *settings.get("env_vars", []),
                    f"{HOME_CLUSTER_ENV}={cluster}",
                ]
                if role is not None:
                    settings["env_secrets"] = [
                        *settings.get("env_secrets", []),
                        *self._role_secrets.get(role, []),
                    ]
                launcher = self._factory(**settings, job_namespace=namespace)
                launcher.register_instance(self._instance)
                self._k8s[key] = launcher
            return self._k8s[key]

    # -- the K8sRunLauncher view that dagster-k8s's step executor reads ---------------------------
    # Inside a run worker pod, `k8s_job_executor` reads the instance's run launcher for the image,
    # service account, secrets... of step Jobs. The pod's cluster is in PLANE_CLUSTER (set by the
    # decision's dagster-k8s/config), so these properties answer for that cluster's settings.
    def home_settings(self) -> Mapping[str, Any]:
        home = os.environ.get(HOME_CLUSTER_ENV, "")
        return (self.cluster_settings(home) or {}) if home and home != LOCAL else {}

    # -- clusters from the fleet file ------------------------------------------------------------
    def fleet(self) -> Fleet | None:
        """The fleet file's clusters (loaded once; None without ``fleet_file``)."""
        if self._fleet_file is None:
            return None
        if self._fleet is None:
            try:
                fleet = load_fleet(self._fleet_file)
            except OSError as exc:
                raise PlacementRefused(f"{self._fleet_file}: cannot be read ({exc})") from None
            for name in self._clusters:
                if fleet.get(name) is None and name != self._default:
                    raise PlacementRefused(
                        f"run_launcher.config.clusters.{name}: no cluster of that name in the "
                        f"fleet file {self._fleet_file} (the fleet file is the list of clusters)"
                    )
            self._fleet = fleet
        return self._fleet

    def cluster_settings(self, name: str) -> dict[str, Any] | None:
        """The K8sRunLauncher settings of cluster ``name`` (plus ``kube_context`` when its API
        client uses a kubeconfig context); None when no such cluster is known."""
        fleet = self.fleet()
        explicit = self._clusters.get(name)
        if fleet is None:
            return dict(explicit) if explicit is not None else None
        cluster = fleet.get(name)
        if cluster is not None and not cluster.local:
            settings = {
                **self._run_defaults,
                "service_account_name": cluster.service_account,
                "job_image": cluster.image
                or (self._gpu_job_image if cluster.pools else None)
                or self._job_image,
            }
            if cluster.kube_context:
                settings.update(
                    load_incluster_config=False,
                    kubeconfig_file=self._kubeconfig,
                    kube_context=cluster.kube_context,
                )
            else:  # the cluster this launcher runs in
                settings["load_incluster_config"] = True
        elif name == self._default and name != LOCAL:
            settings = {
                **self._run_defaults,
                "job_image": self._job_image,
                "load_incluster_config": True,
            }
        else:
            return None
        return {**settings, **(explicit or {})}

    def _setting(self, key: str, default: Any = None) -> Any:
        return self.home_settings().get(key, default)

    job_image = property(lambda self: self._setting("job_image"))
    dagster_home = property(lambda self: self._setting("dagster_home", "/opt/dagster/dagster_home"))
    instance_config_map = property(lambda self: self._setting("instance_config_map", ""))
    postgres_password_secret = property(lambda self: self._setting("postgres_password_secret"))
    image_pull_policy = property(lambda self: self._setting("image_pull_policy"))
    image_pull_secrets = property(lambda self: self._setting("image_pull_secrets", []))
    service_account_name = property(lambda self: self._setting("service_account_name"))
    env_config_maps = property(lambda self: self._setting("env_config_maps", []))
    env_secrets = property(lambda self: self._setting("env_secrets", []))

    @property
    def env_vars(self) -> list[str]:
        """The cluster's env_vars, and PLANE_CLUSTER: every step pod knows which cluster it is
        on, as its run worker does (`resources.guard` checks it against the decision)."""
        home = os.environ.get(HOME_CLUSTER_ENV)
        base = list(self._setting("env_vars", []))
        return [*base, f"{HOME_CLUSTER_ENV}={home}"] if home else base

    volume_mounts = property(lambda self: self._setting("volume_mounts", []))
    volumes = property(lambda self: self._setting("volumes", []))
    labels = property(lambda self: self._setting("labels", {}))
    resources = property(lambda self: self._setting("resources", {}))
    scheduler_name = property(lambda self: self._setting("scheduler_name"))
    security_context = property(lambda self: self._setting("security_context", {}))
    run_k8s_config = property(lambda self: self._setting("run_k8s_config", {}))
    job_namespace = property(lambda self: None)  # each step's namespace: the run config's
    only_allow_user_defined_k8s_config_fields = property(
        lambda self: self._setting("only_allow_user_defined_k8s_config_fields")
    )
    only_allow_user_defined_env_vars = property(
        lambda self: self._setting("only_allow_user_defined_env_vars")
    )

    # -- RunLauncher -----------------------------------------------------------------------------
    def verify(self, run: DagsterRun, workspace: Any = None) -> None:
        """Refuse (`PlacementRefused`) a run whose placement is missing, forged, stale, meant
        for other work or already used; claim the decision for the run when it is valid."""
        if claims_placement(run.tags):
            url = database_url(configured=self._database_url, role="plane")
            decision_id = run.tags.get(DECISION_ID, "")
            logged = read_placement(url, decision_id) if decision_id else None
            problems = placement_problems(run, logged)
            if problems:
                raise PlacementRefused(
                    f"run {run.run_id} refused: its placement tags do not match a decision of "
                    "the reasoning plane: " + "; ".join(problems)
                )
            holder = claim(url, decision_id, run.run_id)
            if holder != run.run_id:
                raise PlacementRefused(
                    f"run {run.run_id} refused: decision {decision_id} is already claimed by run "
                    f"{holder}; a decision launches one run (a re-execution needs a new decision)"
                )
            return
        workloads = workloads_in(run, workspace)
        if workloads is None:
            raise PlacementRefused(
                f"run {run.run_id} has no placement decision and the launcher cannot tell whether "
                "it holds GPU work (no workspace); launch it through the placement sensor"
            )
        if workloads:
            raise PlacementRefused(
                f"run {run.run_id} refused: it would materialize {', '.join(workloads)}, which "
                "read governed data and which the reasoning plane places (plane/gpu_count), but "
                "it carries no placement decision. Turn on placement_sensor (it places the asset "
                "when its inputs change) or queue the work with `plane request`, or run "
                "`plane run --select ...` on a machine declared in a compliant zone; runs are "
                "not placed on launch"
            )

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        self.verify(run, context.workspace)
        cluster, namespace = self.target(run)
        launcher = self.launcher_for(run, db_role_of(run, context.workspace))
        self._instance.report_engine_event(
            f"Placement: launching on {cluster}"
            + (f" in namespace {namespace}" if namespace and cluster != LOCAL else "")
            + (
                f" (decision {run.tags[DECISION_ID]})"
                if DECISION_ID in run.tags
                else " (no placement decision)"
            ),
            run,
            cls=self.__class__,
        )
        if cluster == LOCAL:
            launcher.launch_run(context)
            return
        try:
            launcher.launch_run(context)
        except (
            ApiException,
            DagsterK8sAPIRetryLimitExceeded,
            DagsterK8sUnrecoverableAPIError,
        ) as exc:
            status, message = _api_error(exc)
            retried = isinstance(exc, DagsterK8sAPIRetryLimitExceeded)
            raise ClusterRejected(
                f"cluster {cluster} rejected the run worker Job of run {run.run_id} in namespace "
                f"{namespace}: HTTP {status} {message}"
                + (" (after dagster-k8s's retries)" if retried else "")
                + ". The run is not launched anywhere else; a new placement decision is needed "
                "(plane_failure_sensor re-places runs a cluster refused for lack of room)"
            ) from None

    @property
    def supports_resume_run(self) -> bool:
        return True

    def resume_run(self, context: ResumeRunContext) -> None:
        self.launcher_for(context.dagster_run).resume_run(context)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None:
            return False
        return self.launcher_for(run).terminate(run_id)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return self.launcher_for(run).check_run_worker_health(run)

    def dispose(self) -> None:
        for launcher in self._k8s.values():
            launcher.dispose()
        if self._local is not None:
            self._local.dispose()
