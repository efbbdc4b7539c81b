"""What least-privilege database roles cost a placement tick, measured side by side in one run.

Issue 13 made every service log in as its own role (`data_plane.roles`): the placement sensor's
tick runs as ``rp_plane``, with no table of its own and row-level security on
``plane.telemetry``. This times `benchmarks.decision_speed.bench_tick` (a full signed tick with
1,000 pending requests on the real embedded PostgreSQL, fresh ``plane`` schema) alternately as
the administrator (the one URL of before) and as ``rp_plane``, ``--rounds`` times per fleet
size, and prints the best and median of each and the difference.

    python benchmarks/roles.py [--fleets 10,100] [--requests 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.decision_speed import bench_tick, build_world
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.signing import signer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleets", default="10,100", help="cluster counts")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = signer()
    policy = PlacementPolicy()
    out = {}
    for size in [int(x) for x in args.fleets.split(",") if x]:
        world = build_world(size)
        times: dict[str, list[float]] = {"admin": [], "rp_plane": []}
        for _ in range(args.rounds):
            for arm, role in (("admin", None), ("rp_plane", "plane")):
                times[arm].append(bench_tick(world, args.requests, policy, key, role)["total_s"])
        row = {
            arm: {"best_s": min(t), "median_s": statistics.median(t)} for arm, t in times.items()
        }
        row["roles_cost_best_s"] = row["rp_plane"]["best_s"] - row["admin"]["best_s"]
        row["roles_cost_share"] = row["roles_cost_best_s"] / row["admin"]["best_s"]
        out[str(size)] = row
        print(
            f"{size} clusters, {args.requests} requests: admin best "
            f"{row['admin']['best_s']:.2f} s (median {row['admin']['median_s']:.2f}), rp_plane "
            f"best {row['rp_plane']['best_s']:.2f} s (median {row['rp_plane']['median_s']:.2f})"
            f": {row['roles_cost_best_s'] * 1000:+.0f} ms ({row['roles_cost_share']:+.1%})",
            flush=True,
        )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
