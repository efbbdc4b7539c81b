"""Request-time placement: which endpoint serves an inference request, by the same rule engine.

An endpoint is a runtime (llama.cpp, vLLM, Ollama) serving some models on a GPU pool of a cluster
of the fleet. For a request asking for a model, every endpoint serving it becomes one candidate
"pool" of its cluster, and the request one `WorkloadRequest`, so that residency, compliance,
telemetry freshness, capacity, budget and the latency SLO are the rules of `rules.py`, the price
is the cost model's, and the status is `rules.status`:

* the cluster (zone, certifications, network latency) is the fleet's, unchanged;
* the candidate's price is the pool's GPU-hour price x the GPUs the runtime holds / its slots
  (one request takes one slot), its speed the endpoint's decode rate against
  ``REFERENCE_TOKENS_PER_S``, its latency the endpoint's recent time to first token (plus its
  load time when the model is not loaded), stretched by congestion;
* its telemetry is the endpoint's sample: free slots, and utilisation = (in flight + queued) /
  slots; a missing, stale or future sample is not trusted (`rules.telemetry_problem`);
* a request for a model may also be served by one of its allowed equivalents (the serving
  configuration names them): every endpoint serving the model or an equivalent is a candidate,
  so the cheapest sufficient one wins whichever of them it serves (`served_model` says which);
* the request takes one slot for its predicted GPU-seconds (prompt at ``PREFILL_SPEEDUP`` times
  the decode rate, then its ``max_tokens``), carries no data to move (``data_gb`` 0), and its SLO
  is on the time to first token.

Serving slots are not GPUs of a team's ResourceQuota: the quota rule does not apply (the
runtime's GPUs are reserved once, by the residency planner); the budget rule does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from reasoning_plane.index import fleet_index
from reasoning_plane.model import (
    Budget,
    Decision,
    Fleet,
    GpuPool,
    Snapshot,
    TeamUsage,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.placement import decide
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState

REFERENCE_TOKENS_PER_S = 50.0  # the decode rate a request's duration is stated against
PREFILL_SPEEDUP = 10.0  # prompt tokens are processed this many times faster than decoded
# runtimes the gateway forwards to (an OpenAI-compatible HTTP API each); "sentence-transformers"
# is `serving.embedding_server`, the embedding runtime of this project
RUNTIMES = ("llama.cpp", "vllm", "ollama", "sentence-transformers")


@dataclass(frozen=True)
class Endpoint:
    """A runtime serving models on a pool of a cluster of the fleet."""

    endpoint_id: str
    cluster: str
    gpu_type: str  # the pool it runs on (its price per GPU-hour)
    runtime: str
    url: str
    models: frozenset[str]
    gpus: int = 1  # GPUs the runtime holds
    slots: int = 1  # requests it serves at once
    load_ms: float = 2000.0  # loading a model that is not loaded (cold start)
    # a serving node (config/serving_nodes.yaml) whose agent reports where the model answers:
    # the URL is resolved from its reports each probe (`discovered`); "" until then
    node: str | None = None
    wake_ms: float | None = None  # waking a sleeping model (vLLM); None: as long as load_ms

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(
                f"endpoint {self.endpoint_id}: runtime must be one of {', '.join(RUNTIMES)}, "
                f"got {self.runtime!r}"
            )
        if self.gpus < 1 or self.slots < 1:
            raise ValueError(f"endpoint {self.endpoint_id}: gpus and slots must be at least 1")


@dataclass(frozen=True)
class EndpointSample:
    """What an endpoint reported last."""

    endpoint_id: str
    observed_at: datetime
    in_flight: int
    queue_depth: int
    ttft_ms: float  # recent median time to first token
    tokens_per_s: float  # recent decode rate of one request
    loaded: frozenset[str] = field(default_factory=frozenset)
    received_at: datetime | None = None
    sleeping: frozenset[str] = field(default_factory=frozenset)  # listed, but asleep (vLLM)


@dataclass(frozen=True)
class InferenceRequest:
    """One request to the gateway, with what the catalog and the credential say of it."""

    request_id: str
    team: str  # from the API key, never from the caller
    model: str
    prompt_tokens: int
    max_tokens: int
    datasets: tuple[str, ...] = ()  # the data it carries (declared or from retrieval)
    priority: int = 100
    slo_ttft_ms: float | None = None

    def gpu_seconds(self) -> float:
        """Predicted seconds of one slot at the reference decode rate."""
        tokens = self.prompt_tokens / PREFILL_SPEEDUP + self.max_tokens
        return tokens / REFERENCE_TOKENS_PER_S


def served_model(endpoint: Endpoint, model: str, equivalents: Sequence[str] = ()) -> str | None:
    """The model ``endpoint`` answers a request for ``model`` with: ``model`` itself when it
    serves it, else the first of ``equivalents`` (in the configuration's order) it serves; None
    when it serves neither (not a candidate)."""
    if model in endpoint.models:
        return model
    return next((m for m in equivalents if m in endpoint.models), None)


def team_slo(asked_ms: float | None, team: str, defaults: Mapping[str, float]) -> float | None:
    """The TTFT SLO a request is placed under: the caller's (``x-slo-ttft-ms``), else its
    team's default from the serving configuration, else none."""
    return asked_ms if asked_ms is not None else defaults.get(team)


def model_fleet(
    fleet: Fleet,
    endpoints: Iterable[Endpoint],
    samples: Mapping[str, EndpointSample],
    model: str,
    equivalents: Sequence[str] = (),
) -> tuple[Fleet, dict[tuple[str, str], TelemetrySample]]:
    """The fleet whose candidates are the endpoints serving ``model`` or one of its allowed
    ``equivalents`` (one pool each, named by the endpoint), and their telemetry as the engine
    reads it."""
    by_cluster: dict[str, list[GpuPool]] = {}
    telemetry: dict[tuple[str, str], TelemetrySample] = {}
    for e in endpoints:
        served = served_model(e, model, equivalents)
        if served is None:
            continue
        cluster = fleet.get(e.cluster)
        pool = cluster.pool(e.gpu_type) if cluster else None
        if cluster is None or pool is None:
            raise ValueError(
                f"endpoint {e.endpoint_id}: {e.cluster}/{e.gpu_type} is not a pool of the fleet"
            )
        sample = samples.get(e.endpoint_id)
        by_cluster.setdefault(e.cluster, []).append(_candidate_pool(e, pool, sample, served))
        if sample is not None:
            telemetry[(e.cluster, e.endpoint_id)] = _engine_sample(e, sample)
    clusters = tuple(
        replace(c, pools=tuple(by_cluster[c.name]), cpu_slots=0)
        for c in fleet.clusters
        if c.name in by_cluster
    )
    return Fleet(clusters), telemetry


def _candidate_pool(
    e: Endpoint, pool: GpuPool, sample: EndpointSample | None, model: str
) -> GpuPool:
    ttft = sample.ttft_ms if sample is not None else pool.inference_latency_ms
    if sample is not None and model not in sample.loaded:
        asleep = model in sample.sleeping and e.wake_ms is not None
        ttft += e.wake_ms if asleep else e.load_ms  # type: ignore[operator]
    speed = sample.tokens_per_s / REFERENCE_TOKENS_PER_S if sample and sample.tokens_per_s else 1.0
    return GpuPool(
        gpu_type=e.endpoint_id,
        memory_gb=pool.memory_gb,
        total=e.slots,
        price_per_hour=pool.price_per_hour * e.gpus / e.slots,
        speed=speed,
        inference_latency_ms=ttft,
    )


def _engine_sample(e: Endpoint, s: EndpointSample) -> TelemetrySample:
    busy = s.in_flight + s.queue_depth
    return TelemetrySample(
        cluster=e.cluster,
        gpu_type=e.endpoint_id,
        free_gpus=max(e.slots - busy, 0),
        utilisation=min(busy / e.slots, 1.0),
        observed_at=s.observed_at,
        received_at=s.received_at,
    )


@dataclass(frozen=True)
class Discovered:
    """Where a node's endpoint answers now, by its node agent's reports: ``url`` ("" when
    nowhere: not placed on), the models reported loaded there, and why when it is nowhere."""

    url: str
    loaded: frozenset[str]
    why: str = ""


def discovered(
    e: Endpoint, reports: Iterable[Mapping], now: datetime, max_age_s: float
) -> Discovered:
    """The URL of endpoint ``e`` on node ``e.node`` from the agents' reports
    (``plane.residency_actual`` rows: node, runtime, model, state, url, reported_at,
    received_at): its models that the node's agent reported loaded at a URL within ``max_age_s``
    (the telemetry age limit: an older report is not trusted, its agent may be gone; a report
    is no fresher than the plane received it, whatever the agent's clock says); no such report:
    nowhere,
    with the reason. Models loaded at another URL than the first (sorted) are not served
    there."""
    found: dict[str, str] = {}
    states: dict[str, str] = {}
    old: list[str] = []
    for r in reports:
        if r["node"] != e.node or r["runtime"] != e.runtime or r["model"] not in e.models:
            continue
        age = (now - min(r["reported_at"], r["received_at"])).total_seconds()
        if age > max_age_s:
            old.append(f"{r['model']} ({age:.0f} s ago)")
            continue
        states[r["model"]] = r["state"]
        if r["state"] == "loaded" and r.get("url"):
            found[r["model"]] = str(r["url"]).rstrip("/")
    if found:
        url = min(found.values())
        return Discovered(url, frozenset(m for m, u in found.items() if u == url))
    where = f"node {e.node} ({e.runtime})"
    if states:
        said = ", ".join(f"{m} {s}" for m, s in sorted(states.items()))
        why = f"its node agent reports {said} on {where}: nowhere to send it"
    elif old:
        why = (
            f"the last report of {where} is older than {max_age_s:g} s: "
            f"{', '.join(sorted(old))}; not trusted"
        )
    else:
        why = f"no node agent reports {', '.join(sorted(e.models))} loaded on {where}"
    return Discovered("", frozenset(), why)


def serving_request(ask: InferenceRequest) -> WorkloadRequest:
    """The request as the engine places it: one slot for its predicted GPU-seconds."""
    return WorkloadRequest(
        request_id=ask.request_id,
        workload=f"serve/{ask.model}",
        team=ask.team,
        datasets=ask.datasets,
        gpu_count=1,
        gpu_memory_gb=0.0,
        estimated_duration_s=ask.gpu_seconds(),
        data_gb=0.0,
        latency_slo_ms=ask.slo_ttft_ms,
        priority=ask.priority,
    )


def serving_snapshot(
    fleet: Fleet,
    endpoints: Iterable[Endpoint],
    samples: Mapping[str, EndpointSample],
    model: str,
    *,
    budgets: Mapping[str, Budget],
    usage: Mapping[str, TeamUsage],
    catalog: Mapping,
    now: datetime,
    equivalents: Sequence[str] = (),
) -> Snapshot:
    """The snapshot a request for ``model`` (or one of its allowed ``equivalents``) is placed
    on."""
    candidates, telemetry = model_fleet(fleet, endpoints, samples, model, equivalents)
    return Snapshot(candidates, {}, budgets, usage, telemetry, catalog, now)


def serving_policy(policy: PlacementPolicy) -> PlacementPolicy:
    """The placement policy for requests: slots are not quota GPUs (see the module)."""
    return replace(policy, require_quota=False)


def place_request(
    ask: InferenceRequest,
    snapshot: Snapshot,
    in_flight: Mapping[tuple[str, str], int],
    policy: PlacementPolicy,
    committed_usd: Mapping[str, float] | None = None,
    high_priority_share: float = 0.0,
) -> Decision:
    """Place ``ask`` on ``snapshot`` (the endpoints' last probe), the requests in flight taking
    their slots as earlier placements of a batch do (``in_flight``: per (cluster, endpoint)),
    and ``committed_usd`` (per team: spent since the snapshot's usage, plus reserved for the
    requests in flight) taking budget. The snapshot and its index are built once per probe.

    Shedding: a low-priority request (below ``policy.low_priority_below``) may not take the
    last ``high_priority_share`` of an endpoint's slots: they are counted as taken for it, so
    when an endpoint is that busy the capacity rule defers it (429) and high priority still
    gets in."""
    index = fleet_index(snapshot, policy)
    taken = dict(in_flight)
    if ask.priority < policy.low_priority_below and high_priority_share > 0:
        for key, held in _kept_for_high_priority(snapshot, high_priority_share).items():
            taken[key] = taken.get(key, 0) + held
    state = BatchState(gpus=taken, team_usd=dict(committed_usd or {}))
    request = serving_request(ask)
    evaluations, hints = index.evaluations(index.prepare(request), index.taken(state))
    return decide(request, evaluations, hints, snapshot, policy)


def _kept_for_high_priority(snapshot: Snapshot, share: float) -> dict[tuple[str, str], int]:
    """Slots per endpoint that only high-priority requests may take (kept with the snapshot)."""
    key = f"kept_for_high_priority:{share!r}"
    found = snapshot.derived.get(key)
    if found is None:
        found = snapshot.derived[key] = {
            (c.name, p.gpu_type): math.ceil(p.total * share)
            for c in snapshot.fleet.clusters
            for p in c.pools
        }
    return found
