"""Replay recorded decisions under a changed policy or fleet, before anyone rolls it out.

Each logged decision carries the request and the snapshot it was made on (telemetry, the team's
quota, budget and usage, the inputs' catalog records). Replay re-runs the placement on that
snapshot with the new policy and/or fleet and reports the decisions that would differ and the
cost delta.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from data_plane.catalog import CatalogRecord
from reasoning_plane.model import (
    PLACED,
    Budget,
    Fleet,
    Snapshot,
    TeamQuota,
    TeamUsage,
    TelemetrySample,
    WorkloadRequest,
)
from reasoning_plane.placement import place
from reasoning_plane.policy import PlacementPolicy


def request_from_payload(raw: Mapping[str, Any]) -> WorkloadRequest:
    return WorkloadRequest(
        request_id=raw["request_id"],
        workload=raw["workload"],
        team=raw["team"],
        datasets=tuple(raw["datasets"]),
        gpu_count=int(raw["gpu_count"]),
        gpu_memory_gb=float(raw["gpu_memory_gb"]),
        estimated_duration_s=float(raw["estimated_duration_s"]),
        data_gb=float(raw["data_gb"]),
        latency_slo_ms=raw.get("latency_slo_ms"),
        priority=int(raw["priority"]),
        gpu_optional=bool(raw.get("gpu_optional", False)),
        recurring=bool(raw.get("recurring", False)),
        current_cluster=raw.get("current_cluster"),
        cpu_duration_s=raw.get("cpu_duration_s"),
        exclude_clusters=tuple(raw.get("exclude_clusters") or ()),
        attempt=int(raw.get("attempt", 1)),
        last_moved_at=datetime.fromisoformat(raw["last_moved_at"])
        if raw.get("last_moved_at")
        else None,
    )


def snapshot_from_payload(raw: Mapping[str, Any], fleet: Fleet) -> Snapshot:
    telemetry = {
        (s["cluster"], s["gpu_type"]): TelemetrySample(
            s["cluster"],
            s["gpu_type"],
            int(s["free_gpus"]),
            float(s["utilisation"]),
            datetime.fromisoformat(s["observed_at"]),
            s.get("free_memory_gb"),
            datetime.fromisoformat(s["received_at"]) if s.get("received_at") else None,
            free_memory_per_gpu_gb=(
                None
                if s.get("free_memory_per_gpu_gb") is None
                else tuple(s["free_memory_per_gpu_gb"])
            ),
        )
        for s in raw.get("telemetry", [])
    }
    quota, budget, usage = raw.get("quota"), raw.get("budget"), raw.get("usage")
    return Snapshot(
        fleet=fleet,
        quotas={
            quota["team"]: TeamQuota(quota["team"], int(quota["gpus"]), quota.get("source", ""))
        }
        if quota
        else {},
        budgets={
            budget["team"]: Budget(
                budget["team"], float(budget["limit_usd"]), budget.get("period", "monthly")
            )
        }
        if budget
        else {},
        usage={
            usage["team"]: TeamUsage(
                usage["team"],
                int(usage["gpus_held"]),
                float(usage["reserved_usd"]),
                float(usage["spent_usd"]),
            )
        }
        if usage
        else {},
        telemetry=telemetry,
        catalog={r["dataset_id"]: CatalogRecord.from_dict(r) for r in raw.get("catalog", [])},
        now=datetime.fromisoformat(raw["now"]),
        cluster_quotas={
            (q["cluster"], q["namespace"]): TeamQuota(
                q["namespace"], int(q["gpus"]), q.get("source", ""), q.get("used"), q["cluster"]
            )
            for q in raw.get("live_quotas", [])
        },
        quota_errors=dict(raw.get("quota_errors", {})),
    )


@dataclass(frozen=True)
class ReplayRow:
    decision_id: str
    request_id: str
    before: str  # "placed eu-fra-a10/A10" / "deferred"
    after: str
    cost_before: float
    cost_after: float

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _label(status: str, chosen: str | None) -> str:
    return f"{status} {chosen}" if status == PLACED and chosen else status


def replay(
    payloads: Iterable[Mapping[str, Any]], fleet: Fleet, policy: PlacementPolicy
) -> list[ReplayRow]:
    rows = []
    for payload in payloads:
        if "snapshot" not in payload:
            continue
        request = request_from_payload(payload["request"])
        snapshot = snapshot_from_payload(payload["snapshot"], fleet)
        after = place(request, snapshot, policy)
        chosen_before = next((c for c in payload["candidates"] if c["chosen"]), None)
        picked = after.chosen_evaluation
        rows.append(
            ReplayRow(
                decision_id=payload["decision_id"],
                request_id=request.request_id,
                before=_label(payload["status"], payload.get("chosen")),
                after=_label(after.status, after.chosen.label if after.chosen else None),
                cost_before=chosen_before["total_usd"] if chosen_before else 0.0,
                cost_after=picked.cost.total_usd if picked else 0.0,
            )
        )
    return rows
