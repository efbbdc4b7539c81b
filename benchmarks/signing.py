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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.tick_arms import compare
from reasoning_plane.signing import signer


def main() -> int:
    return compare(
        __doc__.split("\n\n")[0],
        ("unsigned", {"signer": None}),
        ("signed", {"signer": signer()}),
        "signing_cost",
    )


if __name__ == "__main__":
    raise SystemExit(main())
