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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.tick_arms import compare
from reasoning_plane.signing import signer


def main() -> int:
    return compare(
        __doc__.split("\n\n")[0],
        ("admin", {"signer": signer(), "role": None}),
        ("rp_plane", {"signer": signer(), "role": "plane"}),
        "roles_cost",
    )


if __name__ == "__main__":
    raise SystemExit(main())
