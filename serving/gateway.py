"""The gateway: one OpenAI-compatible endpoint whose every request the Reasoning Plane places.

``POST /v1/chat/completions`` and ``/v1/completions`` (streaming with server-sent events), and
``GET /v1/models``. Per request:

1. the caller is who its API key says (`data_plane.credentials`), never what it claims; its team
   is one of that principal's teams (``x-plane-team`` chooses among them);
2. the data it carries is named by ``x-plane-datasets``; its residency and classification come
   from the catalog, and a dataset the catalog does not hold is the most restrictive;
3. `reasoning_plane.serving.endpoints` places it by the rule engine over the endpoints serving the
   model, from the gateway's own live view of them (requests in flight, measured time to first
   token and decode rate, a probe of each runtime);
4. a placed request is forwarded to its endpoint; a rejected one gets 403 with the reason (never
   served elsewhere), a deferred one 429 with ``Retry-After``. Every response names its decision
   (``x-plane-decision-id``, ``x-plane-endpoint``).

Starlette (the ASGI toolkit under FastAPI) and httpx; uvicorn serves it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from data_plane.access import Principal
from reasoning_plane.model import DEFERRED, PLACED, Budget, Decision, Fleet, TeamUsage
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import (
    Endpoint,
    EndpointSample,
    InferenceRequest,
    place_request,
    serving_policy,
    serving_snapshot,
)

try:  # httpcore imports sniffio on every pool operation; when it is absent, each of those
    import sniffio  # noqa: F401  # failed imports searched sys.path (~2 ms a forwarded request)
except ImportError:
    sys.modules["sniffio"] = None  # type: ignore[assignment]  # fails at once: asyncio assumed

DEFAULT_MAX_TOKENS = 256
CHARS_PER_TOKEN = 4  # a prompt's tokens, estimated before the runtime counts them


@dataclass
class Live:
    """What the gateway saw of one endpoint: the sample it places on."""

    in_flight: int = 0
    ttft_ms: float = 200.0
    tokens_per_s: float = 20.0
    loaded: frozenset[str] = frozenset()
    observed_at: datetime | None = None

    def sample(self, endpoint_id: str) -> EndpointSample | None:
        if self.observed_at is None:
            return None  # never probed: not trusted
        return EndpointSample(  # requests in flight are counted as taken slots, not here
            endpoint_id,
            self.observed_at,
            0,
            0,
            self.ttft_ms,
            self.tokens_per_s,
            self.loaded,
        )


@dataclass
class Gateway:
    """Everything a request is decided on, and the live view of the endpoints."""

    fleet: Fleet
    endpoints: list[Endpoint]
    principals: Mapping[str, Principal]
    authenticate: Callable[[str | None], str]  # API key -> principal name (or raises)
    catalog: Callable[[], Mapping]  # the governance catalog as it is now
    budgets: Mapping[str, Budget]
    policy: PlacementPolicy = field(default_factory=PlacementPolicy)
    live: dict[str, Live] = field(default_factory=dict)
    priorities: Mapping[str, int] = field(default_factory=dict)  # per team, from config
    high_priority_share: float = 0.25  # of each endpoint's slots, kept for high priority
    generation: int = 0  # probes so far: a snapshot is built once per probe and model
    spent_usd: dict[str, float] = field(default_factory=dict)  # per team, settled
    reserved_usd: dict[str, float] = field(default_factory=dict)  # per team, in flight
    _snapshots: dict = field(default_factory=dict)
    _request_policy: tuple = (None, None)  # (policy, its serving_policy): see request_policy
    client: httpx.AsyncClient = field(default_factory=lambda: _runtime_client())

    async def probe(self) -> None:
        """Ask each runtime which models it has (``GET /v1/models``) and how fast it answers."""
        for e in self.endpoints:
            live = self.live.setdefault(e.endpoint_id, Live())
            started = time.perf_counter()
            try:
                reply = await self.client.get(f"{e.url}/v1/models", timeout=2.0)
                reply.raise_for_status()
            except httpx.HTTPError:
                live.observed_at = None  # silent: not trusted until it answers again
                continue
            live.loaded = frozenset(e.models)
            live.observed_at = datetime.now(UTC)
            live.ttft_ms = min(live.ttft_ms, (time.perf_counter() - started) * 1000)
        self.generation += 1

    def decide(self, ask: InferenceRequest) -> Decision:
        """Place ``ask`` on the snapshot of the last probe (built once per probe and model; a
        snapshot older than the telemetry age limit is built again, so a dead probe loop ends
        in stale telemetry, not in trust), the requests in flight taking their slots."""
        now = datetime.now(UTC)
        key = (ask.model, self.generation)
        snapshot = self._snapshots.get(key)
        too_old = self.policy.max_telemetry_age_s
        if snapshot is None or (now - snapshot.now).total_seconds() > too_old:
            samples = {}
            for e in self.endpoints:
                sample = self.live.get(e.endpoint_id, Live()).sample(e.endpoint_id)
                if sample is not None:
                    samples[e.endpoint_id] = sample
            snapshot = serving_snapshot(
                self.fleet,
                self.endpoints,
                samples,
                ask.model,
                budgets=self.budgets,
                usage={t: TeamUsage(t) for t in self.budgets},
                catalog=self.catalog(),
                now=now,
            )
            self._snapshots = {key: snapshot}
        in_flight = {
            (e.cluster, e.endpoint_id): self.live[e.endpoint_id].in_flight
            for e in self.endpoints
            if e.endpoint_id in self.live and self.live[e.endpoint_id].in_flight
        }
        committed = {
            team: self.spent_usd.get(team, 0.0) + self.reserved_usd.get(team, 0.0)
            for team in {*self.spent_usd, *self.reserved_usd}
        }
        return place_request(
            ask,
            snapshot,
            in_flight,
            self.request_policy(),
            committed,
            self.high_priority_share,
        )

    def request_policy(self) -> PlacementPolicy:
        """`serving_policy` of the current policy, built again only when the policy is replaced:
        a new object per request hashed its version per request (a third of `decide`)."""
        policy, derived = self._request_policy
        if policy is not self.policy:
            derived = serving_policy(self.policy)
            self._request_policy = (self.policy, derived)
        return derived

    def endpoint(self, endpoint_id: str) -> Endpoint:
        return next(e for e in self.endpoints if e.endpoint_id == endpoint_id)

    def distrust(self, endpoint: Endpoint) -> None:
        """A runtime that failed a request is not placed on until it answers a probe again."""
        self.live.setdefault(endpoint.endpoint_id, Live()).observed_at = None
        self.generation += 1

    def reserve(self, team: str, usd: float) -> None:
        self.reserved_usd[team] = self.reserved_usd.get(team, 0.0) + usd

    def settle(self, team: str, reserved: float, actual: float) -> None:
        """Replace a request's reservation by what it actually cost."""
        self.reserved_usd[team] = self.reserved_usd.get(team, 0.0) - reserved
        self.spent_usd[team] = self.spent_usd.get(team, 0.0) + actual


