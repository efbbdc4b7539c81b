"""Two variants of the placement tick timed side by side in one run (benchmarks/signing.py,
benchmarks/roles.py): `benchmarks.decision_speed.bench_tick` alternating between the two arms,
``--rounds`` times per fleet size; prints the best and median of each and the difference."""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from benchmarks.decision_speed import bench_tick, build_world
from reasoning_plane.policy import PlacementPolicy

Arm = tuple[str, dict[str, Any]]  # (name, keyword arguments of bench_tick)


def compare(description: str, base: Arm, other: Arm, cost: str) -> int:
    """Parse ``--fleets/--requests/--rounds``, time ``base`` and ``other`` alternately and
    print a line per fleet size and the JSON of all figures (``cost``: the difference's name)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fleets", default="10,100", help="cluster counts")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    policy = PlacementPolicy()
    out = {}
    for size in [int(x) for x in args.fleets.split(",") if x]:
        world = build_world(size)
        times: dict[str, list[float]] = {base[0]: [], other[0]: []}
        for _ in range(args.rounds):
            for name, kwargs in (base, other):
                times[name].append(bench_tick(world, args.requests, policy, **kwargs)["total_s"])
        row: dict[str, Any] = {
            arm: {"best_s": min(t), "median_s": statistics.median(t)} for arm, t in times.items()
        }
        delta = row[other[0]]["best_s"] - row[base[0]]["best_s"]
        row[f"{cost}_best_s"], row[f"{cost}_share"] = delta, delta / row[base[0]]["best_s"]
        out[str(size)] = row
        a, b = row[base[0]], row[other[0]]
        print(
            f"{size} clusters, {args.requests} requests: {base[0]} best {a['best_s']:.2f} s "
            f"(median {a['median_s']:.2f}), {other[0]} best {b['best_s']:.2f} s "
            f"(median {b['median_s']:.2f}): {delta * 1000:+.0f} ms "
            f"({delta / a['best_s']:+.1%})",
            flush=True,
        )
    print(json.dumps(out, indent=2))
    return 0
