"""The Azure LLM inference trace, copied into data/, turned into the simulator's requests."""

from pathlib import Path

import pytest

from reasoning_plane import simulation as sim

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data" / "azure-llm-inference-2023"


def test_the_trace_is_in_the_project_with_its_license_and_attribution() -> None:
    assert sim.AZURE_TRACE == DATA / "AzureLLMInferenceTrace_conv.csv"
    assert "Attribution 4.0" in (DATA / "LICENSE").read_text()
    readme = (DATA / "README.md").read_text()
    assert "Splitwise" in readme and "Patel" in readme
    credits = (REPO / "README.md").read_text()
    assert "data/azure-llm-inference-2023/" in credits and "Splitwise" in credits


def test_rows_map_to_requests_as_documented() -> None:
    rows = sim.read_trace(limit=300)
    assert len(rows) == 300 and rows[0] == (0.0, 374, 44)
    assert rows[1][0] == pytest.approx(50.9951690 - 46.6805900, abs=1e-6)
    arrivals = [r[0] for r in rows]
    assert arrivals == sorted(arrivals)
    mapping = sim.TraceMapping()
    trace = sim.trace_requests(rows, seed=1)
    assert trace == sim.trace_requests(rows, seed=1) != sim.trace_requests(rows, seed=2)
    for (arrival, context, generated), tr in zip(rows, trace, strict=True):
        r = tr.request
        assert tr.arrival_s == pytest.approx(arrival, abs=1e-3)
        expected = context / mapping.prefill_tokens_per_s + generated / mapping.decode_tokens_per_s
        assert r.estimated_duration_s == pytest.approx(max(expected, 0.001), abs=1e-4)
        if context <= mapping.small_context:
            assert (r.gpu_count, r.gpu_memory_gb) == (1, mapping.small_memory_gb)
        elif context <= mapping.large_context:
            assert (r.gpu_count, r.gpu_memory_gb) == (1, mapping.medium_memory_gb)
        team = {t[0]: t for t in sim.TEAMS}[r.team]
        assert r.datasets[0] in team[2]
        assert r.data_gb == pytest.approx((context + generated) * 4 / 1e9)
    assert {r.request.gpu_memory_gb for r in trace} == {16.0, 40.0}
    assert len({r.request.team for r in trace}) == len(sim.TEAMS)


def test_a_bad_row_is_refused_with_its_place(tmp_path) -> None:
    bad = tmp_path / "trace.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,10,x\n")
    with pytest.raises(ValueError, match=r"trace\.csv: row 2: ContextTokens/GeneratedTokens"):
        sim.read_trace(bad)
    bad.write_text("TIMESTAMP,ContextTokens\n")
    with pytest.raises(ValueError, match=r"trace\.csv: header: missing column GeneratedTokens"):
        sim.read_trace(bad)


def test_azure_scenario_runs_every_policy_and_the_plane_keeps_the_rules() -> None:
    scenario = sim.azure_scenario(seed=0, limit=400)
    assert len(scenario.trace) == 400 and scenario.unit == "1,000 LLM inference requests"
    results = sim.compare(scenario, sim.POLICIES)
    plane, naive, best = (results[p] for p in ("plane", "naive", "hindsight"))
    assert plane.violations == plane.slo_misses == 0
    assert naive.residency_violations > 0
    assert best.lower_bound_usd <= best.total_cost_usd + 1e-9 <= plane.total_cost_usd + 2e-9
