"""The policies the clock asks each tick: naive, greedy and the plane itself."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from reasoning_plane.batch import place_batch
from reasoning_plane.constraints import GOVERNANCE_RULES, TRANSIENT_RULES, BatchState
from reasoning_plane.model import (
    DEFERRED,
    PLACED,
    REJECTED,
    Candidate,
    Snapshot,
    WorkloadRequest,
)
from reasoning_plane.placement import evaluate
from reasoning_plane.policy import PlacementPolicy


class _Outcome(NamedTuple):
    status: str
    candidate: Candidate | None


BatchPolicy = Callable[[Sequence[WorkloadRequest], Snapshot, PlacementPolicy], list[_Outcome]]


def naive_choice(
    request: WorkloadRequest, snapshot: Snapshot, taken: Mapping[tuple[str, str], int]
) -> Candidate | None:
    """The fastest pool with enough free GPUs (telemetry minus ``taken``) and memory per GPU."""
    best: tuple[float, str, Candidate] | None = None
    for c in snapshot.fleet.clusters:
        for p in c.pools:
            sample = snapshot.telemetry.get((c.name, p.gpu_type))
            free = (sample.free_gpus if sample else p.total) - taken.get((c.name, p.gpu_type), 0)
            if p.memory_gb < request.gpu_memory_gb or free < request.gpu_count:
                continue
            key = (-p.speed, f"{c.name}/{p.gpu_type}", Candidate(c.name, p.gpu_type))
            if best is None or key[:2] < best[:2]:
                best = key
    return best[2] if best else None


def _naive(requests, snapshot, policy) -> list[_Outcome]:
    taken: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for r in requests:
        chosen = naive_choice(r, snapshot, taken)
        if chosen is not None:
            taken[(chosen.cluster, chosen.gpu_type)] += r.gpu_count
            out.append(_Outcome(PLACED, chosen))
            continue
        possible = any(
            p.memory_gb >= r.gpu_memory_gb and p.total >= r.gpu_count
            for c in snapshot.fleet.clusters
            for p in c.pools
        )
        out.append(_Outcome(DEFERRED if possible else REJECTED, None))
    return out


def greedy_choice(
    request: WorkloadRequest, snapshot: Snapshot, policy: PlacementPolicy, state: BatchState
):
    """(status, evaluation): the cheapest candidate passing every hard rule, or why none."""
    evaluations = evaluate(request, snapshot, policy, state)
    feasible = [e for e in evaluations if e.feasible]
    if feasible:
        best = min(feasible, key=lambda e: (e.cost.total_usd, e.cost.latency_ms, e.candidate.label))
        return PLACED, best
    compliant = [
        e for e in evaluations if not any(r.rule in GOVERNANCE_RULES for r in e.rejections)
    ]
    transient = any(all(r.rule in TRANSIENT_RULES for r in e.rejections) for e in compliant)
    return (DEFERRED if transient else REJECTED), None


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
