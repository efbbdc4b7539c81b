"""Joint placement, priorities, and no flapping under oscillating telemetry."""

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning_plane.batch import place_batch
from reasoning_plane.model import DEFERRED, PLACED, Budget, TeamQuota, TeamUsage
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import NOW, request, snapshot, telemetry

POLICY = PlacementPolicy()


def test_sixteen_gpu_quota_is_never_exceeded_by_a_batch() -> None:
    snap = snapshot(telemetry=telemetry(a10_free=100, a100_free=100))
    clusters = tuple(
        replace(c, pools=tuple(replace(p, total=100) for p in c.pools)) for c in snap.fleet.clusters
    )
    snap = replace(snap, fleet=replace(snap.fleet, clusters=clusters))
    reqs = [request(f"r{i}", gpu_count=3) for i in range(10)]  # 30 GPUs wanted
    decisions = place_batch(reqs, snap, POLICY)
    placed = [d for d in decisions if d.status == PLACED]
    assert sum(d.request.gpu_count for d in placed) <= 16
    assert len(placed) == 5  # 15 GPUs; a sixth would make 18
    assert all(d.status == DEFERRED for d in decisions if d.status != PLACED)
    # With 10 already held, only 2 more requests fit.
    held = replace(snap, usage={"financial-ml": TeamUsage("financial-ml", gpus_held=10)})
    assert sum(d.status == PLACED for d in place_batch(reqs, held, POLICY)) == 2


def test_priorities_are_honoured_when_capacity_is_short() -> None:
    snap = snapshot(telemetry=telemetry(a10_free=4))
    reqs = [request("low", gpu_count=4, priority=10), request("high", gpu_count=4, priority=900)]
    by_id = {d.request.request_id: d for d in place_batch(reqs, snap, POLICY)}
    assert by_id["high"].status == PLACED and by_id["low"].status == DEFERRED
    assert "capacity" in by_id["low"].reason or "gpu_capacity" in by_id["low"].reason


def test_exact_and_greedy_paths_agree_on_feasibility() -> None:
    snap = snapshot(telemetry=telemetry(a10_free=6))
    reqs = [request(f"r{i}", gpu_count=2) for i in range(5)]
    exact = place_batch(reqs, snap, POLICY)
    greedy = place_batch(reqs, snap, replace(POLICY, exact_max_pairs=0))
    for decisions in (exact, greedy):
        assert sum(d.request.gpu_count for d in decisions if d.status == PLACED) <= 6
        assert sum(d.status == PLACED for d in decisions) == 3


def test_batch_respects_budget_jointly() -> None:
    snap = snapshot(budgets={"financial-ml": Budget("financial-ml", 6.0)})
    reqs = [request(f"r{i}") for i in range(4)]  # ~$2.44 each on the A10
    placed = [d for d in place_batch(reqs, snap, POLICY) if d.status == PLACED]
    assert len(placed) == 2
    spent = sum(d.chosen_evaluation.cost.total_usd for d in placed)
    assert spent <= 6.0


def _recurring(current: str, last_moved=None):
    return request(
        "nightly",
        datasets=("conference_transcripts",),
        team="media-ml",
        latency_slo_ms=None,
        recurring=True,
        current_cluster=current,
        last_moved_at=last_moved,
    )


def test_oscillating_telemetry_moves_a_recurring_workload_at_most_once() -> None:
    policy = replace(POLICY, min_dwell_s=0)
    current = "us-east-a100"
    moves = 0
    last_moved = None
    for tick in range(40):
        util = 0.6 if tick % 2 == 0 else 0.9
        snap = snapshot(now=NOW + timedelta(minutes=tick), telemetry=telemetry(util=util, age_s=0))
        snap = replace(
            snap, telemetry={k: replace(v, observed_at=snap.now) for k, v in snap.telemetry.items()}
        )
        d = place(_recurring(current, last_moved), snap, policy)
        assert d.status == PLACED
        if d.chosen.cluster != current:
            moves += 1
            current, last_moved = d.chosen.cluster, snap.now
    assert moves <= 1


