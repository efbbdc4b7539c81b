"""Request-time placement over endpoints, through the real rule engine (`placement.place`)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from reasoning_plane import placement
from reasoning_plane.model import DEFERRED, PLACED, REJECTED, Budget
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import (
    Endpoint,
    EndpointSample,
    InferenceRequest,
    serving_policy,
    serving_request,
    serving_snapshot,
)
from tests.unit.plane import factory

MODEL = "gemma-3-270m"
US = Endpoint(
    "us-a100-1",
    "us-east-a100",
    "A100-80GB",
    "vllm",
    "http://127.0.0.1:1",
    frozenset({MODEL}),
    slots=2,
)
EU = Endpoint(
    "eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", "http://127.0.0.1:2", frozenset({MODEL}), slots=2
)
POLICY = serving_policy(PlacementPolicy())


def _sample(e: Endpoint, ttft: float = 40.0, tps: float = 50.0, busy: int = 0, age_s: float = 1.0):
    return EndpointSample(
        e.endpoint_id,
        factory.NOW - timedelta(seconds=age_s),
        in_flight=busy,
        queue_depth=0,
        ttft_ms=ttft,
        tokens_per_s=tps,
        loaded=frozenset({MODEL}),
    )


def _place(ask: InferenceRequest, endpoints, samples):
    snap = serving_snapshot(
        factory.fleet(),
        endpoints,
        {s.endpoint_id: s for s in samples},
        ask.model,
        budgets={t: Budget(t, 100.0) for t in ("financial-ml", "media-ml")},
        usage={},
        catalog=factory.CATALOG,
        now=factory.NOW,
    )
    return placement.place(serving_request(ask), snap, POLICY)


def _ask(datasets=("customer_orders_eu",), slo=None, **kw) -> InferenceRequest:
    base = dict(
        request_id="q1", team="financial-ml", model=MODEL, prompt_tokens=500, max_tokens=200
    )
    return InferenceRequest(**{**base, **kw}, datasets=datasets, slo_ttft_ms=slo)


def test_eu_personal_data_is_served_in_the_eu_and_refused_without_an_eu_endpoint() -> None:
    d = _place(_ask(), [US, EU], [_sample(US, ttft=20, tps=120), _sample(EU)])
    assert d.status == PLACED and d.chosen.cluster == "eu-fra-a10", d.reason
    only_us = _place(_ask(), [US], [_sample(US)])
    assert only_us.status == REJECTED and "no compliant cluster" in only_us.reason
    assert "customer_orders_eu is PII with residency EU" in only_us.reason


def test_public_data_goes_to_the_cheapest_sufficient_endpoint_not_the_fastest() -> None:
    d = _place(
        _ask(datasets=("conference_transcripts",)), [US, EU], [_sample(US, 20, 120), _sample(EU)]
    )
    # $1.10/h per 2 slots at 50 tokens/s, against $3.67/h per 2 slots at 120 tokens/s
    assert d.chosen.gpu_type == "eu-a10-1", d.reason
    costs = {e.candidate.gpu_type: e.cost.total_usd for e in d.evaluations}
    assert costs["eu-a10-1"] < costs["us-a100-1"]
    assert d.evaluations[0].cost.latency_ms < d.evaluations[1].cost.latency_ms  # US is faster


def test_a_saturated_or_silent_endpoint_is_not_trusted() -> None:
    busy = _place(_ask(), [US, EU], [_sample(US), _sample(EU, busy=2)])
    assert busy.status == DEFERRED and "gpu_capacity" in busy.reason
    stale = _place(_ask(), [US, EU], [_sample(US), _sample(EU, age_s=60)])
    assert stale.status == DEFERRED and "telemetry_stale" in stale.reason


def test_the_ttft_slo_and_a_cold_model_count() -> None:
    ask = _ask(datasets=("conference_transcripts",), slo=200)
    cold = EndpointSample(EU.endpoint_id, factory.NOW, 0, 0, 40.0, 50.0, loaded=frozenset())
    warm = _place(ask, [US, EU], [_sample(US, 20, 120), _sample(EU)])
    assert warm.chosen.gpu_type == "eu-a10-1"  # cheaper; 95 ms network + 40 ms meets the SLO
    d = _place(ask, [US, EU], [_sample(US, 20, 120), cold])
    assert d.chosen.gpu_type == "us-a100-1"  # the A10's model is not loaded: 2 s to first token
    assert "slo" in {r.rule for e in d.evaluations for r in e.rejections}


def test_eu_personal_data_is_never_served_outside_the_eu_over_10000_requests() -> None:
    rng = random.Random(14)
    datasets = list(factory.CATALOG)
    served = 0
    for world in range(200):
        endpoints = [
            Endpoint(
                f"e{i}",
                rng.choice(["us-east-a100", "eu-fra-a10"]),
                "A100-80GB",
                "vllm",
                "http://127.0.0.1:9",
                frozenset({MODEL}),
                slots=rng.randint(1, 4),
            )
            for i in range(rng.randint(1, 4))
        ]
        endpoints = [
            e
            if e.cluster == "us-east-a100"
            else Endpoint(
                e.endpoint_id, e.cluster, "A10", e.runtime, e.url, e.models, slots=e.slots
            )
            for e in endpoints
        ]
        samples = [
            _sample(
                e, ttft=rng.uniform(10, 400), busy=rng.randint(0, 4), age_s=rng.choice([0.5, 1, 30])
            )
            for e in endpoints
        ]
        for n in range(50):
            ask = _ask(
                datasets=tuple(rng.sample(datasets, rng.randint(1, 2))),
                slo=rng.choice([None, 100, 500]),
                request_id=f"q{world}-{n}",
            )
            d = _place(ask, endpoints, samples)
            if d.status == PLACED:
                served += 1
                eu_pii = any(
                    factory.CATALOG[x].data_residency == "EU"
                    and factory.CATALOG[x].classification == "PII"
                    for x in ask.datasets
                )
                if eu_pii:
                    assert d.chosen.cluster == "eu-fra-a10", (ask, d.reason)
    assert served > 1000  # the property was exercised, not vacuous


def test_an_endpoint_on_a_pool_the_fleet_lacks_is_refused() -> None:
    ghost = Endpoint("g", "nowhere", "A10", "ollama", "http://127.0.0.1:3", frozenset({MODEL}))
    with pytest.raises(ValueError, match="nowhere/A10 is not a pool of the fleet"):
        _place(_ask(), [ghost], [])
    with pytest.raises(ValueError, match="runtime must be one of"):
        Endpoint("x", "c", "A10", "tgi", "u", frozenset())


def test_requests_in_flight_take_their_slots() -> None:
    """The snapshot is built once per probe; what is in flight is taken like a batch's earlier
    placements, so a full endpoint sends the next request elsewhere, or defers it."""
    from reasoning_plane.serving.endpoints import place_request

    snap = serving_snapshot(
        factory.fleet(),
        [US, EU],
        {s.endpoint_id: s for s in (_sample(US, 20, 120), _sample(EU))},
        MODEL,
        budgets={"financial-ml": Budget("financial-ml", 100.0)},
        usage={},
        catalog=factory.CATALOG,
        now=factory.NOW,
    )
    public = _ask(datasets=("conference_transcripts",))
    assert place_request(public, snap, {}, POLICY).chosen.gpu_type == "eu-a10-1"
    full_eu = {("eu-fra-a10", "eu-a10-1"): 2}
    assert place_request(public, snap, full_eu, POLICY).chosen.gpu_type == "us-a100-1"
    eu_pii = place_request(_ask(), snap, full_eu, POLICY)
    assert eu_pii.status == DEFERRED and "gpu_capacity" in eu_pii.reason  # never the US


def test_when_an_endpoint_is_busy_low_priority_is_shed_and_high_priority_gets_in() -> None:
    from reasoning_plane.serving.endpoints import place_request

    snap = serving_snapshot(
        factory.fleet(),
        [EU],
        {EU.endpoint_id: _sample(EU)},
        MODEL,
        budgets={"financial-ml": Budget("financial-ml", 100.0)},
        usage={},
        catalog=factory.CATALOG,
        now=factory.NOW,
    )
    one_busy = {("eu-fra-a10", "eu-a10-1"): 1}  # of its 2 slots
    low = _ask(priority=10)  # below the policy's low_priority_below (100)
    high = _ask(priority=200)
    assert place_request(low, snap, {}, POLICY, high_priority_share=0.5).status == PLACED
    shed = place_request(low, snap, one_busy, POLICY, high_priority_share=0.5)
    assert shed.status == DEFERRED and "gpu_capacity" in shed.reason
    assert place_request(high, snap, one_busy, POLICY, high_priority_share=0.5).status == PLACED


def test_a_model_may_be_served_by_an_allowed_equivalent_and_says_which() -> None:
    """Candidates are the endpoints serving the model or an equivalent: the cheapest sufficient
    one wins, whichever it serves; without the equivalent allowed, only the model's own."""
    from reasoning_plane.serving.endpoints import place_request, served_model

    q8 = "gemma-3-270m-q8"
    eu_q8 = Endpoint(
        "eu-a10-q8", "eu-fra-a10", "A10", "llama.cpp", "http://127.0.0.1:4", frozenset({q8})
    )
    samples = {US.endpoint_id: _sample(US), eu_q8.endpoint_id: _sample(eu_q8)}
    samples[eu_q8.endpoint_id] = EndpointSample(
        eu_q8.endpoint_id, factory.NOW, 0, 0, 40.0, 50.0, loaded=frozenset({q8})
    )
    public = _ask(datasets=("conference_transcripts",))

    def place(equivalents):
        snap = serving_snapshot(
            factory.fleet(),
            [US, eu_q8],
            samples,
            MODEL,
            budgets={"financial-ml": Budget("financial-ml", 100.0)},
            usage={},
            catalog=factory.CATALOG,
            now=factory.NOW,
            equivalents=equivalents,
        )
        return place_request(public, snap, {}, POLICY)

    alone = place(())
    assert alone.chosen.gpu_type == "us-a100-1"  # the only endpoint serving the model itself
    with_q8 = place((q8,))
    assert with_q8.chosen.gpu_type == "eu-a10-q8", with_q8.reason  # cheaper, serves the Q8
    assert served_model(eu_q8, MODEL, (q8,)) == q8
    assert served_model(US, MODEL, (q8,)) == MODEL  # the model itself first
    assert served_model(eu_q8, MODEL, ()) is None
    # EU personal data: an equivalent is placed by the same rules (the US one never serves it)
    eu_pii = place_request(
        _ask(),
        serving_snapshot(
            factory.fleet(),
            [US],
            samples,
            MODEL,
            budgets={"financial-ml": Budget("financial-ml", 100.0)},
            usage={},
            catalog=factory.CATALOG,
            now=factory.NOW,
            equivalents=(q8,),
        ),
        {},
        POLICY,
    )
    assert eu_pii.status == REJECTED


