"""Telemetry from the standard stack (issue 16, item 2), against a real Prometheus server
(Debian's ``prometheus``, started on loopback with a temporary configuration) scraping
loopback exporters that serve DCGM- and kube-state-metrics-named series in the Prometheus
text format, as dcgm-exporter and kube-state-metrics emit them:

* the series become the pool samples the agent would write, through the tick's snapshot, and
  the rules place on them unchanged;
* a DCGM exporter that stops reporting reads as stale (its last scrape ages), not as free GPUs;
* a GPU product no pool of the fleet declares is ignored, with the reason logged;
* an unreachable Prometheus gives no samples and a clear error.

In CI (``CI=true``) these tests fail, not skip, when prometheus is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from reasoning_plane import prometheus_telemetry, store
from reasoning_plane.inputs import load_fleet
from reasoning_plane.model import Fleet, PrometheusTelemetry, TelemetrySample, WorkloadRequest
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.prometheus_telemetry import PrometheusError, read_cluster, read_fleet
from reasoning_plane.snapshot import build_snapshot
from tests.loopback import FixedServer, free_port

PROMETHEUS = os.environ.get("PLANE_PROMETHEUS", "prometheus")

# the Prometheus text exposition format, as exporters serve it
EXPOSITION = "text/plain; version=0.0.4"
LABELS = 'pci_bus_id="00000000:31:00.0",DCGM_FI_DRIVER_VERSION="580.105.08"'


def _gpu(metric: str, node: str, i: int, model: str, value: float, pod: str = "") -> str:
    held = f',pod="{pod}",namespace="ml",container="main"' if pod else ""
    return (
        f'{metric}{{gpu="{i}",UUID="GPU-{node}-{i}",device="nvidia{i}",modelName="{model}",'
        f'Hostname="{node}",{LABELS}{held}}} {value}'
    )


def dcgm_text() -> str:
    """node-a: 4 A10s, GPU 0 held by a pod; node-b: 2 A10s, GPU 1 nearly full; node-t4: a
    Tesla T4 the fleet has no pool for. Memory in MiB, utilisation in %."""
    gpus = [
        ("node-a", 0, "NVIDIA A10", 2048, 22528, 90, "train-1"),
        ("node-a", 1, "NVIDIA A10", 24000, 576, 0, ""),
        ("node-a", 2, "NVIDIA A10", 24000, 576, 0, ""),
        ("node-a", 3, "NVIDIA A10", 12288, 12288, 50, ""),
        ("node-b", 0, "NVIDIA A10", 24000, 576, 10, ""),
        ("node-b", 1, "NVIDIA A10", 512, 24064, 100, ""),
        ("node-t4", 0, "Tesla T4", 15000, 360, 0, ""),
    ]
    lines = []
    for metric, column, help_ in (
        ("DCGM_FI_DEV_FB_FREE", 3, "Framebuffer memory free (in MiB)."),
        ("DCGM_FI_DEV_FB_USED", 4, "Framebuffer memory used (in MiB)."),
        ("DCGM_FI_DEV_GPU_UTIL", 5, "GPU utilization (in %)."),
    ):
        lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} gauge"]
        lines += [_gpu(metric, g[0], g[1], g[2], g[column], g[6]) for g in gpus]
    return "\n".join(lines) + "\n"


def ksm_text() -> str:
    """Allocatable GPUs per node; GPU requests of pods: a running one on node-a (1 GPU), a
    finished one on node-a (its request holds nothing), a pending one on node-b (1 GPU)."""
    gpu = 'resource="nvidia_com_gpu",unit="integer"'
    alloc, requests, phase = (
        "kube_node_status_allocatable",
        "kube_pod_container_resource_requests",
        "kube_pod_status_phase",
    )
    pods = (("train-1", "u1", "node-a", "Running"), ("done-1", "u2", "node-a", "Succeeded"))
    pods += (("wait-1", "u3", "node-b", "Pending"),)
    lines = [f"# HELP {alloc} The allocatable for different resources of a node."]
    lines += [f"# TYPE {alloc} gauge"]
    lines += [f'{alloc}{{node="{n}",{gpu}}} {v}' for n, v in (("node-a", 4), ("node-b", 2))]
    lines += [f'{alloc}{{node="node-t4",{gpu}}} 1']
    lines += [f'{alloc}{{node="node-a",resource="cpu",unit="core"}} 32']
    lines += [f"# HELP {requests} The number of requested request resource."]
    lines += [f"# TYPE {requests} gauge"]
    lines += [
        f'{requests}{{namespace="ml",pod="{pod}",uid="{uid}",container="main",node="{node}",'
        f"{gpu}}} 1"
        for pod, uid, node, _ in pods
    ]
    lines += [f"# HELP {phase} The pods current phase.", f"# TYPE {phase} gauge"]
    lines += [
        f'{phase}{{namespace="ml",pod="{pod}",uid="{uid}",phase="{p}"}} {int(p == current)}'
        for pod, uid, _, current in pods
        for p in ("Pending", "Running", "Succeeded", "Failed", "Unknown")
    ]
    return "\n".join(lines) + "\n"


def _prometheus_binary() -> str:
    found = shutil.which(PROMETHEUS)
    if found is None:
        message = (
            f"{PROMETHEUS!r} not found: install Debian's prometheus "
            "(bash scripts/install_prometheus.sh) or set PLANE_PROMETHEUS"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def _wait(what: str, check, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


class Stack:
    def __init__(self, tmp: Path) -> None:
        binary = _prometheus_binary()
        self.dcgm = FixedServer(dcgm_text(), content_type=EXPOSITION)
        self.ksm = FixedServer(ksm_text(), content_type=EXPOSITION)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: dcgm\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.dcgm.port}']}}]\n"
            "  - job_name: kube-state-metrics\n    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.ksm.port}']}}]\n"
        )
        self.log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait("prometheus to be ready", lambda: self._ready())
            _wait("both targets to be scraped", lambda: len(self.instant("up == 1")) == 2)
            _wait("the DCGM series", lambda: self.instant("DCGM_FI_DEV_GPU_UTIL"))
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
            return answer.status == 200

    def instant(self, promql: str) -> list:
        query = urllib.parse.urlencode({"query": promql})
        return _get(f"{self.url}/api/v1/query?{query}")["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        for exporter in (self.dcgm, self.ksm):
            with contextlib.suppress(OSError):
                exporter.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path)
    yield running
    running.stop()


FLEET = """
clusters:
  - name: eu-fra
    zone: EU
    region: eu-central-1
    egress_per_gb: 0.02
    latency_ms: {EU: 8}
    certifications: [GDPR, ISO27001]
    telemetry: {source: prometheus, url: "URL"}
    pools:
      - gpu_type: A10
        memory_gb: 24
        total: 6
        price_per_hour: 1.2
        node_labels: {nvidia.com/gpu.product: NVIDIA-A10}
