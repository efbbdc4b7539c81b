"""Layer 2C as people look at it: GPU spend, budget and quota per team.

``plane/team_spend`` reads the reasoning plane's ledger (``plane.ledger``: reservations made at
placement, settled at the actual cost or released when the run ends) and decision log
(``plane.decisions``) through `reasoning_plane.store`, joins them with the teams' GPU quotas
and budgets, and shows one row per team as a table, in figures (markdown), as an SVG chart
beside the Parquet table, and as numeric metadata per team (``team/<team>/spent_usd``, ...)
that Dagster's Plots tab charts over materializations, with the totals.
``team_spend_schedule`` refreshes it hourly.

Spend is counted in each team's budget period (``monthly`` unless its budget says ``daily`` or
``weekly``), exactly as the placement rules count it.
"""

import html
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import dagster as dg
import polars as pl
import psycopg

from assets.tags import governance_tags
from reasoning_plane import store
from reasoning_plane.model import Budget, TeamQuota
from reasoning_plane.snapshot import period_start
from resources.lakehouse import LakehouseResource
from resources.plane import PlaneResource

SPEND_GROUP = "reasoning_plane"
SPEND_KEY = dg.AssetKey(["plane", "team_spend"])
SPEND_OWNER = "team:platform"


@dataclass(frozen=True)
class TeamSpend:
    """One team's line of the spend view; USD and GPUs over its budget period."""

    team: str
    period: str
    period_start: str
    budget_usd: float | None
    spent_usd: float
    reserved_usd: float
    budget_used_share: float | None
    gpu_quota: int | None
    gpus_held: int
    runs_settled: int
    placed: int
    deferred: int
    rejected: int
    last_decision_at: str | None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def team_spend(
    conn: psycopg.Connection,
    quotas: Mapping[str, TeamQuota],
    budgets: Mapping[str, Budget],
    now: datetime,
) -> list[TeamSpend]:
    """One line per team known to the ledger, the decision log, the quotas or the budgets.

    ``now`` must be timezone-aware; the plane's tables must exist (``store.ensure_schema``).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    teams = sorted(store.teams_logged(conn) | set(quotas) | set(budgets))
    by_period: dict[str, list[str]] = {}
    for team in teams:
        by_period.setdefault(budgets[team].period if team in budgets else "monthly", []).append(
            team
        )
    ledger: dict[str, tuple] = {}
    decisions: dict[str, tuple] = {}
    since_of: dict[str, datetime] = {}
    for period, members in by_period.items():
        since = period_start(period, now)
        for team in members:
            since_of[team] = since
        ledger.update(store.ledger_by_team(conn, members, since))
        decisions.update(store.decisions_by_team(conn, members, since))
    lines = []
    for team in teams:
        held, reserved, spent, settled = ledger.get(team, (0, 0.0, 0.0, 0))
        placed, deferred, rejected, last = decisions.get(team, (0, 0, 0, None))
        budget = budgets.get(team)
        limit = budget.limit_usd if budget else None
        used = float(spent) + float(reserved)
        lines.append(
            TeamSpend(
                team=team,
                period=budget.period if budget else "monthly",
                period_start=_iso(since_of[team]) or "",
                budget_usd=limit,
                spent_usd=round(float(spent), 4),
                reserved_usd=round(float(reserved), 4),
                budget_used_share=round(used / limit, 6) if limit else None,
                gpu_quota=quotas[team].gpus if team in quotas else None,
                gpus_held=int(held),
                runs_settled=int(settled),
                placed=int(placed),
                deferred=int(deferred),
                rejected=int(rejected),
                last_decision_at=_iso(last),
            )
        )
    return lines


def _share(share: float | None) -> str:
    return "" if share is None else f" ({share:.0%})"


def spend_markdown(lines: Sequence[TeamSpend]) -> str:
    """A markdown table: per team, budget used (spent + reserved) and GPUs held of quota, in
    figures (the charts are the SVG beside the table and, per team over time, the numeric
    metadata `team_metadata` that Dagster's Plots tab draws)."""
    if not lines:
        return "No team has a budget, a quota or a decision yet."
    rows = ["| team | budget used (spent + reserved) | GPUs held of quota |", "|---|---|---|"]
    for line in lines:
        used = line.spent_usd + line.reserved_usd
        budget = (
            f"${used:,.2f} of ${line.budget_usd:,.2f}{_share(line.budget_used_share)}"
            if line.budget_usd is not None
            else f"${used:,.2f} (no budget set)"
        )
        quota = line.gpu_quota
        gpus = (
            f"{line.gpus_held} of {quota}{_share(line.gpus_held / quota)}"
            if quota
            else f"{line.gpus_held} (no GPU quota)"
        )
        rows.append(f"| {line.team} | {budget} | {gpus} |")
    return "\n".join(rows)


def team_metadata(lines: Sequence[TeamSpend]) -> dict[str, dg.MetadataValue]:
    """Numeric metadata per team, one key per figure (``team/<team>/spent_usd``, ...), so that
    each materialization adds a point to the team's series in Dagster's Plots tab: USD spent,
    reserved, and used of the budget (a share; only with a budget), GPUs held and the share of
    the quota they are (only with a quota)."""
    out: dict[str, dg.MetadataValue] = {}
    for line in lines:
        key = f"team/{line.team}"
        out[f"{key}/spent_usd"] = dg.MetadataValue.float(float(line.spent_usd))
        out[f"{key}/reserved_usd"] = dg.MetadataValue.float(float(line.reserved_usd))
        if line.budget_used_share is not None:
            out[f"{key}/budget_used_share"] = dg.MetadataValue.float(line.budget_used_share)
        out[f"{key}/gpus_held"] = dg.MetadataValue.int(line.gpus_held)
        if line.gpu_quota:
            out[f"{key}/quota_used_share"] = dg.MetadataValue.float(
                round(line.gpus_held / line.gpu_quota, 6)
            )
    return out


def spend_svg(lines: Sequence[TeamSpend]) -> str:
    """A horizontal bar chart (SVG) of spent and reserved USD per team against its budget."""
    row_h, left, width = 28, 170, 420
    top = max([(ln.spent_usd + ln.reserved_usd) for ln in lines] + [1.0])
    scale = max([ln.budget_usd or 0.0 for ln in lines] + [top])
    height = 40 + row_h * max(len(lines), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 150}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        '<text x="4" y="16" font-weight="bold">USD per team this period: '
        "spent (dark), reserved (light), budget (line)</text>",
    ]
    for i, line in enumerate(lines):
        y = 30 + i * row_h
        spent_w = width * line.spent_usd / scale
        reserved_w = width * line.reserved_usd / scale
        parts.append(f'<text x="4" y="{y + 15}">{html.escape(line.team)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{spent_w:.1f}" height="16" fill="#3c5a99"/>'
        )
        parts.append(
            f'<rect x="{left + spent_w:.1f}" y="{y + 4}" width="{reserved_w:.1f}" height="16" '
            'fill="#9db4e0"/>'
        )
        if line.budget_usd:
            bx = left + width * line.budget_usd / scale
            parts.append(
                f'<line x1="{bx:.1f}" y1="{y}" x2="{bx:.1f}" y2="{y + 24}" stroke="#c0392b" '
                'stroke-width="2"/>'
            )
        label = f"${line.spent_usd + line.reserved_usd:,.2f}" + (
            f" of ${line.budget_usd:,.0f}" if line.budget_usd else ""
        )
        parts.append(f'<text x="{left + width + 8}" y="{y + 15}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


_TABLE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("team", "string"),
        dg.TableColumn("period", "string"),
        dg.TableColumn("budget_usd", "float"),
        dg.TableColumn("spent_usd", "float"),
        dg.TableColumn("reserved_usd", "float"),
        dg.TableColumn("budget_used_share", "float"),
        dg.TableColumn("gpu_quota", "int"),
        dg.TableColumn("gpus_held", "int"),
        dg.TableColumn("runs_settled", "int"),
        dg.TableColumn("placed", "int"),
        dg.TableColumn("deferred", "int"),
        dg.TableColumn("rejected", "int"),
    ]
)


