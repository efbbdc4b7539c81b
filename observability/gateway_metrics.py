"""The serving gateway's own metrics, on its ``/metrics`` (`serving.gateway.create_app`).

A pure ASGI middleware (no request body is read, nothing is buffered) counts each response when
it starts: ``plane_gateway_requests_total`` (model, endpoint, path, status: the model that
answered, from ``x-plane-model``, else the one asked; the endpoint from ``x-plane-endpoint``,
``none`` when nothing was forwarded), ``plane_gateway_added_latency_seconds`` (the time the
gateway itself took: from receiving the request to forwarding it to the runtime, or to its own
answer when it forwarded nothing; failed-over attempts included) and
``plane_gateway_shed_total`` (reason: ``deferred``, 429, capacity, quota or budget short for
now; ``log_backlog``, 503 without a decision, the decision log not being written). The
gateway's handler marks two points in the ASGI scope: the model asked (``plane.model``) and when
it forwarded (``plane.forwarded_at``).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

MODEL, FORWARDED_AT = "plane.model", "plane.forwarded_at"
# the gateway's own time: microseconds to tens of milliseconds (a retrieval), rarely more
BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SERVED_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


class GatewayMetrics:
    """One gateway's series, in a registry of its own (served on its ``/metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "plane_gateway_requests",
            "Inference requests answered, by model, endpoint, path and HTTP status",
            ["model", "endpoint", "path", "status"],
            registry=self.registry,
        )
        self.added = Histogram(
            "plane_gateway_added_latency_seconds",
            "Time the gateway itself adds before forwarding (or answering)",
            ["path"],
            buckets=BUCKETS_S,
            registry=self.registry,
        )
        self.shed = Counter(
            "plane_gateway_shed",
            "Requests refused for load: deferred (429) or the decision log backlog (503)",
            ["reason"],
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware: serves ``GET /metrics`` and counts the served paths' responses."""

    def __init__(self, app, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/metrics" and scope["method"] == "GET":
            body, content_type = self.metrics.exposition()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", content_type.encode())],
                }
            )
            return await send({"type": "http.response.body", "body": body})
        if path not in SERVED_PATHS:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        metrics = self.metrics

        async def counted(message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers") or ())
                ended = scope.get(FORWARDED_AT) or time.perf_counter()
                metrics.added.labels(path).observe(max(0.0, ended - started))
                model = headers.get(b"x-plane-model", b"").decode() or scope.get(MODEL) or "-"
                endpoint = headers.get(b"x-plane-endpoint", b"").decode() or "none"
                metrics.requests.labels(model, endpoint, path, str(status)).inc()
                if status == 429:
                    metrics.shed.labels("deferred").inc()
                elif status == 503 and b"x-plane-decision-id" not in headers:
                    metrics.shed.labels("log_backlog").inc()
            await send(message)

        await self.app(scope, receive, counted)
