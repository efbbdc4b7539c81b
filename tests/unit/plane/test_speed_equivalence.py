"""The optimised decision path decides exactly as the straightforward one.

`placement.evaluate`/`place`, `batch.place_batch` and the log rendering (`explain.Renderer`) are
compared with `reference.py` (every rule of `constraints.RULES` and `cost.estimate` called per
candidate, every request re-evaluated per tier) on random worlds and policies: the same
evaluations (costs, scores, every rejection and its message), the same decisions (chosen
candidate, status, reason, cost) and the same log text and JSON.
"""

import gc
import json
import weakref
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane.catalog import CatalogRecord
from reasoning_plane import batch, explain, placement, store
from reasoning_plane.index import fleet_index
from reasoning_plane.model import (
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    KubernetesQuotas,
    Snapshot,
    TeamQuota,
    TeamUsage,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.rules import BatchState
from tests.oracle import reference
from tests.unit.plane import factory
from tests.unit.plane.factory import NOW

ZONES = ["EU", "US", "UK", "UNKNOWN"]
CERTS = ["GDPR", "ISO27001", "SOC2"]
CLASSES = ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "PII", "UNKNOWN"]
TEAMS = ["a", "b", "c"]
SETTINGS = settings(
    max_examples=450,  # x 5 tests: the engine against the oracle on 2,250 worlds
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def per_gpu_memory(total: int):
    """The free memory of each GPU of a pool of ``total`` (sometimes more or fewer entries than
    GPUs, as a pool's nodes come and go)."""
    memory = st.sampled_from([0.5, 4.0, 8, 16.0, 20.0, 24, 40.0, 79.0])
    return st.lists(memory, max_size=total + 2).map(tuple)


@st.composite
def policies(draw) -> PlacementPolicy:
    return PlacementPolicy(
        objective=draw(st.sampled_from(["cheapest_within_slo", "weighted"])),
        latency_weight=draw(st.sampled_from([0.0, 0.01, 1.0])),
        require_quota=draw(st.booleans()),
        require_budget=draw(st.booleans()),
        low_priority_below=draw(st.sampled_from([0, 100, 500])),
        budget_headroom_share=draw(st.sampled_from([0.0, 0.1, 0.5])),
        congestion_cap=draw(st.sampled_from([0.5, 0.95])),
        # an int keeps the scalar code's int arithmetic for CPU latency
        cpu_inference_latency_ms=draw(st.sampled_from([400.0, 400])),
        exact_max_pairs=draw(st.sampled_from([0, 4000])),
        max_telemetry_age_s=draw(st.sampled_from([5.0, 30.0])),
        max_clock_skew_s=draw(st.sampled_from([0.0, 5.0, 30.0])),
    )


@st.composite
def worlds(draw):
    clusters = []
    telemetry = {}
    n_clusters = draw(st.integers(1, 6))
    for i in range(n_clusters):
        name = f"c{i}"
        pools = []
        for j in range(draw(st.integers(0, 3))):
            gpu = f"g{j}"
            total = draw(st.integers(0, 16))
            pools.append(
                GpuPool(
                    gpu,
                    draw(st.sampled_from([16, 24, 40.0, 80])),
                    total,
                    # round prices and speeds make equal scores: the label breaks the tie
                    draw(st.sampled_from([1.0, 2.5]) | st.floats(0, 10)),
                    speed=draw(st.sampled_from([1.0, 2]) | st.floats(0.2, 3)),
                    inference_latency_ms=draw(st.sampled_from([18, 20.0, 45.5])),
                )
            )
            if draw(st.integers(0, 4)):
                # negative ages: stamped ahead of the plane's clock (within the skew or not)
                age = draw(st.sampled_from([0, 1, 4, 6, 60, -3, -6, -3600]))
                received = draw(st.none() | st.sampled_from([0, 3, 10, 120]))
                telemetry[(name, gpu)] = TelemetrySample(
                    name,
                    gpu,
                    draw(st.integers(0, total)),
                    draw(st.sampled_from([0.0, 0.5]) | st.floats(0, 1)),
                    NOW - timedelta(seconds=age),
                    draw(st.none() | st.sampled_from([8.0, 20, 30.5, 79.0])),
                    None if received is None else NOW - timedelta(seconds=received),
                    free_memory_per_gpu_gb=draw(st.none() | per_gpu_memory(total)),
                )
        clusters.append(
            Cluster(
                name=name,
                zone=draw(st.sampled_from(ZONES)),
                region=f"r{i}",
                location="x",
                certifications=frozenset(draw(st.lists(st.sampled_from(CERTS), unique=True))),
                pools=tuple(pools),
                egress_per_gb=draw(st.sampled_from([0.0, 0.05]) | st.floats(0, 0.2)),
                latency_ms={
                    z: draw(st.sampled_from([5, 10.0]) | st.floats(1, 200) | st.integers(1, 200))
                    for z in draw(st.lists(st.sampled_from(ZONES[:3]), unique=True))
                },
                cpu_slots=draw(st.integers(0, 3)),
                cpu_price_per_hour=draw(st.floats(0, 2)),
                accepts_unknown_residency=draw(st.booleans()),
            )
        )
    catalog = {}
    for k in range(draw(st.integers(1, 6))):
        catalog[f"d{k}"] = CatalogRecord(
            dataset_id=f"d{k}",
            classification=draw(st.sampled_from(CLASSES)),
            data_residency=draw(st.sampled_from([*ZONES, "EU+US"])),
            retention_policy="1_year",
            storage_endpoints=(),
            gdpr_compliant=draw(st.booleans()),
            data_classification="Level_1",
            source_system="s",
            last_updated="",
        )
    names = [*catalog, "ghost"]
    cluster_names = [c.name for c in clusters]
    requests = []
    for n in range(draw(st.integers(1, 12))):
        recurring = draw(st.booleans())
        requests.append(
            WorkloadRequest(
                request_id=f"r{n}",
                workload="w",
                team=draw(st.sampled_from([*TEAMS, "nobody"])),
                datasets=tuple(
                    draw(st.lists(st.sampled_from(names), min_size=0, max_size=3, unique=True))
                ),
                gpu_count=draw(st.integers(0, 6)),
                gpu_memory_gb=draw(st.sampled_from([8, 20, 24, 60.0])),
                estimated_duration_s=draw(st.floats(60, 36000) | st.integers(60, 36000)),
                data_gb=draw(st.floats(0, 500)),
                # round values meet some estimates exactly (5 ms + 20 ms / (1 - 0.5) = 45 ms)
                latency_slo_ms=draw(
                    st.none() | st.floats(10, 1000) | st.sampled_from([25, 45.0, 50, 410.0])
                ),
                priority=draw(st.sampled_from([0, 50, 100, 100, 200])),
                gpu_optional=draw(st.booleans()),
                cpu_duration_s=draw(st.none() | st.integers(0, 7200) | st.floats(1, 7200)),
                recurring=recurring,
                current_cluster=draw(st.sampled_from(cluster_names)) if recurring else None,
                last_moved_at=(
                    NOW - timedelta(seconds=draw(st.sampled_from([60, 7200])))
                    if recurring and draw(st.booleans())
                    else None
                ),
                exclude_clusters=tuple(
                    draw(st.lists(st.sampled_from(cluster_names), max_size=2, unique=True))
                ),
                attempt=draw(st.integers(1, 3)),
            )
        )
    cluster_quotas, quota_errors = live_quotas(draw, clusters)
    snapshot = Snapshot(
        fleet=Fleet(tuple(clusters)),
        cluster_quotas=cluster_quotas,
        quota_errors=quota_errors,
        quotas={
            t: TeamQuota(t, draw(st.integers(0, 20)), draw(st.sampled_from(["", "q.yaml#x"])))
            for t in TEAMS
            if draw(st.booleans())
        },
        budgets={
            t: Budget(t, draw(st.floats(0, 500)), draw(st.sampled_from(["monthly", "daily"])))
            for t in TEAMS
            if draw(st.booleans())
        },
        usage={
            t: TeamUsage(
                t, draw(st.integers(0, 10)), draw(st.floats(0, 50)), draw(st.floats(0, 300))
            )
            for t in TEAMS
            if draw(st.booleans())
        },
        telemetry=telemetry,
        catalog=catalog,
        now=NOW,
    )
    return snapshot, requests


def live_quotas(draw, clusters: list) -> tuple[dict, dict]:
    """Some clusters read their quotas live (per namespace; teams may share one): a live
    quota, none, or unknown (the API server could not be read). Changes ``clusters``."""
    cluster_quotas, quota_errors = {}, {}
    for i, cluster in enumerate(clusters):
        if not draw(st.booleans()):
            continue
        template = draw(st.sampled_from(["{team}", "team-{team}", "shared"]))
        clusters[i] = cluster = replace(
            cluster, quotas=KubernetesQuotas(), namespace_template=template
        )
        if draw(st.integers(0, 5)) == 0:
            quota_errors[cluster.name] = "API server unreachable"
        for namespace in {cluster.namespace(t) for t in TEAMS}:
            kind = draw(st.sampled_from(["live", "live", "none", "unknown"]))
            if kind == "live":
                cluster_quotas[(cluster.name, namespace)] = TeamQuota(
                    namespace,
                    draw(st.integers(0, 12)),
                    f"ResourceQuota {namespace}/gpu on {cluster.name}, live",
                    draw(st.integers(0, 4)),
                    cluster.name,
                )
            elif kind == "unknown":
                quota_errors[f"{cluster.name}/{namespace}"] = "no status yet"
    return cluster_quotas, quota_errors


@st.composite
def contended_worlds(draw):
    """Few pools, compliant public data, generous quotas: requests compete for the same GPUs,
    CPU slots and budgets, so the integer program's bounds decide."""
    clusters, telemetry = [], {}
    for i in range(draw(st.integers(1, 2))):
        pools = []
        for j in range(draw(st.integers(1, 2))):
            total = draw(st.integers(1, 8))
            pools.append(GpuPool(f"g{j}", 80, total, draw(st.sampled_from([1.0, 2.0, 3.5]))))
            telemetry[(f"c{i}", f"g{j}")] = TelemetrySample(
                f"c{i}",
                f"g{j}",
                draw(st.integers(0, total)),
                0.0,
                NOW,
                free_memory_per_gpu_gb=draw(st.none() | per_gpu_memory(total)),
            )
        clusters.append(
            Cluster(
                name=f"c{i}",
                zone="EU",
                region="r",
                location="x",
                certifications=frozenset(CERTS),
                pools=tuple(pools),
                egress_per_gb=0.0,
                latency_ms={"EU": 5.0},
                cpu_slots=draw(st.integers(0, 2)),
                cpu_price_per_hour=draw(st.sampled_from([0.0, 0.5])),
            )
        )
    catalog = {"d": CatalogRecord("d", "PUBLIC", "EU", "1_year", (), False, "Level_1", "s", "")}
    requests = [
        WorkloadRequest(
            request_id=f"r{n}",
            workload="w",
            team=draw(st.sampled_from(TEAMS)),
            datasets=("d",),
            gpu_count=draw(st.integers(0, 4)),
            gpu_memory_gb=draw(st.sampled_from([16, 16, 20, 40.0])),
            estimated_duration_s=draw(st.sampled_from([1800, 3600, 7200.0])),
            priority=draw(st.sampled_from([100, 200])),
            gpu_optional=draw(st.booleans()),
        )
        for n in range(draw(st.integers(2, 12)))
    ]
    cluster_quotas, quota_errors = live_quotas(draw, clusters)
    snapshot = Snapshot(
        fleet=Fleet(tuple(clusters)),
        cluster_quotas=cluster_quotas,
        quota_errors=quota_errors,
        quotas={t: TeamQuota(t, draw(st.integers(0, 12))) for t in TEAMS},
        budgets={t: Budget(t, draw(st.sampled_from([5.0, 20.0, 1000.0]))) for t in TEAMS},
        usage={},
        telemetry=telemetry,
        catalog=catalog,
        now=NOW,
    )
    return snapshot, requests


def _log(decision) -> tuple[str, str]:
    return reference.explain(decision), json.dumps(reference.to_dict(decision))


def _same_decisions(fast, slow) -> None:
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a.request.request_id == b.request.request_id
        assert (a.status, a.chosen, a.reason) == (b.status, b.chosen, b.reason)
        chosen_a, chosen_b = a.chosen_evaluation, b.chosen_evaluation
        assert (chosen_a and chosen_a.cost) == (chosen_b and chosen_b.cost)
        assert a == b  # every evaluation, rejection and message too
        # the log: same text, same JSON (ints stay ints, floats floats)
        assert (explain.explain(a), json.dumps(explain.to_dict(a))) == _log(b)


@SETTINGS
@given(world=worlds(), policy=policies())
def test_evaluate_and_place_match_the_reference(world, policy) -> None:
    snapshot, requests = world
    for request in requests:
        status, fast, hints = placement.status_of(request, snapshot, policy)
        slow = reference.evaluate(request, snapshot, policy)
        assert fast == slow
        decided = placement.decide(request, fast, hints, snapshot, policy)
        assert decided.status in (status, "placed")
        assert [json.dumps(explain.to_dict(decided))] == [
            json.dumps(reference.to_dict(reference.decide(request, slow, snapshot, policy)))
        ]
        _same_decisions(
            [placement.place(request, snapshot, policy)],
            [reference.place(request, snapshot, policy)],
        )


@SETTINGS
@given(world=worlds(), policy=policies(), data=st.data())
def test_evaluate_against_a_batch_state_matches_the_reference(world, policy, data) -> None:
    snapshot, requests = world
    state = BatchState()
    for request in requests:  # what a batch could have taken so far
        if data.draw(st.booleans()):
            fleet = snapshot.fleet.clusters
            cluster = data.draw(st.sampled_from(fleet))
            gpu_type = data.draw(st.sampled_from([*(p.gpu_type for p in cluster.pools), "cpu"]))
            state.take(request, cluster.name, gpu_type, data.draw(st.floats(0, 200)))
    for request in requests:
        assert placement.evaluate(request, snapshot, policy, state) == reference.evaluate(
            request, snapshot, policy, state
        )


@SETTINGS
@given(world=worlds() | contended_worlds(), policy=policies())
def test_place_batch_matches_the_reference(world, policy) -> None:
    snapshot, requests = world
    _same_decisions(
        batch.place_batch(requests, snapshot, policy),
        reference.place_batch(requests, snapshot, policy),
    )


@SETTINGS
@given(world=worlds() | contended_worlds(), policy=policies(), data=st.data())
def test_the_integer_program_and_the_greedy_plan_match_the_reference(world, policy, data) -> None:
    """Plans compared directly: the verify pass would hide a plan that differs but is repaired."""
    snapshot, requests = world
    state = BatchState()
    for request in requests[: data.draw(st.integers(0, 3))]:  # earlier tiers took something
        cluster = data.draw(st.sampled_from(snapshot.fleet.clusters))
        gpu_type = data.draw(st.sampled_from([*(p.gpu_type for p in cluster.pools), "cpu"]))
        state.take(request, cluster.name, gpu_type, data.draw(st.floats(0, 100)))
    index = fleet_index(snapshot, policy)
    taken = index.taken(state)
    prepared = {r.request_id: index.prepare(r) for r in requests}
    options = {rid: np.flatnonzero(index.feasible(prep, taken)) for rid, prep in prepared.items()}
    slow_options = {
        r.request_id: [e for e in reference.evaluate(r, snapshot, policy, state) if e.feasible]
        for r in requests
    }
    assert {rid: o.tolist() for rid, o in options.items()} == {
        r.request_id: [
            i for i, e in enumerate(reference.evaluate(r, snapshot, policy, state)) if e.feasible
        ]
        for r in requests
    }

    def candidates(plan):
        if plan is None:  # no integer solution (e.g. earlier tiers overbooked a pool)
            return None
        return {rid: prepared[rid].table.candidates[k] for rid, k in plan.items()}

    assert candidates(batch._exact(requests, prepared, options, index, taken)) == (
        reference._exact(requests, slow_options, snapshot, state, policy)
    )
    assert candidates(batch._greedy(requests, prepared, options)) == reference._greedy(
        requests, slow_options
    )


@SETTINGS
@given(world=worlds(), policy=policies())
def test_log_rendering_matches_the_reference(world, policy) -> None:
    snapshot, requests = world
    shared = store._SharedSnapshot(snapshot)  # one renderer for the batch, as a tick does
    for decision in batch.place_batch(requests, snapshot, policy):
        assert shared.renderer.explain(decision) == reference.explain(decision)
        expected = reference.to_dict(decision)
        expected["snapshot"] = store.snapshot_payload(
            snapshot, decision.request.datasets, decision.request.team
        )
        # The tick's telemetry is stored once (plane.snapshots) and referred to by its hash.
        telemetry = expected["snapshot"].pop("telemetry")
        assert json.loads(shared.telemetry_json) == json.loads(json.dumps(telemetry))
        expected["snapshot"] = {"telemetry_ref": shared.telemetry_sha, **expected["snapshot"]}
        assert json.loads(shared.payload_json(decision)) == json.loads(json.dumps(expected))


def test_a_fleet_the_engine_cannot_index_is_refused_when_built() -> None:
    """Two clusters of one name, two pools of one GPU type, a pool named like the CPU marker or
    a pool of speed 0 used to switch placement silently to the one-by-one path (or divide by
    zero); the fleet refuses them, whoever builds it."""
    pool = GpuPool("g", 24, 8, 1.0)
    twin = Cluster(
        name="twin",
        zone="EU",
        region="r",
        location="x",
        certifications=frozenset({"ISO27001", "GDPR"}),
        pools=(pool,),
        egress_per_gb=0.0,
        latency_ms={"EU": 5.0},
    )
    with pytest.raises(ValueError, match="two clusters are named 'twin'"):
        Fleet((twin, replace(twin, cpu_slots=2)))
    with pytest.raises(ValueError, match="twin: two pools of GPU type 'g'"):
        Fleet((replace(twin, pools=(pool, replace(pool, price_per_hour=0.5))),))
    with pytest.raises(ValueError, match="the name is reserved for CPU"):
        Fleet((replace(twin, pools=(replace(pool, gpu_type="CPU"),)),))
    with pytest.raises(ValueError, match="speed must be above 0"):
        Fleet((replace(twin, pools=(replace(pool, speed=0.0),)),))
    Fleet((twin,))  # the same cluster alone is fine


def test_no_congestion_headroom_is_refused_before_any_decision() -> None:
    """A cap of 1 left a saturated pool no headroom: both paths divided by zero and the tick
    died (issue 14). The policy refuses it now; the highest cap works on both paths."""
    with pytest.raises(ValueError, match="congestion_cap"):
        PlacementPolicy(congestion_cap=1.0)
    pool = GpuPool("g", 24, 8, 1.0)
    cluster = Cluster(
        name="c",
        zone="EU",
        region="r",
        location="x",
        certifications=frozenset(),
        pools=(pool,),
        egress_per_gb=0.0,
        latency_ms={"EU": 5.0},
    )
    snapshot = Snapshot(
        fleet=Fleet((cluster,)),
        quotas={},
        budgets={},
        usage={},
        telemetry={("c", "g"): TelemetrySample("c", "g", 8, 1.0, NOW)},
        catalog={},
        now=NOW,
    )
    request = WorkloadRequest("r", "w", "a", (), 1, 8, 3600)
    policy = PlacementPolicy(congestion_cap=0.999)
    fast, slow = (
        placement.evaluate(request, snapshot, policy),
        reference.evaluate(request, snapshot, policy),
    )
    assert [e.cost.latency_ms for e in fast] == [e.cost.latency_ms for e in slow]


def test_the_cached_index_does_not_keep_a_snapshot_alive() -> None:
    snap = factory.snapshot()
    policy = PlacementPolicy()
    placement.place(factory.request(), snap, policy)
    batch.place_batch([factory.request("a"), factory.request("b")], snap, policy)
    assert fleet_index(snap, policy) is fleet_index(snap, policy)  # built once, then reused
    ref = weakref.ref(snap)
    del snap
    gc.collect()
    assert ref() is None