def test_hysteresis_stays_inside_the_stable_band_and_for_small_savings() -> None:
    snap = snapshot(telemetry=telemetry(util=0.75))
    d = place(_recurring("us-east-a100"), snap, POLICY)
    assert d.chosen.cluster == "us-east-a100" and "stable band" in d.reason
    big_margin = replace(POLICY, move_margin_usd=1000.0)
    d = place(_recurring("us-east-a100"), snapshot(telemetry=telemetry(util=0.3)), big_margin)
    assert d.chosen.cluster == "us-east-a100" and "not more than the move cost" in d.reason
    dwell = place(
        _recurring("us-east-a100", NOW - timedelta(minutes=5)),
        snapshot(telemetry=telemetry(util=0.3)),
        replace(POLICY, move_margin_usd=0),
    )
    assert dwell.chosen.cluster == "us-east-a100" and "minimum dwell" in dwell.reason


def test_infeasible_current_cluster_forces_a_move() -> None:
    eu_work = request("nightly", recurring=True, current_cluster="us-east-a100")
    d = place(eu_work, snapshot(), POLICY)  # EU PII may not stay in the US
    assert d.chosen.cluster == "eu-fra-a10"


teams = st.sampled_from(["financial-ml", "media-ml", "customer-support"])
datasets = st.sampled_from(
    ["customer_orders_eu", "customer_orders_us", "conference_transcripts", "mystery", "eu_us_mix"]
)


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            teams,
            st.lists(datasets, min_size=1, max_size=2, unique=True),
            st.integers(0, 8),
            st.integers(1, 100),
            st.booleans(),
            st.floats(0, 500),
            st.integers(0, 1000),
        ),
        min_size=1,
        max_size=12,
    ),
    quota=st.integers(0, 20),
    budget=st.floats(0, 200),
    a10=st.integers(0, 16),
    a100=st.integers(0, 32),
    held=st.integers(0, 20),
    spent=st.floats(0, 200),
)
def test_property_no_residency_quota_budget_or_capacity_violation(
    specs, quota, budget, a10, a100, held, spent
) -> None:
    snap = snapshot(
        quotas={t: TeamQuota(t, quota) for t in ("financial-ml", "media-ml")},
        budgets={t: Budget(t, budget) for t in ("financial-ml", "media-ml", "customer-support")},
        usage={
            t: TeamUsage(t, gpus_held=held, spent_usd=spent) for t in ("financial-ml", "media-ml")
        },
        telemetry=telemetry(a10_free=a10, a100_free=a100),
    )
    reqs = [
        request(
            f"r{i}",
            team=t,
            datasets=tuple(ds),
            gpu_count=g,
            gpu_memory_gb=mem,
            gpu_optional=opt,
            data_gb=gb,
            priority=prio,
            latency_slo_ms=None,
        )
        for i, (t, ds, g, mem, opt, gb, prio) in enumerate(specs)
    ]
    decisions = place_batch(reqs, snap, POLICY)
    assert len(decisions) == len(reqs)
    used: dict[tuple[str, str], int] = {}
    team_gpus: dict[str, int] = {}
    team_usd: dict[str, float] = {}
    for d in decisions:
        if d.status != PLACED:
            assert d.chosen is None and d.reason
            continue
        r, c = d.request, d.chosen
        cluster = snap.fleet.get(c.cluster)
        for ds in r.datasets:
            rec = snap.catalog.get(ds)
            assert rec is not None and "+" not in rec.data_residency
            assert rec.data_residency != "UNKNOWN"
            if rec.classification in POLICY.strict_classifications:
                assert rec.data_residency == cluster.zone
            if rec.gdpr_compliant:
                assert "GDPR" in cluster.certifications
        if c.gpu_type != "cpu":
            used[(c.cluster, c.gpu_type)] = used.get((c.cluster, c.gpu_type), 0) + r.gpu_count
            team_gpus[r.team] = team_gpus.get(r.team, 0) + r.gpu_count
        team_usd[r.team] = team_usd.get(r.team, 0.0) + d.chosen_evaluation.cost.total_usd
    for key, n in used.items():
        assert n <= snap.telemetry[key].free_gpus
    for team, n in team_gpus.items():
        assert team in snap.quotas and held + n <= snap.quotas[team].gpus
    for team, usd in team_usd.items():
        if usd > 0:
            assert snap.usage_of(team).spent_usd + usd <= snap.budgets[team].limit_usd + 1e-6
