"""Live quotas (issue 16, item 3): each cluster's ResourceQuota ``status.hard``/``status.used``
read with the real Kubernetes Python client, which talks to a loopback HTTP server answering
with recorded API responses (the shape of a real ``GET /api/v1/resourcequotas``):

* the namespace's live quota decides, not the quota file (which stays for what-if and for the
  clusters without API access);
* quantities such as ``"8"``, ``"500m"``, ``"2Ki"`` are parsed as Kubernetes parses them;
* an API server that cannot be reached leaves the quota unknown: nothing is placed on that
  cluster for that team, and the reason says why (fail closed);
* a quota whose status the quota controller has not filled in is unknown too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from reasoning_plane import store
from reasoning_plane.inputs import load_fleet
from reasoning_plane.live_quotas import quantity, read_cluster, read_fleet
from reasoning_plane.model import Fleet, TeamQuota, TelemetrySample, WorkloadRequest
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.replay import snapshot_from_payload
from reasoning_plane.snapshot import build_snapshot
from reasoning_plane.store import snapshot_payload
from tests.loopback import FixedServer, free_port

GPU = "requests.nvidia.com/gpu"


def resource_quota(namespace: str, name: str, hard: str, used: str | None) -> dict:
    """One item as the API server returns it (kubectl get resourcequota -A -o json)."""
    status = {"hard": {GPU: hard, "requests.cpu": "64"}, "used": {"requests.cpu": "12500m"}}
    if used is not None:
        status["used"][GPU] = used
    else:
        status = {}  # created a moment ago: the quota controller has not computed it yet
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"6f1c2c3e-{namespace}-{name}",
            "resourceVersion": "48213",
            "creationTimestamp": "2026-11-02T09:14:03Z",
            "labels": {"app.kubernetes.io/managed-by": "reasoning-plane"},
        },
        "spec": {"hard": {GPU: hard, "requests.cpu": "64"}},
        "status": status,
    }


RECORDED = {
    "kind": "ResourceQuotaList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "48250"},
    "items": [
        resource_quota("team-ml", "gpu", "8", "6"),
        # a second quota on the same namespace with more room: the tighter one counts
        resource_quota("team-ml", "gpu-burst", "16", "6"),
        resource_quota("team-fin", "gpu", "500m", "0"),  # half a GPU: no whole GPU
        resource_quota("team-big", "gpu", "2Ki", "500m"),  # 2048 GPUs; half of one used
        resource_quota("team-new", "gpu", "4", None),
        {
            "metadata": {"name": "cpu-only", "namespace": "team-ops"},
            "spec": {"hard": {"requests.cpu": "8"}},
            "status": {"hard": {"requests.cpu": "8"}, "used": {"requests.cpu": "1"}},
        },
    ],
}


@pytest.fixture
def api() -> Iterator[FixedServer]:
    """A loopback API server answering the ResourceQuota list with ``RECORDED``."""
    with FixedServer(RECORDED, path="/api/v1/resourcequotas") as server:
        yield server


def kubeconfig(tmp: Path, server: str) -> Path:
    path = tmp / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "eu", "cluster": {"server": server}},
                    # the current context's cluster: only the fleet's kube_context reaches eu
                    {
                        "name": "nowhere",
                        "cluster": {"server": f"http://127.0.0.1:{free_port()}"},
                    },
                ],
                "users": [{"name": "plane", "user": {"token": "recorded"}}],
                "contexts": [
                    {"name": "eu-prod", "context": {"cluster": "eu", "user": "plane"}},
                    {"name": "other", "context": {"cluster": "nowhere", "user": "plane"}},
                ],
                "current-context": "other",
            }
        )
    )
    return path


FLEET = """
clusters:
  - name: eu-fra
    zone: EU
    region: eu-central-1
    egress_per_gb: 0.02
    latency_ms: {EU: 8}
    kube_context: eu-prod
    namespace_template: "team-{team}"
    quotas: {source: kubernetes, kubeconfig: "KUBECONFIG"}
    pools:
      - {gpu_type: A10, memory_gb: 24, total: 64, price_per_hour: 1.2}
  - name: eu-par
    zone: EU
    region: eu-west-3
    egress_per_gb: 0.02
    latency_ms: {EU: 12}
    pools:
      - {gpu_type: L4, memory_gb: 24, total: 64, price_per_hour: 0.9}