def _runtime_client() -> httpx.AsyncClient:
    """The client the gateway forwards with: its connections split among several httpx pools.

    httpcore's pool scans every connection for every idle one on each request (quadratic in
    its connections): at 100 concurrent requests on one pool that was most of the gateway's CPU
    time in the profile, and with httpx's default of 20 kept-alive connections most
    connections were closed after each answer and opened again."""
    return httpx.AsyncClient(timeout=60.0, transport=_ShardedTransport())


class _ShardedTransport(httpx.AsyncBaseTransport):
    """Requests dealt round-robin to ``shards`` small connection pools."""

    def __init__(self, shards: int = 8, keepalive_per_shard: int = 32) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=keepalive_per_shard)
        self._pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._next = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._next = (self._next + 1) % len(self._pools)
        return await self._pools[self._next].handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status, headers=headers)


def _team(principal: Principal, asked: str | None) -> str:
    teams = sorted(principal.teams)
    if asked:
        if asked not in principal.teams:
            raise PermissionError(f"{principal.name} is not a member of team {asked}")
        return asked
    if len(teams) != 1:
        raise PermissionError(f"{principal.name} is in teams {teams}: name one in x-plane-team")
    return teams[0]


def _ask(body: dict, request: Request, team: str, rid: str, priority: int) -> InferenceRequest:
    text = json.dumps(body.get("messages") or body.get("prompt") or "")
    datasets = tuple(
        d.strip() for d in request.headers.get("x-plane-datasets", "").split(",") if d.strip()
    )
    slo = request.headers.get("x-slo-ttft-ms")
    return InferenceRequest(
        request_id=rid,
        team=team,
        model=str(body.get("model", "")),
        prompt_tokens=max(len(text) // CHARS_PER_TOKEN, 1),
        max_tokens=int(body.get("max_tokens") or DEFAULT_MAX_TOKENS),
        datasets=datasets,
        priority=priority,  # the team's, from the gateway's configuration, not the caller's
        slo_ttft_ms=float(slo) if slo else None,
    )


def create_app(gateway: Gateway) -> Starlette:
    counter = iter(range(1, 10**12))

    async def models(request: Request) -> Response:
        names = sorted({m for e in gateway.endpoints for m in e.models})
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model"} for n in names]}
        )

    async def completions(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() or None
        try:
            principal = gateway.principals[gateway.authenticate(token)]
            team = _team(principal, request.headers.get("x-plane-team"))
        except KeyError:
            return _error(401, "the API key's principal is not in the principals file")
        except PermissionError as exc:
            return _error(403, str(exc))
        except Exception as exc:  # the credential store's refusal names the problem
            return _error(401, str(exc))
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not body.get("model"):
            return _error(400, "model: required")
        priority = gateway.priorities.get(team, 100)
        ask = _ask(body, request, team, f"gw-{next(counter)}", priority)
        failed: list[str] = []
        while True:
            decision = gateway.decide(ask)
            headers = {"x-plane-decision-id": decision.decision_id}
            if failed:
                headers["x-plane-failed-over"] = ",".join(failed)
            if decision.status != PLACED:
                why = decision.reason
                if failed:
                    why = f"{', '.join(failed)} failed; no other endpoint may serve it: {why}"
                if decision.status == DEFERRED:
                    return _error(429, why, **headers, **{"retry-after": "1"})
                return _error(403, why, **headers)
            endpoint = gateway.endpoint(decision.chosen.gpu_type)
            headers["x-plane-endpoint"] = endpoint.endpoint_id
            chosen = decision.chosen_evaluation
            assert chosen is not None
            estimate = chosen.cost.total_usd
            gateway.reserve(team, estimate)  # before it is forwarded; settled when it ends
            rate = estimate / chosen.cost.duration_s if chosen.cost.duration_s else 0.0
            charge = _Charge(gateway, team, estimate, rate)
            try:
                return await _forward(gateway, endpoint, request.url.path, body, headers, charge)
            except RuntimeFailed:
                # Not trusted until its next probe; the request is decided again by the same
                # rules, so it fails over only to another endpoint that may serve it.
                gateway.distrust(endpoint)
                failed.append(endpoint.endpoint_id)

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=_probing(gateway))


