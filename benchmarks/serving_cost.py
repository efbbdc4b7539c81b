"""Cost per 1,000 inference requests: the plane's request-time placement against naive routing
and against the hindsight optimum, on the Azure LLM inference trace; and the seed's copilot case.

Command: `python benchmarks/serving_cost.py` (`--compress 4 --requests 19366 --eu-share 0.4`).

The fleet: `examples/public_prices/fleet.yaml` (AWS, GCP, Azure in US and EU regions; L4, A100,
H100 at public list prices) plus the seed scenario's EU A10 cluster (`eu-fra-a10`, $1.10/h).
Each pool gets ``ENDPOINTS_PER_POOL`` endpoints of one GPU with ``SLOTS`` requests at once (a
continuously batching runtime), decoding at 50 tokens/s x the pool's speed (an A100 = 50), its
time to first token the pool's ``inference_latency_ms``.

The trace: `data/azure-llm-inference-2023` (CC BY 4.0, Patel et al., Splitwise, ISCA 2024): each
row's arrival (time-compressed by ``--compress`` so the fleet is loaded), context tokens (the
prompt) and generated tokens (``max_tokens``). The trace says nothing of data or SLOs, so with a
fixed seed ``--eu-share`` of the requests carry EU personal data (`customer_orders_eu`: PII,
residency EU, GDPR) and the rest public data (`conference_transcripts`), the catalog entries of
the tests; a third each have no SLO, a 250 ms and a 120 ms time-to-first-token SLO.

Simulated time: a request holds one slot of its endpoint for its predicted seconds
(`InferenceRequest.gpu_seconds` / the endpoint's speed); the requests in flight are the
``in_flight`` map `place_request` reads, so capacity matters. Telemetry is probed every 2 s of
simulated time. A request no endpoint may take now (deferred) retries every second for up to
``MAX_WAIT_S``; its wait counts against its SLO. Cost: the slot's share of its GPU-hour price for
the time it is held (the engine's cost model; the same formula for every policy).

Policies, each over the same requests:
* ``plane``: `reasoning_plane.serving.endpoints.place_request` (what the gateway runs);
* ``naive-fastest``: the fastest endpoint (fastest GPU, then lowest time to first token)
  with a free slot, whatever the rules say; residency breaches are counted with the rule
  engine's own verdict on the endpoint it chose;
* ``fastest-allowed``: the fastest endpoint the rule engine allows (every hard rule passed);
* ``hindsight``: knowing the whole trace, the least-cost assignment of the requests ``plane``
  served to endpoints the rules allow on an idle fleet, each starting on arrival, under slot
  capacity averaged over 10-s buckets: a linear program (scipy HiGHS). It is the LP relaxation,
  so its cost is a proven lower bound on that assignment problem, not a policy.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.gateway_overhead import trace_rows  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from reasoning_plane.inputs import load_fleet  # noqa: E402
from reasoning_plane.model import PLACED, REJECTED, Budget, Fleet  # noqa: E402
from reasoning_plane.policy import PlacementPolicy  # noqa: E402
from reasoning_plane.serving.endpoints import (  # noqa: E402
    REFERENCE_TOKENS_PER_S,
    Endpoint,
    EndpointSample,
    InferenceRequest,
    place_request,
    serving_policy,
    serving_snapshot,
)
from reasoning_plane.simulation.scenario import EPOCH  # noqa: E402
from tests.unit.plane import factory  # noqa: E402

MODEL = "llama-3.1-8b"
TEAM = "financial-ml"
# requests at once per GPU: the KV cache room an 8B model leaves, about one request per 4 GB
SLOTS = {"L4": 6, "A10": 6, "A100-40GB": 10, "A100-80GB": 20, "H100-80GB": 20, "H100-94GB": 24}
ENDPOINTS_PER_POOL = 2
PROBE_EVERY_S = 2.0
RETRY_EVERY_S = 1.0
MAX_WAIT_S = 60.0
GOVERNANCE = {"residency", "compliance"}
EU_DATA, PUBLIC_DATA = "customer_orders_eu", "conference_transcripts"


@dataclass(frozen=True)
class Job:
    """One trace request with its arrival (simulated seconds)."""

    at: float
    ask: InferenceRequest


@dataclass
class Outcome:
    served: int = 0
    expired: int = 0
    rejected: int = 0
    usd: float = 0.0
    slo_met: int = 0
    slo_asked: int = 0
    eu_outside_eu: int = 0
    governance_breaches: int = 0
    decide_s: float = 0.0
    assignment: dict[str, str] | None = None


def public_fleet() -> Fleet:
    """The public-price fleet and the seed's EU A10 cluster."""
    public = load_fleet(ROOT / "examples" / "public_prices" / "fleet.yaml")
    seed = load_fleet(ROOT / "examples" / "seed_scenario" / "fleet.yaml")
    return Fleet((*public.clusters, *(c for c in seed.clusters if c.name == "eu-fra-a10")))


