"""A sleeping vLLM model is not loaded (issue 15): vLLM lists a model in ``GET /v1/models``
while it sleeps (its completions answer 503), so the gateway's probe reads ``GET /is_sleeping``
(vLLM's sleep api_router) for a vLLM endpoint and counts a sleeping model as not loaded:
placement prices its wake-up (the endpoint's ``wake_ms``, else its cold load), so a request
whose TTFT SLO the wake-up misses is refused for the SLO instead of being sent to a sleeping
engine. Against the loopback stub of vLLM's documented contract
(`tests/integration/runtime_stubs.py`)."""

from __future__ import annotations

from reasoning_plane.model import PLACED, REJECTED, Budget
from reasoning_plane.serving.endpoints import Endpoint, InferenceRequest
from serving.gateway import Gateway
from tests.integration.runtime_stubs import VllmState, serve
from tests.loopback import probe_once
from tests.unit.plane import factory


def _gateway(url: str, **endpoint) -> Gateway:
    e = Endpoint("eu-vllm", "eu-fra-a10", "A10", "vllm", url, frozenset({"qwen3-8b"}), **endpoint)
    return Gateway(
        fleet=factory.fleet(),
        endpoints=[e],
        principals={},
        authenticate=str,
        catalog=lambda: factory.CATALOG,
        budgets={"financial-ml": Budget("financial-ml", 100.0)},
    )


ASK = InferenceRequest("r-1", "financial-ml", "qwen3-8b", 20, 8, slo_ttft_ms=1500.0)


def test_a_sleeping_vllm_model_is_not_loaded_and_priced_with_its_wake_up() -> None:
    state = VllmState("Qwen/Qwen3-8B", "qwen3-8b")
    with serve(state) as url:
        state.sleeping = True  # listed in /v1/models all the same
        gateway = _gateway(url, load_ms=30_000.0)
        probe_once(gateway)
        live = gateway.live["eu-vllm"]
        assert live.observed_at is not None  # it answered: trusted, only not loaded
        assert live.loaded == frozenset() and live.sleeping == frozenset({"qwen3-8b"})
        assert "GET /is_sleeping" in state.calls
        asleep = gateway.decide(ASK)
        assert asleep.status == REJECTED
        assert set(asleep.evaluations.rule_counts()) == {"slo"}, asleep.reason

        state.sleeping = False  # woken (by the residency plan): loaded again
        gateway = _gateway(url, load_ms=30_000.0)
        probe_once(gateway)
        assert gateway.live["eu-vllm"].loaded == frozenset({"qwen3-8b"})
        assert gateway.decide(ASK).status == PLACED


def test_a_sleeping_model_is_priced_with_the_wake_up_when_the_endpoint_states_one() -> None:
    state = VllmState("Qwen/Qwen3-8B", "qwen3-8b")
    with serve(state) as url:
        state.sleeping = True
        # waking takes 0.2 s, a cold load 30 s: the SLO of 1.5 s is met by a wake-up
        gateway = _gateway(url, load_ms=30_000.0, wake_ms=200.0)
        probe_once(gateway)
        decision = gateway.decide(ASK)
        assert decision.status == PLACED, decision.reason
        assert decision.chosen_evaluation is not None


def test_a_vllm_without_sleep_routes_cannot_sleep_and_what_it_lists_is_loaded() -> None:
    # without VLLM_SERVER_DEV_MODE the sleep routes are not attached (404): nothing sleeps
    with serve(VllmState("Qwen/Qwen3-8B", "qwen3-8b", dev_mode=False)) as url:
        gateway = _gateway(url, load_ms=30_000.0)
        probe_once(gateway)
        assert gateway.live["eu-vllm"].loaded == frozenset({"qwen3-8b"})
        assert gateway.decide(ASK).status == PLACED
