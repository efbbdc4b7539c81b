"""Speed of the reasoning plane's decision path on synthetic fleets.

Measures, on seeded synthetic worlds (fleets of 10, 100 and 1,000 clusters with 1-3 GPU pools
each, mixed zones and certifications, a governance catalog, team quotas and budgets, fresh
telemetry):

* ``placement.place``: latency of one decision, p50/p99 over many requests, per fleet size.
  ``warm``: every request decided on the same snapshot (what a tick does); ``cold``: a new
  snapshot object per decision (what ``plane replay`` does: nothing can be reused);
* ``batch.place_batch``: wall time for 1, 100 and 10,000 pending requests per fleet size
  (a combination whose estimate exceeds ``--budget-s`` is skipped and reported as skipped);
* ``tick.run_tick``: a full placement tick with 1,000 pending requests on the real embedded
  PostgreSQL (fresh ``plane`` schema): snapshot from the database, joint placement, every
  decision logged with its snapshot and explanation, placed ones reserved, one transaction.

Writes ``benchmarks/out/decision_speed.json``, the chart ``benchmarks/decision_latency.png``
(when matplotlib is importable) and prints a Markdown section for ``benchmarks/RESULTS.md``.

    python benchmarks/decision_speed.py                 # everything (about 10 minutes)
    python benchmarks/decision_speed.py --quick         # small sizes, no database
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from machine import machine  # noqa: E402  (benchmarks/ is on sys.path)

from data_plane.catalog import CatalogRecord  # noqa: E402
from reasoning_plane import placement  # noqa: E402
from reasoning_plane.batch import place_batch  # noqa: E402
from reasoning_plane.model import (  # noqa: E402
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    Snapshot,
    TeamQuota,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.policy import PlacementPolicy  # noqa: E402

OUT_DIR = REPO / "benchmarks" / "out"
CHART = REPO / "benchmarks" / "decision_latency.png"

# Targets of issue 6.
TARGET_DECISION_P99_MS = 5.0  # per decision, 1,000 clusters
TARGET_BATCH_10K_S = 2.0  # 10,000 pending requests placed jointly
TARGET_TICK_1K_S = 5.0  # a full tick with 1,000 pending requests

ZONES = ("EU", "US", "UK", "APAC")
CERTS = ("GDPR", "ISO27001", "SOC2", "HIPAA")
GPUS = (  # type, GB per GPU, USD per GPU-hour, speed, inference latency ms
    ("H100-80GB", 80, 4.90, 2.2, 12.0),
    ("A100-80GB", 80, 3.67, 1.0, 18.0),
    ("L40S", 48, 1.90, 1.2, 25.0),
    ("A10", 24, 1.10, 0.45, 45.0),
    ("L4", 24, 0.80, 0.5, 40.0),
    ("T4", 16, 0.50, 0.3, 60.0),
)
CLASSES = (("PUBLIC", 30), ("INTERNAL", 25), ("CONFIDENTIAL", 15), ("PII", 25), ("UNKNOWN", 5))
N_TEAMS = 20
N_DATASETS = 200


@dataclasses.dataclass(frozen=True)
class World:
    fleet: Fleet
    quotas: dict[str, TeamQuota]
    budgets: dict[str, Budget]
    catalog: dict[str, CatalogRecord]

    def samples(self, now: datetime, seed: int) -> list[TelemetrySample]:
        """Fresh telemetry (0-2 s old) for every pool; NVML free memory on a tenth of them."""
        rng = random.Random(seed)
        out = []
        for c in self.fleet.clusters:
            for p in c.pools:
                free_mem = None
                if rng.random() < 0.1:
                    free_mem = round(p.memory_gb * rng.uniform(0.2, 1.0), 1)
                out.append(
                    TelemetrySample(
                        c.name,
                        p.gpu_type,
                        rng.randint(0, p.total),
                        round(rng.uniform(0.05, 0.98), 3),
                        now - timedelta(seconds=rng.uniform(0.0, 2.0)),
                        free_mem,
                    )
                )
        return out

    def snapshot(self, now: datetime, seed: int) -> Snapshot:
        return Snapshot(
            fleet=self.fleet,
            quotas=self.quotas,
            budgets=self.budgets,
            usage={},
            telemetry={(s.cluster, s.gpu_type): s for s in self.samples(now, seed)},
            catalog=self.catalog,
            now=now,
        )


def _weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def build_world(n_clusters: int, seed: int = 6) -> World:
    rng = random.Random(seed * 1_000_003 + n_clusters)
    clusters = []
    for i in range(n_clusters):
        zone = rng.choice(ZONES)
        certs = {c for c in CERTS if rng.random() < 0.6}
        if zone == "EU" and rng.random() < 0.8:
            certs.add("GDPR")
        pools = []
        for gpu_type, mem, price, speed, lat in rng.sample(GPUS, rng.randint(1, 3)):
            pools.append(
                GpuPool(
                    gpu_type=gpu_type,
                    memory_gb=mem,
                    total=rng.choice((8, 16, 32, 64)),
                    price_per_hour=round(price * rng.uniform(0.8, 1.3), 2),
                    speed=speed,
                    inference_latency_ms=lat,
                    node_labels={"nvidia.com/gpu.product": gpu_type},
                )
            )
        cpu_slots = rng.choice((0, 0, 4, 8, 16))
        clusters.append(
            Cluster(
                name=f"c{i:04d}-{zone.lower()}",
                zone=zone,
                region=f"{zone.lower()}-{i % 7}",
                location=f"site {i}",
                certifications=frozenset(certs),
                pools=tuple(pools),
                egress_per_gb=round(rng.uniform(0.01, 0.1), 3),
                latency_ms={
                    z: round(rng.uniform(3, 12) if z == zone else rng.uniform(60, 220), 1)
                    for z in ZONES
                },
                kube_context=f"ctx-{i}",
                cpu_price_per_hour=round(rng.uniform(0.2, 0.6), 2) if cpu_slots else 0.0,
                cpu_slots=cpu_slots,
                accepts_unknown_residency=rng.random() < 0.05,
            )
        )
    catalog = {}
    for k in range(N_DATASETS):
        cls = _weighted(rng, CLASSES)
        r = rng.random()
        residency = "EU+US" if r < 0.03 else "UNKNOWN" if r < 0.05 else rng.choice(ZONES)
        name = f"ds{k:03d}"
        catalog[name] = CatalogRecord(
            dataset_id=name,
            classification=cls,
            data_residency=residency,
            retention_policy="1_year",
            storage_endpoints=(f"s3://bench/{name}",),
            gdpr_compliant=residency == "EU" and cls in ("PII", "CONFIDENTIAL"),
            data_classification="Level_2",
            source_system="bench",
            last_updated="2026-01-01T00:00:00Z",
        )
    gpus_total = sum(p.total for c in clusters for p in c.pools)
    teams = [f"team{t:02d}" for t in range(N_TEAMS)]
    quotas = {
        t: TeamQuota(t, max(8, int(gpus_total / N_TEAMS * rng.uniform(0.5, 1.5))), "bench")
        for t in teams[:-1]  # the last team has no quota: CPU only
    }
    budgets = {t: Budget(t, rng.choice((2_000.0, 20_000.0, 200_000.0))) for t in teams}
    return World(Fleet(tuple(clusters)), quotas, budgets, catalog)


def build_requests(world: World, n: int, seed: int = 7, prefix: str = "r") -> list[WorkloadRequest]:
    rng = random.Random(seed * 7919 + n)
    names = sorted(world.catalog)
    teams = [f"team{t:02d}" for t in range(N_TEAMS)]
    clusters = [c.name for c in world.fleet.clusters]
    out = []
    for i in range(n):
        datasets = rng.sample(names, rng.choice((1, 1, 1, 2, 3)))
        if rng.random() < 0.02:
            datasets.append("ghost")  # no catalog record: fail closed
        gpu_count = rng.choice((0, 1, 1, 1, 1, 2, 2, 4, 8))
        recurring = rng.random() < 0.03
        out.append(
            WorkloadRequest(
                request_id=f"{prefix}{i:05d}",
                workload=f"embeddings/w{i % 50}",
                team=rng.choice(teams),
                datasets=tuple(datasets),
                gpu_count=gpu_count,
                gpu_memory_gb=rng.choice((8, 16, 24, 40, 80)),
                estimated_duration_s=round(rng.uniform(600, 36_000)),
                data_gb=round(rng.uniform(0, 500), 1),
                latency_slo_ms=None if rng.random() < 0.4 else rng.choice((150, 300, 1000)),
                priority=rng.choice((50, 100, 100, 200)),
                gpu_optional=gpu_count > 0 and rng.random() < 0.1,
                recurring=recurring,
                current_cluster=rng.choice(clusters) if recurring else None,
            )
        )
    return out


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence file descriptor 1 while measuring: this HiGHS build prints progress lines of its
    MIP solver there, from C, whatever the options say."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class FullCollections:
    """Counts the cyclic garbage collector's full (generation 2) collections and their time."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._start

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def bench_place(world: World, n_requests: int, policy: PlacementPolicy) -> dict[str, Any]:
    now = datetime.now(UTC)
    snapshot = world.snapshot(now, seed=1)
    requests = build_requests(world, n_requests, prefix="p")
    n_candidates = [len(placement.evaluate(r, snapshot, policy)) for r in requests]
    placement.place(requests[0], snapshot, policy)  # imports, first-use work
    warm, cold = [], []
    with FullCollections() as full:
        for r in requests:
            t0 = time.perf_counter()
            placement.place(r, snapshot, policy)
            warm.append(time.perf_counter() - t0)
    for r in requests[: max(n_requests // 4, 20)]:
        fresh = dataclasses.replace(snapshot)  # same data, a new object: nothing cached
        t0 = time.perf_counter()
        placement.place(r, fresh, policy)
        cold.append(time.perf_counter() - t0)
    ms = 1000.0
    return {
        "requests": len(requests),
        "mean_candidates": sum(n_candidates) / len(n_candidates),
        "warm_p50_ms": pct(warm, 0.50) * ms,
        "warm_p99_ms": pct(warm, 0.99) * ms,
        "warm_max_ms": max(warm) * ms,
        "warm_mean_ms": sum(warm) / len(warm) * ms,
        "full_gc_collections": full.count,
        "full_gc_ms": full.seconds * ms,
        "tracked_objects": len(gc.get_objects()),
        "cold_requests": len(cold),
        "cold_p50_ms": pct(cold, 0.50) * ms,
        "cold_p99_ms": pct(cold, 0.99) * ms,
    }


def bench_batch(
    world: World, n_requests: int, policy: PlacementPolicy, repeat: int
) -> dict[str, Any]:
    now = datetime.now(UTC)
    snapshot = world.snapshot(now, seed=2)
    requests = build_requests(world, n_requests, prefix="b")
    times = []
    decisions = []
    for _ in range(repeat):
        decisions = []
        gc.collect()
        t0 = time.perf_counter()
        with quiet_stdout():
            decisions = place_batch(requests, snapshot, policy)
        times.append(time.perf_counter() - t0)
    statuses: dict[str, int] = {}
    for d in decisions:
        statuses[d.status] = statuses.get(d.status, 0) + 1
    evaluations = sum(len(d.evaluations) for d in decisions)
    del decisions
    gc.collect()
    return {
        "requests": n_requests,
        "runs": repeat,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "best_s": min(times),
        "median_s": sorted(times)[len(times) // 2],
        "evaluations": evaluations,
        "statuses": statuses,
    }


def bench_tick(
    world: World,
    n_requests: int,
    policy: PlacementPolicy,
    signer: Any = None,
    role: str | None = None,
) -> dict[str, Any]:
    """One full tick; ``signer``: sign every decision as the sensors do (benchmarks/signing.py
    times it with and without); ``role``: tick as that database role (benchmarks/roles.py),
    else as the administrator."""
    import psycopg

    from reasoning_plane import snapshot as snapshot_mod
    from reasoning_plane import store, tick
    from resources.database import database_url

    url = database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")
    requests = build_requests(world, n_requests, prefix="t")
    pending = [tick.Pending(r, f"bench:{r.request_id}") for r in requests]
    phases: dict[str, float] = {}
    real_place_batch = tick.place_batch

    def timed_place_batch(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real_place_batch(*args, **kwargs)
        finally:
            phases["place_batch_s"] = time.perf_counter() - t0

    def snapshot_of(conn: psycopg.Connection) -> Snapshot:
        t0 = time.perf_counter()
        snap = snapshot_mod.build_snapshot(
            conn,
            fleet=world.fleet,
            quotas=world.quotas,
            budgets=world.budgets,
            catalog=world.catalog,
            now=datetime.now(UTC),
        )
        phases["snapshot_s"] = time.perf_counter() - t0
        return snap

    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        store.insert_samples(conn, world.samples(datetime.now(UTC), seed=3))
        conn.commit()
    with psycopg.connect(database_url(role=role) if role else url) as conn:
        store.ensure_schema(conn)
        gc.collect()
        tick.place_batch = timed_place_batch
        try:
            t0 = time.perf_counter()
            with quiet_stdout():
                result = tick.run_tick(conn, pending, snapshot_of, policy, signer)
            conn.commit()
            total = time.perf_counter() - t0
        finally:
            tick.place_batch = real_place_batch
        logged = conn.execute("SELECT count(*) FROM plane.decisions").fetchone()[0]
        reserved = conn.execute(
            "SELECT count(*) FROM plane.ledger WHERE kind = 'reserve'"
        ).fetchone()[0]
        log_bytes, text_bytes = conn.execute(
            "SELECT coalesce(sum(pg_column_size(payload) + pg_column_size(explanation)), 0),"
            " coalesce(sum(octet_length(payload::text) + octet_length(explanation)), 0)"
            " FROM plane.decisions"
        ).fetchone()
    placed = len(result.placed())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")
    assert logged == n_requests and reserved == placed, (logged, reserved, placed)
    log_s = total - phases.get("snapshot_s", 0.0) - phases.get("place_batch_s", 0.0)
    return {
        "requests": n_requests,
        "total_s": total,
        "snapshot_s": phases.get("snapshot_s"),
        "place_batch_s": phases.get("place_batch_s"),
        "log_and_reserve_s": log_s,
        "decisions_logged": logged,
        "placed_and_reserved": placed,
        "log_mb": log_bytes / 1e6,  # as stored (compressed)
        "log_text_mb": text_bytes / 1e6,  # JSON and EXPLAIN text written
        "policy_exact_max_pairs": policy.exact_max_pairs,
    }


def chart(results: dict[str, Any], path: Path, before: dict[str, Any] | None = None) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not importable: chart skipped"
    rows = sorted((int(k), v) for k, v in results["place"].items())
    if not rows:
        return "no per-decision figures: chart skipped"
    sizes = [k for k, _ in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(sizes, [v["warm_p50_ms"] for _, v in rows], "o-", label="p50 (warm snapshot)")
    ax.plot(sizes, [v["warm_p99_ms"] for _, v in rows], "s-", label="p99 (warm snapshot)")
    ax.plot(sizes, [v["cold_p99_ms"] for _, v in rows], "^--", label="p99 (new snapshot)")
    old = sorted((int(k), v) for k, v in (_get(before, "place") or {}).items())
    if old:
        ax.plot(
            [k for k, _ in old],
            [v["warm_p99_ms"] for _, v in old],
            "s:",
            color="grey",
            label="p99 before this change",
        )
    ax.axhline(TARGET_DECISION_P99_MS, color="red", ls=":", label="target p99 5 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clusters in the fleet (1-3 GPU pools each)")
    ax.set_ylabel("ms per decision (placement.place)")
    ax.set_title("Reasoning plane: latency of one placement decision")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return f"chart written to {path}"


def _verdict(value: float | None, target: float, unit: str) -> str:
    if value is None:
        return "not measured"
    if value <= target:
        return f"**met** ({value:.3g} {unit}, target {target:g} {unit})"
    return f"**missed** by {value - target:.3g} {unit} ({value:.3g} {unit}, {value / target:.1f}x)"


def _get(results: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(results, dict):
            return None
        results = results.get(key)
    return results


def _cell(after: Any, before: Any, fmt: str) -> str:
    if after is None:
        return "-"
    text = format(after, fmt)
    if isinstance(before, int | float):
        text = f"{format(before, fmt)} → {text}"
    return text


def markdown(results: dict[str, Any], command: str, before: dict[str, Any] | None) -> str:
    m = results["machine"]
    lines = [
        "## Decision speed (`benchmarks/decision_speed.py`)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['nproc']} CPUs (`nproc`), {m['cpu_model']} (/proc/cpuinfo), "
        f"Python {m['python']}.",
        "",
        "Synthetic seeded worlds: 1-3 GPU pools per cluster, 4 zones, mixed certifications, "
        f"{N_DATASETS} catalog records (PII, confidential, public...), {N_TEAMS} teams with "
        "quotas and budgets, fresh telemetry; requests of 0-8 GPUs, 1-3 inputs, SLOs, "
        "priorities 50/100/200 (three tiers). Default placement policy.",
    ]
    if before:
        lines += [
            "",
            "Cells read `before → after`: before is the same benchmark on the code before this "
            f"change ({_get(before, 'machine', 'cpu_model')}, "
            f"{_get(before, 'machine', 'nproc')} CPUs; "
            "`benchmarks/out/decision_speed_before.json`).",
        ]
    lines += [
        "",
        "### One decision (`placement.place`), 1,000-cluster target: p99 under 5 ms",
        "",
        "| clusters | candidates / request | p50 ms | p99 ms | max ms | full GCs | "
        "p99 ms, new snapshot each |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, v in sorted(results["place"].items(), key=lambda kv: int(kv[0])):
        b = _get(before, "place", size) or {}
        lines.append(
            f"| {size} | {v['mean_candidates']:.0f} | "
            f"{_cell(v['warm_p50_ms'], b.get('warm_p50_ms'), '.2f')} | "
            f"{_cell(v['warm_p99_ms'], b.get('warm_p99_ms'), '.2f')} | "
            f"{v['warm_max_ms']:.1f} | {v['full_gc_collections']} | "
            f"{_cell(v['cold_p99_ms'], b.get('cold_p99_ms'), '.2f')} |"
        )
    lines += [
        "",
        "### Joint placement (`batch.place_batch`), seconds (best of 5 for 1 and 100)",
        "",
        "| clusters | 1 request | 100 requests | 10,000 requests | evaluations (10,000) | "
        "peak RSS GB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size, by_n in sorted(results["batch"].items(), key=lambda kv: int(kv[0])):
        cells = []
        for n in ("1", "100", "10000"):
            v = by_n.get(n)
            b = _get(before, "batch", size, n) or {}
            if v is None:
                cells.append("-")
            elif "skipped" in v:
                cells.append(f"skipped ({v['skipped']})")
            else:
                cells.append(_cell(v["best_s"], b.get("best_s"), ".3f"))
        big = by_n.get("10000") or {}
        evaluations = f"{big['evaluations']:,}" if "evaluations" in big else "-"
        rss = f"{big['peak_rss_gb']:.1f}" if "peak_rss_gb" in big else "-"
        lines.append(f"| {size} | " + " | ".join(cells) + f" | {evaluations} | {rss} |")
    if results["tick"]:
        lines += [
            "",
            "### Full tick (`tick.run_tick` on the embedded PostgreSQL, fresh `plane` schema), "
            "1,000 pending requests",
            "",
            "Snapshot from the database, joint placement, every decision logged (payload with "
            "what it read, EXPLAIN text; over 40 candidates a bounded summary with exact "
            "per-rule counts, the tick's telemetry stored once), placed ones reserved, one "
            "transaction.",
            "",
            "| clusters | policy | total s | place_batch s | log + reserve s | "
            "log written MB (stored) |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for key, v in sorted(results["tick"].items(), key=lambda kv: int(kv[0].split()[0])):
            size = key.split()[0]
            policy = "greedy only (`exact_max_pairs: 0`)" if "greedy" in key else "default"
            if "skipped" in v:
                lines.append(f"| {size} | {policy} | skipped ({v['skipped']}) | | | |")
                continue
            b = _get(before, "tick", key) or {}
            lines.append(
                f"| {size} | {policy} | {_cell(v['total_s'], b.get('total_s'), '.2f')} | "
                f"{_cell(v['place_batch_s'], b.get('place_batch_s'), '.2f')} | "
                f"{_cell(v['log_and_reserve_s'], b.get('log_and_reserve_s'), '.2f')} | "
                f"{v.get('log_text_mb', 0):.0f} ({v['log_mb']:.0f}) |"
            )
    place_1k = _get(results, "place", "1000", "warm_p99_ms")
    lines += [
        "",
        "### Targets",
        "",
        "- p99 per decision with 1,000 clusters under 5 ms: "
        + _verdict(place_1k, TARGET_DECISION_P99_MS, "ms"),
    ]
    for size, by_n in sorted(results["batch"].items(), key=lambda kv: int(kv[0])):
        v = by_n.get("10000")
        if v is None:
            continue
        lines.append(
            f"- 10,000 requests placed in under 2 s, {size} clusters: "
            + (
                _verdict(v["best_s"], TARGET_BATCH_10K_S, "s")
                if "best_s" in v
                else f"skipped ({v['skipped']})"
            )
        )
    for key, v in sorted(results["tick"].items(), key=lambda kv: int(kv[0].split()[0])):
        if "greedy" in key:
            continue
        lines.append(
            f"- tick with 1,000 requests under 5 s, {key} clusters: "
            + (
                _verdict(v["total_s"], TARGET_TICK_1K_S, "s")
                if "total_s" in v
                else f"skipped ({v['skipped']})"
            )
        )
    if results.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(results["skipped"]) + "."]
    return "\n".join(lines)


def _sizes(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleets", default="10,100,1000", help="cluster counts")
    parser.add_argument("--batches", default="1,100,10000", help="pending requests per batch")
    parser.add_argument("--place-requests", type=int, default=400, help="decisions timed")
    parser.add_argument("--tick-fleets", default="10,100,1000", help="cluster counts of ticks")
    parser.add_argument(
        "--tick-greedy-fleets",
        default="10",
        help="cluster counts of an extra tick under exact_max_pairs: 0 (no integer program)",
    )
    parser.add_argument("--tick-requests", type=int, default=1000)
    parser.add_argument("--no-tick", action="store_true", help="skip the PostgreSQL tick")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=240.0,
        help="skip a batch or tick whose estimated wall time exceeds this",
    )
    parser.add_argument("--quick", action="store_true", help="10/100 clusters, no tick")
    parser.add_argument("--out", default=str(OUT_DIR / "decision_speed.json"))
    parser.add_argument("--chart", default=str(CHART))
    parser.add_argument(
        "--before",
        default=str(OUT_DIR / "decision_speed_before.json"),
        help="results of the code before, shown beside these when the file exists",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.fleets, args.batches, args.no_tick, args.place_requests = "10,100", "1,100", True, 100
    policy = PlacementPolicy()
    results: dict[str, Any] = {
        "machine": machine(),
        "started_at": datetime.now(UTC).isoformat(),
        "policy_version": policy.version(),
        "place": {},
        "batch": {},
        "tick": {},
        "skipped": [],
    }
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    sizes = _sizes(args.fleets) + _sizes(args.tick_fleets) + _sizes(args.tick_greedy_fleets)
    worlds = {n: build_world(n) for n in sorted(set(sizes))}
    per_request_s: dict[int, float] = {}  # batch seconds per request, for the estimates
    for n in _sizes(args.fleets):
        world = worlds[n]
        log(f"place: {n} clusters ...")
        results["place"][str(n)] = v = bench_place(world, args.place_requests, policy)
        log(f"  p50 {v['warm_p50_ms']:.2f} ms  p99 {v['warm_p99_ms']:.2f} ms")
        results["batch"][str(n)] = {}
        for size in sorted(_sizes(args.batches)):
            estimate = per_request_s.get(n, 0.0) * size * 1.3
            if estimate > args.budget_s:
                why = f"estimated {estimate:.0f} s > budget {args.budget_s:.0f} s"
                results["batch"][str(n)][str(size)] = {"skipped": why}
                results["skipped"].append(f"batch of {size} on {n} clusters ({why})")
                log(f"batch {size} x {n}: skipped, {why}")
                continue
            repeat = 5 if size <= 100 else 3
            log(f"batch {size} x {n} ...")
            b = bench_batch(world, size, policy, repeat)
            results["batch"][str(n)][str(size)] = b
            if size >= 100 or n not in per_request_s:  # a batch of one is mostly set-up
                per_request_s[n] = b["best_s"] / size
            log(f"  {b['best_s']:.3f} s  {b['statuses']}")
    if not args.no_tick:
        runs = [(n, policy, str(n)) for n in _sizes(args.tick_fleets)]
        runs += [
            (n, dataclasses.replace(policy, exact_max_pairs=0), f"{n} greedy")
            for n in _sizes(args.tick_greedy_fleets)
        ]
        for n, tick_policy, key in runs:
            known = per_request_s.get(n)
            if known is not None and known * args.tick_requests * 3 > args.budget_s:
                why = f"estimated {known * args.tick_requests * 3:.0f} s > budget"
                results["tick"][key] = {"skipped": why}
                results["skipped"].append(f"tick on {key} clusters ({why})")
                continue
            log(f"tick: {args.tick_requests} requests on {key} clusters ...")
            results["tick"][key] = t = bench_tick(worlds[n], args.tick_requests, tick_policy)
            log(f"  {t['total_s']:.2f} s (place_batch {t['place_batch_s']:.2f} s)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"results written to {out}")
    before = None
    if args.before and Path(args.before).exists() and Path(args.before) != out:
        before = json.loads(Path(args.before).read_text())
    log(chart(results, Path(args.chart), before))
    given = list(argv if argv is not None else sys.argv[1:])
    command = " ".join(["python benchmarks/decision_speed.py", *given])
    print(markdown(results, command, before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