def endpoints_of(fleet: Fleet, per_pool: int = ENDPOINTS_PER_POOL) -> list[Endpoint]:
    return [
        Endpoint(
            f"{c.name}/{p.gpu_type}/{k}",
            c.name,
            p.gpu_type,
            "vllm",
            "http://127.0.0.1:9",
            frozenset({MODEL}),
            slots=SLOTS.get(p.gpu_type, 8),
        )
        for c in fleet.clusters
        for p in c.pools
        for k in range(per_pool)
    ]


def jobs_from_trace(n: int, compress: float, eu_share: float, seed: int = 0) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for i, (at, context, generated) in enumerate(trace_rows(n)):
        data = EU_DATA if rng.random() < eu_share else PUBLIC_DATA
        slo = rng.choice([None, 250.0, 120.0])
        ask = InferenceRequest(
            f"r{i}", TEAM, MODEL, context, max(generated, 1), (data,), slo_ttft_ms=slo
        )
        jobs.append(Job(at / compress, ask))
    return jobs


class World:
    """The fleet, its endpoints and what the engine reads of them at a simulated instant."""

    def __init__(self, fleet: Fleet, endpoints: list[Endpoint]) -> None:
        self.fleet = fleet
        self.endpoints = endpoints
        self.by_id = {e.endpoint_id: e for e in endpoints}
        self.pool = {(c.name, p.gpu_type): p for c in fleet.clusters for p in c.pools}
        self.zone = {c.name: c.zone for c in fleet.clusters}
        self.policy = serving_policy(PlacementPolicy())
        self.budgets = {TEAM: Budget(TEAM, 1e9)}

    def speed(self, e: Endpoint) -> float:
        return self.pool[(e.cluster, e.gpu_type)].speed

    def slot_usd_per_s(self, e: Endpoint) -> float:
        return self.pool[(e.cluster, e.gpu_type)].price_per_hour * e.gpus / e.slots / 3600

    def hold_s(self, ask: InferenceRequest, e: Endpoint) -> float:
        return ask.gpu_seconds() / self.speed(e)

    def snapshot(self, t: float):
        now = EPOCH + timedelta(seconds=t)
        samples = {
            e.endpoint_id: EndpointSample(
                e.endpoint_id,
                now,
                0,
                0,
                self.pool[(e.cluster, e.gpu_type)].inference_latency_ms,
                REFERENCE_TOKENS_PER_S * self.speed(e),
                frozenset({MODEL}),
            )
            for e in self.endpoints
        }
        return serving_snapshot(
            self.fleet,
            self.endpoints,
            samples,
            MODEL,
            budgets=self.budgets,
            usage={},
            catalog=factory.CATALOG,
            now=now,
        )


def simulate(world: World, jobs: list[Job], policy: str) -> Outcome:
    """Replay ``jobs`` in simulated time under ``policy`` (see the module)."""
    out = Outcome(assignment={})
    in_flight: dict[tuple[str, str], int] = {}
    ends: list[tuple[float, tuple[str, str]]] = []  # (end time, slot key)
    pending = [(j.at, k, j) for k, j in enumerate(jobs)]  # (try at, order, job)
    heapq.heapify(pending)
    snap, snap_t = None, -1e9
    while pending:
        t, order, job = heapq.heappop(pending)
        while ends and ends[0][0] <= t:
            _, key = heapq.heappop(ends)
            in_flight[key] -= 1
        if snap is None or t - snap_t >= PROBE_EVERY_S:
            snap_t = t - (t % PROBE_EVERY_S)
            snap = world.snapshot(snap_t)
        started = time.perf_counter()
        decision = place_request(
            job.ask, snap, {k: v for k, v in in_flight.items() if v}, world.policy
        )
        chosen, breach = _choose(world, decision, in_flight, policy)
        out.decide_s += time.perf_counter() - started
        if chosen is None:
            if decision.status == REJECTED and policy != "naive-fastest":
                out.rejected += 1  # no endpoint may ever serve it (governance, lasting rules)
                continue
            if t + RETRY_EVERY_S - job.at <= MAX_WAIT_S:
                heapq.heappush(pending, (t + RETRY_EVERY_S, order, job))
            else:
                out.expired += 1
            continue
        e = world.by_id[chosen.candidate.gpu_type]
        key = (e.cluster, e.endpoint_id)
        in_flight[key] = in_flight.get(key, 0) + 1
        hold = world.hold_s(job.ask, e)
        heapq.heappush(ends, (t + hold, key))
        out.served += 1
        out.usd += world.slot_usd_per_s(e) * hold
        out.assignment[job.ask.request_id] = e.endpoint_id
        if breach:
            out.governance_breaches += 1
        if EU_DATA in job.ask.datasets and world.zone[e.cluster] != "EU":
            out.eu_outside_eu += 1
        if job.ask.slo_ttft_ms is not None:
            out.slo_asked += 1
            if (t - job.at) * 1000 + chosen.cost.latency_ms <= job.ask.slo_ttft_ms:
                out.slo_met += 1
    return out


