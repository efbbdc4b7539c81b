"""Live GPU quotas: each cluster's ResourceQuotas read from its API server, per cluster.

For a cluster whose fleet entry says ``quotas: {source: kubernetes}``, the plane lists the
ResourceQuotas of all namespaces (one ``GET /api/v1/resourcequotas``, with the Kubernetes
Python client, the cluster's ``kube_context`` and its ``kubeconfig``, or the in-cluster
service account) and keeps, per namespace, ``status.hard`` and ``status.used`` of
``requests.nvidia.com/gpu`` as the cluster's quota controller computed them: what the cluster
enforces, including pods the plane did not launch. Where a namespace has several quotas limiting
GPUs, Kubernetes enforces all of them, so the one with the least room counts. Quantities are
Kubernetes quantities (``"8"``, ``"500m"``, ``"2Ki"``); a hard limit counts in whole GPUs
rounded down and usage rounded up (fail closed).

A team's namespace is the cluster's ``namespace_template`` filled in (`Cluster.namespace`), as
the launcher names it. Usage is the cluster's ``status.used`` plus the GPUs of the plane's open
reservations on that cluster whose run has not started yet (their pods do not exist, so the
cluster cannot count them). A cluster whose quotas cannot be read, or a quota whose status the
quota controller has not filled in, leaves the quota unknown: the quota rule then places nothing
of that namespace on that cluster, and says why (`rules.quota`). The quota file
(``PLANE_QUOTAS_FILE``) stays for what-if (``plane place``) and for clusters without API access.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from reasoning_plane.config.plane import GPU_QUOTA_KEY
from reasoning_plane.model import Cluster, Fleet, TeamQuota

log = logging.getLogger(__name__)


class QuotaReadError(RuntimeError):
    """A cluster's ResourceQuotas could not be read."""


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (``"8"``, ``"500m"``, ``"2Ki"``, ``"1e3"``) as a number."""
    from kubernetes.utils import parse_quantity

    try:
        return Decimal(parse_quantity(value))
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ValueError(f"not a Kubernetes quantity: {value!r} ({exc})") from None


def _api(cluster: Cluster):
    """A CoreV1Api for ``cluster``: its kubeconfig (or the default one) and ``kube_context``;
    in-cluster configuration when there is no kubeconfig and no context is named."""
    from kubernetes import client, config

    source = cluster.quotas
    assert source is not None
    configuration = client.Configuration()
    try:
        try:
            config.load_kube_config(
                config_file=source.kubeconfig,
                context=cluster.kube_context,
                client_configuration=configuration,
                persist_config=False,
            )
        except config.ConfigException:
            if source.kubeconfig is not None or cluster.kube_context is not None:
                raise
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise QuotaReadError(f"no Kubernetes configuration: {exc}") from None
    configuration.retries = 0
    return client.CoreV1Api(client.ApiClient(configuration))


def read_cluster(cluster: Cluster) -> tuple[dict[str, TeamQuota], dict[str, str]]:
    """(namespace -> its GPU quota, namespace -> why its quota is unknown) of ``cluster``.
    Raises `QuotaReadError` when the API server cannot be read."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    source = cluster.quotas
    if source is None:
        raise ValueError(f"cluster {cluster.name!r} reads its quotas from the quota file")
    api = _api(cluster)
    try:
        answer = api.list_resource_quota_for_all_namespaces(
            _request_timeout=source.timeout_s, _preload_content=True
        )
    except ApiException as exc:
        raise QuotaReadError(
            f"API server refused the ResourceQuota list: HTTP {exc.status} {exc.reason}"
        ) from None
    except (HTTPError, OSError) as exc:
        raise QuotaReadError(f"API server unreachable: {exc}") from None
    finally:
        api.api_client.close()
    quotas: dict[str, TeamQuota] = {}
    unknown: dict[str, str] = {}
    for item in answer.items or ():
        namespace, name = item.metadata.namespace, item.metadata.name
        limits = (item.spec.hard or {}) if item.spec else {}
        if GPU_QUOTA_KEY not in limits:
            continue
        status = item.status
        hard = (status.hard or {}) if status else {}
        used = (status.used or {}) if status else {}
        where = f"ResourceQuota {namespace}/{name} on {cluster.name}"
        if GPU_QUOTA_KEY not in hard or GPU_QUOTA_KEY not in used:
            unknown[namespace] = f"{where} has no status for {GPU_QUOTA_KEY} yet"
            continue
        try:
            gpus = math.floor(quantity(hard[GPU_QUOTA_KEY]))
            held = math.ceil(quantity(used[GPU_QUOTA_KEY]))
        except ValueError as exc:
            unknown[namespace] = f"{where}: {exc}"
            continue
        quota = TeamQuota(
            team=namespace,
            gpus=gpus,
            source=f"{where}, live",
            used=held,
            cluster=cluster.name,
        )
        earlier = quotas.get(namespace)
        if earlier is None or quota.gpus - (quota.used or 0) < earlier.gpus - (earlier.used or 0):
            quotas[namespace] = quota
    return quotas, unknown


def read_fleet(
    fleet: Fleet, unstarted: Mapping[tuple[str, str], int] | None = None
) -> tuple[dict[tuple[str, str], TeamQuota], dict[str, str]]:
    """The live quotas of every cluster whose quotas come from Kubernetes, by (cluster,
    namespace), and why each unknown one is (``cluster`` or ``cluster/namespace`` -> reason).
    ``unstarted``: GPUs of open reservations per (cluster, team) whose runs have not started
    (`store.unstarted_gpus`), added to the namespace's usage."""
    quotas: dict[tuple[str, str], TeamQuota] = {}
    errors: dict[str, str] = {}
    for cluster in fleet.clusters:
        if cluster.quotas is None:
            continue
        try:
            found, unknown = read_cluster(cluster)
        except QuotaReadError as exc:
            errors[cluster.name] = str(exc)
            log.error("live quotas: %s: quotas unknown: %s", cluster.name, exc)
            continue
        pending: dict[str, int] = {}
        for (name, team), gpus in (unstarted or {}).items():
            if name == cluster.name:
                namespace = cluster.namespace(team)
                pending[namespace] = pending.get(namespace, 0) + gpus
        for namespace, quota in found.items():
            extra = pending.get(namespace, 0)
            if extra:
                quota = TeamQuota(
                    team=quota.team,
                    gpus=quota.gpus,
                    source=f"{quota.source}, +{extra} reserved by the plane, not started",
                    used=(quota.used or 0) + extra,
                    cluster=quota.cluster,
                )
            quotas[(cluster.name, namespace)] = quota
        for namespace, why in unknown.items():
            errors[f"{cluster.name}/{namespace}"] = why
            log.error("live quotas: %s", why)
    return quotas, errors