def test_without_a_header_the_teams_default_slo_decides() -> None:
    """The cheap A10 answers in 40 ms + 95 ms of network; a team whose default is 100 ms is
    placed on the faster US endpoint, a caller's header overrides the default."""
    from reasoning_plane.serving.endpoints import team_slo

    defaults = {"financial-ml": 100.0}
    public = dict(datasets=("conference_transcripts",))
    samples = [_sample(US, 20, 120), _sample(EU)]
    assert team_slo(None, "media-ml", defaults) is None
    by_default = _place(
        _ask(**public, slo=team_slo(None, "financial-ml", defaults)), [US, EU], samples
    )
    assert by_default.chosen.gpu_type == "us-a100-1", by_default.reason
    relaxed = _place(
        _ask(**public, slo=team_slo(900.0, "financial-ml", defaults)), [US, EU], samples
    )
    assert relaxed.chosen.gpu_type == "eu-a10-1"
    none = _place(_ask(**public, slo=team_slo(None, "media-ml", defaults)), [US, EU], samples)
    assert none.chosen.gpu_type == "eu-a10-1"


def test_an_endpoint_on_a_node_answers_where_its_agent_last_reported_the_model_loaded() -> None:
    from datetime import UTC, datetime, timedelta

    from reasoning_plane.serving.endpoints import Endpoint, discovered

    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    e = Endpoint("box-gemma", "eu-fra-a10", "A10", "llama.cpp", "", frozenset({"g"}), node="box")

    def row(state="loaded", url="http://127.0.0.1:4242/", age_s=1.0, **other) -> dict:
        found = {"node": "box", "runtime": "llama.cpp", "model": "g", "state": state, "url": url}
        at = now - timedelta(seconds=age_s)
        return {**found, "reported_at": at, "received_at": at, **other}

    assert discovered(e, [row()], now, 60.0).url == "http://127.0.0.1:4242"
    assert discovered(e, [row()], now, 60.0).loaded == frozenset({"g"})
    # not this endpoint's node, runtime or model: nowhere
    for other in ({"node": "other"}, {"runtime": "vllm"}, {"model": "h"}):
        nowhere = discovered(e, [row(**other)], now, 60.0)
        assert nowhere.url == "" and "no node agent reports g loaded on node box" in nowhere.why
    # older than the telemetry age limit: its agent may be gone, not trusted
    stale = discovered(e, [row(age_s=61.0)], now, 60.0)
    assert stale.url == "" and "older than 60 s: g (61 s ago); not trusted" in stale.why
    # an agent whose clock runs ahead: its report is as old as its arrival, not its stamp
    ahead = row(reported_at=now + timedelta(hours=1), received_at=now - timedelta(seconds=61))
    late = discovered(e, [ahead], now, 60.0)
    assert late.url == "" and "g (61 s ago); not trusted" in late.why
    # reported, but not loaded (or loaded with no URL): nowhere to send it
    for state, url in (("cold", None), ("sleeping", None), ("loaded", None)):
        found = discovered(e, [row(state=state, url=url)], now, 60.0)
        assert found.url == "" and f"reports g {state} on node box" in found.why


def test_a_sleeping_model_is_priced_with_its_wake_up_and_a_cold_one_with_its_load() -> None:
    from datetime import UTC, datetime

    from reasoning_plane.serving.endpoints import Endpoint, EndpointSample, model_fleet

    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    fleet = factory.fleet()
    e = Endpoint(
        "v",
        "eu-fra-a10",
        "A10",
        "vllm",
        "http://v",
        frozenset({"a", "b"}),
        load_ms=9000.0,
        wake_ms=300.0,
    )
    sample = EndpointSample("v", now, 0, 0, 100.0, 50.0, frozenset(), sleeping=frozenset({"a"}))
    latency = {
        m: model_fleet(fleet, [e], {"v": sample}, m)[0].clusters[0].pools[0].inference_latency_ms
        for m in ("a", "b")
    }
    assert latency == {"a": 400.0, "b": 9100.0}
    plain = Endpoint("w", "eu-fra-a10", "A10", "vllm", "http://w", frozenset({"a"}), load_ms=9000.0)
    pool = model_fleet(fleet, [plain], {"w": sample}, "a")[0].clusters[0].pools[0]
    assert pool.inference_latency_ms == 9100.0  # no wake-up stated: as long as a cold load
