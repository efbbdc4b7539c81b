"""A gateway request's decision record is read from the engine's decision, never worked out
again: the runner-up is the engine's next best, the fastest option its lowest latency (feasible
or not, and said which), the rejections per rule the rule engine's counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reasoning_plane.model import Budget
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import (
    Endpoint,
    EndpointSample,
    InferenceRequest,
    place_request,
    serving_policy,
    serving_snapshot,
)
from reasoning_plane.serving.records import Settlement, explain_record, record_of
from serving.records import StreamUsage
from tests.unit.plane import factory

MODEL = "gemma-3-270m"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
M = frozenset({MODEL})


def _decide(endpoints, ttft: dict[str, float], datasets=("customer_orders_eu",)):
    samples = {
        e.endpoint_id: EndpointSample(e.endpoint_id, NOW, 0, 0, ttft[e.endpoint_id], 20.0, M)
        for e in endpoints
    }
    snapshot = serving_snapshot(
        factory.fleet(),
        endpoints,
        samples,
        MODEL,
        budgets={"financial-ml": Budget("financial-ml", 100.0)},
        usage={},
        catalog=factory.CATALOG,
        now=NOW,
    )
    ask = InferenceRequest("r1", "financial-ml", MODEL, 120, 64, datasets, priority=100)
    return place_request(ask, snapshot, {}, serving_policy(PlacementPolicy())), ask


ENDPOINTS = [
    Endpoint("us-a100-1", "us-east-a100", "A100-80GB", "llama.cpp", "http://us", M),
    Endpoint("eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", "http://eu1", M),
    Endpoint("eu-a10-2", "eu-fra-a10", "A10", "vllm", "http://eu2", M, gpus=2),  # dearer
]


def test_the_runner_up_is_the_engines_next_best_and_the_fastest_is_priced() -> None:
    decision, ask = _decide(ENDPOINTS, {"us-a100-1": 20.0, "eu-a10-1": 300.0, "eu-a10-2": 250.0})
    record = record_of(decision, ask, principal="support-copilot")
    assert record.status == "placed" and record.endpoint_id == "eu-a10-1"
    assert record.cluster == "eu-fra-a10"
    assert record.runner_up == "eu-a10-2"
    assert f"next best eu-fra-a10/eu-a10-2 ${record.runner_up_usd:,.2f}" in decision.reason
    # the fastest is the US endpoint, which EU personal data may not use: priced all the same
    assert record.fastest_endpoint == "us-a100-1" and record.fastest_feasible is False
    us = decision.evaluations[decision.evaluations.position_of(_candidate(decision, "us-a100-1"))]
    assert record.fastest_usd == us.cost.total_usd
    assert record.rejected_by_rule == decision.evaluations.rule_counts()
    assert record.rejected_by_rule == {"compliance": 1, "residency": 1}
    assert (record.candidates, record.feasible) == (3, 2)
    assert record.estimated_usd == decision.chosen_evaluation.cost.total_usd
    assert record.settlement is None and record.completion_tokens == 0


def _candidate(decision, endpoint_id):
    return next(e.candidate for e in decision.evaluations if e.candidate.gpu_type == endpoint_id)


def test_a_feasible_fastest_option_is_named_feasible_and_a_refusal_has_no_estimate() -> None:
    decision, ask = _decide(ENDPOINTS, {"us-a100-1": 900.0, "eu-a10-1": 300.0, "eu-a10-2": 20.0})
    record = record_of(decision, ask, principal="p")
    assert record.fastest_endpoint == "eu-a10-2" and record.fastest_feasible is True
    only_us = ENDPOINTS[:1]
    decision, ask = _decide(only_us, {"us-a100-1": 20.0})
    record = record_of(decision, ask, principal="p", failed_over=("eu-a10-1",))
    assert record.status == "rejected" and record.endpoint_id is None
    assert record.estimated_usd is None and record.runner_up is None
    assert record.failed_over == ("eu-a10-1",)


def test_a_settled_record_carries_the_runtimes_token_counts_and_reads_back() -> None:
    decision, ask = _decide(ENDPOINTS, {"us-a100-1": 20.0, "eu-a10-1": 300.0, "eu-a10-2": 250.0})
    settled = Settlement(NOW + timedelta(seconds=2), 0.0004, 1.5, 33, 12)
    record = record_of(decision, ask, principal="p", settlement=settled)
    assert (record.prompt_tokens, record.completion_tokens, record.actual_usd) == (33, 12, 0.0004)
    text = explain_record({**record.payload(), "chain_pos": 7, "row_hash": "ab" * 32})
    assert "Request r1: PLACED on eu-a10-1 (eu-fra-a10)" in text
    assert "runner-up: eu-a10-2 at $" in text
    assert "fastest: us-a100-1 (not feasible)" in text
    assert "actual $0.000400" in text
    assert "rejected per rule: compliance 1, residency 1" in text
    assert "chain position 7" in text


def test_streamed_tokens_are_counted_across_chunk_boundaries_and_usage_wins() -> None:
    stream = (
        b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\r\n\r\n'
        b'data: {"choices":[{"text":"!"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    counted = StreamUsage()
    for k in range(0, len(stream), 7):  # split anywhere, as the network does
        counted.feed(stream[k : k + 7])
    assert counted.result() == {"completion_tokens": 3}
    with_usage = StreamUsage()
    with_usage.feed(
        stream + b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}\n\n'
    )
    assert with_usage.result() == {"prompt_tokens": 5, "completion_tokens": 9}