"""


def fleet_for(tmp: Path, server: str) -> Fleet:
    path = tmp / "fleet.yaml"
    path.write_text(FLEET.replace("KUBECONFIG", str(kubeconfig(tmp, server))))
    return load_fleet(path)


def request(team: str, gpus: int) -> WorkloadRequest:
    return WorkloadRequest(
        request_id=f"{team}-{gpus}",
        workload="embeddings/support_tickets",
        team=team,
        datasets=(),
        gpu_count=gpus,
        gpu_memory_gb=20.0,
        estimated_duration_s=600.0,
    )


def snapshot_of(plane_db: str, fleet: Fleet, quotas: dict[str, TeamQuota]):
    now = datetime.now(UTC)
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample("eu-fra", "A10", 64, 0.1, now, 24.0, node="n1"),
                TelemetrySample("eu-par", "L4", 64, 0.1, now, 24.0, node="n2"),
            ],
        )
        conn.commit()
        return build_snapshot(conn, fleet=fleet, quotas=quotas, budgets={}, catalog={}, now=now)


POLICY = PlacementPolicy(require_budget=False)


def reasons(decision, cluster: str) -> list[str]:
    return [
        f"{r.rule}: {r.message}"
        for e in decision.evaluations
        if e.candidate.cluster == cluster
        for r in e.rejections
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", Decimal(8)), ("500m", Decimal("0.5")), ("2Ki", Decimal(2048)), ("1e3", Decimal(1000))],
)
def test_quantities_are_read_as_kubernetes_writes_them(text: str, value: Decimal) -> None:
    assert quantity(text) == value


def test_each_namespace_quota_is_read_live_with_its_status(
    api: FixedServer, tmp_path: Path
) -> None:
    fleet = fleet_for(tmp_path, api.url)
    quotas, unknown = read_cluster(fleet.get("eu-fra"))
    assert api.paths and api.paths[0].startswith("/api/v1/resourcequotas")
    ml = quotas["team-ml"]
    assert (ml.gpus, ml.used, ml.cluster) == (8, 6, "eu-fra")  # the tighter of its two quotas
    assert "team-ml/gpu on eu-fra" in ml.source
    assert (quotas["team-fin"].gpus, quotas["team-fin"].used) == (0, 0)  # 500m: no whole GPU
    assert (quotas["team-big"].gpus, quotas["team-big"].used) == (2048, 1)  # 2Ki; 500m used: 1
    assert "team-ops" not in quotas  # no GPU quota there
    assert "no status" in unknown["team-new"]
    # Reservations the plane made whose runs have not started count as used.
    live, _ = read_fleet(fleet, unstarted={("eu-fra", "ml"): 1, ("eu-par", "ml"): 5})
    assert live[("eu-fra", "team-ml")].used == 7
    assert "+1 reserved by the plane" in live[("eu-fra", "team-ml")].source


def test_the_live_quota_decides_on_its_cluster_and_the_file_elsewhere(
    api: FixedServer, tmp_path: Path, plane_db: str
) -> None:
    fleet = fleet_for(tmp_path, api.url)
    # The quota file gives team ml no GPU: it governs eu-par only (no API access declared).
    snapshot = snapshot_of(plane_db, fleet, {"ml": TeamQuota("ml", 0, "quotas.yaml#ml")})
    fits = place(request("ml", 2), snapshot, POLICY)
    assert fits.status == "placed" and fits.chosen.cluster == "eu-fra", fits.reason
    assert any(r.startswith("quota_size:") for r in reasons(fits, "eu-par"))
    over = place(request("ml", 3), snapshot, POLICY)
    assert over.status == "deferred"
    [why] = reasons(over, "eu-fra")
    assert why.startswith("quota: namespace team-ml on eu-fra uses 6 of 8 GPUs")
    assert "live" in why


def test_a_quota_without_status_is_unknown_and_nothing_is_placed_against_it(
    api: FixedServer, tmp_path: Path, plane_db: str
) -> None:
    fleet = fleet_for(tmp_path, api.url)
    snapshot = snapshot_of(plane_db, fleet, {})
    decision = place(request("new", 1), snapshot, POLICY)
    assert decision.status == "deferred"
    [why] = reasons(decision, "eu-fra")
    assert "unknown" in why and "has no status for requests.nvidia.com/gpu" in why


def test_an_unreachable_api_server_fails_closed_with_the_reason(
    tmp_path: Path, plane_db: str
) -> None:
    fleet = fleet_for(tmp_path, f"http://127.0.0.1:{free_port()}")
    snapshot = snapshot_of(plane_db, fleet, {"ml": TeamQuota("ml", 64, "quotas.yaml#ml")})
    assert "eu-fra" in snapshot.quota_errors
    decision = place(request("ml", 1), snapshot, POLICY)
    # Not on eu-fra (its quota is unknown), whatever the quota file says; eu-par may take it.
    assert decision.status == "placed" and decision.chosen.cluster == "eu-par"
    [why] = reasons(decision, "eu-fra")
    assert why.startswith("quota: the GPU quota of namespace team-ml on eu-fra is unknown")
    assert "API server unreachable" in why


def test_a_decision_on_live_quotas_replays_the_same(
    api: FixedServer, tmp_path: Path, plane_db: str
) -> None:
    """What the decision read of the live quotas is stored with it, so `plane replay` re-runs
    it on the same quotas (not on none)."""
    fleet = fleet_for(tmp_path, api.url)
    snapshot = snapshot_of(plane_db, fleet, {})
    for gpus in (2, 3):
        decision = place(request("ml", gpus), snapshot, POLICY)
        raw = json.loads(json.dumps(snapshot_payload(snapshot, [], "ml")))
        again = place(request("ml", gpus), snapshot_from_payload(raw, fleet), POLICY)
        assert (again.status, again.reason) == (decision.status, decision.reason)
