"""The cost-lens simulator: seeded traces, the clock, the four policies and their metrics."""

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from data_plane.classification import residency_parts
from plane_cli.main import main as plane_main
from reasoning_plane import simulation as sim
from reasoning_plane.inputs import (
    load_budgets,
    load_catalog_records,
    load_fleet,
    load_quotas,
    load_requests,
    load_telemetry,
)
from reasoning_plane.model import Budget, Cluster, Fleet, GpuPool, TeamQuota, WorkloadRequest
from reasoning_plane.policy import PlacementPolicy
from tests.unit.plane.factory import record

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def small() -> sim.Scenario:
    return sim.generated_scenario(seed=7, n_requests=160, hours=4.0, n_clusters=6)


@pytest.fixture(scope="module")
def small_results(small: sim.Scenario) -> dict[str, sim.SimResult]:
    return sim.compare(small, sim.POLICIES, seed=7)


@pytest.fixture(scope="module")
def seed_like_results() -> dict[str, sim.SimResult]:
    return sim.compare(sim.seed_like_scenario(0, n_batches=48), sim.POLICIES)


def test_traces_and_fleets_are_deterministic_for_a_seed() -> None:
    assert sim.generate_trace(3, 300) == sim.generate_trace(3, 300)
    assert sim.generate_trace(3, 300) != sim.generate_trace(4, 300)
    assert sim.generate_fleet(3) == sim.generate_fleet(3)
    assert sim.seed_like_trace(5) == sim.seed_like_trace(5)
    a = sim.generated_scenario(seed=11, n_requests=60, hours=2.0)
    b = sim.generated_scenario(seed=11, n_requests=60, hours=2.0)
    assert a == b
    first, again = (sim.simulate_scenario(a, "plane", 11) for _ in range(2))
    assert first.placements == again.placements
    assert first.total_cost_usd == again.total_cost_usd


def test_generated_world_has_zones_teams_classifications_and_limits() -> None:
    scenario = sim.generated_scenario(seed=2, n_requests=400, hours=24.0)
    zones = {c.zone for c in scenario.fleet.clusters}
    assert {"EU", "US"} <= zones and len(scenario.fleet.clusters) == 6
    prices = [p.price_per_hour for c in scenario.fleet.clusters for p in c.pools]
    assert min(prices) > 0.5 and max(prices) < 15.0  # USD per GPU-hour, list-price range
    requests = [tr.request for tr in scenario.trace]
    arrivals = [tr.arrival_s for tr in scenario.trace]
    assert arrivals == sorted(arrivals) and arrivals[0] >= 0 and arrivals[-1] <= 24 * 3600
    assert len({r.team for r in requests}) >= 4
    assert {r.gpu_count for r in requests} == {1, 2, 3, 4}
    assert all(300 <= r.estimated_duration_s <= 7200 for r in requests)
    assert any(r.latency_slo_ms for r in requests) and any(not r.latency_slo_ms for r in requests)
    assert len({r.priority for r in requests}) >= 3
    used = {d for r in requests for d in r.datasets}
    records = [scenario.catalog[d] for d in used]
    assert {"PII", "PUBLIC", "INTERNAL"} <= {r.classification for r in records}
    assert {"EU", "US"} <= {z for r in records for z in residency_parts(r.data_residency)}
    assert set(scenario.quotas) == set(scenario.budgets) == {r.team for r in requests}


SEED = REPO / "examples" / "seed_scenario"


def test_seed_scenario_is_loaded_from_the_example_files() -> None:
    scenario = sim.seed_like_scenario(0, n_batches=8)
    assert scenario.fleet == sim.seed_fleet() == load_fleet(SEED / "fleet.yaml")
    assert dict(scenario.quotas) == load_quotas(SEED / "quotas.yaml")
    assert dict(scenario.budgets) == load_budgets(SEED / "budgets.yaml")
    assert dict(scenario.catalog) == load_catalog_records(SEED / "catalog.json")
    # GPUs the telemetry file reports busy are held outside the trace.
    samples = load_telemetry(SEED / "telemetry.yaml")
    pools = {(c.name, p.gpu_type): p for c in scenario.fleet.clusters for p in c.pools}
    assert dict(scenario.background) == {
        key: pools[key].total - sample.free_gpus for key, sample in samples.items()
    }
    # Every request of the trace is one of the file's requests, recurring: nothing back-solved.
    templates = {r.request_id: r for r in load_requests(SEED / "requests.yaml")}
    trace = [tr.request for tr in scenario.trace]
    assert len(trace) == 8 * len(templates)
    for request in trace:
        template = templates[request.request_id.rsplit("-", 1)[0]]
        assert request == dataclasses.replace(template, request_id=request.request_id)
    assert scenario.requests_per_workload == 1


