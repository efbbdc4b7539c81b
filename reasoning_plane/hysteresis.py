"""Hysteresis for recurring workloads: placements do not flap.

A recurring workload stays where it runs unless all of these hold:

* the saving of the best alternative exceeds the cost of moving (its data egress into the new
  cluster plus a cold start) plus ``policy.move_margin_usd``;
* the current cluster's utilisation is outside the stable band (``policy.stable_band``, e.g.
  65-85%): inside it, the source is healthy and is left alone;
* the last move is at least ``policy.min_dwell_s`` ago.

It moves at once when its current cluster breaks a hard rule (residency, compliance, GPU memory,
capacity, quota, budget, stale, missing or future telemetry, an excluded cluster, or the cluster
or pool gone). The latency SLO is not such a rule here: the predicted latency follows the pool's
utilisation of the moment (the workload's own load among it), so a pool swinging between 60% and
90% would be "feasible" and "infeasible" a minute apart. When the current cluster's only
rejection is the SLO:

* within the band, predicted latency at most ``SLO x (1 + policy.slo_leave_margin)``, the
  workload stays eligible to stay, as if feasible: the rules above decide;
* beyond the band it leaves, but not within ``policy.min_dwell_s`` of its last move.

Under telemetry oscillating in and out of the stable band or around the SLO the workload can
therefore move at most once per dwell period, and never back while the first move's saving
still holds. The rule engine is unchanged: a workload held on its cluster this way is placed on a
candidate whose evaluation keeps its SLO rejection, and its decision says why it stayed.
"""

from __future__ import annotations

import numpy as np

from reasoning_plane.model import Candidate, Evaluation, Evaluations, Snapshot, WorkloadRequest
from reasoning_plane.policy import PlacementPolicy

SLO_RULE = "slo"  # the rule name of the latency SLO rejection (objective cheapest_within_slo)


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
    band = ""
    if not staying:
        held = _slo_only(request, evaluations, current)
        if not held:
            return best, f"moving off {current}: it is no longer feasible for this workload"
        stay = min(held, key=lambda e: e.score)
        slo = request.latency_slo_ms
        assert slo is not None  # an SLO rejection implies an SLO
        latency = stay.cost.latency_ms
        limit = slo * (1 + policy.slo_leave_margin)
        if latency > limit:
            breach = (
                f"predicted latency {latency:.0f} ms exceeds the SLO of {slo:g} ms by more than "
                f"the band ({policy.slo_leave_margin:.0%}, {limit:.0f} ms)"
            )
            dwell = _dwell(request, snapshot)
            if dwell is not None and dwell < policy.min_dwell_s:
                return stay.candidate, (
                    f"hysteresis: stay on {current}; {breach}, but the last move was "
                    f"{dwell:.0f} s ago (minimum dwell {policy.min_dwell_s:g} s)"
                )
            return best, f"moving off {current}: {breach}"
        band = (
            f"predicted latency {latency:.0f} ms is within the SLO band "
            f"({slo:g} ms + {policy.slo_leave_margin:.0%} = {limit:.0f} ms); "
        )
    else:
        stay = min(staying, key=lambda e: e.score)
    return _stay_or_move(request, stay, chosen, snapshot, policy, band)


def _stay_or_move(
    request: WorkloadRequest,
    stay: Evaluation,
    chosen: Evaluation,
    snapshot: Snapshot,
    policy: PlacementPolicy,
    band: str,
) -> tuple[Candidate, str]:
    """The dwell, stable-band and saving rules between staying on ``stay`` and ``chosen``."""
    current, best = stay.candidate.cluster, chosen.candidate
    dwell = _dwell(request, snapshot)
    if dwell is not None and dwell < policy.min_dwell_s:
        return stay.candidate, (
            f"hysteresis: stay on {current}; {band}last move {dwell:.0f} s ago "
            f"(minimum dwell {policy.min_dwell_s:g} s)"
        )
    saving = stay.cost.total_usd - chosen.cost.total_usd
    move_cost = request.data_gb * _egress(snapshot, best.cluster) + policy.cold_start_usd
    sample = snapshot.telemetry.get((current, stay.candidate.gpu_type))
    low, high = policy.stable_band
    if sample is not None and low <= sample.utilisation <= high:
        return stay.candidate, (
            f"hysteresis: stay on {current}; {band}utilisation "
            f"{sample.utilisation:.0%} is inside the stable band "
            f"{low:.0%}-{high:.0%}"
        )
    if saving <= move_cost + policy.move_margin_usd:
        return stay.candidate, (
            f"hysteresis: stay on {current}; {band}moving to {best.cluster} would "
            f"save ${saving:,.2f}, not more than the move cost "
            f"${move_cost:,.2f} + margin ${policy.move_margin_usd:,.2f}"
        )
    util = f"{sample.utilisation:.0%}" if sample else "unknown"
    return best, (
        f"moving {current} -> {best.cluster}: saves ${saving:,.2f} > move cost "
        f"${move_cost:,.2f} + margin; source utilisation {util} outside "
        f"{low:.0%}-{high:.0%}"
    )


def _slo_only(request: WorkloadRequest, evaluations: Evaluations, current: str) -> list[Evaluation]:
    """The evaluations on ``current`` whose only rejection is the SLO (none without an SLO)."""
    if request.latency_slo_ms is None:
        return []
    on_current = evaluations.subset(
        [k for k in range(len(evaluations)) if evaluations.candidate_at(k).cluster == current]
    )
    return [e for e in on_current if e.rejections and all(r.rule == SLO_RULE for r in e.rejections)]


def _dwell(request: WorkloadRequest, snapshot: Snapshot) -> float | None:
    """Seconds since the last move, when known."""
    if request.last_moved_at is None:
        return None
    return (snapshot.now - request.last_moved_at).total_seconds()


def _egress(snapshot: Snapshot, cluster: str) -> float:
    found = snapshot.fleet.get(cluster)
    return found.egress_per_gb if found else 0.0
