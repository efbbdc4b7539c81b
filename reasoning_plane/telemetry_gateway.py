"""The telemetry gateway: GPU nodes' agents push samples here, proving which node they are with
a Kubernetes service-account token bound to their pod; the gateway writes them to
``plane.telemetry`` for that node only.

Why: a DaemonSet gives every pod the same Secret, so a database credential in the agent could
write any node's samples. Instead each agent pod mounts a projected service-account token
(audience ``reasoning-plane-telemetry``, rotated by the kubelet) that Kubernetes binds to the
pod and its node; the gateway, one per cluster, asks that cluster's API server about it
(``TokenReview``, `authentication.k8s.io/v1`), requires the agent's service account, and takes
the node from ``user.extra["authentication.kubernetes.io/node-name"]`` (Kubernetes >= 1.30):
a sample naming any other node is refused. Agents hold no database credential at all; the
gateway's own database role may write its cluster's telemetry only (`data_plane.roles`,
``plane db agent-role --cluster C``).

    plane telemetry-gateway --cluster eu-fra-a10 [--listen 0.0.0.0:8090]
                            [--tls-cert F --tls-key F] [--kubeconfig F]

``GET /healthz`` answers 200 (probes). ``POST /v1/telemetry`` with ``Authorization: Bearer
<token>`` and ``{"samples": [...]}`` (each sample: gpu_type, free_gpus, utilisation,
observed_at, optional free_memory_gb and free_memory_per_gpu_gb, node): 204 stored; 400 a
malformed body (the field is named); 401 no or an unauthenticated token; 403 a token of another
service account, not bound to a node, or a sample of another node; 422 samples from the future
(`store.insert_samples`); 503 the database is unreachable.
"""

from __future__ import annotations

import json
import math
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from reasoning_plane import store
from reasoning_plane.model import TelemetrySample

AUDIENCE = "reasoning-plane-telemetry"
AGENT_ACCOUNT = "system:serviceaccount:reasoning-plane:plane-agent"
NODE_CLAIM = "authentication.kubernetes.io/node-name"
PATH = "/v1/telemetry"
MAX_BODY = 256 * 1024
MAX_SAMPLES = 64
PRUNE_EVERY = 60  # pushes of one node between prunes of its old rows

Review = Callable[[dict[str, Any]], Mapping[str, Any]]


