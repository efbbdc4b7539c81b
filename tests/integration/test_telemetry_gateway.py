"""The telemetry gateway (issue 13, item 4: telemetry with identity, per node, on Kubernetes).

A DaemonSet gives every agent pod the same Secret, so a database credential in the agent could
write its neighbours' samples. Through the gateway an agent proves its node with its pod-bound
service-account token. Real parts: the gateway's HTTP server and the agent's client on loopback,
the real embedded PostgreSQL with the cluster's agent role and row-level security, the real
kubernetes client sending TokenReviews. Only the API server is a stand-in (none can run here):
it checks each TokenReview it receives against the Kubernetes 1.37 schema and answers as a
1.30+ API server does for a projected pod token (the node in ``user.extra``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kubernetes_validate
import psycopg
import pytest
import yaml

from data_plane import roles
from reasoning_plane import store
from reasoning_plane.agent import gateway_push, run_agent
from reasoning_plane.gpu_telemetry import GpuInfo, NvmlReport
from reasoning_plane.model import TelemetrySample
from reasoning_plane.telemetry_gateway import (
    AGENT_ACCOUNT,
    AUDIENCE,
    NODE_CLAIM,
    Gateway,
    kubernetes_review,
    serve,
)
from resources.database import as_user, database_url

CLUSTER = "eu-fra-a10"
# tokens the stand-in API server knows: token -> (service account, node)
TOKENS = {
    "token-node-a": (AGENT_ACCOUNT, "node-a"),
    "token-node-b": (AGENT_ACCOUNT, "node-b"),
    "token-other-sa": ("system:serviceaccount:team-a:default", "node-a"),
    "token-unbound": (AGENT_ACCOUNT, None),
}


class ApiServer(BaseHTTPRequestHandler):
    reviews: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        assert self.path == "/apis/authentication.k8s.io/v1/tokenreviews", self.path
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        kubernetes_validate.validate(body, "1.37", strict=True)  # what we send is a TokenReview
        ApiServer.reviews.append(body)
        known = TOKENS.get(body["spec"]["token"])
        if known is None or AUDIENCE not in body["spec"].get("audiences", []):
            status = {"authenticated": False, "error": "invalid bearer token"}
        else:
            account, node = known
            extra = {NODE_CLAIM: [node]} if node else {}
            status = {
                "authenticated": True,
                "audiences": [AUDIENCE],
                "user": {"username": account, "uid": "u", "groups": [], "extra": extra},
            }
        answer = json.dumps({**body, "status": status}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def gateway(plane_db: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(gateway URL, token folder): the gateway of CLUSTER, writing as the cluster's agent role,
    reviewing tokens with a stand-in API server through the real kubernetes client."""
    api = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    _serve(api)
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{api.server_port}"}}
                ],
                "users": [{"name": "c", "user": {"token": "gateway-service-account"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "c"}}],
            }
        )
    )
    with psycopg.connect(plane_db) as admin:
        store.ensure_schema(admin)
        role = store.ensure_agent_role(admin, CLUSTER)
        admin.commit()
    url = as_user(database_url(), role)
    server = serve(
        Gateway(
            cluster=CLUSTER,
            review=kubernetes_review(str(kubeconfig)),
            connect=lambda: psycopg.connect(url),
        ),
        "127.0.0.1",
        0,
        log=lambda _: None,
    )
    _serve(server)
    for token in TOKENS:
        (tmp_path / token).write_text(token + "\n")
    yield f"http://127.0.0.1:{server.server_port}", tmp_path
    server.shutdown()
    api.shutdown()


def report(n_free: int = 2) -> NvmlReport:
    gpus = tuple(
        GpuInfo(
            index=i,
            name="NVIDIA A10",
            uuid=f"GPU-{i}",
            memory_total_gb=24.0,
            memory_used_gb=0.0,
            utilisation=0.0,
        )
        for i in range(n_free)
    )
    return NvmlReport(True, "ok", datetime.now(UTC), gpus=gpus)


def rows(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT cluster, node FROM plane.telemetry ORDER BY cluster, node"
        ).fetchall()


def test_an_agent_pushes_its_own_nodes_samples_with_its_pods_token(gateway, plane_db) -> None:
    url, tokens = gateway
    said: list[str] = []
    stats = run_agent(
        None,
        CLUSTER,
        iterations=1,
        reader=report,
        node="node-a",
        push=gateway_push(url, str(tokens / "token-node-a")),
        log=said.append,
    )
    assert said == []
    assert stats.samples == 1 and stats.errors == 0
    assert rows(plane_db) == [(CLUSTER, "node-a")]
    review = ApiServer.reviews[-1]
    assert review["spec"] == {"token": "token-node-a", "audiences": [AUDIENCE]}


@pytest.mark.parametrize(
    ("token", "node", "refusal"),
    [
        ("token-node-b", "node-a", "HTTP 403: the token is node node-b's"),  # a neighbour
        ("token-other-sa", "node-a", "HTTP 403: token of 'system:serviceaccount:team-a"),
        ("token-unbound", "node-a", "HTTP 403: token is not bound to a node"),
        ("token-forged", "node-a", "HTTP 401: token refused by the API server"),
    ],
)
def test_a_push_for_another_node_or_with_a_bad_token_is_refused(
    gateway, plane_db, tmp_path: Path, token: str, node: str, refusal: str
) -> None:
    url, tokens = gateway
    (tokens / "token-forged").write_text("token-forged")
    said: list[str] = []
    stats = run_agent(
        None,
        CLUSTER,
        iterations=1,
        reader=report,
        node=node,
        push=gateway_push(url, str(tokens / token)),
        log=said.append,
    )
    assert stats.samples == 0 and stats.errors == 1
    assert refusal in said[0], said
    assert rows(plane_db) == []


def test_the_gateway_refuses_samples_from_the_future_and_bad_bodies(gateway, plane_db) -> None:
    import urllib.error
    import urllib.request

    url, tokens = gateway
    ahead = TelemetrySample(
        CLUSTER, "A10", 2, 0.1, datetime.now(UTC) + timedelta(hours=1), node="node-a"
    )
    push = gateway_push(url, str(tokens / "token-node-a"))
    with pytest.raises(store.FutureTelemetryError, match=r"(3600|359\d) s ahead"):
        push([ahead])
    request = urllib.request.Request(
        url + "/v1/telemetry",
        data=json.dumps({"samples": [{"gpu_type": "A10", "free_gpus": -1}]}).encode(),
        method="POST",
        headers={"Authorization": "Bearer token-node-a"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert "samples[0].free_gpus: must be an int >= 0" in caught.value.read().decode()
    assert rows(plane_db) == []


def test_the_gateways_role_writes_its_cluster_only(gateway, plane_db) -> None:
    """Even a gateway that checked nothing could not write another cluster's telemetry."""
    role = roles.agent_role(CLUSTER)
    with (
        psycopg.connect(as_user(database_url(), role), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
    ):
        store.insert_samples(
            conn, [TelemetrySample("us-east-a100", "A100", 1, 0.5, datetime.now(UTC))]
        )