def test_a_scenario_folder_drives_the_simulation(tmp_path) -> None:
    folder = tmp_path / "scenario"
    shutil.copytree(SEED, folder)
    fleet = (folder / "fleet.yaml").read_text()
    (folder / "fleet.yaml").write_text(
        fleet.replace("price_per_hour: 1.10", "price_per_hour: 2.20")
    )
    base = sim.load_scenario(SEED, n_batches=4)
    dearer = sim.load_scenario(folder, n_batches=4)
    a10 = {c.name: c for c in dearer.fleet.clusters}["eu-fra-a10"].pools[0]
    assert a10.price_per_hour == 2.20
    cheap, dear = (sim.simulate_scenario(s, "plane") for s in (base, dearer))
    on_a10 = [p.request_id for p in cheap.placements if p.cluster == "eu-fra-a10"]
    assert on_a10  # the A10 is the cheapest compliant pool for some requests
    gpu = {p.request_id: p.gpu_usd for p in dear.placements if p.cluster == "eu-fra-a10"}
    for p in cheap.placements:
        if p.request_id in gpu:
            assert gpu[p.request_id] == pytest.approx(2 * p.gpu_usd)
    with pytest.raises(ValueError, match=r"missing/fleet\.yaml: .*not found"):
        sim.load_scenario(tmp_path / "missing")


PUBLIC = REPO / "examples" / "public_prices" / "fleet.yaml"


def test_generated_fleet_is_priced_from_the_public_price_file() -> None:
    listed = {(c.name, p.gpu_type): p for c in load_fleet(PUBLIC).clusters for p in c.pools}
    fleet = sim.generate_fleet(seed=3, n_clusters=len({k[0] for k in listed}))
    egress = {c.name: c.egress_per_gb for c in load_fleet(PUBLIC).clusters}
    for cluster in fleet.clusters:
        assert cluster.egress_per_gb == egress[cluster.name]
        for pool in cluster.pools:
            source = listed[(cluster.name, pool.gpu_type)]
            assert (pool.price_per_hour, pool.memory_gb, pool.speed) == (
                source.price_per_hour,
                source.memory_gb,
                source.speed,
            )
    assert {k for k in listed} == {(c.name, p.gpu_type) for c in fleet.clusters for p in c.pools}
    assert sim.generate_fleet(3, 8).clusters[6].name == "aws-use1-2"  # copies past the file


def test_every_public_price_cites_a_dated_source() -> None:
    text = PUBLIC.read_text()
    sources = dict(
        re.findall(r"^# \[([a-z-]+)\] (.*?)(?=^# \[|^# Not found|^clusters:)", text, re.M | re.S)
    )
    assert len(sources) >= 4
    for tag, body in sources.items():
        assert "https://" in body, tag
        assert re.search(r"20\d\d-\d\d(-\d\d)?", body) or "commit" in body, tag
    priced = [
        line for line in text.splitlines() if re.match(r"\s+(price_per_hour|egress_per_gb):", line)
    ]
    assert len(priced) == 19
    for line in priced:
        cited = re.search(r"# \[([a-z-]+)\]", line)
        assert cited and cited.group(1) in sources, line
        if "price_per_hour" in line and "/" in line:  # instance price / GPUs, shown
            price = float(line.split(":")[1].split("#")[0])
            dollars, gpus = re.search(r"\$([0-9.]+) / (\d+) GPU", line).groups()
            assert price == pytest.approx(float(dollars) / int(gpus), abs=6e-5), line
    clouds = {c.name.split("-")[0] for c in load_fleet(PUBLIC).clusters}
    zones = {c.zone for c in load_fleet(PUBLIC).clusters}
    types = {p.gpu_type.split("-")[0] for c in load_fleet(PUBLIC).clusters for p in c.pools}
    assert len(clouds) >= 2 and zones == {"EU", "US"} and {"L4", "A100", "H100"} <= types