class Refused(Exception):
    """A push the gateway does not store: ``status`` is the HTTP status it answers."""

    def __init__(
        self, status: HTTPStatus, message: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = dict(detail or {})


def node_of(review: Review, token: str, account: str = AGENT_ACCOUNT) -> str:
    """The node a pod-bound service-account token was issued for, as the cluster's API server
    says (``review``: sends a TokenReview, returns the reviewed object as JSON); `Refused`
    when the token is not authenticated for this audience, not the agent's, or not bound to
    one node."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [AUDIENCE]},
    }
    status = review(body).get("status") or {}
    if not status.get("authenticated") or AUDIENCE not in (status.get("audiences") or []):
        why = status.get("error") or "not authenticated for audience " + AUDIENCE
        raise Refused(HTTPStatus.UNAUTHORIZED, f"token refused by the API server: {why}")
    user = status.get("user") or {}
    if user.get("username") != account:
        raise Refused(
            HTTPStatus.FORBIDDEN,
            f"token of {user.get('username')!r}, not of the agent's service account {account}",
        )
    nodes = (user.get("extra") or {}).get(NODE_CLAIM) or []
    if len(nodes) != 1 or not isinstance(nodes[0], str) or not nodes[0]:
        raise Refused(
            HTTPStatus.FORBIDDEN,
            "token is not bound to a node (a projected token of a pod, Kubernetes >= 1.30)",
        )
    return nodes[0]


def kubernetes_review(kubeconfig_file: str | None = None) -> Review:
    """TokenReview against a cluster's API server: in-cluster config, or ``kubeconfig_file``.
    The gateway's service account needs ``system:auth-delegator``."""
    from kubernetes import client, config

    if kubeconfig_file:
        api_client = config.new_client_from_config(config_file=kubeconfig_file)
    else:
        config.load_incluster_config()
        api_client = client.ApiClient()
    api = client.AuthenticationV1Api(api_client)

    def review(body: dict[str, Any]) -> Mapping[str, Any]:
        return api_client.sanitize_for_serialization(api.create_token_review(body))

    return review


def _number(raw: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = raw.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Refused(HTTPStatus.BAD_REQUEST, f"{where}.{key}: must be a finite number")
    return value


def parse_samples(body: bytes, cluster: str) -> list[TelemetrySample]:
    """The samples of a push body; `Refused` (400) naming the first bad field."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(HTTPStatus.BAD_REQUEST, f"body: not JSON ({exc})") from None
    items = raw.get("samples") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_SAMPLES:
        raise Refused(
            HTTPStatus.BAD_REQUEST, f"samples: must be a list of 1 to {MAX_SAMPLES} samples"
        )
    samples = []
    for i, item in enumerate(items):
        where = f"samples[{i}]"
        if not isinstance(item, dict):
            raise Refused(HTTPStatus.BAD_REQUEST, f"{where}: must be an object")
        free = _number(item, "free_gpus", where)
        if not isinstance(free, int) or free < 0:
            raise Refused(HTTPStatus.BAD_REQUEST, f"{where}.free_gpus: must be an int >= 0")
        util = _number(item, "utilisation", where)
        if not 0 <= util <= 1:
            raise Refused(HTTPStatus.BAD_REQUEST, f"{where}.utilisation: must be in 0..1")
        try:
            observed = datetime.fromisoformat(str(item.get("observed_at")))
        except ValueError:
            observed = None
        if observed is None or observed.tzinfo is None:
            raise Refused(
                HTTPStatus.BAD_REQUEST, f"{where}.observed_at: must be an ISO 8601 time with zone"
            )
        per_gpu = item.get("free_memory_per_gpu_gb")
        if per_gpu is not None and (
            not isinstance(per_gpu, list)
            or not all(
                isinstance(g, int | float) and not isinstance(g, bool) and math.isfinite(g)
                for g in per_gpu
            )
        ):
            raise Refused(
                HTTPStatus.BAD_REQUEST, f"{where}.free_memory_per_gpu_gb: must be a list of GB"
            )
        gpu_type, node = item.get("gpu_type"), item.get("node")
        if not isinstance(gpu_type, str) or not gpu_type or not isinstance(node, str):
            raise Refused(HTTPStatus.BAD_REQUEST, f"{where}: gpu_type and node must be strings")
        samples.append(
            TelemetrySample(
                cluster=cluster,
                gpu_type=gpu_type,
                free_gpus=free,
                utilisation=float(util),
                observed_at=observed,
                free_memory_gb=_number(item, "free_memory_gb", where, optional=True),
                node=node,
                free_memory_per_gpu_gb=tuple(float(g) for g in per_gpu)
                if per_gpu is not None
                else None,
            )
        )
    return samples


def sample_to_json(sample: TelemetrySample) -> dict[str, Any]:
    return {
        "gpu_type": sample.gpu_type,
        "free_gpus": sample.free_gpus,
        "utilisation": sample.utilisation,
        "observed_at": sample.observed_at.isoformat(),
        "free_memory_gb": sample.free_memory_gb,
        "free_memory_per_gpu_gb": list(sample.free_memory_per_gpu_gb)
        if sample.free_memory_per_gpu_gb is not None
        else None,
        "node": sample.node,
    }


@dataclass
class Gateway:
    """What a push needs: the cluster served, its API server's TokenReview, and the database
    (connected as the cluster's agent role)."""

    cluster: str
    review: Review
    connect: Callable[[], psycopg.Connection]
    max_clock_skew_s: float | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._pushes: dict[str, int] = {}

    def push(self, authorization: str | None, body: bytes) -> int:
        """Store one push; the number of samples stored, or `Refused`."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(HTTPStatus.UNAUTHORIZED, "Authorization: Bearer <token> is required")
        try:
            node = node_of(self.review, token.strip())
        except Refused:
            raise
        except Exception as exc:  # the API server unreachable or refusing the review itself
            raise Refused(
                HTTPStatus.SERVICE_UNAVAILABLE, f"cannot review the token: {exc}"
            ) from None
        samples = parse_samples(body, self.cluster)
        others = sorted({s.node for s in samples} - {node})
        if others:
            raise Refused(
                HTTPStatus.FORBIDDEN,
                f"the token is node {node}'s; refused samples of {', '.join(map(repr, others))}",
            )
        with self._lock:
            pushes = self._pushes[node] = self._pushes.get(node, 0) + 1
        try:
            with self.connect() as conn:
                store.insert_samples(conn, samples, max_clock_skew_s=self.max_clock_skew_s)
                if pushes % PRUNE_EVERY == 1:
                    store.prune_telemetry(conn, self.cluster, node)
                conn.commit()
        except store.FutureTelemetryError as exc:
            ahead = {s.gpu_type: seconds for s, seconds in exc.refused}
            detail = {"ahead_s": ahead, "max_clock_skew_s": exc.max_clock_skew_s}
            raise Refused(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc), detail) from None
        except psycopg.Error as exc:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, f"database: {exc}") from None
        return len(samples)


def serve(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    tls: tuple[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> ThreadingHTTPServer:
    """An HTTP(S) server for ``gateway`` (call ``serve_forever``; port 0: any free port)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "reasoning-plane-telemetry-gateway"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the refusals are logged below, without tokens

        def _answer(
            self, status: HTTPStatus, message: str = "", detail: Mapping[str, Any] | None = None
        ) -> None:
            payload = json.dumps({"error": message, **(detail or {})}).encode() if message else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._answer(HTTPStatus.NOT_FOUND, f"POST {PATH}, GET /healthz")

        def do_POST(self) -> None:
            if self.path != PATH:
                self._answer(HTTPStatus.NOT_FOUND, f"POST {PATH}")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._answer(HTTPStatus.BAD_REQUEST, f"body: 1 to {MAX_BODY} bytes")
                return
            body = self.rfile.read(length)
            try:
                gateway.push(self.headers.get("Authorization"), body)
            except Refused as exc:
                log(f"telemetry gateway {gateway.cluster}: {exc.status.value}: {exc}")
                self._answer(exc.status, str(exc), exc.detail)
                return
            self._answer(HTTPStatus.NO_CONTENT)

    server = ThreadingHTTPServer((host, port), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server
