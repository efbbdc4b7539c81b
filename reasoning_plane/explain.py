"""Readable explanations of decisions, like a query planner's EXPLAIN."""

from __future__ import annotations

from typing import Any

from reasoning_plane.model import Decision, Evaluation, WorkloadRequest


def _row(e: Evaluation, decision: Decision) -> list[str]:
    if decision.chosen == e.candidate:
        status = "CHOSEN"
    elif e.feasible:
        status = "feasible"
    else:
        status = "rejected"
    c = e.cost
    reasons = "; ".join(f"{r.rule}: {r.message}" for r in e.rejections)
    return [
        e.candidate.label,
        status,
        f"{c.total_usd:.2f}",
        f"{c.gpu_usd:.2f}",
        f"{c.egress_usd:.2f}",
        f"{c.duration_s / 3600:.2f}",
        f"{c.latency_ms:.0f}",
        reasons,
    ]


def explain(decision: Decision) -> str:
    r = decision.request
    slo = f", SLO {r.latency_slo_ms:g} ms" if r.latency_slo_ms else ""
    head = [
        f"Decision {decision.decision_id}: {decision.status.upper()}"
        + (f" on {decision.chosen.label}" if decision.chosen else ""),
        f"  request {r.request_id} ({r.workload}) team {r.team}, priority {r.priority}: "
        f"{r.gpu_count} GPU x {r.gpu_memory_gb:g} GB, {r.estimated_duration_s / 3600:.2f} h on "
        f"the reference GPU, {r.data_gb:g} GB of {', '.join(r.datasets)}{slo}",
        f"  policy {decision.policy_version}, telemetry snapshot {decision.snapshot_hash}, "
        f"at {decision.decided_at.isoformat()}",
        f"  reason: {decision.reason}",
    ]
    if decision.executor:
        head.append(
            f"  executor {decision.executor}, zone {decision.zone}, namespace {decision.namespace}"
        )
    headers = [
        "candidate",
        "status",
        "cost $",
        "gpu $",
        "egress $",
        "hours",
        "latency ms",
        "reasons",
    ]
    order = sorted(
        decision.evaluations,
        key=lambda e: (decision.chosen != e.candidate, not e.feasible, e.score),
    )
    rows = [headers] + [_row(e, decision) for e in order]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append(("  " + "  ".join(cells) + "  " + row[-1]).rstrip())
    lines.insert(1, "  " + "  ".join("-" * w for w in widths) + "  -------")
    return "\n".join([*head, "", *lines])


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


def to_dict(decision: Decision) -> dict[str, Any]:
    """JSON-ready form of a decision (the decision log's payload)."""
    r = decision.request
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
        "request": request_to_dict(r),
        "candidates": [
            {
                "candidate": e.candidate.label,
                "feasible": e.feasible,
                "chosen": decision.chosen == e.candidate,
                "total_usd": round(e.cost.total_usd, 6),
                "gpu_usd": round(e.cost.gpu_usd, 6),
                "egress_usd": round(e.cost.egress_usd, 6),
                "data_moved_gb": e.cost.data_moved_gb,
                "duration_s": round(e.cost.duration_s, 3),
                "latency_ms": round(e.cost.latency_ms, 3),
                "score": round(e.score, 9),
                "reasons": [{"rule": x.rule, "message": x.message} for x in e.rejections],
            }
            for e in decision.evaluations
        ],
    }
