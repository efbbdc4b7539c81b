"""Telemetry from the standard stack: a cluster's GPU pools read at tick time through the
Prometheus HTTP API (``/api/v1/query``), from what clusters running the NVIDIA GPU operator
already export, instead of the plane's own agent.

Series read (names and labels as the exporters emit them):

* the NVIDIA DCGM exporter, per GPU: ``DCGM_FI_DEV_FB_FREE`` (free framebuffer memory, MiB),
  ``DCGM_FI_DEV_FB_USED`` (used, MiB) and ``DCGM_FI_DEV_GPU_UTIL`` (%), labelled ``gpu``,
  ``UUID``, ``modelName`` (``NVIDIA A10``) and ``Hostname`` (the node), and, with its
  Kubernetes mapping on, ``pod``/``namespace`` of the pod holding the GPU;
* kube-state-metrics: ``kube_node_status_allocatable{resource="nvidia_com_gpu"}`` per ``node``,
  ``kube_pod_container_resource_requests{resource="nvidia_com_gpu"}`` per pod and ``node``, and
  ``kube_pod_status_phase`` (the requests of Succeeded/Failed pods hold no GPU).

Each GPU's pool is the fleet pool whose ``nvidia.com/gpu.product`` node label is the GPU's
product (``modelName`` with dashes for spaces, as GPU feature discovery labels nodes:
`agent.pools_of`); a GPU of a product no pool of the cluster declares is ignored, and the
reason logged. A node's free GPUs are its allocatable GPUs less those requested by its pods
(the scheduler's view), and no more than its GPUs not held by a pod with at least 1 GiB free.
The rows are the `TelemetrySample`s the agent writes, summed per pool as
`store.latest_telemetry` sums nodes, so the placement tick's rules apply unchanged.

Freshness: every selector is a range (``[window_s]``), whose points carry the time Prometheus
scraped them (an instant query would answer with the evaluation time). A sample's observation
time is its oldest part's last scrape: an exporter that stopped reporting leaves series whose
last point ages, so its pool reads as stale (`telemetry_stale`), never as free GPUs. As in
`store.latest_telemetry`, a node more than `store.NODE_WINDOW_S` behind its pool's newest has
stopped and its GPUs are not counted. A Prometheus that cannot be read gives no sample for the
cluster (`telemetry_missing`) and `PrometheusError` says why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from reasoning_plane.agent import FREE_MEMORY_GB, PRODUCT_LABEL, pool_name, pools_of
from reasoning_plane.model import Fleet, PrometheusTelemetry, TelemetrySample
from reasoning_plane.store import NODE_WINDOW_S

log = logging.getLogger(__name__)

FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_USED = "DCGM_FI_DEV_FB_USED"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
ALLOCATABLE = "kube_node_status_allocatable"
REQUESTS = "kube_pod_container_resource_requests"
PHASE = "kube_pod_status_phase"
GPU_RESOURCE = "nvidia_com_gpu"  # kube-state-metrics' name of the nvidia.com/gpu resource
MIB_PER_GIB = 1024.0


class PrometheusError(RuntimeError):
    """Prometheus could not be read (unreachable, an error answer, an answer not understood)."""


@dataclass(frozen=True)
class Point:
    """A series' last point within the window: its labels, value and scrape time."""

    labels: Mapping[str, str]
    value: float
    at: datetime


Fetch = Callable[[str, float], bytes]  # (url, timeout_s) -> body