def test_plane_keeps_every_rule_while_naive_breaks_residency(small_results) -> None:
    plane, naive = small_results["plane"], small_results["naive"]
    assert plane.placed > 0.8 * plane.requests
    assert (
        plane.residency_violations,
        plane.compliance_violations,
        plane.quota_violations,
        plane.budget_overruns,
        plane.capacity_overbooked,
        plane.slo_misses,
    ) == (0, 0, 0, 0, 0, 0)
    assert small_results["greedy"].violations == 0
    assert naive.residency_violations > 0 and naive.compliance_violations > 0
    assert naive.capacity_overbooked == 0  # naive still needs a free GPU
    assert plane.placed + plane.expired + plane.rejected == plane.requests


def test_hindsight_le_plane_le_naive(small, small_results) -> None:
    plane, naive, best = (small_results[p] for p in ("plane", "naive", "hindsight"))
    # Hindsight places exactly plane's requests, so their totals compare equal sets.
    assert {p.request_id for p in best.placements} == {p.request_id for p in plane.placements}
    assert best.lower_bound_usd is not None
    assert best.lower_bound_usd <= best.total_cost_usd + 1e-6
    assert best.total_cost_usd <= plane.total_cost_usd + 1e-6
    assert "optimal" in best.notes
    # Naive places other requests (it ignores quotas and budgets) and its non-compliant
    # placements are not options for plane: compare the requests both placed where naive's
    # cluster was compliant, request by request summed.
    requests = {tr.request.request_id: tr.request for tr in small.trace}
    clusters = {c.name: c for c in small.fleet.clusters}
    ours = {p.request_id: p for p in plane.placements}
    theirs = {
        p.request_id: p
        for p in naive.placements
        if sim._audit(requests[p.request_id], clusters[p.cluster], small.catalog, PlacementPolicy())
        == (False, False)
    }
    common = sorted(set(ours) & set(theirs))
    assert len(common) > 20
    assert sum(ours[r].cost_usd for r in common) < sum(theirs[r].cost_usd for r in common)
    assert plane.cost_per_1000_usd < naive.cost_per_1000_usd


def test_hindsight_is_never_worse_than_plane_when_the_solver_runs_out_of_time(small) -> None:
    # Plane's own schedule is a feasible point of the program: a solver stopped by its time
    # limit (no incumbent, or a worse one) must not make the bound place fewer requests or cost
    # more than plane.
    plane = sim.simulate_scenario(small, "plane", 7)
    best = sim.simulate_scenario(
        small, "hindsight", 7, reference=plane, hindsight_time_limit_s=1e-3
    )
    assert best.placed == plane.placed
    assert best.total_cost_usd <= plane.total_cost_usd + 1e-6
    assert best.lower_bound_usd <= best.total_cost_usd + 1e-6


def test_seed_scenario_plane_keeps_the_rules_at_no_more_than_naive(seed_like_results) -> None:
    naive, plane, best = (seed_like_results[p] for p in ("naive", "plane", "hindsight"))
    assert plane.violations == plane.slo_misses == 0
    assert naive.residency_violations > 0  # EU PII on the US A100 when the H100s are busy
    assert {p.cluster for p in naive.placements if p.team == "financial-ml"} >= {"us-east-a100"}
    # The EU PII batches run in the EU; the cheapest compliant pool meeting the SLO is the A10.
    eu = [p for p in plane.placements if p.team == "financial-ml"]
    assert eu and {p.cluster for p in eu} <= {"eu-fra-a10", "eu-par-h100"}
    assert best.lower_bound_usd <= best.total_cost_usd + 1e-6 <= plane.total_cost_usd + 2e-6
    gaps = sim.summary(seed_like_results)
    assert gaps["plane_vs_naive"] == pytest.approx(
        1 - plane.cost_per_1000_usd / naive.cost_per_1000_usd
    )
    assert gaps["plane_vs_naive"] > 0


