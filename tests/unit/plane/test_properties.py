"""Property-based: random fleets, catalogs, quotas, budgets and requests never yield a residency,
compliance, quota, budget or capacity violation, and every non-placed decision says why."""

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane.catalog import CatalogRecord
from reasoning_plane.batch import place_batch
from reasoning_plane.model import (
    CPU,
    PLACED,
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    Snapshot,
    TeamQuota,
    TeamUsage,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import NOW

ZONES = ["EU", "US", "UK", "UNKNOWN"]
CERTS = ["GDPR", "ISO27001", "SOC2"]
CLASSES = ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "PII", "UNKNOWN"]
TEAMS = ["a", "b", "c"]
POLICY = PlacementPolicy()


@st.composite
def worlds(draw):
    clusters = []
    telemetry = {}
    for i in range(draw(st.integers(1, 5))):
        name = f"c{i}"
        pools = []
        for j in range(draw(st.integers(0, 3))):
            gpu = f"g{j}"
            total = draw(st.integers(0, 16))
            pools.append(
                GpuPool(
                    gpu,
                    draw(st.sampled_from([16, 24, 40, 80])),
                    total,
                    draw(st.floats(0, 10)),
                    speed=draw(st.floats(0.2, 3)),
                )
            )
            if draw(st.booleans()):
                age = draw(st.sampled_from([0, 1, 4, 6, 60]))
                telemetry[(name, gpu)] = TelemetrySample(
                    name,
                    gpu,
                    draw(st.integers(0, total)),
                    draw(st.floats(0, 1)),
                    NOW - timedelta(seconds=age),
                    free_memory_per_gpu_gb=draw(st.none() | per_gpu_memory(total)),
                )
        clusters.append(
            Cluster(
                name=name,
                zone=draw(st.sampled_from(ZONES[:3])),
                region=f"r{i}",
                location="x",
                certifications=frozenset(draw(st.lists(st.sampled_from(CERTS), unique=True))),
                pools=tuple(pools),
                egress_per_gb=draw(st.floats(0, 0.2)),
                latency_ms={z: draw(st.floats(1, 200)) for z in ZONES[:3]},
                cpu_slots=draw(st.integers(0, 3)),
                cpu_price_per_hour=draw(st.floats(0, 2)),
                accepts_unknown_residency=draw(st.booleans()),
            )
        )
    catalog = {}
    for k in range(draw(st.integers(1, 6))):
        residency = draw(st.sampled_from([*ZONES, "EU+US"]))
        cls = draw(st.sampled_from(CLASSES))
        catalog[f"d{k}"] = CatalogRecord(
            dataset_id=f"d{k}",
            classification=cls,
            data_residency=residency,
            retention_policy="1_year",
            storage_endpoints=(),
            gdpr_compliant=draw(st.booleans()),
            data_classification="Level_1",
            source_system="s",
            last_updated="",
        )
    names = [*catalog, "ghost"]
    requests = [
        WorkloadRequest(
            request_id=f"r{n}",
            workload="w",
            team=draw(st.sampled_from(TEAMS)),
            datasets=tuple(
                draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
            ),
            gpu_count=draw(st.integers(0, 6)),
            gpu_memory_gb=draw(st.sampled_from([8, 20, 24, 60])),
            estimated_duration_s=draw(st.floats(60, 36000)),
            data_gb=draw(st.floats(0, 500)),
            latency_slo_ms=draw(st.none() | st.floats(10, 1000)),
            priority=draw(st.integers(0, 1000)),
            gpu_optional=draw(st.booleans()),
        )
        for n in range(draw(st.integers(1, 10)))
    ]
    snapshot = Snapshot(
        fleet=Fleet(tuple(clusters)),
        quotas={t: TeamQuota(t, draw(st.integers(0, 20))) for t in TEAMS if draw(st.booleans())},
        budgets={t: Budget(t, draw(st.floats(0, 500))) for t in TEAMS if draw(st.booleans())},
        usage={
            t: TeamUsage(t, draw(st.integers(0, 10)), 0.0, draw(st.floats(0, 300))) for t in TEAMS
        },
        telemetry=telemetry,
        catalog=catalog,
        now=NOW,
    )
    return snapshot, requests


def per_gpu_memory(total: int):
    """The free memory of each GPU of a pool of ``total`` (sometimes more or fewer entries than
    GPUs, as a pool's nodes come and go)."""
    memory = st.sampled_from([0.5, 4.0, 8, 20.0, 24, 40.0, 80.0])
    return st.lists(memory, max_size=total + 2).map(tuple)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_random_worlds_never_violate(world) -> None:
    snapshot, requests = world
    decisions = place_batch(requests, snapshot, POLICY)
    pool_use: dict[tuple[str, str], int] = {}
    cpu_use: dict[str, int] = {}
    team_gpus: dict[str, int] = {}
    team_usd: dict[str, float] = {}
    for d in decisions:
        if d.status != PLACED:
            assert d.chosen is None and d.reason
            continue
        r, c = d.request, d.chosen
        cluster = snapshot.fleet.get(c.cluster)
        cost = d.chosen_evaluation.cost.total_usd
        for ds in r.datasets:
            rec = snapshot.catalog.get(ds)
            assert rec is not None  # no catalog record: never placed
            parts = set(rec.data_residency.split("+"))
            if "UNKNOWN" in parts:
                assert cluster.accepts_unknown_residency
            elif rec.classification in POLICY.strict_classifications:
                assert parts == {cluster.zone}
            if rec.classification in ("PII", "UNKNOWN"):
                assert "ISO27001" in cluster.certifications
            if rec.gdpr_compliant:
                assert "GDPR" in cluster.certifications
        if c.gpu_type == CPU:
            cpu_use[c.cluster] = cpu_use.get(c.cluster, 0) + 1
        else:
            sample = snapshot.telemetry[(c.cluster, c.gpu_type)]
            assert (NOW - sample.observed_at).total_seconds() <= POLICY.max_telemetry_age_s
            assert cluster.pool(c.gpu_type).memory_gb >= r.gpu_memory_gb
            key = (c.cluster, c.gpu_type)
            pool_use[key] = pool_use.get(key, 0) + r.gpu_count
            team_gpus[r.team] = team_gpus.get(r.team, 0) + r.gpu_count
        if cost > 0:
            team_usd[r.team] = team_usd.get(r.team, 0.0) + cost
    for key, used in pool_use.items():
        assert used <= snapshot.telemetry[key].free_gpus
    # Where the sample gives each GPU's free memory, the placed requests could be given
    # distinct GPUs each with enough free memory: at every threshold, those needing at least
    # that much take no more GPUs than have it free.
    for key, sample in snapshot.telemetry.items():
        if sample.free_memory_per_gpu_gb is None:
            continue
        placed = [
            d.request
            for d in decisions
            if d.status == PLACED and (d.chosen.cluster, d.chosen.gpu_type) == key
        ]
        for r in placed:
            need = r.gpu_memory_gb
            taking = sum(o.gpu_count for o in placed if o.gpu_memory_gb >= need)
            assert taking <= sum(1 for m in sample.free_memory_per_gpu_gb if m >= need)
    for name, used in cpu_use.items():
        assert used <= snapshot.fleet.get(name).cpu_slots
    for team, used in team_gpus.items():
        if used:
            assert snapshot.usage_of(team).gpus_held + used <= snapshot.quotas[team].gpus
    for team, usd in team_usd.items():
        assert snapshot.usage_of(team).spent_usd + usd <= snapshot.budgets[team].limit_usd + 1e-6
