"""The gateway: one OpenAI-compatible endpoint whose every request the Reasoning Plane places.

``POST /v1/chat/completions``, ``/v1/completions`` (streaming with server-sent events) and
``/v1/embeddings``, ``GET /v1/models``, and ``GET /healthz`` for probes. Per request:

1. the caller is who its API key says (`data_plane.credentials`), never what it claims; its team
   is one of that principal's teams (``x-plane-team`` chooses among them). A key that
   authenticated is remembered for ``key_cache_s`` (`serving.keys`: a revoked key is refused at
   most that long after its revocation); any other key is checked against the database;
2. the data it carries is named by ``x-plane-datasets``; its residency and classification come
   from the catalog, and a dataset the catalog does not hold is the most restrictive;
3. the Cedar policies decide whether the principal may use the model (`serving.authorization`,
   cached per principal, model facts and policy version); a denial is 403 with the rules' reason.
   A request may be answered by an allowed equivalent of its model (the serving configuration's),
   one the principal may use too; ``x-plane-model`` names the model that answered;
4. `reasoning_plane.serving.endpoints` places it by the rule engine over the endpoints serving the
   model, from the gateway's own live view of them (requests in flight, measured time to first
   token and decode rate, a probe of each runtime; an endpoint on a serving node is probed at
   the URL its node agent last reported, `resolve`), under the caller's ``x-slo-ttft-ms`` or else
   its team's default SLO;
5. a placed request is forwarded to its endpoint; a rejected one gets 403 with the reason (never
   served elsewhere), a deferred one 429 with ``Retry-After``. Every response names its decision
   (``x-plane-decision-id``, ``x-plane-endpoint``).

Starlette (the ASGI toolkit under FastAPI) and aiohttp's client to forward (httpx to probe);
uvicorn serves it. A body the gateway does not change is forwarded as the bytes the caller sent
(never serialized again).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from data_plane.access import Principal
from data_plane.retrieval import Retriever
from data_plane.vector_store import SearchHit
from observability import gateway_metrics
from reasoning_plane.config.serving import PATHS_OF_KIND
from reasoning_plane.model import DEFERRED, PLACED, Budget, Decision, Fleet, TeamUsage
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import (
    Endpoint,
    EndpointSample,
    InferenceRequest,
    discovered,
    place_request,
    served_model,
    serving_policy,
    serving_snapshot,
    team_slo,
)
from reasoning_plane.serving.records import Settlement, record_of
from serving.authorization import ModelAccess, refusal
from serving.keys import DEFAULT_TTL_S, KeyCache
from serving.records import Recorder, StreamUsage, token_count
from serving.retrieval import (
    RetrievalAsk,
    RetrievalRequestError,
    context_datasets,
    retrieval_ask,
    with_context,
)

DEFAULT_MAX_TOKENS = 256
CHARS_PER_TOKEN = 4  # a prompt's tokens, estimated before the runtime counts them


def listed_models(reply: httpx.Response, models: frozenset[str]) -> frozenset[str]:
    """The endpoint's models its ``/v1/models`` reply lists (``data[].id``): the loaded ones. A
    model it does not list is cold there (placement adds its load time); an unreadable reply
    lists none (unknown is not loaded)."""
    try:
        data = reply.json().get("data")
        listed = {str(m.get("id")) for m in data if isinstance(m, dict)}
    except (ValueError, AttributeError, TypeError):
        return frozenset()
    return frozenset(m for m in models if m in listed)


@dataclass
class Live:
    """What the gateway saw of one endpoint: the sample it places on."""

    in_flight: int = 0
    ttft_ms: float = 200.0
    tokens_per_s: float = 20.0
    loaded: frozenset[str] = frozenset()
    observed_at: datetime | None = None
    sleeping: frozenset[str] = frozenset()  # listed but asleep (vLLM): not loaded
    nowhere: str = ""  # an endpoint on a node: why no agent's report gives it a URL

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
            sleeping=self.sleeping,
        )


async def probe_endpoint(client: httpx.AsyncClient, endpoint: Endpoint, live: Live) -> bool:
    """One probe of ``endpoint`` (``GET /v1/models``) into ``live``, as the gateway trusts it:
    an answer makes the models it lists loaded (`listed_models`) and its telemetry observed now
    (the round trip bounds the time to first token); no answer makes it untrusted until it
    answers again. A vLLM endpoint lists a sleeping model too, so its ``GET /is_sleeping`` is
    read as well (`vllm_asleep`): a sleeping model is not loaded (placement prices its wake-up).
    An endpoint on a node with no URL (`resolve`: no agent reports it loaded) is not probed:
    untrusted. True: answered."""
    if not endpoint.url:
        live.observed_at = None
        live.loaded = live.sleeping = frozenset()
        return False
    started = time.perf_counter()
    try:
        reply = await client.get(f"{endpoint.url}/v1/models", timeout=2.0)
        reply.raise_for_status()
    except httpx.HTTPError:
        live.observed_at = None  # silent: not trusted until it answers again
        return False
    elapsed_ms = (time.perf_counter() - started) * 1000
    listed = listed_models(reply, endpoint.models)
    sleeping: frozenset[str] = frozenset()
    if endpoint.runtime == "vllm" and listed:
        asleep = await vllm_asleep(client, endpoint.url)
        if asleep is not False:  # asleep, or it would not say: not loaded
            sleeping, listed = listed, frozenset()
    live.loaded, live.sleeping = listed, sleeping
    live.observed_at = datetime.now(UTC)
    live.ttft_ms = min(live.ttft_ms, elapsed_ms)
    return True


async def vllm_asleep(client: httpx.AsyncClient, url: str) -> bool | None:
    """vLLM's ``GET /is_sleeping`` (its sleep api_router; ``{"is_sleeping": bool}``): True
    asleep, False awake; 404 (a server without ``VLLM_SERVER_DEV_MODE`` has no sleep routes,
    so it cannot be asleep) is awake; any other answer, or none, is None (unknown: not loaded)."""
    try:
        reply = await client.get(f"{url}/is_sleeping", timeout=2.0)
    except httpx.HTTPError:
        return None
    if reply.status_code == 404:
        return False
    try:
        said = reply.json().get("is_sleeping") if reply.status_code == 200 else None
    except (ValueError, AttributeError):
        return None
    return said if isinstance(said, bool) else None


def resolve(
    endpoints: list[Endpoint],
    reports: Callable[[], list[dict]] | None,
    max_age_s: float,
) -> tuple[list[Endpoint], dict[str, str]]:
    """``endpoints`` with the URL of each one on a serving node resolved from its node agent's
    latest reports (``reports``: `store.actual_state` rows; `endpoints.discovered`), and why
    each that has none is nowhere. Blocking (a query): call it off the event loop."""
    if not any(e.node for e in endpoints):
        return endpoints, {}
    rows: list[dict] = []
    unread = ""
    if reports is None:
        unread = "no residency reports are read here (no database): not trusted"
    else:
        try:
            rows = reports()
        except Exception as exc:  # the database away: nowhere, until it answers again
            unread = f"the node agents' reports are unreadable ({type(exc).__name__}): not trusted"
    now = datetime.now(UTC)
    out, why = [], {}
    for e in endpoints:
        if e.node is None:
            out.append(e)
            continue
        found = discovered(e, rows, now, max_age_s) if not unread else None
        url = found.url if found is not None else ""
        if not url:
            why[e.endpoint_id] = unread or (found.why if found is not None else "")
        out.append(e if e.url == url else replace(e, url=url))
    return out, why


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
    retriever: Retriever | None = None  # the retrieval step a request may ask the gateway for
    retrieve_with_key: bool = True  # the stores read as the caller's key (database-checked)
    _snapshots: dict = field(default_factory=dict)
    recorder: Recorder | None = None  # decision records (serving.records); None: not recorded
    access: ModelAccess | None = None  # Cedar's use_model; None only where no policy applies
    kinds: Mapping[str, str] = field(default_factory=dict)  # model -> chat/completion/embedding
    equivalents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # allowed, per model
    slo_ttft_ms: Mapping[str, float] = field(default_factory=dict)  # per team, the default SLO
    probe_interval_s: float = 2.0
    refresh: Callable[[], None] | None = None  # reloads catalog/policies; run off the event loop
    usage_tokens: dict[str, int] = field(default_factory=dict)  # per team, as runtimes counted
    _request_policy: tuple = (None, None)  # (policy, its serving_policy): see request_policy
    # probes (`probe_endpoint`, every probe interval): httpx; forwarding: `session` (aiohttp)
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=60.0))
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)
    key_cache_s: float = DEFAULT_TTL_S  # how long a checked API key is trusted (serving.keys)
    keys: KeyCache | None = None  # None: a KeyCache of `authenticate` for key_cache_s
    # the node agents' latest reports (`store.actual_state`): where endpoints on a node answer
    reports: Callable[[], list[dict]] | None = None

    _key_checks: dict[str, asyncio.Future] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.keys is None:
            self.keys = KeyCache(self.authenticate, self.key_cache_s)

    async def principal_of(self, token: str | None) -> str:
        """The principal of an API key: remembered (`serving.keys`), else checked in the key
        store off the event loop, one check per key at a time: the requests that miss together
        (a key's time ran out under load) wait for the same answer, refusal included."""
        keys = self.keys
        assert keys is not None
        name = keys.cached(token)
        if name is not None:
            return name
        key = token or ""
        pending = self._key_checks.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(keys.check, token))
            self._key_checks[key] = pending
            pending.add_done_callback(lambda _: self._key_checks.pop(key, None))
        return await asyncio.shield(pending)

    def session(self) -> aiohttp.ClientSession:
        """The client the gateway forwards with, made in the running event loop (an aiohttp
        session belongs to one loop); the app's lifespan closes it."""
        if self._session is None or self._session.closed:
            self._session = _runtime_session()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self) -> None:
        """Resolve the URLs of the endpoints on serving nodes from their agents' latest reports
        (`resolve`), then ask each runtime which models it has (``GET /v1/models``, and vLLM's
        ``/is_sleeping``) and how fast it answers."""
        if any(e.node for e in self.endpoints):
            max_age = self.policy.max_telemetry_age_s
            self.endpoints, nowhere = await asyncio.to_thread(
                resolve, self.endpoints, self.reports, max_age
            )
            for e in self.endpoints:
                if e.node is not None:
                    self.live.setdefault(e.endpoint_id, Live()).nowhere = nowhere.get(
                        e.endpoint_id, ""
                    )
        for e in self.endpoints:
            await probe_endpoint(self.client, e, self.live.setdefault(e.endpoint_id, Live()))
        self.generation += 1

    def nowhere(self, model: str, equivalents: tuple[str, ...] = ()) -> str:
        """Why the endpoints on a node that serve ``model`` have no URL now (for a refusal)."""
        said = [
            f"{e.endpoint_id}: {self.live[e.endpoint_id].nowhere}"
            for e in self.endpoints
            if e.endpoint_id in self.live
            and self.live[e.endpoint_id].nowhere
            and served_model(e, model, equivalents)
        ]
        return "; ".join(said)

    def decide(self, ask: InferenceRequest, equivalents: tuple[str, ...] = ()) -> Decision:
        """Place ``ask`` on the snapshot of the last probe (built once per probe and model; a
        snapshot older than the telemetry age limit is built again, so a dead probe loop ends
        in stale telemetry, not in trust), the requests in flight taking their slots. The
        candidates are the endpoints serving the model or one of ``equivalents``."""
        now = datetime.now(UTC)
        key = (ask.model, equivalents, self.generation)
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
                equivalents=equivalents,
            )
            # this probe's snapshots, one per model (and allowed equivalents) asked
            fresh = {k: v for k, v in self._snapshots.items() if k[-1] == self.generation}
            fresh[key] = snapshot
            self._snapshots = fresh
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

    def search(self, ask: RetrievalAsk, principal: Principal, token: str | None) -> list[SearchHit]:
        """The chunks ``principal`` may read for ``ask``, served in its home region; with
        ``retrieve_with_key`` the stores' search function checks the caller's key and read
        grants in the database as well as Cedar here."""
        if self.retriever is None:
            raise RetrievalRequestError("retrieval: this gateway has no retrieval configured")
        retriever = self.retriever
        if self.retrieve_with_key:
            retriever = replace(retriever, credential=token)
        return retriever.search(ask.query, principal, ask.k)

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

    def record(
        self,
        decision: Decision,
        ask: InferenceRequest,
        principal: str,
        failed: tuple[str, ...] = (),
        settlement: Settlement | None = None,
    ) -> None:
        """Hand the request's decision record to the recorder (buffered, written in batches);
        a served one is decided when it was forwarded, its settlement's seconds ago."""
        if self.recorder is not None:
            now = datetime.now(UTC)
            at = now - timedelta(seconds=settlement.seconds) if settlement else now
            record = record_of(
                decision,
                ask,
                principal=principal,
                failed_over=failed,
                settlement=settlement,
                decided_at=at,
            )
            self.recorder.add(record)

    def allowed_models(self, principal: Principal, model: str) -> tuple[str, tuple[str, ...]]:
        """``("", equivalents the principal may use)`` when it may use ``model``, else the
        refusal. Without `access` (no policy configured) every model is allowed."""
        equivalents = tuple(self.equivalents.get(model, ()))
        if self.access is None:
            return "", equivalents
        decision = self.access.decide(principal, model)
        if not decision.allowed:
            return refusal(decision), ()
        return "", tuple(m for m in equivalents if self.access.decide(principal, m).allowed)

    def count(self, team: str, usage: Mapping) -> None:
        """Add a response's ``usage`` (as the runtime counted it) to its team's tokens."""
        total = usage.get("total_tokens")
        if not isinstance(total, int):
            total = sum(v for k, v in usage.items() if k.endswith("_tokens") and type(v) is int)
        if isinstance(total, int) and total > 0:
            self.usage_tokens[team] = self.usage_tokens.get(team, 0) + total

    def reserve(self, team: str, usd: float) -> None:
        self.reserved_usd[team] = self.reserved_usd.get(team, 0.0) + usd

    def settle(self, team: str, reserved: float, actual: float) -> None:
        """Replace a request's reservation by what it actually cost."""
        self.reserved_usd[team] = self.reserved_usd.get(team, 0.0) - reserved
        self.spent_usd[team] = self.spent_usd.get(team, 0.0) + actual