def http_get(url: str, timeout_s: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:
        return answer.read()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(metric: str, source: PrometheusTelemetry, **matchers: str) -> str:
    """``metric{matchers, source.labels}[window]``; ``matchers`` values starting with ``~`` are
    regular expressions."""
    parts = []
    for name, value in {**matchers, **source.labels}.items():
        op = "=~" if value.startswith("~") else "="
        parts.append(f'{name}{op}"{_escape(value.removeprefix("~"))}"')
    return f"{metric}{{{','.join(parts)}}}[{max(math.ceil(source.window_s), 1)}s]"


def query(
    source: PrometheusTelemetry, promql: str, now: datetime, fetch: Fetch = http_get
) -> list[Point]:
    """The last point of each series of a range selector, evaluated at ``now``."""
    params = urllib.parse.urlencode({"query": promql, "time": f"{now.timestamp():.3f}"})
    url = f"{source.url.rstrip('/')}/api/v1/query?{params}"
    where = f"Prometheus {source.url}"
    try:
        body = fetch(url, source.timeout_s)
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(exc.read() or b"{}").get("error", "")
        raise PrometheusError(f"{where}: HTTP {exc.code} for {promql!r}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(f"{where}: unreachable: {reason}") from None
    try:
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise PrometheusError(f"{where}: query {promql!r} failed: {answer.get('error')}")
        data = answer["data"]
        if data["resultType"] != "matrix":
            raise PrometheusError(
                f"{where}: query {promql!r}: expected a matrix, got {data['resultType']}"
            )
        points = []
        for series in data["result"]:
            values = series["values"]
            if not values:
                continue
            at, value = values[-1]
            points.append(
                Point(
                    labels=dict(series["metric"]),
                    value=float(value),
                    at=datetime.fromtimestamp(float(at), UTC),
                )
            )
        return points
    except PrometheusError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PrometheusError(f"{where}: answer to {promql!r} not understood: {exc!r}") from None


@dataclass
class _Gpu:
    node: str
    product: str
    free_gib: float | None = None
    used_gib: float | None = None
    util: float | None = None
    held_by_pod: bool = False
    oldest: datetime | None = None

    def seen(self, at: datetime) -> None:
        self.oldest = at if self.oldest is None else min(self.oldest, at)


def _gpu_key(labels: Mapping[str, str]) -> tuple[str, str]:
    return labels.get("Hostname", ""), labels.get("UUID") or labels.get("gpu", "")


def read_cluster(
    fleet: Fleet,
    cluster: str,
    now: datetime,
    fetch: Fetch = http_get,
) -> list[TelemetrySample]:
    """The samples of ``cluster``'s pools, from its Prometheus (``Cluster.telemetry``).
    Raises `PrometheusError` when Prometheus cannot be read."""
    found = fleet.get(cluster)
    if found is None or found.telemetry is None:
        raise ValueError(f"cluster {cluster!r} has no Prometheus telemetry source")
    source = found.telemetry
    pools = pools_of(fleet, cluster)

    def read(metric: str, **matchers: str) -> list[Point]:
        return query(source, selector(metric, source, **matchers), now, fetch)

    gpus: dict[tuple[str, str], _Gpu] = {}
    ignored: dict[str, set[str]] = defaultdict(set)
    for metric in (FB_FREE, FB_USED, GPU_UTIL):
        for point in read(metric):
            node = point.labels.get("Hostname", "")
            product = pool_name(point.labels.get("modelName", ""))
            if not node or not product:
                log.warning(
                    "prometheus telemetry: %s: %s series without Hostname/modelName ignored: %s",
                    cluster,
                    metric,
                    dict(point.labels),
                )
                continue
            if product not in pools:
                ignored[product].add(node)
                continue
            gpu = gpus.setdefault(_gpu_key(point.labels), _Gpu(node=node, product=product))
            gpu.seen(point.at)
            if point.labels.get("pod"):
                gpu.held_by_pod = True
            if metric == FB_FREE:
                gpu.free_gib = point.value / MIB_PER_GIB
            elif metric == FB_USED:
                gpu.used_gib = point.value / MIB_PER_GIB
            else:
                gpu.util = point.value / 100.0
    for product, nodes in sorted(ignored.items()):
        log.warning(
            "prometheus telemetry: %s: GPUs of product %s on %s ignored: no pool of cluster %s "
            "has the node label %s=%s in the fleet file",
            cluster,
            product,
            ", ".join(sorted(nodes)),
            cluster,
            PRODUCT_LABEL,
            product,
        )
    if not gpus:
        return []

    allocatable: dict[str, Point] = {}
    for point in read(ALLOCATABLE, resource=GPU_RESOURCE):
        node = point.labels.get("node", "")
        if node and (node not in allocatable or point.at > allocatable[node].at):
            allocatable[node] = point
    ksm_newest = max((p.at for p in allocatable.values()), default=None)
    finished = {
        (p.labels.get("namespace"), p.labels.get("pod"))
        for p in read(PHASE, phase="~Succeeded|Failed")
        if p.value >= 1 and (ksm_newest is None or p.at >= ksm_newest)
    }
    requested: dict[str, float] = defaultdict(float)
    for point in read(REQUESTS, resource=GPU_RESOURCE):
        # A pod gone within the node window still counts (its GPUs are not assumed free yet).
        if ksm_newest is not None and (ksm_newest - point.at).total_seconds() > NODE_WINDOW_S:
            continue
        if (point.labels.get("namespace"), point.labels.get("pod")) in finished:
            continue
        requested[point.labels.get("node", "")] += point.value

    by_node: dict[tuple[str, str], list[_Gpu]] = defaultdict(list)
    for gpu in gpus.values():
        by_node[(pools[gpu.product], gpu.node)].append(gpu)
    nodes: dict[str, list[tuple[str, datetime, int, list[_Gpu]]]] = defaultdict(list)
    for (pool, node), node_gpus in sorted(by_node.items()):
        complete = [g for g in node_gpus if g.free_gib is not None and g.util is not None]
        if len(complete) < len(node_gpus):
            log.warning(
                "prometheus telemetry: %s: node %s: %d GPU(s) lack %s or %s: not counted free",
                cluster,
                node,
                len(node_gpus) - len(complete),
                FB_FREE,
                GPU_UTIL,
            )
        observed = min(g.oldest for g in node_gpus if g.oldest is not None)
        alloc = allocatable.get(node)
        if alloc is None:
            log.warning(
                "prometheus telemetry: %s: node %s has no %s{resource=%r}: its GPUs are not "
                "counted free",
                cluster,
                node,
                ALLOCATABLE,
                GPU_RESOURCE,
            )
            schedulable = 0
        else:
            observed = min(observed, alloc.at)
            schedulable = max(int(alloc.value - requested.get(node, 0.0)), 0)
        idle = sum(
            1 for g in complete if not g.held_by_pod and (g.free_gib or 0.0) >= FREE_MEMORY_GB
        )
        nodes[pool].append((node, observed, min(schedulable, idle), complete))

    samples = []
    for pool, members in sorted(nodes.items()):
        newest = max(observed for _, observed, _, _ in members)
        kept = []
        for member in members:
            behind = (newest - member[1]).total_seconds()
            if behind > NODE_WINDOW_S:
                log.warning(
                    "prometheus telemetry: %s/%s: node %s last reported %.0f s before the "
                    "pool's newest: stopped, its GPUs are not counted",
                    cluster,
                    pool,
                    member[0],
                    behind,
                )
                continue
            kept.append(member)
        counted = [g for _, _, _, node_gpus in kept for g in node_gpus]
        free_memory = sorted(g.free_gib for g in counted if not g.held_by_pod)
        utils = [g.util for g in counted]
        samples.append(
            TelemetrySample(
                cluster=cluster,
                gpu_type=pool,
                free_gpus=sum(free for _, _, free, _ in kept),
                utilisation=min(max(sum(utils) / len(utils), 0.0), 1.0) if utils else 1.0,
                observed_at=min(observed for _, observed, _, _ in kept),
                free_memory_gb=max(free_memory, default=0.0),
                received_at=now,
                free_memory_per_gpu_gb=tuple(free_memory),
            )
        )
    return samples


def read_fleet(
    fleet: Fleet, now: datetime, fetch: Fetch = http_get
) -> tuple[dict[tuple[str, str], TelemetrySample], dict[str, str]]:
    """Samples of every cluster with a Prometheus source, and why each unreadable one gave
    none (cluster -> reason; logged)."""
    samples: dict[tuple[str, str], TelemetrySample] = {}
    errors: dict[str, str] = {}
    for cluster in fleet.clusters:
        if cluster.telemetry is None:
            continue
        try:
            for sample in read_cluster(fleet, cluster.name, now, fetch):
                samples[(sample.cluster, sample.gpu_type)] = sample
        except PrometheusError as exc:
            errors[cluster.name] = str(exc)
            log.error("prometheus telemetry: %s: no samples: %s", cluster.name, exc)
    return samples, errors
