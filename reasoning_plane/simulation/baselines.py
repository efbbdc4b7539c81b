"""The policies the clock asks each tick: naive, greedy and the plane itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from reasoning_plane.batch import place_batch
from reasoning_plane.model import (
    CPU,
    DEFERRED,
    PLACED,
    REJECTED,
    Candidate,
    Evaluations,
    Snapshot,
    WorkloadRequest,
)
from reasoning_plane.placement import evaluate, status_of
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState


class _Outcome(NamedTuple):
    status: str
    candidate: Candidate | None


BatchPolicy = Callable[[Sequence[WorkloadRequest], Snapshot, PlacementPolicy], list[_Outcome]]


# What the naive baseline does not look at: governance, quotas, budgets, telemetry age, SLOs.
# It takes the fastest GPU pool that has the memory and the free GPUs (the rules themselves,
# `rules.py`), as a scheduler without the plane would.
NAIVE_SEES = frozenset({"gpu_memory", "pool_size", "gpu_capacity"})


_NAIVE_POLICY = PlacementPolicy()  # naive reads no setting of it; the rules need one


def naive_choice(
    request: WorkloadRequest, snapshot: Snapshot, state: BatchState
) -> Candidate | None:
    """The fastest pool with enough free GPUs (after what ``state`` took) and memory per GPU."""
    return _fastest(evaluate(request, snapshot, _NAIVE_POLICY, state), snapshot)


def _fastest(evaluations: Evaluations, snapshot: Snapshot) -> Candidate | None:
    best: tuple[float, str, Candidate] | None = None
    for e in evaluations:
        c = e.candidate
        if c.gpu_type == CPU or any(r.rule in NAIVE_SEES for r in e.rejections):
            continue
        cluster = snapshot.fleet.get(c.cluster)
        pool = cluster.pool(c.gpu_type) if cluster else None
        assert pool is not None
        key = (-pool.speed, c.label, c)
        if best is None or key[:2] < best[:2]:
            best = key
    return best[2] if best else None


def _naive(requests, snapshot, policy) -> list[_Outcome]:
    state = BatchState()
    out = []
    lasting = NAIVE_SEES - {"gpu_capacity"}  # what no later state of the fleet lifts
    for request in requests:
        evaluations = evaluate(request, snapshot, _NAIVE_POLICY, state)
        chosen = _fastest(evaluations, snapshot)
        if chosen is not None:
            state.take(request, chosen.cluster, chosen.gpu_type, 0.0)
            out.append(_Outcome(PLACED, chosen))
            continue
        possible = any(
            e.candidate.gpu_type != CPU and not any(x.rule in lasting for x in e.rejections)
            for e in evaluations
        )
        out.append(_Outcome(DEFERRED if possible else REJECTED, None))
    return out


def greedy_choice(
    request: WorkloadRequest, snapshot: Snapshot, policy: PlacementPolicy, state: BatchState
):
    """(status, evaluation): the cheapest candidate passing every hard rule, or why none (the
    engine's status)."""
    status, evaluations, hints = status_of(request, snapshot, policy, state)
    if not hints.feasible.size:
        return status, None
    best = min(
        evaluations.subset(hints.feasible.tolist()),
        key=lambda e: (e.cost.total_usd, e.cost.latency_ms, e.candidate.label),
    )
    return status, best


def _greedy(requests, snapshot, policy) -> list[_Outcome]:
    state = BatchState()
    out = []
    for r in requests:
        status, picked = greedy_choice(r, snapshot, policy, state)
        if picked is not None:
            c = picked.candidate
            state.take(r, c.cluster, c.gpu_type, picked.cost.total_usd)
            out.append(_Outcome(status, c))
        else:
            out.append(_Outcome(status, None))
    return out


def _plane(requests, snapshot, policy) -> list[_Outcome]:
    by_id = {d.request.request_id: d for d in place_batch(requests, snapshot, policy)}
    return [_Outcome(by_id[r.request_id].status, by_id[r.request_id].chosen) for r in requests]


BATCH_POLICIES: dict[str, BatchPolicy] = {"naive": _naive, "greedy": _greedy, "plane": _plane}
