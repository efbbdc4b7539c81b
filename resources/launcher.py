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
this launcher has no configuration for is refused with an error saying which key to add; a run
without placement goes to ``default_cluster`` (refused when that is empty).

``dagster.yaml``::

    run_launcher:
      module: resources.launcher
      class: PlacementRunLauncher
      config:
        default_cluster: local
        clusters:
          eu-fra-a10:            # K8sRunLauncher config keys, except job_namespace
            kubeconfig_file: /etc/reasoning-plane/kubeconfigs/eu-prod.yaml
            load_incluster_config: false
            service_account_name: dagster-run
            instance_config_map: dagster-instance
            dagster_home: /opt/dagster/dagster_home
            job_image: registry.example.com/reasoning-plane:0.1.0
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dagster import Field, Map, Permissive, StringSource
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

LOCAL = "local"
HOME_CLUSTER_ENV = "PLANE_CLUSTER"


class PlacementRefused(Exception):
    """The run cannot be launched where its decision says (configuration missing)."""


class PlacementRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(
        self,
        clusters: Mapping[str, Mapping[str, Any]] | None = None,
        default_cluster: str = LOCAL,
        inst_data: ConfigurableClassData | None = None,
        k8s_launcher_factory: Callable[..., K8sRunLauncher] | None = None,
    ) -> None:
        self._inst_data = inst_data
        self._clusters = {name: dict(cfg) for name, cfg in (clusters or {}).items()}
        for name, cfg in self._clusters.items():
            if "job_namespace" in cfg:
                raise ValueError(
                    f"run_launcher.config.clusters.{name}.job_namespace: remove it; the namespace "
                    "of each run is the team namespace chosen by its placement decision"
                )
        self._default = default_cluster
        self._factory = k8s_launcher_factory or K8sRunLauncher
        self._k8s: dict[tuple[str, str], K8sRunLauncher] = {}
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
            "default_cluster": Field(StringSource, is_required=False, default_value=LOCAL),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PlacementRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    # -- routing -------------------------------------------------------------------------------
    def target(self, run: DagsterRun) -> tuple[str, str | None]:
        """(cluster, namespace) a run goes to, from its placement tags."""
        cluster = run.tags.get("plane/cluster") or self._default
        if not cluster:
            raise PlacementRefused(
                f"run {run.run_id} has no placement decision (no plane/cluster tag) and no "
                "default_cluster is configured: launch it through the placement sensor"
            )
        return cluster, run.tags.get("plane/namespace")

    def launcher_for(self, run: DagsterRun) -> RunLauncher:
        cluster, namespace = self.target(run)
        with self._lock:
            if cluster == LOCAL:
                if self._local is None:
                    self._local = DefaultRunLauncher()
                    self._local.register_instance(self._instance)
                return self._local
            if cluster not in self._clusters:
                raise PlacementRefused(
                    f"run {run.run_id} is placed on cluster {cluster!r}, which has no entry under "
                    "run_launcher.config.clusters in dagster.yaml; add its K8sRunLauncher "
                    "settings there"
                )
            if not namespace:
                raise PlacementRefused(f"run {run.run_id} on {cluster} has no plane/namespace tag")
            key = (cluster, namespace)
            if key not in self._k8s:
                settings = dict(self._clusters[cluster])
                # The run worker learns which cluster it is on (see home_settings).
                settings["env_vars"] = [
                    *settings.get("env_vars", []),
                    f"{HOME_CLUSTER_ENV}={cluster}",
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
        return self._clusters.get(os.environ.get(HOME_CLUSTER_ENV, ""), {})

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
    env_vars = property(lambda self: self._setting("env_vars", []))
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
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        cluster, namespace = self.target(run)
        launcher = self.launcher_for(run)
        self._instance.report_engine_event(
            f"Placement: launching on {cluster}"
            + (f" in namespace {namespace}" if namespace and cluster != LOCAL else "")
            + (
                f" (decision {run.tags['plane/decision_id']})"
                if "plane/decision_id" in run.tags
                else " (no placement decision)"
            ),
            run,
            cls=self.__class__,
        )
        launcher.launch_run(context)

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
