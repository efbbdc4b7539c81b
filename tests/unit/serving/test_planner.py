"""The residency planner: memory never exceeded, residency from the governance rules,
hysteresis against thrashing, sleep for idle vLLM models, clear errors for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoning_plane.serving.memory import ModelShape, NodeMemory, ServingConfig
from reasoning_plane.serving.planner import (
    COLD,
    LOADED,
    SLEEPING,
    Demand,
    PlannerSettings,
    Residency,
    ServedModel,
    ServingNode,
    plan,
)
from tests.unit.plane.factory import CATALOG, fleet

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
FLEET = fleet()
EU, US = "eu-fra-a10", "us-east-a100"


def node(
    name: str = "spark",
    cluster: str = EU,
    total: float = 20.0,
    reserve: float = 4.0,
    runtimes=("llama.cpp", "vllm"),
) -> ServingNode:
    return ServingNode(
        name, cluster, NodeMemory(total, reserve, "/proc/meminfo"), frozenset(runtimes)
    )


def model(
    name: str,
    weights: float = 10.0,
    runtime: str = "llama.cpp",
    cold: float = 1.3,
    wake: float | None = None,
    datasets=(),
    sleep_gb: float | None = None,
) -> ServedModel:
    return ServedModel(
        name,
        ModelShape(name, weights, layers=18, kv_heads=1, head_dim=256),
        ServingConfig(context_tokens=2048, parallel_slots=1, runtime_overhead_gb=0.5),
        runtime,
        cold,
        wake,
        sleep_gb,
        tuple(datasets),
    )


def demand(name: str, requests: int, ago_s: float = 5.0, window_s: float = 600.0) -> Demand:
    return Demand(name, requests, requests * 100, window_s, NOW - timedelta(seconds=ago_s))


def held(m: str, state: str, ago_s: float, n: str = "spark", runtime: str = "llama.cpp"):
    return Residency(n, runtime, m, state, NOW - timedelta(seconds=ago_s))


def run(nodes, models, dem, cur=(), **kw):
    return plan(nodes, models, dem, cur, NOW, fleet=FLEET, catalog=CATALOG, **kw)


def test_two_models_that_do_not_fit_together_the_busier_one_is_loaded() -> None:
    p = run([node()], [model("a"), model("b")], {"a": demand("a", 10), "b": demand("b", 40)})
    assert p.state("spark", "llama.cpp", "b") == LOADED
    assert p.state("spark", "llama.cpp", "a") == COLD
    row = next(r for r in p.rows if r.model == "b")
    assert "req/h" in row.why and "GB" in row.memory
    assert p.used_gb("spark") <= 16.0


def test_a_model_loaded_under_min_residency_is_not_evicted_for_a_busier_one() -> None:
    cur = [held("a", LOADED, 60)]
    p = run([node()], [model("a"), model("b")], {"a": demand("a", 1), "b": demand("b", 100)}, cur)
    assert p.state("spark", "llama.cpp", "a") == LOADED
    assert "minimum residency" in next(r.why for r in p.rows if r.model == "a")
    # past the minimum residency the busier model takes its place
    cur = [held("a", LOADED, 3600)]
    p = run([node()], [model("a"), model("b")], {"a": demand("a", 1), "b": demand("b", 100)}, cur)
    assert p.state("spark", "llama.cpp", "b") == LOADED
    assert p.state("spark", "llama.cpp", "a") == COLD


def test_memory_forces_out_a_protected_model_and_says_so() -> None:
    cur = [held("a", LOADED, 10), held("b", LOADED, 20)]
    p = run([node()], [model("a"), model("b")], {"a": demand("a", 5), "b": demand("b", 9)}, cur)
    assert p.state("spark", "llama.cpp", "b") == LOADED
    why = next(r.why for r in p.rows if r.model == "a")
    assert p.state("spark", "llama.cpp", "a") == COLD and "memory forces" in why


def test_an_incumbent_keeps_its_place_unless_the_newcomer_clearly_has_more_demand() -> None:
    cur = [held("a", LOADED, 3600)]
    models = [model("a"), model("b")]
    p = run([node()], models, {"a": demand("a", 10), "b": demand("b", 15)}, cur)
    assert p.state("spark", "llama.cpp", "a") == LOADED  # 15 < 2 x 10
    p = run([node()], models, {"a": demand("a", 10), "b": demand("b", 25)}, cur)
    assert p.state("spark", "llama.cpp", "b") == LOADED


def test_a_model_unloaded_in_the_cooldown_is_not_reloaded_for_marginal_demand() -> None:
    cur = [held("a", COLD, 30)]
    p = run([node()], [model("a")], {"a": demand("a", 1)}, cur)
    assert p.state("spark", "llama.cpp", "a") == COLD
    assert "cool-down" in p.rows[0].why
    assert run([node()], [model("a")], {"a": demand("a", 10)}, cur).rows[0].state == LOADED
    later = [held("a", COLD, 3600)]
    assert run([node()], [model("a")], {"a": demand("a", 1)}, later).rows[0].state == LOADED


def test_eu_personal_data_model_is_loaded_only_in_the_eu() -> None:
    nodes = [node("us-box", US, total=80), node("eu-box", EU, total=20)]
    m = model("copilot", weights=12, datasets=["customer_orders_eu"])
    p = run(nodes, [m], {"copilot": demand("copilot", 50)})
    assert p.loaded("copilot") == [("eu-box", "llama.cpp")]
    us = next(r for r in p.rows if r.node == "us-box")
    assert us.state == COLD and "residency EU; cluster zone is US" in us.why
    # the EU node too small: the model is not loaded at all, never in the US
    nodes = [node("us-box", US, total=80), node("eu-box", EU, total=8)]
    assert run(nodes, [m], {"copilot": demand("copilot", 50)}).loaded("copilot") == []


def test_unknown_data_goes_nowhere() -> None:
    nodes = [node("us-box", US), node("eu-box", EU)]
    for datasets in (["not_in_catalog"], ["mystery"]):
        m = model("x", weights=2, datasets=datasets)
        p = run(nodes, [m], {"x": demand("x", 50)})
        assert p.loaded("x") == []
        assert all("may not be loaded here" in r.why for r in p.rows)


def test_idle_vllm_model_sleeps_and_wakes_when_demand_is_back() -> None:
    m = model("v", runtime="vllm", cold=30, wake=2, sleep_gb=1.0)
    cur = [held("v", LOADED, 7200, runtime="vllm")]
    p = run([node()], [m], {"v": demand("v", 3, ago_s=900, window_s=3600)}, cur)
    assert p.rows[0].state == SLEEPING and p.rows[0].memory_gb == 1.0
    asleep = [held("v", SLEEPING, 600, runtime="vllm")]
    p = run([node()], [m], {"v": demand("v", 3, ago_s=5)}, asleep)
    assert p.rows[0].state == LOADED and "woken" in p.rows[0].why
    # llama.cpp cannot sleep: the idle model stays loaded while nobody needs the memory
    cur = [held("a", LOADED, 7200)]
    p = run([node()], [model("a")], {"a": demand("a", 3, ago_s=900, window_s=3600)}, cur)
    assert p.rows[0].state == LOADED


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"nodes": [node(cluster="atlantis")]}, "cluster 'atlantis' is not in the fleet"),
        ({"nodes": [node(), node()]}, "spark: named twice"),
        ({"nodes": [node(runtimes=("tgi",))]}, "runtime 'tgi'"),
        ({"models": [model("a", runtime="tgi")]}, "runtime 'tgi'"),
        ({"models": [model("a", cold=float("nan"))]}, "cold_load_s"),
        ({"current": [held("a", "warm", 5)]}, "state 'warm'"),
        ({"now": datetime(2026, 1, 1)}, "now: must be timezone-aware"),
    ],
)
def test_bad_input_is_a_clear_error(kw, problem) -> None:
    args = {"nodes": [node()], "models": [model("a")], "current": [], "now": NOW}
    args.update(kw)
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        plan(
            args["nodes"],
            args["models"],
            {},
            args["current"],
            args["now"],
            fleet=FLEET,
            catalog=CATALOG,
        )


def test_bad_demand_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="demand: a: requests and tokens must be >= 0"):
        run([node()], [model("a")], {"a": Demand("a", -1, 0, 60.0)})


def test_bad_settings_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="switch_margin"):
        PlannerSettings(switch_margin=0.5)
    with pytest.raises(ValueError, match="cooldown_s"):
        PlannerSettings(cooldown_s=-1)


_names = st.sampled_from(["a", "b", "c", "d", "e"])


@st.composite
def _inputs(draw):
    nodes = [
        node(
            f"n{i}",
            draw(st.sampled_from([EU, US])),
            total=draw(st.floats(1, 64)),
            reserve=draw(st.floats(0, 8)),
            runtimes=draw(st.sampled_from([("llama.cpp",), ("vllm",), ("llama.cpp", "vllm")])),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    models = []
    for name in draw(st.lists(_names, min_size=1, max_size=5, unique=True)):
        runtime = draw(st.sampled_from(["llama.cpp", "vllm"]))
        models.append(
            model(
                name,
                weights=draw(st.floats(0.1, 40)),
                runtime=runtime,
                wake=2.0 if runtime == "vllm" else None,
                sleep_gb=draw(st.floats(0, 3)),
                datasets=draw(
                    st.sampled_from([(), ("customer_orders_eu",), ("conference_transcripts",)])
                ),
            )
        )
    dem = {
        m.name: demand(m.name, draw(st.integers(0, 500)), ago_s=draw(st.floats(0, 7200)))
        for m in models
        if draw(st.booleans())
    }
    cur = [
        held(
            m.name,
            draw(st.sampled_from([LOADED, SLEEPING, COLD])),
            draw(st.floats(0, 7200)),
            n=n.name,
            runtime=m.runtime,
        )
        for m in models
        for n in nodes
        if m.runtime in n.runtimes and draw(st.booleans())
    ]
    return nodes, models, dem, cur


@settings(max_examples=300, deadline=None)
@given(_inputs())
def test_no_plan_exceeds_a_node_budget_or_residency(inputs) -> None:
    nodes, models, dem, cur = inputs
    p = run(nodes, models, dem, cur)
    for n in nodes:
        assert p.used_gb(n.name) <= n.memory.budget_gb + 1e-6
    for r in p.rows:
        if r.state != COLD and r.model in {
            m.name for m in models if m.datasets == ("customer_orders_eu",)
        }:
            assert next(n for n in nodes if n.name == r.node).cluster == EU
    for m in models:  # one replica per model
        assert len(p.loaded(m.name)) <= 1
    hold = PlannerSettings()
    for c in cur:
        row = next(
            r for r in p.rows if (r.node, r.runtime, r.model) == (c.node, c.runtime, c.model)
        )
        age = (NOW - c.since).total_seconds()
        if c.state == LOADED and age < hold.min_residency_s and row.state == COLD:
            assert "memory forces" in row.why or "may not be loaded" in row.why, row.why
        if c.state == COLD and age < hold.cooldown_s:
            requests = dem[c.model].requests if c.model in dem else 0
            if requests < hold.marginal_requests and not any(
                x.state == LOADED and x.model == c.model for x in cur
            ):
                assert p.loaded(c.model) == []


def test_a_displaced_vllm_model_sleeps_rather_than_going_cold() -> None:
    models = [
        model("v1", runtime="vllm", cold=30, wake=2, sleep_gb=1.0),
        model("v2", runtime="vllm", cold=30, wake=2, sleep_gb=1.0),
    ]
    cur = [held("v1", LOADED, 7200, runtime="vllm")]
    p = run([node()], models, {"v1": demand("v1", 2), "v2": demand("v2", 50)}, cur)
    assert p.state("spark", "vllm", "v2") == LOADED
    assert p.state("spark", "vllm", "v1") == SLEEPING
    assert p.used_gb("spark") <= 16.0


def test_a_model_loaded_where_its_data_may_not_be_is_unloaded_even_under_min_residency() -> None:
    nodes = [node("us-box", US, total=80), node("eu-box", EU, total=20)]
    m = model("copilot", weights=12, datasets=["customer_orders_eu"])
    cur = [held("copilot", LOADED, 10, n="us-box")]
    p = run(nodes, [m], {"copilot": demand("copilot", 50)}, cur)
    assert p.state("us-box", "llama.cpp", "copilot") == COLD
    assert p.loaded("copilot") == [("eu-box", "llama.cpp")]


# -- hysteresis in units of reload time (reload_multiple) ---------------------------------------

PRICED = PlannerSettings(reload_multiple=10)  # holds <= 10 x the cold load


def test_a_cheap_model_under_min_residency_gives_way_where_a_costly_one_does_not() -> None:
    # loaded 60 s ago, under the configured 600 s, and the newcomer has 10x its demand
    dem = {"a": demand("a", 10), "b": demand("b", 100)}
    for cold, swapped in ((1.3, True), (120.0, False)):  # holds 13 s vs 600 s (10 x 120 capped)
        models = [model("a", cold=cold), model("b", cold=cold)]
        p = run([node()], models, dem, [held("a", LOADED, 60)], settings=PRICED)
        assert (p.state("spark", "llama.cpp", "b") == LOADED) is swapped, cold
        assert (p.state("spark", "llama.cpp", "a") == LOADED) is not swapped, cold
        if not swapped:
            why = next(r.why for r in p.rows if r.model == "a")
            assert "minimum residency of 10 min" in why and "10 x its 120.0 s cold load" in why
    # unset, the configured seconds hold the cheap model too (as before)
    models = [model("a"), model("b")]
    p = run([node()], models, dem, [held("a", LOADED, 60)])
    assert p.state("spark", "llama.cpp", "a") == LOADED


def test_a_cheap_model_comes_back_in_its_cooldown_where_a_costly_one_does_not() -> None:
    for cold, back in ((1.3, True), (120.0, False)):
        cur = [held("a", COLD, 30)]  # unloaded 30 s ago: past 13 s, under 300 s
        p = run([node()], [model("a", cold=cold)], {"a": demand("a", 1)}, cur, settings=PRICED)
        assert (p.rows[0].state == LOADED) is back, cold


def test_a_cheap_incumbents_switch_margin_shrinks_toward_one() -> None:
    # b has 1.5x a's demand: under a margin of 2 (a costly model) a stays; a cheap one gives way
    dem = {"a": demand("a", 10), "b": demand("b", 15)}
    for cold, swapped in ((1.3, True), (120.0, False)):
        models = [model("a", cold=cold), model("b", cold=cold)]
        p = run([node()], models, dem, [held("a", LOADED, 3600)], settings=PRICED)
        assert (p.state("spark", "llama.cpp", "b") == LOADED) is swapped, cold
    assert PRICED.margin(1.3) == pytest.approx(1 + 13 / 600)
    assert PRICED.margin(120.0) == PRICED.switch_margin


def test_an_idle_cheap_incumbent_no_longer_defends_its_place_with_old_demand() -> None:
    # a served 10x b's requests in the window, but none for 20 s (past 10 x 1.3 s)
    dem = {"a": demand("a", 100, ago_s=20), "b": demand("b", 10)}
    for cold, swapped in ((1.3, True), (120.0, False)):
        models = [model("a", cold=cold), model("b", cold=cold)]
        p = run([node()], models, dem, [held("a", LOADED, 3600)], settings=PRICED)
        assert (p.state("spark", "llama.cpp", "b") == LOADED) is swapped, cold
    # a busy cheap incumbent (last request 5 s ago) keeps its place
    dem = {"a": demand("a", 100, ago_s=5), "b": demand("b", 10)}
    p = run([node()], [model("a"), model("b")], dem, [held("a", LOADED, 3600)], settings=PRICED)
    assert p.state("spark", "llama.cpp", "a") == LOADED


def test_a_bad_reload_multiple_is_a_clear_error() -> None:
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="reload_multiple"):
            PlannerSettings(reload_multiple=bad)


@settings(max_examples=300, deadline=None)
@given(_inputs(), st.sampled_from([0.5, 2.0, 10.0, 100.0]))
def test_no_plan_priced_in_reload_times_exceeds_a_budget_or_residency(inputs, k) -> None:
    nodes, models, dem, cur = inputs
    hold = PlannerSettings(reload_multiple=k)
    p = run(nodes, models, dem, cur, settings=hold)
    eu_only = {m.name for m in models if m.datasets == ("customer_orders_eu",)}
    for n in nodes:
        assert p.used_gb(n.name) <= n.memory.budget_gb + 1e-6
    for r in p.rows:
        if r.state != COLD and r.model in eu_only:
            assert next(n for n in nodes if n.name == r.node).cluster == EU
    for m in models:
        assert len(p.loaded(m.name)) <= 1
    cold_load = {(m.name, m.runtime): m.cold_load_s for m in models}
    for c in cur:
        row = next(
            r for r in p.rows if (r.node, r.runtime, r.model) == (c.node, c.runtime, c.model)
        )
        age = (NOW - c.since).total_seconds()
        protect = hold.hold_s(hold.min_residency_s, cold_load[(c.model, c.runtime)])
        if c.state == LOADED and age < protect and row.state == COLD:
            assert "memory forces" in row.why or "may not be loaded" in row.why, row.why