# what a runtime that fails a request raises (a refused connection, a reset, a timeout)
RUNTIME_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
JSON = {"content-type": "application/json"}


def _runtime_session() -> aiohttp.ClientSession:
    """The client the gateway forwards with: aiohttp (its HTTP parser in C; httpx/httpcore cost
    about half of the gateway's CPU per request in the profile), one unbounded pool of kept-alive
    connections. Each connect and each read may take 60 s; a stream as long as it runs."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0),
        timeout=aiohttp.ClientTimeout(total=None, connect=60.0, sock_read=60.0),
        skip_auto_headers=("User-Agent",),
    )


class DuplicateKey(ValueError):
    """A JSON object names a key twice."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are unique. The body may be forwarded as sent, so the gateway
    and the runtime must read the same request: with ``"model"`` twice, Python keeps the last,
    another parser may keep the first (a model the policies were never asked about)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"body: {key}: the key is given twice")
            seen.add(key)
    return out


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


def _ask(
    body: dict,
    request: Request,
    team: str,
    rid: str,
    priority: int,
    slos: Mapping[str, float],
    context: tuple[str, ...] = (),
) -> InferenceRequest:
    """The request as the engine places it; its SLO the caller's ``x-slo-ttft-ms``, else the
    team's default (``slos``); its priority the team's (never the caller's). Its datasets:
    those it declares and those of the context the gateway retrieved for it (``context``);
    never fewer than it holds."""
    embedding = request.scope["path"] == "/v1/embeddings"
    text = json.dumps(body.get("messages") or body.get("prompt") or body.get("input") or "")
    declared = (d.strip() for d in request.headers.get("x-plane-datasets", "").split(","))
    datasets = tuple(sorted({d for d in declared if d} | set(context)))
    slo = request.headers.get("x-slo-ttft-ms")
    try:
        asked = float(slo) if slo else None
    except ValueError:
        asked = float("nan")
    if asked is not None and not 0 < asked < float("inf"):
        raise ValueError(f"x-slo-ttft-ms: must be a positive number of ms, got {slo!r}")
    return InferenceRequest(
        request_id=rid,
        team=team,
        model=str(body.get("model", "")),
        prompt_tokens=max(len(text) // CHARS_PER_TOKEN, 1),
        max_tokens=0 if embedding else int(body.get("max_tokens") or DEFAULT_MAX_TOKENS),
        datasets=datasets,
        priority=priority,  # the team's, from the gateway's configuration, not the caller's
        slo_ttft_ms=team_slo(asked, team, slos),
    )


def create_app(gateway: Gateway) -> Starlette:
    async def health(request: Request) -> Response:
        """Readiness: the process serves, and says how many endpoints its last probe trusted."""
        trusted = sum(1 for live in gateway.live.values() if live.observed_at is not None)
        return JSONResponse(
            {"status": "ok", "endpoints": len(gateway.endpoints), "trusted": trusted}
        )

    async def models(request: Request) -> Response:
        names = sorted({m for e in gateway.endpoints for m in e.models})
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model"} for n in names]}
        )

    async def completions(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() or None
        try:
            principal = gateway.principals[await gateway.principal_of(token)]
            team = _team(principal, request.headers.get("x-plane-team"))
        except KeyError:
            return _error(401, "the API key's principal is not in the principals file")
        except PermissionError as exc:
            return _error(403, str(exc))
        except Exception as exc:  # the credential store's refusal names the problem
            return _error(401, str(exc))
        try:
            raw = await request.body()
            body = json.loads(raw.decode(), object_pairs_hook=_unique_keys)
        except DuplicateKey as exc:  # one parser could read one, the runtime's the other
            return _error(400, str(exc))
        except ValueError:  # UnicodeDecodeError among them: JSON is UTF-8 (RFC 8259)
            return _error(400, "the body is not UTF-8 JSON")
        if not isinstance(body, dict) or not body.get("model"):
            return _error(400, "model: required")
        model = str(body["model"])
        request.scope[gateway_metrics.MODEL] = model
        path = request.scope["path"]
        if gateway.kinds:
            kind = gateway.kinds.get(model)
            if kind is None:
                return _error(404, f"model {model!r} is not served here (GET /v1/models)")
            if path not in PATHS_OF_KIND[kind]:
                return _error(400, f"model {model!r} is a {kind} model: not served on {path}")
        if path == "/v1/embeddings" and body.get("stream"):
            return _error(400, "stream: embeddings are not streamed")
        refused, equivalents = gateway.allowed_models(principal, model)
        if refused:
            return _error(403, refused)
        if not any(served_model(e, model, equivalents) for e in gateway.endpoints):
            withheld = [m for m in gateway.equivalents.get(model, ()) if m not in equivalents]
            if withheld:  # only equivalents the policies refuse this principal serve it
                return _error(
                    403,
                    f"no endpoint serves {model!r}, and {principal.name} may not use its "
                    f"equivalents {withheld}",
                )
            # else the engine decides (no candidate: rejected), so the refusal is recorded
        try:
            wanted = retrieval_ask(body)
            hits = []
            if wanted is not None:
                hits = await run_in_threadpool(gateway.search, wanted, principal, token)
        except ValueError as exc:  # a malformed retrieval field or query, named
            return _error(400, str(exc))
        unchanged = "retrieval" not in body  # then forwarded as the bytes the caller sent
        body = with_context(body, hits)
        context = context_datasets(hits)
        priority = gateway.priorities.get(team, 100)
        try:
            # unique across restarts and replicas: the decision log is keyed by it
            rid = f"gw-{uuid.uuid4().hex}"
            ask = _ask(body, request, team, rid, priority, gateway.slo_ttft_ms, context)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        if gateway.recorder is not None and not gateway.recorder.has_room():
            # fail closed: no request is served that the decision log cannot record
            waiting = gateway.recorder.waiting
            return _error(
                503,
                f"the decision log is not being written ({waiting} records waiting): "
                "no request is admitted until it is",
                **{"retry-after": "5"},
            )
        failed: list[str] = []
        while True:
            decision = gateway.decide(ask, equivalents)
            headers = {
                "x-plane-decision-id": decision.decision_id,
                "x-plane-request-id": ask.request_id,
            }
            if wanted is not None:
                headers["x-plane-context-datasets"] = ",".join(context)
            if failed:
                headers["x-plane-failed-over"] = ",".join(failed)
            if decision.status != PLACED:
                gateway.record(decision, ask, principal.name, tuple(failed))
                why = decision.reason
                nowhere = gateway.nowhere(model, equivalents)
                if nowhere:  # endpoints on a node that no agent reports the model loaded on
                    why = f"{why} ({nowhere})"
                if failed:
                    why = f"{', '.join(failed)} failed; no other endpoint may serve it: {why}"
                if decision.status == DEFERRED:
                    return _error(429, why, **headers, **{"retry-after": "1"})
                return _error(403, why, **headers)
            endpoint = gateway.endpoint(decision.chosen.gpu_type)
            headers["x-plane-endpoint"] = endpoint.endpoint_id
            served = served_model(endpoint, model, equivalents) or model
            headers["x-plane-model"] = served  # the model that answers (an equivalent, maybe)
            forwarded = body if served == model else {**body, "model": served}
            as_sent = unchanged and served == model
            payload = raw if as_sent else json.dumps(forwarded).encode()
            chosen = decision.chosen_evaluation
            assert chosen is not None
            estimate = chosen.cost.total_usd
            gateway.reserve(team, estimate)  # before it is forwarded; settled when it ends
            rate = estimate / chosen.cost.duration_s if chosen.cost.duration_s else 0.0
            charge = _Charge(
                gateway, team, estimate, rate, decision, ask, principal.name, tuple(failed)
            )
            request.scope[gateway_metrics.FORWARDED_AT] = time.perf_counter()
            try:
                return await _forward(gateway, endpoint, path, forwarded, payload, headers, charge)
            except RuntimeFailed:
                # Not trusted until its next probe; the request is decided again by the same
                # rules, so it fails over only to another endpoint that may serve it.
                gateway.distrust(endpoint)
                failed.append(endpoint.endpoint_id)

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", completions, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=_probing(gateway, gateway.probe_interval_s))
    # GET /metrics and the served paths' counts (observability.gateway_metrics)
    app.add_middleware(gateway_metrics.MetricsMiddleware, metrics=gateway_metrics.GatewayMetrics())
    return app


def _probing(gateway: Gateway, every_s: float = 2.0):
    """Probe the runtimes while the app runs, so their samples stay fresh."""
    import asyncio
    import contextlib
    import logging

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                if gateway.refresh is not None:
                    try:  # the catalog and policies: blocking I/O, so off the event loop
                        await asyncio.to_thread(gateway.refresh)
                    except Exception as exc:  # keep serving on the last good ones
                        logging.getLogger(__name__).warning("refresh failed: %s", exc)
                await gateway.probe()
                await asyncio.sleep(every_s)

        recorder = gateway.recorder
        if recorder is not None:
            recorder.start()
            # the period's spend so far (batch and serving), kept current: a restart keeps
            # each budget spent, and batch work spends the same budget meanwhile
            recorder.follow(gateway.spent_usd, gateway.budgets, asyncio.get_running_loop())
        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            await gateway.close()
            if recorder is not None:
                recorder.close()  # writes what is buffered

    return lifespan


@dataclass
class _Charge:
    """A request's budget reservation, settled once at what its GPU time actually cost; a
    served request's decision record is written with its settlement."""

    gateway: Gateway
    team: str
    reserved: float
    usd_per_s: float
    decision: Decision | None = None
    ask: InferenceRequest | None = None
    principal: str = ""
    failed: tuple[str, ...] = ()
    settled: bool = False

    def settle(self, seconds: float, usage: Mapping | None = None, served: bool = True) -> None:
        """``served``: False when the runtime failed it (released: the request fails over)."""
        if self.settled:
            return
        self.settled = True
        actual = self.usd_per_s * seconds if served else 0.0
        self.gateway.settle(self.team, self.reserved, actual)
        if served and self.decision is not None and self.ask is not None:
            usage = usage or {}
            settlement = Settlement(
                datetime.now(UTC),
                actual,
                seconds,
                token_count(usage.get("prompt_tokens")),
                token_count(usage.get("completion_tokens")),
            )
            self.gateway.record(self.decision, self.ask, self.principal, self.failed, settlement)


class RuntimeFailed(Exception):
    """The runtime failed the request before answering a byte (connection, 5xx)."""


async def _forward(
    gateway: Gateway,
    endpoint: Endpoint,
    path: str,
    body: dict,
    payload: bytes,
    headers: dict[str, str],
    charge: _Charge,
) -> Response:
    """Send ``payload`` (``body`` as bytes) to the endpoint and pass its answer back (streamed
    when asked), measuring the time to first token and the decode rate for the next decisions.
    `RuntimeFailed` when the runtime fails before its answer starts (its reservation is
    released)."""
    live = gateway.live.setdefault(endpoint.endpoint_id, Live())
    live.in_flight += 1
    started = time.perf_counter()
    try:
        reply = await gateway.session().post(f"{endpoint.url}{path}", data=payload, headers=JSON)
        if reply.status >= 500:
            reply.close()
            raise RuntimeFailed(f"{endpoint.endpoint_id}: HTTP {reply.status}")
    except (*RUNTIME_ERRORS, RuntimeFailed) as exc:
        live.in_flight -= 1
        charge.settle(0.0, served=False)  # nothing was served: the reservation is released
        raise RuntimeFailed(str(exc) or type(exc).__name__) from exc
    if not body.get("stream"):
        content = b""
        usage: dict = {}
        try:
            content = await reply.read()
            try:
                found = json.loads(content).get("usage")
                usage = found if isinstance(found, dict) else {}
            except (ValueError, AttributeError):
                usage = {}
        finally:
            reply.release()
            live.in_flight -= 1
            charge.settle(time.perf_counter() - started, usage)
        elapsed = time.perf_counter() - started
        tokens = token_count(usage.get("completion_tokens")) or 0
        if reply.status < 400:
            gateway.count(charge.team, usage)
        if tokens and elapsed > 0:
            live.tokens_per_s = tokens / elapsed
        return Response(content, reply.status, headers, media_type="application/json")

    async def relay() -> AsyncIterator[bytes]:
        first = True
        counted = StreamUsage()
        ended = False
        try:
            async for chunk in reply.content.iter_any():
                if first:
                    live.ttft_ms = (time.perf_counter() - started) * 1000
                    first = False
                counted.feed(chunk)
                yield chunk
            ended = True
        finally:
            if ended:
                reply.release()  # the connection is kept for the next request
            else:
                reply.close()  # the caller left (or the runtime broke): the connection goes
            live.in_flight -= 1
            charge.settle(time.perf_counter() - started, counted.result())

    return StreamingResponse(relay(), headers=headers, media_type="text/event-stream")
