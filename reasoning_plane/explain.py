"""Readable explanations of decisions, like a query planner's EXPLAIN.

A decision over a small fleet lists every candidate with its cost and every reason it was
rejected. Over a large one (more than `FULL_LIMIT` candidates: some 2,000 at 1,000 clusters) the
log keeps a bounded, honest summary instead, as SkyPilot's optimizer and Kueue's messages do: the
chosen candidate, the `LISTED_FEASIBLE` cheapest feasible alternatives, the `LISTED_REJECTED`
cheapest rejected ones with their reasons (the near misses: why not something cheaper), and how
many candidates each rule rejected over the whole fleet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reasoning_plane.model import Candidate, Decision, Evaluation, Rejection, WorkloadRequest

HEADERS = ("candidate", "status", "cost $", "gpu $", "egress $", "hours", "latency ms", "reasons")
FULL_LIMIT = 40  # decisions with at most this many candidates list them all
LISTED_FEASIBLE = 10
LISTED_REJECTED = 10


def _is_chosen(c: Candidate, chosen: Candidate | None) -> bool:
    """``c`` is the chosen candidate (equal to it, as ``==`` would say)."""
    if chosen is None:
        return False
    return c is chosen or (
        type(c) is type(chosen) and c.cluster == chosen.cluster and c.gpu_type == chosen.gpu_type
    )


@dataclass(frozen=True)
class Listing:
    """The evaluations a decision's log entry lists (in evaluation order) and, when that is not
    all of them, what the others add up to."""

    evaluations: list[Evaluation]
    chosen: list[bool]
    total: int
    complete: bool
    feasible_total: int = 0
    rejections_by_rule: dict[str, int] = field(default_factory=dict)


def _cheapest(positions: np.ndarray, scores: np.ndarray, limit: int) -> list[int]:
    """Up to ``limit`` of ``positions`` with the lowest scores (the first of ties)."""
    if positions.size > limit:
        order = np.argsort(scores[positions], kind="stable")[:limit]
        positions = positions[order]
    return positions.tolist()


def listing(decision: Decision, *, full: bool = False) -> Listing:
    """What the log lists of ``decision`` (see the module's docstring); ``full``: every
    candidate, however many."""
    evaluations = decision.evaluations
    n = len(evaluations)
    chosen = decision.chosen
    if n <= FULL_LIMIT or full:
        listed = list(evaluations)
        return Listing(listed, [_is_chosen(e.candidate, chosen) for e in listed], n, True)
    ok = evaluations.feasible_mask()
    scores = np.asarray(evaluations.scores(), dtype=np.float64)
    counts = evaluations.rule_counts()
    at = evaluations.position_of(chosen) if chosen is not None else None
    picked = set(_cheapest(np.flatnonzero(ok), scores, LISTED_FEASIBLE))
    picked.update(_cheapest(np.flatnonzero(~ok), scores, LISTED_REJECTED))
    if at is not None:
        picked.add(at)
    positions = sorted(picked)
    listed = evaluations.subset(positions)
    rules = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return Listing(
        listed,
        [k == at for k in positions],
        n,
        False,
        feasible_total=int(ok.sum()),
        rejections_by_rule=rules,
    )


def _summary_line(view: Listing) -> str:
    rest = view.total - len(view.evaluations)
    rules = ", ".join(f"{rule} {count:,}" for rule, count in view.rejections_by_rule.items())
    return (
        f"  ... {rest:,} more of {view.total:,} candidates not listed "
        f"({view.feasible_total:,} feasible, {view.total - view.feasible_total:,} rejected in "
        f"all); candidates rejected per rule: {rules or 'none'}"
    )


def _omitted(view: Listing) -> dict[str, Any]:
    return {
        "candidates_total": view.total,
        "feasible_total": view.feasible_total,
        "rejections_by_rule": view.rejections_by_rule,
    }


class Renderer:
    """Renders decisions for the log (`explain` text, `to_dict` JSON), sharing the work on what
    decisions of one batch share: candidate labels and rejection lists (equal ones)."""

    def __init__(self) -> None:
        self._labels: dict[Candidate, tuple[str, str]] = {}
        self._reasons: dict[tuple[Rejection, ...], tuple[str, str]] = {}
        self._rejections: dict[Rejection, tuple[str, str]] = {}

    def _label(self, c: Candidate) -> tuple[Candidate, str, str]:
        found = self._labels.get(c)
        if found is None:
            label = c.label
            found = self._labels[c] = (label, json.dumps(label))
        return (c, *found)

    def _reason(self, rejections: tuple[Rejection, ...]) -> tuple[Any, str, str]:
        found = self._reasons.get(rejections)
        if found is None:
            parts = [self._one(x) for x in rejections]
            text = "; ".join([p[1] for p in parts])
            listed = "[" + ", ".join([p[2] for p in parts]) + "]"
            found = self._reasons[rejections] = (text, listed)
        return (rejections, *found)

    def _one(self, x: Rejection) -> tuple[Rejection, str, str]:
        found = self._rejections.get(x)
        if found is None:
            found = self._rejections[x] = (
                f"{x.rule}: {x.message}",
                json.dumps({"rule": x.rule, "message": x.message}),
            )
        return (x, *found)

    def explain(self, decision: Decision) -> str:
        """The decision as an EXPLAIN-style table: the chosen candidate, then the feasible ones,
        then the rejected ones, each group by score, every rejection with its reason."""
        r = decision.request
        slo = f", SLO {r.latency_slo_ms:g} ms" if r.latency_slo_ms else ""
        head = [
            f"Decision {decision.decision_id}: {decision.status.upper()}"
            + (f" on {decision.chosen.label}" if decision.chosen else ""),
            f"  request {r.request_id} ({r.workload}) team {r.team}, priority {r.priority}: "
            f"{r.gpu_count} GPU x {r.gpu_memory_gb:g} GB, {r.estimated_duration_s / 3600:.2f} h "
            f"on the reference GPU, {r.data_gb:g} GB of {', '.join(r.datasets)}{slo}",
            f"  policy {decision.policy_version}, telemetry snapshot {decision.snapshot_hash}, "
            f"at {decision.decided_at.isoformat()}",
            f"  reason: {decision.reason}",
        ]
        if decision.executor:
            head.append(
                f"  executor {decision.executor}, zone {decision.zone}, "
                f"namespace {decision.namespace}"
            )
        view = listing(decision)
        evaluations, chosen = view.evaluations, view.chosen
        keys = [
            (not is_chosen, bool(e.rejections), e.score)
            for e, is_chosen in zip(evaluations, chosen, strict=True)
        ]
        order = sorted(range(len(evaluations)), key=keys.__getitem__)  # stable, as sorted(evals)
        rows = [HEADERS]
        label, reason = self._label, self._reason
        for i in order:
            e = evaluations[i]
            c = e.cost
            rows.append(
                (
                    label(e.candidate)[1],
                    "CHOSEN" if chosen[i] else "rejected" if e.rejections else "feasible",
                    f"{c.gpu_usd + c.egress_usd:.2f}",
                    f"{c.gpu_usd:.2f}",
                    f"{c.egress_usd:.2f}",
                    f"{c.duration_s / 3600:.2f}",
                    f"{c.latency_ms:.0f}",
                    reason(e.rejections)[1],
                )
            )
        widths = [max(map(len, column)) for column in list(zip(*rows, strict=True))[:-1]]
        line = "  " + "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
        lines = [line.format(*row).rstrip() for row in rows]
        lines.insert(1, "  " + "  ".join("-" * w for w in widths) + "  -------")
        if not view.complete:
            lines.append(_summary_line(view))
        return "\n".join([*head, "", *lines])

    def payload_json(self, decision: Decision, extra: str = "") -> str:
        """``json.dumps(to_dict(decision))``: the same JSON value, built from the shared parts.
        ``extra``: more members of the object as JSON text (``'"snapshot": {...}'``)."""
        items = []
        append = items.append
        label, reason = self._label, self._reason
        view = listing(decision)
        for e, is_chosen in zip(view.evaluations, view.chosen, strict=True):
            c = e.cost
            numbers = (
                f"{round(c.gpu_usd + c.egress_usd, 6)!r} {round(c.gpu_usd, 6)!r} "
                f"{round(c.egress_usd, 6)!r} {c.data_moved_gb!r} {round(c.duration_s, 3)!r} "
                f"{round(c.latency_ms, 3)!r} {round(e.score, 9)!r}"
            )
            if "n" in numbers or "(" in numbers:  # nan, inf or not a plain float or int
                return _json_of(to_dict(decision), extra)
            total, gpu, egress, moved, duration, latency, score = numbers.split(" ")
            append(
                f'{{"candidate": {label(e.candidate)[2]}, '
                f'"feasible": {"false" if e.rejections else "true"}, '
                f'"chosen": {"true" if is_chosen else "false"}, "total_usd": {total}, '
                f'"gpu_usd": {gpu}, "egress_usd": {egress}, "data_moved_gb": {moved}, '
                f'"duration_s": {duration}, "latency_ms": {latency}, "score": {score}, '
                f'"reasons": {reason(e.rejections)[2]}}}'
            )
        head = json.dumps(_head(decision))
        extra = f", {extra}" if extra else ""
        if not view.complete:
            extra = f", {json.dumps(_omitted(view))[1:-1]}{extra}"
        return f'{head[:-1]}, "candidates": [{", ".join(items)}]{extra}}}'


def _json_of(payload: dict[str, Any], extra: str) -> str:
    text = json.dumps(payload)
    return f"{text[:-1]}, {extra}}}" if extra else text


def explain(decision: Decision) -> str:
    """The decision as an EXPLAIN-style table: the chosen candidate, then the feasible ones,
    then the rejected ones, each group by score, every rejection with its reason."""
    return Renderer().explain(decision)


def request_to_dict(r: WorkloadRequest) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "workload": r.workload,
        "team": r.team,
        "datasets": list(r.datasets),
        "gpu_count": r.gpu_count,
        "gpu_memory_gb": r.gpu_memory_gb,
        "estimated_duration_s": r.estimated_duration_s,
        "data_gb": r.data_gb,
        "latency_slo_ms": r.latency_slo_ms,
        "priority": r.priority,
        "gpu_optional": r.gpu_optional,
        "cpu_duration_s": r.cpu_duration_s,
        "recurring": r.recurring,
        "current_cluster": r.current_cluster,
        "last_moved_at": r.last_moved_at.isoformat() if r.last_moved_at else None,
        "exclude_clusters": list(r.exclude_clusters),
        "attempt": r.attempt,
    }


def _head(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.decision_id,
        "status": decision.status,
        "chosen": decision.chosen.label if decision.chosen else None,
        "cluster": decision.chosen.cluster if decision.chosen else None,
        "gpu_type": decision.chosen.gpu_type if decision.chosen else None,
        "executor": decision.executor,
        "zone": decision.zone,
        "namespace": decision.namespace,
        "reason": decision.reason,
        "policy_version": decision.policy_version,
        "snapshot_hash": decision.snapshot_hash,
        "decided_at": decision.decided_at.isoformat(),
        "request": request_to_dict(decision.request),
    }


def to_dict(decision: Decision, *, full: bool = False) -> dict[str, Any]:
    """JSON-ready form of a decision (the decision log's payload); ``full``: list every
    candidate, however many."""
    out = _head(decision)
    view = listing(decision, full=full)
    out["candidates"] = [
        {
            "candidate": e.candidate.label,
            "feasible": not e.rejections,
            "chosen": is_chosen,
            "total_usd": round(e.cost.gpu_usd + e.cost.egress_usd, 6),
            "gpu_usd": round(e.cost.gpu_usd, 6),
            "egress_usd": round(e.cost.egress_usd, 6),
            "data_moved_gb": e.cost.data_moved_gb,
            "duration_s": round(e.cost.duration_s, 3),
            "latency_ms": round(e.cost.latency_ms, 3),
            "score": round(e.score, 9),
            "reasons": [{"rule": x.rule, "message": x.message} for x in e.rejections],
        }
        for e, is_chosen in zip(view.evaluations, view.chosen, strict=True)
    ]
    if not view.complete:
        out.update(_omitted(view))
    return out
