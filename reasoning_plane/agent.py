"""The telemetry push agent (``plane agent``): one per GPU node, samples NVML every second and
writes the samples to ``plane.telemetry``, so remote clusters' telemetry is pushed, not polled,
and the placement tick's freshness rule can trust (or refuse) it by its observation time and the
time the plane received it. Samples stamped ahead of the database's clock by more than the
allowed clock skew (a node whose clock runs ahead) are refused and the refusal is logged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from reasoning_plane import store
from reasoning_plane.gpu_telemetry import NvmlReport, read_gpus
from reasoning_plane.model import Fleet, TelemetrySample

FREE_MEMORY_GB = 1.0  # a GPU with less free memory than this is not counted as free


PRODUCT_LABEL = "nvidia.com/gpu.product"  # GPU feature discovery's node label
PRUNE_EVERY = 60  # iterations between prunes of this node's old rows


def pool_name(nvml_name: str) -> str:
    """The product as GPU feature discovery labels nodes with it: NVML's name, dashes for
    spaces (``NVIDIA A10`` -> ``NVIDIA-A10``)."""
    return nvml_name.strip().replace(" ", "-")


def pools_of(fleet: Fleet, cluster: str) -> dict[str, str]:
    """Product label -> the fleet's pool name, for the pools of ``cluster`` that declare
    ``nvidia.com/gpu.product`` in their node labels."""
    found = fleet.get(cluster)
    if found is None:
        raise ValueError(f"cluster {cluster!r} is not in the fleet")
    return {
        p.node_labels[PRODUCT_LABEL]: p.gpu_type
        for p in found.pools
        if PRODUCT_LABEL in p.node_labels
    }


def samples_from_report(
    cluster: str,
    report: NvmlReport,
    gpu_type: str | None = None,
    *,
    node: str = "",
    pools: Mapping[str, str] | None = None,
) -> list[TelemetrySample]:
    """One sample per GPU type on this node: free GPUs, mean utilisation, largest free memory,
    and the free memory of each GPU (in NVML's order), so that a GPU counts as free for a
    request only if its free memory meets the request's (`constraints.free_gpus_for`).
    The type is ``gpu_type`` when given, else the fleet's pool for the GPU's product
    (``pools``: `pools_of`), else the product itself."""
    if not report.available:
        return []
    by_type: dict[str, list] = {}
    for gpu in report.gpus:
        product = pool_name(gpu.name)
        name = gpu_type or (pools or {}).get(product) or product
        by_type.setdefault(name, []).append(gpu)
    return [
        TelemetrySample(
            cluster=cluster,
            gpu_type=name,
            free_gpus=sum(1 for g in gpus if g.memory_free_gb >= FREE_MEMORY_GB),
            utilisation=min(max(sum(g.utilisation for g in gpus) / len(gpus), 0.0), 1.0),
            observed_at=report.observed_at,
            free_memory_gb=max(g.memory_free_gb for g in gpus),
            node=node,
            free_memory_per_gpu_gb=tuple(g.memory_free_gb for g in gpus),
        )
        for name, gpus in sorted(by_type.items())
    ]


@dataclass
class AgentStats:
    iterations: int = 0
    samples: int = 0
    errors: int = 0
    refused: int = 0  # samples observed ahead of the database's clock (see store.insert_samples)
    last_reason: str = ""


GATEWAY_ENV = "PLANE_TELEMETRY_GATEWAY"
TOKEN_FILE_ENV = "PLANE_TELEMETRY_TOKEN_FILE"


class PushFailed(Exception):
    """The telemetry gateway did not store a push (unreachable, or refused it)."""


def gateway_push(url: str, token_file: str, timeout_s: float = 5.0) -> Push:
    """Push samples to the telemetry gateway (`telemetry_gateway`) at ``url``, with the pod's
    projected service-account token read from ``token_file`` on every push (the kubelet
    rotates it). Future samples come back as `store.FutureTelemetryError`; any other refusal
    or failure as `PushFailed`."""
    import json
    import urllib.error
    import urllib.request

    from reasoning_plane.telemetry_gateway import PATH, sample_to_json

    def push(samples: list[TelemetrySample]) -> None:
        try:
            with open(token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise PushFailed(f"cannot read the service-account token: {exc}") from None
        body = json.dumps({"samples": [sample_to_json(s) for s in samples]}).encode()
        request = urllib.request.Request(
            url.rstrip("/") + PATH,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s):
                return
        except urllib.error.HTTPError as exc:
            try:
                answer = json.loads(exc.read() or b"{}")
            except ValueError:
                answer = {}
            message = answer.get("error") or exc.reason
            if exc.code == 422 and isinstance(answer.get("ahead_s"), dict):
                ahead = answer["ahead_s"]
                refused = [(s, float(ahead[s.gpu_type])) for s in samples if s.gpu_type in ahead]
                raise store.FutureTelemetryError(
                    refused, float(answer.get("max_clock_skew_s") or math.nan)
                ) from None
            raise PushFailed(f"gateway refused the push: HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise PushFailed(f"gateway unreachable: {exc}") from None

    return push


Push = Callable[[list[TelemetrySample]], None]


def run_agent(
    connect: Callable[[], psycopg.Connection] | None,
    cluster: str,
    *,
    interval_s: float = 1.0,
    iterations: int | None = None,
    gpu_type: str | None = None,
    reader: Callable[[], NvmlReport] = read_gpus,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    max_clock_skew_s: float | None = None,
    node: str = "",
    pools: Mapping[str, str] | None = None,
    push: Push | None = None,
) -> AgentStats:
    """Sample and push until stopped (or ``iterations`` times): into the database (``connect``)
    or, with ``push`` (`gateway_push`), through the telemetry gateway, which prunes. Database
    and gateway errors are reported and retried on the next tick; nothing is ever pushed without
    a reading. Samples from the future (``max_clock_skew_s``: see `store.insert_samples`) are
    refused, said once until a sample is accepted again."""
    stats = AgentStats()
    conn: psycopg.Connection | None = None
    refusing = False
    while iterations is None or stats.iterations < iterations:
        started = time.monotonic()
        try:
            report = reader()
        except Exception as exc:  # a broken reader must not stop the agent
            # Anything NVML (or a driver wrapper) raises that read_gpus did not turn into a
            # report: push nothing this tick, say why; the plane's freshness rule then treats
            # this node's pools as stale instead of assuming them idle.
            report = NvmlReport(False, f"telemetry reader failed: {exc!r}", datetime.now(UTC))
        stats.iterations += 1
        if not report.available:
            if report.reason != stats.last_reason:
                log(f"plane agent: {cluster}: no GPU telemetry: {report.reason}")
            stats.last_reason = report.reason
        else:
            samples = samples_from_report(cluster, report, gpu_type, node=node, pools=pools)
            try:
                if push is not None:
                    push(samples)
                else:
                    if conn is None or conn.closed:
                        assert connect is not None, "run_agent needs connect or push"
                        conn = connect()
                        store.ensure_schema(conn)
                    store.insert_samples(conn, samples, max_clock_skew_s=max_clock_skew_s)
                    if stats.iterations % PRUNE_EVERY == 1:  # the first, then every PRUNE_EVERY
                        store.prune_telemetry(conn, cluster, node)
                    conn.commit()
                stats.samples += len(samples)
                stats.last_reason = report.reason
                refusing = False
            except store.FutureTelemetryError as exc:
                if conn is not None:
                    conn.rollback()
                stats.refused += len(exc.refused)
                if not refusing:
                    log(f"plane agent: {cluster}: {exc}")
                refusing = True
            except (psycopg.Error, PushFailed) as exc:
                stats.errors += 1
                log(f"plane agent: {cluster}: could not write telemetry ({exc}); retrying")
                if conn is not None:
                    conn.close()
                conn = None
        if iterations is not None and stats.iterations >= iterations:
            break
        sleep(max(interval_s - (time.monotonic() - started), 0.0))
    if conn is not None:
        conn.close()
    return stats