def _tiny(quota: int = 4) -> tuple[Fleet, dict, dict, dict]:
    def pool(name: str, memory: float, total: int, price: float) -> GpuPool:
        return GpuPool(name, memory, total, price, speed=1.0, inference_latency_ms=10)

    def cluster(name: str, *pools: GpuPool) -> Cluster:
        return Cluster(
            name=name,
            zone="EU",
            region=name,
            location=name,
            certifications=frozenset({"GDPR", "ISO27001"}),
            pools=pools,
            egress_per_gb=0.02,
            latency_ms={"EU": 5, "US": 90},
        )

    fleet = Fleet(
        (
            cluster("eu-a", pool("BIG", 80, 1, 1.00), pool("SMALL", 24, 4, 1.10)),
            cluster("eu-b", pool("H100", 80, 4, 5.00)),
        )
    )
    catalog = {"orders": record("orders", "PII", "EU", gdpr=True)}
    return (
        fleet,
        {"t": TeamQuota("t", quota)},
        {"t": Budget("t", 1000.0)},
        catalog,
    )


def _job(rid: str, memory: float, at: float = 0.0) -> sim.TimedRequest:
    request = WorkloadRequest(
        request_id=rid,
        workload="w",
        team="t",
        datasets=("orders",),
        gpu_count=1,
        gpu_memory_gb=memory,
        estimated_duration_s=3600,
    )
    return sim.TimedRequest(at, request)


def test_hindsight_finds_what_myopic_ticks_miss() -> None:
    fleet, quotas, budgets, catalog = _tiny()
    trace = [_job("small", 16, 0.0), _job("big", 70, 60.0)]
    plane = sim.simulate(trace, fleet, quotas, budgets, catalog, "plane", hours=2)
    best = sim.simulate(trace, fleet, quotas, budgets, catalog, "hindsight", hours=2)
    chosen = {p.request_id: p.gpu_type for p in plane.placements}
    assert chosen == {"small": "BIG", "big": "H100"}  # the cheapest pool went first-come
    assert plane.total_cost_usd == pytest.approx(6.00)
    assert {p.request_id: p.gpu_type for p in best.placements} == {"small": "SMALL", "big": "BIG"}
    assert best.total_cost_usd == pytest.approx(2.10)
    assert best.capacity_overbooked == 0


def test_quota_defers_until_a_job_ends_and_the_deadline_expires_it() -> None:
    fleet, quotas, budgets, catalog = _tiny(quota=1)
    trace = [_job("first", 16, 0.0), _job("second", 16, 10.0)]
    plane = sim.simulate(trace, fleet, quotas, budgets, catalog, "plane", hours=3)
    starts = {p.request_id: p.start_s for p in plane.placements}
    assert starts["first"] == 0.0
    assert starts["second"] == math.ceil(3600 / sim.TICK_S) * sim.TICK_S  # next tick after
    assert (plane.deferred, plane.quota_violations, plane.placed) == (1, 0, 2)
    naive = sim.simulate(trace, fleet, quotas, budgets, catalog, "naive", hours=3)
    assert naive.quota_violations == 1 and {p.start_s for p in naive.placements} == {0.0, 30.0}
    short = sim.simulate(
        trace, fleet, quotas, budgets, catalog, "plane", hours=3, deadline_s=1800.0
    )
    assert (short.placed, short.expired) == (1, 1)
    tight = {"t": Budget("t", 1.5)}  # room for one $1.10 run, not two
    spent = sim.simulate(trace, fleet, quotas | {"t": TeamQuota("t", 4)}, tight, catalog, "plane")
    assert (spent.placed, spent.budget_overruns) == (1, 0)


def test_unknown_policy_is_refused() -> None:
    fleet, quotas, budgets, catalog = _tiny()
    with pytest.raises(ValueError, match="unknown policy"):
        sim.simulate([_job("a", 16)], fleet, quotas, budgets, catalog, "fastest")


def test_plane_simulate_command(capsys) -> None:
    assert plane_main(["simulate", "--requests", "12"]) == 0
    out = capsys.readouterr().out
    assert "seed_scenario(requests x 12, hours=24)" in out
    assert "hindsight" in out and "residency" in out
    results = sim.compare(sim.seed_like_scenario(0, n_batches=12), ("naive", "plane"))
    saving = sim.summary(results)["plane_vs_naive"]
    assert f"plane vs naive: {saving:.1%} lower cost per 1,000" in out
    assert plane_main(["simulate", "--requests", "12", "--policies", "naive,plane", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["results"]) == {"naive", "plane"}
    assert payload["results"]["plane"]["cost_per_1000_usd"] == pytest.approx(
        results["plane"].cost_per_1000_usd, abs=1e-4
    )
    assert plane_main(["simulate", "--policies", "fastest"]) == 2
