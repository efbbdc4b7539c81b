"""The decision record of one gateway request: what was chosen, what else there was, and what it
cost, as the engine decided it (plain data, no I/O; `serving.records` writes it).

Everything here is read from the engine's `Decision`, never worked out again: the runner-up is
the next best feasible evaluation by the engine's own scores (as `placement.decide` names it in
its reason), the candidates rejected per rule are the rule engine's verdict counts
(`Evaluations.rule_counts`, `rules.Verdict.count`), the latencies and costs are the cost model's.

One record per request, written once when the request has ended, so the log stays append-only
with no update: a placed request carries its estimate (reserved from the team's budget before it
was forwarded) and its settlement (the actual cost of the GPU time it held and the tokens the
runtime counted) in the same row; a deferred or rejected one is written when it is answered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np

from reasoning_plane.model import PLACED, Decision
from reasoning_plane.serving.endpoints import InferenceRequest


@dataclass(frozen=True)
class Settlement:
    """What a served request actually took: settled against its reservation."""

    settled_at: datetime
    actual_usd: float  # the GPU time it held, at the chosen endpoint's price
    seconds: float  # from forwarding to the end of its answer
    prompt_tokens: int | None = None  # as the runtime counted them (``usage``), if it said
    completion_tokens: int | None = None  # from ``usage``, else counted from the stream


@dataclass(frozen=True)
class ServingRecord:
    """One request's decision record (a row of ``plane.serving_decisions``)."""

    request_id: str
    decision_id: str
    decided_at: datetime  # when the gateway decided it
    snapshot_at: datetime  # the time of the endpoints' snapshot it was decided on
    team: str
    principal: str
    model: str
    status: str  # placed | deferred | rejected
    endpoint_id: str | None
    cluster: str | None
    reason: str
    runner_up: str | None  # the next best feasible endpoint (None: the only one, or none)
    runner_up_usd: float | None
    # The lowest-latency candidate of all, feasible or not (``fastest_feasible`` says which),
    # and what it would have cost: the price of speed, or of what the rules refused.
    fastest_endpoint: str | None
    fastest_usd: float | None
    fastest_latency_ms: float | None
    fastest_feasible: bool | None
    estimated_usd: float | None  # reserved from the team's budget (placed only)
    prompt_tokens: int  # the runtime's count when settled with one, else the gateway's estimate
    completion_tokens: int  # actual when settled, else 0 (nothing was generated)
    max_tokens: int
    rejected_by_rule: dict[str, int]  # candidates each rule rejected (one may count twice)
    candidates: int
    feasible: int
    policy_version: str
    snapshot_hash: str
    priority: int
    datasets: tuple[str, ...] = ()
    failed_over: tuple[str, ...] = ()  # endpoints that failed it first, in order
    settlement: Settlement | None = None

    @property
    def actual_usd(self) -> float | None:
        return self.settlement.actual_usd if self.settlement is not None else None

    def payload(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (the row's ``payload``)."""
        data = asdict(self)
        data["decided_at"] = self.decided_at.isoformat()
        data["snapshot_at"] = self.snapshot_at.isoformat()
        data["datasets"] = list(self.datasets)
        data["failed_over"] = list(self.failed_over)
        if self.settlement is not None:
            data["settlement"]["settled_at"] = self.settlement.settled_at.isoformat()
        return data


def record_of(
    decision: Decision,
    ask: InferenceRequest,
    *,
    principal: str,
    failed_over: tuple[str, ...] = (),
    settlement: Settlement | None = None,
    decided_at: datetime | None = None,
) -> ServingRecord:
    """The record of ``decision`` on ``ask`` (by ``principal``, after ``failed_over`` failed
    it), settled by ``settlement`` when it was served. ``decided_at``: when the gateway decided
    (the engine's decision carries its snapshot's time, which a gateway reuses for a probe
    period); by default that snapshot time."""
    evaluations = decision.evaluations  # a serving candidate's "GPU type" is its endpoint id
    n = len(evaluations)
    ok = np.asarray(evaluations.feasible_mask(), dtype=bool) if n else np.zeros(0, dtype=bool)
    scores = np.asarray(evaluations.scores(), dtype=np.float64) if n else np.zeros(0)
    chosen = decision.chosen_evaluation
    at = evaluations.position_of(decision.chosen) if decision.chosen is not None else None
    runner_up = runner_up_usd = None
    others = ok.copy()
    if at is not None:
        others[at] = False
    if others.any():
        k = int(np.flatnonzero(others)[np.argmin(scores[others])])
        found = evaluations[k]
        runner_up, runner_up_usd = found.candidate.gpu_type, found.cost.total_usd
    fastest = fastest_usd = fastest_ms = fastest_ok = None
    if n:
        k = int(np.argmin(np.asarray(evaluations.latencies(), dtype=np.float64)))
        found = evaluations[k]
        fastest, fastest_usd = found.candidate.gpu_type, found.cost.total_usd
        fastest_ms, fastest_ok = found.cost.latency_ms, bool(ok[k])
    prompt = ask.prompt_tokens
    completion = 0
    if settlement is not None:
        prompt = settlement.prompt_tokens if settlement.prompt_tokens is not None else prompt
        completion = settlement.completion_tokens or 0
    placed = decision.status == PLACED and chosen is not None
    return ServingRecord(
        request_id=ask.request_id,
        decision_id=decision.decision_id,
        decided_at=decided_at or decision.decided_at,
        snapshot_at=decision.decided_at,
        team=ask.team,
        principal=principal,
        model=ask.model,
        status=decision.status,
        endpoint_id=decision.chosen.gpu_type if placed and decision.chosen else None,
        cluster=decision.chosen.cluster if placed and decision.chosen else None,
        reason=decision.reason,
        runner_up=runner_up,
        runner_up_usd=runner_up_usd,
        fastest_endpoint=fastest,
        fastest_usd=fastest_usd,
        fastest_latency_ms=fastest_ms,
        fastest_feasible=fastest_ok,
        estimated_usd=chosen.cost.total_usd if placed and chosen else None,
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        max_tokens=ask.max_tokens,
        rejected_by_rule=dict(sorted(evaluations.rule_counts().items())),
        candidates=n,
        feasible=int(ok.sum()),
        policy_version=decision.policy_version,
        snapshot_hash=decision.snapshot_hash,
        priority=ask.priority,
        datasets=ask.datasets,
        failed_over=failed_over,
        settlement=settlement if placed else None,
    )


def explain_record(row: dict[str, Any]) -> str:
    """A logged record (``payload`` plus its chain position) as people read it."""

    def usd(value: Any) -> str:
        return "-" if value is None else f"${float(value):,.6f}"

    status = str(row["status"]).upper()
    where = f" on {row['endpoint_id']} ({row['cluster']})" if row.get("endpoint_id") else ""
    lines = [
        f"Request {row['request_id']}: {status}{where}",
        f"  decision {row['decision_id']} at {row['decided_at']}, team {row['team']}, "
        f"principal {row['principal']}, model {row['model']}, priority {row['priority']}",
        f"  reason: {row['reason']}",
    ]
    if row.get("failed_over"):
        lines.append(f"  failed over from: {', '.join(row['failed_over'])}")
    runner = row.get("runner_up")
    lines.append(
        f"  runner-up: {runner} at {usd(row.get('runner_up_usd'))}"
        if runner
        else "  runner-up: none (no other feasible endpoint)"
    )
    if row.get("fastest_endpoint"):
        which = "feasible" if row.get("fastest_feasible") else "not feasible"
        ms = row.get("fastest_latency_ms")
        lines.append(
            f"  fastest: {row['fastest_endpoint']} ({which}), ~{float(ms or 0):.0f} ms, "
            f"would have cost {usd(row.get('fastest_usd'))}"
        )
    settlement = row.get("settlement")
    if row["status"] == PLACED:
        actual = usd(settlement["actual_usd"]) if settlement else "not settled"
        lines.append(f"  cost: estimated {usd(row.get('estimated_usd'))}, actual {actual}")
    lines.append(
        f"  tokens: prompt {row['prompt_tokens']}, completion {row['completion_tokens']} "
        f"(max {row['max_tokens']})"
    )
    rules = sorted((row.get("rejected_by_rule") or {}).items(), key=lambda x: (-x[1], x[0]))
    per_rule = ", ".join(f"{rule} {count}" for rule, count in rules) or "none"
    lines.append(
        f"  candidates: {row['candidates']}, feasible {row['feasible']}; "
        f"rejected per rule: {per_rule}"
    )
    datasets = ", ".join(row.get("datasets") or []) or "none declared"
    lines.append(f"  datasets: {datasets}")
    lines.append(
        f"  policy {row['policy_version']}, telemetry snapshot {row['snapshot_hash']}"
        + (f" of {row['snapshot_at']}" if row.get("snapshot_at") else "")
        + (
            f", chain position {row['chain_pos']} (row hash {str(row['row_hash'])[:16]})"
            if row.get("chain_pos") is not None
            else ""
        )
    )
    return "\n".join(lines)
