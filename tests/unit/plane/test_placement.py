"""The decision core on the seed scenario and its failure modes."""

from dataclasses import replace
from datetime import timedelta

import pytest

from reasoning_plane.explain import explain, to_dict
from reasoning_plane.model import DEFERRED, PLACED, REJECTED, Budget, TeamUsage
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import NOW, request, snapshot, telemetry

POLICY = PlacementPolicy()


def reasons(decision, label: str) -> list[str]:
    e = next(e for e in decision.evaluations if e.candidate.label == label)
    return [r.rule for r in e.rejections]


def test_seed_scenario_eu_pii_goes_to_the_eu_a10() -> None:
    d = place(request(), snapshot(), POLICY)
    assert d.status == PLACED and d.chosen.label == "eu-fra-a10/A10"
    assert d.zone == "EU" and d.namespace == "financial-ml" and d.executor == "k8s_job_executor"
    us = reasons(d, "us-east-a100/A100-80GB")
    assert "residency" in us and "compliance" in us  # why the fast US A100 was rejected
    text = explain(d)
    assert "us-east-a100/A100-80GB" in text and "rejected" in text and "CHOSEN" in text
    assert "cluster zone is US" in text
    payload = to_dict(d)
    assert payload["cluster"] == "eu-fra-a10" and len(payload["candidates"]) == 2


def test_naive_would_have_been_faster_but_costlier_with_egress() -> None:
    public = request(datasets=("conference_transcripts",), team="media-ml", latency_slo_ms=None)
    d = place(public, snapshot(), POLICY)
    us = next(e for e in d.evaluations if e.candidate.cluster == "us-east-a100")
    eu = next(e for e in d.evaluations if e.candidate.cluster == "eu-fra-a10")
    assert us.feasible and eu.feasible  # public data may move
    assert eu.cost.egress_usd == pytest.approx(50 * 0.02)  # US data moving into the EU
    assert us.cost.egress_usd == 0
    assert d.chosen == min((us, eu), key=lambda e: e.cost.total_usd).candidate


def test_stale_telemetry_is_never_chosen() -> None:
    snap = snapshot(telemetry=telemetry(age_s=300))
    d = place(request(), snap, POLICY)
    assert d.status == DEFERRED and d.chosen is None
    assert "telemetry_stale" in reasons(d, "eu-fra-a10/A10")
    assert "300 s old" in d.reason and "last compliant option eu-fra-a10/A10" in d.reason
    fresh = snapshot(telemetry=telemetry(age_s=4.9))
    assert place(request(), fresh, POLICY).status == PLACED
    missing = snapshot(telemetry={})
    assert "telemetry_missing" in reasons(place(request(), missing, POLICY), "eu-fra-a10/A10")


def test_unknown_and_composite_residency_fail_closed() -> None:
    for dataset in ("mystery", "eu_us_mix", "not_in_catalog"):
        d = place(request(datasets=(dataset,)), snapshot(), POLICY)
        assert d.status == REJECTED, dataset
        assert all("residency" in [r.rule for r in e.rejections] for e in d.evaluations)


def test_cluster_marked_for_unknown_residency_may_take_it() -> None:
    snap = snapshot()
    clusters = tuple(
        replace(c, accepts_unknown_residency=True, certifications=c.certifications | {"GDPR"})
        if c.name == "eu-fra-a10"
        else c
        for c in snap.fleet.clusters
    )
    snap = replace(snap, fleet=replace(snap.fleet, clusters=clusters))
    assert place(request(datasets=("mystery",)), snap, POLICY).chosen.cluster == "eu-fra-a10"


def test_quota_budget_memory_capacity_and_slo() -> None:
    held = snapshot(usage={"financial-ml": TeamUsage("financial-ml", gpus_held=16)})
    assert "quota" in reasons(place(request(), held, POLICY), "eu-fra-a10/A10")
    no_quota = snapshot(quotas={})
    assert "quota" in reasons(place(request(), no_quota, POLICY), "eu-fra-a10/A10")
    poor = snapshot(budgets={"financial-ml": Budget("financial-ml", 1.0)})
    d = place(request(), poor, POLICY)
    assert d.status == DEFERRED and "budget" in reasons(d, "eu-fra-a10/A10")
    big = place(request(gpu_memory_gb=40), snapshot(), POLICY)
    assert big.status == REJECTED and "gpu_memory" in reasons(big, "eu-fra-a10/A10")
    full = place(request(gpu_count=13), snapshot(), POLICY)
    assert "gpu_capacity" in reasons(full, "eu-fra-a10/A10")
    tight = place(request(latency_slo_ms=50), snapshot(), POLICY)
    assert tight.status == REJECTED and "slo" in reasons(tight, "eu-fra-a10/A10")


def test_deferred_when_some_compliant_option_is_only_short_of_capacity() -> None:
    from reasoning_plane.model import GpuPool

    snap = snapshot(telemetry=telemetry(a10_free=0))
    clusters = tuple(
        replace(c, pools=(*c.pools, GpuPool("A10-small", 8, 4, 0.5)))
        if c.name == "eu-fra-a10"
        else c
        for c in snap.fleet.clusters
    )
    snap = replace(snap, fleet=replace(snap.fleet, clusters=clusters))
    d = place(request(), snap, POLICY)
    # The small pool can never fit 16 GB (permanent), the A10 is only full (transient).
    assert "gpu_memory" in reasons(d, "eu-fra-a10/A10-small")
    assert reasons(d, "eu-fra-a10/A10") == ["gpu_capacity"]
    assert d.status == DEFERRED


def test_low_priority_deferred_when_budget_is_short() -> None:
    usage = {"financial-ml": TeamUsage("financial-ml", spent_usd=4400.0)}
    snap = snapshot(usage=usage, budgets={"financial-ml": Budget("financial-ml", 4500.0)})
    low = place(request(priority=10), snap, POLICY)
    assert low.status == DEFERRED and "low-priority work may use 90%" in low.reason
    high = place(request(priority=500), snap, POLICY)
    assert high.status == PLACED


def test_cpu_fallback_for_gpu_optional_work() -> None:
    d = place(
        request(
            datasets=("conference_transcripts",),
            team="media-ml",
            gpu_optional=True,
            latency_slo_ms=None,
            cpu_duration_s=600,
        ),
        snapshot(telemetry=telemetry(age_s=999)),
        POLICY,
    )
    assert d.status == PLACED and d.chosen.label == "eu-fra-a10/cpu"
    assert d.executor == "multiprocess"


def test_weighted_objective_trades_cost_for_latency() -> None:
    weighted = PlacementPolicy(objective="weighted", latency_weight=1.0)
    public = request(datasets=("conference_transcripts",), team="media-ml", latency_slo_ms=None)
    assert place(public, snapshot(), weighted).chosen.cluster == "us-east-a100"
    assert weighted.version() != POLICY.version()


def test_decision_is_deterministic() -> None:
    a = place(request(), snapshot(), POLICY)
    b = place(request(), snapshot(), POLICY)
    assert to_dict(a) == to_dict(b)
    later = place(
        request(), snapshot(now=NOW + timedelta(seconds=1), telemetry=telemetry(age_s=0)), POLICY
    )
    assert later.decision_id != a.decision_id
