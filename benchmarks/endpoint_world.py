"""A serving world for the request-time benchmarks, built once here: ``n`` clusters of
`benchmarks.decision_speed.build_world`, one vLLM endpoint of 8 slots on each cluster's first
pool serving model ``m``, all freshly probed, and the snapshot `place_request` decides on.

Used by `benchmarks/routing.py` and `benchmarks/serving_records.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmarks.decision_speed import build_world
from reasoning_plane.model import Snapshot
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.serving.endpoints import (
    Endpoint,
    EndpointSample,
    InferenceRequest,
    serving_policy,
    serving_snapshot,
)

MODEL = "m"


@dataclass
class EndpointWorld:
    now: datetime
    endpoints: list[Endpoint]
    snapshot: Snapshot  # the endpoints' snapshot for model MODEL
    policy: PlacementPolicy  # the serving policy
    teams: list[str]
    datasets: list[str]

    def ask(self, rng: random.Random, request_id: str) -> InferenceRequest:
        """A request of a random team carrying one random dataset (400 prompt tokens, 128
        generated, a 300 ms TTFT SLO)."""
        return InferenceRequest(
            request_id,
            rng.choice(self.teams),
            MODEL,
            400,
            128,
            tuple(rng.sample(self.datasets, 1)),
            slo_ttft_ms=300,
        )


def endpoint_world(n: int = 1000, seed: int = 1) -> EndpointWorld:
    """``n`` endpoints, one per cluster of a generated world."""
    now = datetime.now(UTC)
    world = build_world(n).snapshot(now, seed=seed)
    endpoints = [
        Endpoint(f"e{i}", c.name, c.pools[0].gpu_type, "vllm", "http://x", frozenset({MODEL}), 1, 8)
        for i, c in enumerate(world.fleet.clusters)
    ]
    samples = {
        e.endpoint_id: EndpointSample(e.endpoint_id, now, 0, 0, 40.0, 50.0, frozenset({MODEL}))
        for e in endpoints
    }
    snapshot = serving_snapshot(
        world.fleet,
        endpoints,
        samples,
        MODEL,
        budgets=world.budgets,
        usage={},
        catalog=world.catalog,
        now=now,
    )
    return EndpointWorld(
        now,
        endpoints,
        snapshot,
        serving_policy(PlacementPolicy()),
        list(world.budgets),
        list(world.catalog),
    )
