"""Hysteresis for recurring workloads: placements do not flap.

A recurring workload stays where it runs unless all of these hold:

* the saving of the best alternative exceeds the cost of moving (its data egress into the new
  cluster plus a cold start) plus ``policy.move_margin_usd``;
* the current cluster's utilisation is outside the stable band (``policy.stable_band``, e.g.
  65-85%): inside it, the source is healthy and is left alone;
* the last move is at least ``policy.min_dwell_s`` ago.

It always moves when its current cluster is no longer feasible (compliance, capacity, stale
telemetry...). Under telemetry oscillating in and out of the band the workload can therefore move
at most once per dwell period, and never back while the first move's saving still holds.
"""

from __future__ import annotations

import numpy as np

from reasoning_plane.model import Candidate, Evaluations, Snapshot, WorkloadRequest
from reasoning_plane.policy import PlacementPolicy


def choose_with_hysteresis(
    request: WorkloadRequest,
    evaluations: Evaluations,
    best: Candidate,
    snapshot: Snapshot,
    policy: PlacementPolicy,
) -> tuple[Candidate, str | None]:
    """(candidate to use, reason when hysteresis decided) for ``best`` proposed by the
    optimiser (only the feasible evaluations on the current cluster are read)."""
    current = request.current_cluster
    if not request.recurring or current is None or best.cluster == current:
        return best, None
    at = evaluations.position_of(best)
    assert at is not None
    chosen = evaluations[at]
    staying = evaluations.subset(
        [
            k
            for k in np.flatnonzero(evaluations.feasible_mask()).tolist()
            if evaluations.candidate_at(k).cluster == current
        ]
    )
    if not staying:
        return best, f"moving off {current}: it is no longer feasible for this workload"
    stay = min(staying, key=lambda e: e.score)
    if request.last_moved_at is not None:
        dwell = (snapshot.now - request.last_moved_at).total_seconds()
        if dwell < policy.min_dwell_s:
            return stay.candidate, (
                f"hysteresis: stay on {current}; last move {dwell:.0f} s ago "
                f"(minimum dwell {policy.min_dwell_s:g} s)"
            )
    saving = stay.cost.total_usd - chosen.cost.total_usd
    move_cost = request.data_gb * _egress(snapshot, best.cluster) + policy.cold_start_usd
    sample = snapshot.telemetry.get((current, stay.candidate.gpu_type))
    low, high = policy.stable_band
    if sample is not None and low <= sample.utilisation <= high:
        return stay.candidate, (
            f"hysteresis: stay on {current}; utilisation "
            f"{sample.utilisation:.0%} is inside the stable band "
            f"{low:.0%}-{high:.0%}"
        )
    if saving <= move_cost + policy.move_margin_usd:
        return stay.candidate, (
            f"hysteresis: stay on {current}; moving to {best.cluster} would "
            f"save ${saving:,.2f}, not more than the move cost "
            f"${move_cost:,.2f} + margin ${policy.move_margin_usd:,.2f}"
        )
    util = f"{sample.utilisation:.0%}" if sample else "unknown"
    return best, (
        f"moving {current} -> {best.cluster}: saves ${saving:,.2f} > move cost "
        f"${move_cost:,.2f} + margin; source utilisation {util} outside "
        f"{low:.0%}-{high:.0%}"
    )


def _egress(snapshot: Snapshot, cluster: str) -> float:
    found = snapshot.fleet.get(cluster)
    return found.egress_per_gb if found else 0.0