def _choose(world: World, decision, in_flight, policy: str):
    """The evaluation of the endpoint ``policy`` picks (None: wait), and whether the rule
    engine refused that endpoint on governance."""
    if policy == "plane":
        return (decision.chosen_evaluation if decision.status == PLACED else None), False
    evaluations = list(decision.evaluations)
    if policy == "fastest-allowed":
        free = [ev for ev in evaluations if ev.feasible]
    else:  # naive-fastest: any endpoint with a free slot, the rules not asked
        free = []
        for ev in evaluations:
            e = world.by_id[ev.candidate.gpu_type]
            if in_flight.get((e.cluster, e.endpoint_id), 0) < e.slots:
                free.append(ev)
    if not free:
        return None, False
    best = min(
        free,
        key=lambda ev: (-world.speed(world.by_id[ev.candidate.gpu_type]), ev.cost.latency_ms),
    )
    breach = any(r.rule in GOVERNANCE for r in best.rejections)
    return best, breach


def hindsight(world: World, jobs: list[Job], served: set[str], bucket_s: float = 10.0):
    """The LP relaxation of the least-cost assignment of ``served`` (see the module): its cost,
    and how many requests it could not place (capacity)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    idle = world.snapshot(0.0)
    rows_eq, cols_eq = [], []
    cap_rows, cap_cols, cap_vals = [], [], []
    costs: list[float] = []
    n_buckets = int(max(j.at for j in jobs) // bucket_s) + 400
    endpoints = {e.endpoint_id: k for k, e in enumerate(world.endpoints)}
    chosen_jobs = [j for j in jobs if j.ask.request_id in served]
    var = 0
    penalty = 1.0  # $ per unplaced request: above any request's cost here
    for r, job in enumerate(chosen_jobs):
        decision = place_request(job.ask, idle, {}, world.policy)
        for ev in decision.evaluations:
            if not ev.feasible:
                continue
            e = world.by_id[ev.candidate.gpu_type]
            hold = world.hold_s(job.ask, e)
            costs.append(world.slot_usd_per_s(e) * hold)
            rows_eq.append(r)
            cols_eq.append(var)
            start, end = job.at, job.at + hold
            b = int(start // bucket_s)
            while b * bucket_s < end:
                overlap = min(end, (b + 1) * bucket_s) - max(start, b * bucket_s)
                cap_rows.append(endpoints[e.endpoint_id] * n_buckets + b)
                cap_cols.append(var)
                cap_vals.append(overlap / bucket_s)
                b += 1
            var += 1
        costs.append(penalty)  # unplaced
        rows_eq.append(r)
        cols_eq.append(var)
        var += 1
    a_eq = coo_matrix((np.ones(len(rows_eq)), (rows_eq, cols_eq)), shape=(len(chosen_jobs), var))
    a_ub = coo_matrix(
        (cap_vals, (cap_rows, cap_cols)), shape=(len(world.endpoints) * n_buckets, var)
    )
    b_ub = np.repeat([e.slots for e in world.endpoints], n_buckets).astype(float)
    started = time.perf_counter()
    result = linprog(
        np.array(costs),
        A_ub=a_ub.tocsr(),
        b_ub=b_ub,
        A_eq=a_eq.tocsr(),
        b_eq=np.ones(len(chosen_jobs)),
        bounds=(0, 1),
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"hindsight LP: {result.message}")
    unplaced_idx = [c for r, c in zip(rows_eq, cols_eq, strict=True) if costs[c] == penalty]
    unplaced = float(sum(result.x[c] for c in unplaced_idx))
    usd = float(result.fun) - unplaced * penalty
    return usd, unplaced, var, time.perf_counter() - started


def _lower(ours: float, theirs: float) -> str:
    """ "x% lower" or "x% higher": ours against theirs."""
    change = 1 - ours / theirs
    return f"{change:.1%} lower" if change >= 0 else f"{-change:.1%} higher"


def table(results: dict[str, Outcome], total: int) -> None:
    print(
        "| policy | served | expired | rejected | $ total | $ per 1,000 served | SLO met "
        "| EU data outside EU | governance breaches | decide s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, o in results.items():
        slo = f"{o.slo_met}/{o.slo_asked} ({o.slo_met / o.slo_asked:.1%})" if o.slo_asked else "-"
        per = o.usd / o.served * 1000 if o.served else float("nan")
        print(
            f"| {name} | {o.served} | {o.expired} | {o.rejected} | {o.usd:,.2f} | {per:.4f} "
            f"| {slo} | {o.eu_outside_eu} | {o.governance_breaches} | {o.decide_s:.2f} |"
        )


def trace_case(args: argparse.Namespace) -> None:
    fleet = public_fleet()
    world = World(fleet, endpoints_of(fleet))
    jobs = jobs_from_trace(args.requests, args.compress, args.eu_share)
    slots = sum(e.slots for e in world.endpoints)
    span = jobs[-1].at
    print(
        f"\n### Azure trace: {len(jobs)} requests over {span / 60:.1f} min (x{args.compress} "
        f"compressed), {len(world.endpoints)} endpoints, {slots} slots, "
        f"{args.eu_share:.0%} EU personal data\n"
    )
    results = {}
    for policy in ("plane", "naive-fastest", "fastest-allowed"):
        results[policy] = simulate(world, jobs, policy)
    plane = results["plane"]
    served = set(plane.assignment or {})
    usd, unplaced, n_vars, solve_s = hindsight(world, jobs, served)
    results["hindsight (LP bound)"] = Outcome(served=len(served), usd=usd, decide_s=solve_s)
    table(results, len(jobs))
    per = {k: o.usd / o.served * 1000 for k, o in results.items() if o.served}
    print(
        f"\n- plane vs naive-fastest: {_lower(per['plane'], per['naive-fastest'])} cost per "
        f"1,000; vs fastest-allowed: {_lower(per['plane'], per['fastest-allowed'])}"
    )
    print(
        f"- plane vs the hindsight LP bound: +{per['plane'] / per['hindsight (LP bound)'] - 1:.1%}"
        f" ({n_vars} variables, 10-s buckets, solved in {solve_s:.1f} s; requests the bound "
        f"left unplaced for capacity: {unplaced:.1f})"
    )


def copilot_case(args: argparse.Namespace, equal_slots: int | None) -> None:
    """The seed's EU customer copilot: EU personal data, a 250 ms SLO, on the seed fleet's US
    A100 and EU A10 clusters. ``equal_slots``: every endpoint serves that many requests at once
    (a small model, whose KV cache does not bound it on either GPU); None: `SLOTS` (by memory)."""
    seed = load_fleet(ROOT / "examples" / "seed_scenario" / "fleet.yaml")
    fleet = Fleet(tuple(c for c in seed.clusters if c.name in ("us-east-a100", "eu-fra-a10")))
    us, eu = endpoints_of(fleet, per_pool=1)
    endpoints = [us] + [
        replace(eu, endpoint_id=f"eu-fra-a10/A10/{k}") for k in range(args.copilot_a10)
    ]
    if equal_slots:
        endpoints = [replace(e, slots=equal_slots) for e in endpoints]
    world = World(fleet, endpoints)
    jobs = [
        replace(j, ask=replace(j.ask, datasets=(EU_DATA,), slo_ttft_ms=250.0))
        for j in jobs_from_trace(args.copilot_requests, 1 / args.copilot_stretch, 1.0, seed=1)
    ]
    slots = f"every endpoint {equal_slots} slots" if equal_slots else "slots by GPU memory"
    print(
        f"\n### Seed copilot case ({slots}): {len(jobs)} trace requests, all EU personal data "
        f"({EU_DATA}), TTFT SLO 250 ms, arrivals stretched x{args.copilot_stretch}; endpoints: "
        f"1 US A100 ({us.cluster}, {endpoints[0].slots} slots), {args.copilot_a10} EU A10 "
        f"({eu.cluster}, {endpoints[1].slots} slots each)\n"
    )
    results = {p: simulate(world, jobs, p) for p in ("plane", "naive-fastest", "fastest-allowed")}
    table(results, len(jobs))
    per = {k: o.usd / o.served * 1000 for k, o in results.items() if o.served}
    print(
        f"\n- plane vs naive-fastest: {_lower(per['plane'], per['naive-fastest'])} cost "
        f"per 1,000; EU personal data served outside the EU: plane "
        f"{results['plane'].eu_outside_eu}, naive-fastest {results['naive-fastest'].eu_outside_eu}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=19366)
    parser.add_argument("--compress", type=float, default=4.0)
    parser.add_argument("--eu-share", type=float, default=0.4)
    parser.add_argument("--copilot-requests", type=int, default=2000)
    parser.add_argument("--copilot-stretch", type=float, default=2.0)
    parser.add_argument("--copilot-a10", type=int, default=8, help="EU A10 endpoints")
    parser.add_argument("--copilot-slots", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {machine()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    started = time.perf_counter()
    copilot_case(args, args.copilot_slots)
    copilot_case(args, None)
    trace_case(args)
    print(f"\nwall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
