"""The gateway's own /metrics over real HTTP, in front of the real llama.cpp runtime: requests by
model, endpoint and status, the latency it adds, and what it shed."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from reasoning_plane.model import Budget
from reasoning_plane.serving.endpoints import Endpoint
from tests.integration.test_gateway import MODEL, _gateway, _serve, key, runtime  # noqa: F401

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}


def _scrape(url: str) -> dict:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _count(got: dict, **labels: str) -> float:
    return got.get(("plane_gateway_requests_total", tuple(sorted(labels.items()))), 0.0)


def test_the_gateway_counts_what_it_served_refused_and_shed(runtime, key) -> None:  # noqa: F811
    token, authenticate = key
    eu = Endpoint("eu-a10-1", "eu-fra-a10", "A10", "llama.cpp", runtime, frozenset({MODEL}))
    headers = {"authorization": f"Bearer {token}", "x-plane-datasets": "customer_orders_eu"}
    path = "/v1/chat/completions"
    for url in _serve(_gateway([eu], authenticate)):
        assert httpx.post(f"{url}{path}", json=BODY, headers=headers, timeout=60).status_code == 200
        assert httpx.post(f"{url}{path}", json=BODY, timeout=10).status_code == 401
        got = _scrape(url)
    assert _count(got, model=MODEL, endpoint="eu-a10-1", path=path, status="200") == 1
    assert _count(got, model=MODEL, endpoint="none", path=path, status="401") == 0  # no body read
    assert _count(got, model="-", endpoint="none", path=path, status="401") == 1
    added = ("plane_gateway_added_latency_seconds_count", (("path", path),))
    assert got[added] == 2
    assert 0 < got[("plane_gateway_added_latency_seconds_sum", (("path", path),))] < 5

    # a budget that pays for nothing: the request is deferred (429), which is shedding
    poor = _gateway([eu], authenticate)
    poor.budgets = {"financial-ml": Budget("financial-ml", 1e-12)}
    for url in _serve(poor):
        deferred = httpx.post(f"{url}{path}", json=BODY, headers=headers, timeout=60)
        assert deferred.status_code == 429, deferred.text
        got = _scrape(url)
    assert _count(got, model=MODEL, endpoint="none", path=path, status="429") == 1
    assert got[("plane_gateway_shed_total", (("reason", "deferred"),))] == 1