def _record(line: TeamSpend) -> dg.TableRecord:
    data = {c.name: getattr(line, c.name) for c in _TABLE_SCHEMA.columns}
    return dg.TableRecord({k: v for k, v in data.items() if v is not None})


@dg.asset(
    key=SPEND_KEY,
    group_name=SPEND_GROUP,
    description=(
        "GPU spend, budget and quota use per team, from the reasoning plane's ledger "
        "(`plane.ledger`) and decision log (`plane.decisions`): a table, an SVG chart, the "
        "totals and per-team numbers (team/<team>/spent_usd, ...) charted in the Plots tab. "
        "Refreshed hourly by `team_spend_schedule`."
    ),
    kinds={"postgres", "parquet"},
    owners=[SPEND_OWNER],
    # Spend per team is internal business data; where it is stored (the plane's database and
    # this machine's lakehouse) is not declared anywhere, so its residency is UNKNOWN.
    tags=governance_tags("UNKNOWN", "INTERNAL"),
)
def team_spend_asset(
    context: dg.AssetExecutionContext, plane: PlaneResource, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    now = datetime.now(UTC)
    quotas, budgets = plane.quotas(), plane.budgets()
    with plane.connect() as conn:
        lines = team_spend(conn, quotas, budgets, now)
    frame = pl.DataFrame(
        [asdict(line) for line in lines],
        schema={
            "team": pl.String,
            "period": pl.String,
            "period_start": pl.String,
            "budget_usd": pl.Float64,
            "spent_usd": pl.Float64,
            "reserved_usd": pl.Float64,
            "budget_used_share": pl.Float64,
            "gpu_quota": pl.Int64,
            "gpus_held": pl.Int64,
            "runs_settled": pl.Int64,
            "placed": pl.Int64,
            "deferred": pl.Int64,
            "rejected": pl.Int64,
            "last_decision_at": pl.String,
        },
    )
    path = lakehouse.write("reports", "team_spend", frame, manifest={"as_of": _iso(now)})
    chart = lakehouse.write_beside(path, ".svg", spend_svg(lines).encode())
    over = [ln.team for ln in lines if (ln.budget_used_share or 0.0) > 1.0]
    context.log.info(
        f"spend of {len(lines)} teams: ${sum(ln.spent_usd for ln in lines):,.2f} spent, "
        f"${sum(ln.reserved_usd for ln in lines):,.2f} reserved, "
        f"{sum(ln.gpus_held for ln in lines)} GPUs held"
        + (f"; over budget: {', '.join(over)}" if over else "")
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(lines),
            "spend_chart": dg.MetadataValue.md(spend_markdown(lines)),
            "teams": dg.MetadataValue.table([_record(ln) for ln in lines], schema=_TABLE_SCHEMA),
            "spent_usd": round(sum(ln.spent_usd for ln in lines), 4),
            "reserved_usd": round(sum(ln.reserved_usd for ln in lines), 4),
            "gpus_held": sum(ln.gpus_held for ln in lines),
            "teams_over_budget": ", ".join(over) or "none",
            "as_of": _iso(now) or "",
            "chart_svg": dg.MetadataValue.path(str(chart)),
            "lakehouse_table": dg.MetadataValue.path(str(path)),
            **team_metadata(lines),
        }
    )


team_spend_job = dg.define_asset_job(
    "team_spend_job",
    selection=[SPEND_KEY],
    description="Refresh the per-team spend, budget and quota view.",
)

team_spend_schedule = dg.ScheduleDefinition(
    name="team_spend_schedule",
    job=team_spend_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    description="Hourly refresh of plane/team_spend from the ledger and the decision log.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