"""


def fleet_for(tmp: Path, url: str) -> Fleet:
    path = tmp / "fleet.yaml"
    path.write_text(FLEET.replace("URL", url))
    return load_fleet(path)


def request(gpus: int, memory_gb: float) -> WorkloadRequest:
    return WorkloadRequest(
        request_id=f"r-{gpus}-{memory_gb:g}",
        workload="embeddings/support_tickets",
        team="ml",
        datasets=(),
        gpu_count=gpus,
        gpu_memory_gb=memory_gb,
        estimated_duration_s=600.0,
    )


def test_dcgm_and_kube_state_metrics_become_the_pools_sample(
    stack: Stack, tmp_path: Path, plane_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = fleet_for(tmp_path, stack.url)
    before = datetime.now(UTC)
    caplog.set_level(logging.WARNING, logger=prometheus_telemetry.__name__)
    [sample] = read_cluster(fleet, "eu-fra", datetime.now(UTC))
    assert (sample.cluster, sample.gpu_type) == ("eu-fra", "A10")
    # node-a: 4 allocatable - 1 requested by the running pod (the finished one holds none) = 3,
    # of which the GPUs not held by a pod with >= 1 GiB free are 3 (GPU 0 is the pod's);
    # node-b: 2 - 1 (the pending pod) = 1, and only GPU 0 has memory free.
    assert sample.free_gpus == 4
    # free memory of the GPUs no pod holds, MiB -> GiB, ascending
    assert sample.free_memory_per_gpu_gb == (0.5, 12.0, 23.4375, 23.4375, 23.4375)
    assert sample.free_memory_gb == 23.4375
    assert sample.utilisation == pytest.approx((90 + 0 + 0 + 50 + 10 + 100) / 600)
    # The observation time is Prometheus's scrape time, not the query's evaluation time.
    assert sample.observed_at <= datetime.now(UTC)
    assert sample.observed_at >= before - timedelta(seconds=5)
    # The T4 has no pool in the fleet: ignored, and the log says which and why.
    ignored = [r.getMessage() for r in caplog.records if "Tesla-T4" in r.getMessage()]
    assert ignored and "node-t4" in ignored[0] and "nvidia.com/gpu.product" in ignored[0]

    # Through the tick's snapshot: the placement rules apply to it unchanged.
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        snapshot = build_snapshot(
            conn, fleet=fleet, quotas={}, budgets={}, catalog={}, now=datetime.now(UTC)
        )
    assert snapshot.telemetry[("eu-fra", "A10")].free_gpus == 4
    policy = PlacementPolicy(require_quota=False, require_budget=False)
    placed = place(request(3, 20.0), snapshot, policy)
    assert placed.status == "placed", placed.reason
    # Only 3 GPUs have 20 GiB free: 4 such GPUs do not fit, whatever the free count says.
    short = place(request(4, 20.0), snapshot, policy)
    assert short.status == "deferred"
    [why] = [r.message for e in short.evaluations for r in e.rejections]
    assert why.startswith("3 of 4 reported free GPUs on eu-fra/A10 have >= 20 GB free"), why


def test_a_dcgm_exporter_that_stops_reads_as_stale_not_free(
    stack: Stack, tmp_path: Path, plane_db: str
) -> None:
    fleet = fleet_for(tmp_path, stack.url)
    stack.dcgm.stop()
    _wait("Prometheus to see the DCGM exporter down", lambda: stack.instant('up{job="dcgm"} == 0'))
    stopped = datetime.now(UTC)
    # An instant query no longer returns the series (Prometheus marked them stale) ...
    assert not stack.instant("DCGM_FI_DEV_GPU_UTIL")
    # ... the source still sees their last scrape, which only ages from now on.
    [sample] = read_cluster(fleet, "eu-fra", stopped)
    assert sample.observed_at <= stopped
    policy = PlacementPolicy(require_quota=False, require_budget=False)
    later = replace(policy, max_telemetry_age_s=1.0)
    _wait(
        "the last DCGM scrape to be older than the telemetry age limit",
        lambda: (datetime.now(UTC) - sample.observed_at).total_seconds() > 1.5,
    )
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        snapshot = build_snapshot(
            conn, fleet=fleet, quotas={}, budgets={}, catalog={}, now=datetime.now(UTC)
        )
    decision = place(request(1, 1.0), snapshot, later)
    assert decision.status == "deferred"
    rules = {r.rule for e in decision.evaluations for r in e.rejections}
    assert "telemetry_stale" in rules, decision.reason


def test_an_unreachable_prometheus_gives_no_samples_and_says_why(
    tmp_path: Path, plane_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    fleet = fleet_for(tmp_path, url)
    with pytest.raises(PrometheusError, match=r"Prometheus http://127\.0\.0\.1:\d+: unreachable"):
        read_cluster(fleet, "eu-fra", datetime.now(UTC))
    caplog.set_level(logging.ERROR, logger=prometheus_telemetry.__name__)
    samples, errors = read_fleet(fleet, datetime.now(UTC))
    assert samples == {} and "unreachable" in errors["eu-fra"]
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        # What an agent of this cluster pushed is not used: the cluster's source is Prometheus.
        now = datetime.now(UTC)
        store.insert_samples(conn, [TelemetrySample("eu-fra", "A10", 6, 0.0, now, 24.0)])
        conn.commit()
        snapshot = build_snapshot(conn, fleet=fleet, quotas={}, budgets={}, catalog={}, now=now)
    assert ("eu-fra", "A10") not in snapshot.telemetry
    assert any("eu-fra: no samples" in r.getMessage() for r in caplog.records)
    policy = PlacementPolicy(require_quota=False, require_budget=False)
    decision = place(request(1, 1.0), snapshot, policy)
    assert decision.status == "deferred"
    assert {r.rule for e in decision.evaluations for r in e.rejections} >= {"telemetry_missing"}


def test_selectors_carry_the_window_and_the_match_labels() -> None:
    source = PrometheusTelemetry("http://p:9090", labels={"cluster": 'eu"fra'}, window_s=30)
    assert (
        prometheus_telemetry.selector("kube_node_status_allocatable", source, resource="x")
        == 'kube_node_status_allocatable{resource="x",cluster="eu\\"fra"}[30s]'
    )


def test_an_agent_is_refused_on_a_cluster_whose_telemetry_is_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its samples would be written and never read: the agent says so instead of running."""
    from plane_cli.main import _agent_pools

    fleet_for(tmp_path, "http://127.0.0.1:9")
    monkeypatch.setenv("PLANE_FLEET_FILE", str(tmp_path / "fleet.yaml"))
    with pytest.raises(ValueError, match=r"eu-fra'? takes its telemetry from Prometheus"):
        _agent_pools("eu-fra")


def test_the_metrics_exporter_ages_a_prometheus_fed_pool_as_the_tick_reads_it(
    stack: Stack, tmp_path: Path, plane_db: str
) -> None:
    """The telemetry-age alert reads ``plane_telemetry_age_seconds``: for a cluster whose
    telemetry comes from its Prometheus, the exporter must read it from there as the tick does.
    Read from the agents' table (empty for such a cluster) it was +Inf: a stale-telemetry alert
    on a healthy pool."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from observability.metrics import registry_for

    fleet = fleet_for(tmp_path, stack.url)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        conn.commit()
    registry = registry_for(lambda: psycopg.connect(plane_db), lambda: ({}, {}, fleet))
    text = generate_latest(registry).decode()
    [age] = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "plane_telemetry_age_seconds" and s.labels.get("cluster") == "eu-fra"
    ]
    assert 0 <= age < 60, age
