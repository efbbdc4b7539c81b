"""What signing every decision costs a placement tick, measured side by side in one run.

Issue 12 made the plane sign each decision it records (Ed25519 over the decision's binding,
`reasoning_plane/signing.py`) and anchor the chain heads after each tick
(`data_plane/anchors.py`). This times `benchmarks.decision_speed.bench_tick` (a full tick with
1,000 pending requests on the real embedded PostgreSQL, fresh `plane` schema) alternately
without and with the signer, ``--rounds`` times per fleet size, and prints the best and median
of each and the difference. Both arms anchor the heads (the tick always does).

    python benchmarks/signing.py [--fleets 10,100] [--requests 1000] [--rounds 3]
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
        times: dict[str, list[float]] = {"unsigned": [], "signed": []}
        for _ in range(args.rounds):
            for arm, sig in (("unsigned", None), ("signed", key)):
                times[arm].append(bench_tick(world, args.requests, policy, sig)["total_s"])
        row = {
            arm: {"best_s": min(t), "median_s": statistics.median(t)} for arm, t in times.items()
        }
        row["signing_cost_best_s"] = row["signed"]["best_s"] - row["unsigned"]["best_s"]
        row["signing_cost_share"] = row["signing_cost_best_s"] / row["unsigned"]["best_s"]
        out[str(size)] = row
        print(
            f"{size} clusters, {args.requests} requests: unsigned best "
            f"{row['unsigned']['best_s']:.2f} s (median {row['unsigned']['median_s']:.2f}), "
            f"signed best {row['signed']['best_s']:.2f} s (median {row['signed']['median_s']:.2f})"
            f": {row['signing_cost_best_s'] * 1000:+.0f} ms ({row['signing_cost_share']:+.1%})",
            flush=True,
        )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
