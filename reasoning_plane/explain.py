"""Readable explanations of decisions, like a query planner's EXPLAIN."""

from __future__ import annotations

import json
from typing import Any

from reasoning_plane.model import Candidate, Decision, Rejection, WorkloadRequest

HEADERS = ("candidate", "status", "cost $", "gpu $", "egress $", "hours", "latency ms", "reasons")


def _chosen_flags(decision: Decision) -> list[bool]:
    """Per evaluation: its candidate is the chosen one (equal to it, as ``==`` would say)."""
    chosen = decision.chosen
    if chosen is None:
        return [False] * len(decision.evaluations)
    cluster, gpu_type = chosen.cluster, chosen.gpu_type
    return [
        c is chosen or (type(c) is type(chosen) and c.cluster == cluster and c.gpu_type == gpu_type)
        for c in (e.candidate for e in decision.evaluations)
    ]


class Renderer:
    """Renders decisions for the log (`explain` text, `to_dict` JSON), sharing the work on what
    decisions of one batch share: candidate labels and rejection lists (the same objects)."""

    def __init__(self) -> None:
        # id -> (the object, kept alive so that its id is not reused; its rendering)
        self._labels: dict[int, tuple[Candidate, str, str]] = {}
        self._reasons: dict[int, tuple[tuple[Rejection, ...], str, str]] = {}
        self._rejections: dict[int, tuple[Rejection, str, str]] = {}

    def _label(self, c: Candidate) -> tuple[Candidate, str, str]:
        found = self._labels.get(id(c))
        if found is None:
            label = c.label
            found = self._labels[id(c)] = (c, label, json.dumps(label))
        return found

    def _reason(self, rejections: tuple[Rejection, ...]) -> tuple[Any, str, str]:
        found = self._reasons.get(id(rejections))
        if found is None:
            parts = [self._one(x) for x in rejections]
            text = "; ".join([p[1] for p in parts])
            listed = "[" + ", ".join([p[2] for p in parts]) + "]"
            found = self._reasons[id(rejections)] = (rejections, text, listed)
        return found

    def _one(self, x: Rejection) -> tuple[Rejection, str, str]:
        found = self._rejections.get(id(x))
        if found is None:
            found = self._rejections[id(x)] = (
                x,
                f"{x.rule}: {x.message}",
                json.dumps({"rule": x.rule, "message": x.message}),
            )
        return found

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
        evaluations = decision.evaluations
        chosen = _chosen_flags(decision)
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
        return "\n".join([*head, "", *lines])

    def payload_json(self, decision: Decision, extra: str = "") -> str:
        """``json.dumps(to_dict(decision))``: the same JSON value, built from the shared parts.
        ``extra``: more members of the object as JSON text (``'"snapshot": {...}'``)."""
        items = []
        append = items.append
        label, reason = self._label, self._reason
        for e, is_chosen in zip(decision.evaluations, _chosen_flags(decision), strict=True):
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


def to_dict(decision: Decision) -> dict[str, Any]:
    """JSON-ready form of a decision (the decision log's payload)."""
    out = _head(decision)
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
        for e, is_chosen in zip(decision.evaluations, _chosen_flags(decision), strict=True)
    ]
    return out
