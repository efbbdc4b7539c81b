"""The gateway's endpoints follow what their runtime has loaded (issue 15, item 3): a model is
loaded on an endpoint only when the runtime's ``GET /v1/models`` lists it (a real HTTP server on
loopback); a model the endpoint is configured for but does not list is cold there, priced with
its reload time, so a request whose TTFT SLO that reload misses is refused for the SLO (and
counted as demand by the residency planner), while a listed model is placed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reasoning_plane.model import PLACED, REJECTED, Budget
from reasoning_plane.serving.endpoints import Endpoint, InferenceRequest
from serving.gateway import Gateway
from tests.loopback import FixedServer, probe_once
from tests.unit.plane import factory


@pytest.fixture
def runtime() -> Iterator[str]:
    """A runtime that has one model loaded: ``/v1/models`` lists ``loaded-model`` only."""
    listed = {"object": "list", "data": [{"id": "loaded-model", "object": "model"}]}
    with FixedServer(listed) as server:
        yield server.url


def test_a_model_the_runtime_does_not_list_is_cold_and_priced_with_its_reload(runtime) -> None:
    endpoint = Endpoint(
        "eu-a10-1",
        "eu-fra-a10",
        "A10",
        "llama.cpp",
        runtime,
        frozenset({"loaded-model", "cold-model"}),
        load_ms=2000.0,
    )
    gateway = Gateway(
        fleet=factory.fleet(),
        endpoints=[endpoint],
        principals={},
        authenticate=str,
        catalog=lambda: factory.CATALOG,
        budgets={"financial-ml": Budget("financial-ml", 100.0)},
    )

    probe_once(gateway)
    assert gateway.live["eu-a10-1"].loaded == frozenset({"loaded-model"})

    def ask(model: str) -> InferenceRequest:
        return InferenceRequest(f"r-{model}", "financial-ml", model, 20, 8, slo_ttft_ms=1500.0)

    assert gateway.decide(ask("loaded-model")).status == PLACED
    cold = gateway.decide(ask("cold-model"))
    assert cold.status == REJECTED
    assert set(cold.evaluations.rule_counts()) == {"slo"}, cold.reason