def _probing(gateway: Gateway, every_s: float = 2.0):
    """Probe the runtimes while the app runs, so their samples stay fresh."""
    import asyncio
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await gateway.probe()
                await asyncio.sleep(every_s)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()

    return lifespan


@dataclass
class _Charge:
    """A request's budget reservation, settled once at what its GPU time actually cost."""

    gateway: Gateway
    team: str
    reserved: float
    usd_per_s: float
    settled: bool = False

    def settle(self, seconds: float) -> None:
        if not self.settled:
            self.settled = True
            self.gateway.settle(self.team, self.reserved, self.usd_per_s * seconds)


class RuntimeFailed(Exception):
    """The runtime failed the request before answering a byte (connection, 5xx)."""


async def _forward(
    gateway: Gateway,
    endpoint: Endpoint,
    path: str,
    body: dict,
    headers: dict[str, str],
    charge: _Charge,
) -> Response:
    """Send ``body`` to the endpoint and pass its answer back (streamed when asked), measuring
    the time to first token and the decode rate for the next decisions. `RuntimeFailed` when
    the runtime fails before its answer starts (its reservation is released)."""
    live = gateway.live.setdefault(endpoint.endpoint_id, Live())
    live.in_flight += 1
    started = time.perf_counter()
    outgoing = gateway.client.build_request("POST", f"{endpoint.url}{path}", json=body)
    try:
        reply = await gateway.client.send(outgoing, stream=True)
        if reply.status_code >= 500:
            await reply.aclose()
            raise RuntimeFailed(f"{endpoint.endpoint_id}: HTTP {reply.status_code}")
    except (httpx.HTTPError, RuntimeFailed) as exc:
        live.in_flight -= 1
        charge.settle(0.0)  # nothing was served: the reservation is released
        raise RuntimeFailed(str(exc)) from exc
    if not body.get("stream"):
        try:
            content = await reply.aread()
        finally:
            await reply.aclose()
            live.in_flight -= 1
            charge.settle(time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        try:
            tokens = (json.loads(content).get("usage") or {}).get("completion_tokens") or 0
        except ValueError:
            tokens = 0
        if tokens and elapsed > 0:
            live.tokens_per_s = tokens / elapsed
        return Response(content, reply.status_code, headers, media_type="application/json")

    async def relay() -> AsyncIterator[bytes]:
        first = True
        try:
            async for chunk in reply.aiter_raw():
                if first:
                    live.ttft_ms = (time.perf_counter() - started) * 1000
                    first = False
                yield chunk
        finally:
            await reply.aclose()
            live.in_flight -= 1
            charge.settle(time.perf_counter() - started)

    return StreamingResponse(relay(), headers=headers, media_type="text/event-stream")
