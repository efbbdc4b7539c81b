"""What operators look at in the UI: the per-team spend view on the real ledger, and the human
summary of a placement decision on its run."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from assets.spend import SPEND_KEY, spend_markdown, team_spend, team_spend_asset
from reasoning_plane import store
from reasoning_plane.batch import place_batch
from reasoning_plane.inputs import load_budgets, load_quotas
from reasoning_plane.launch import summary as decision_summary
from reasoning_plane.model import PLACED
from reasoning_plane.policy import PlacementPolicy
from resources.lakehouse import LakehouseResource
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from tests.unit.plane.factory import NOW, request, snapshot

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed_scenario"


def _log_decisions(url: str) -> dict[str, list]:
    """Place a batch on the test fleet, log it, reserve the placed ones; settle the first
    financial-ml run at $1.50 and release one media-ml run. Returns placed decisions by team."""
    snap = snapshot()
    decisions = place_batch(
        [
            request("eu-1"),
            request("eu-2"),
            request("us", datasets=("customer_orders_us",), team="media-ml"),
            request("us-2", datasets=("customer_orders_us",), team="media-ml"),
            request("ghost", datasets=("nowhere",)),
        ],
        snap,
        PlacementPolicy(),
    )
    placed: dict[str, list] = {}
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        for decision in decisions:
            store.record_decision(conn, decision, run_key=decision.request.request_id)
            if decision.status == PLACED:
                store.reserve(conn, decision)
                placed.setdefault(decision.request.team, []).append(decision)
        store.close_reservation(
            conn, placed["financial-ml"][0].decision_id, run_id="r1", kind="settle", usd=1.5
        )
        store.close_reservation(
            conn, placed["media-ml"][0].decision_id, run_id="r2", kind="release"
        )
        conn.commit()
    assert {d.status for d in decisions} == {PLACED, "rejected"}
    return placed


def test_team_spend_reads_ledger_decisions_quotas_and_budgets(plane_db: str) -> None:
    placed = _log_decisions(plane_db)
    quotas = load_quotas(SEED / "quotas.yaml")
    budgets = load_budgets(SEED / "budgets.yaml")
    with psycopg.connect(plane_db) as conn:
        lines = {ln.team: ln for ln in team_spend(conn, quotas, budgets, NOW)}

    assert set(lines) == {"financial-ml", "media-ml", "customer-support", "commerce-analytics"}
    fin = lines["financial-ml"]
    open_fin = placed["financial-ml"][1:]
    assert fin.spent_usd == 1.5 and fin.runs_settled == 1
    assert fin.reserved_usd == pytest.approx(
        sum(d.chosen_evaluation.cost.total_usd for d in open_fin), abs=1e-3
    )
    assert fin.gpus_held == sum(d.request.gpu_count for d in open_fin)
    assert (fin.budget_usd, fin.gpu_quota) == (5000.0, 16)
    assert fin.budget_used_share == pytest.approx((fin.spent_usd + fin.reserved_usd) / 5000, 1e-3)
    assert (fin.placed, fin.rejected) == (len(placed["financial-ml"]), 1)  # "ghost": no record
    media = lines["media-ml"]  # one released (costs nothing), one still held
    assert media.spent_usd == 0.0 and media.gpus_held == placed["media-ml"][1].request.gpu_count
    idle = lines["customer-support"]  # only a quota and a budget: zeros, not missing
    assert (idle.spent_usd, idle.gpus_held, idle.placed, idle.gpu_quota) == (0.0, 0, 0, 4)
    assert idle.last_decision_at is None

    # Next month the settled spend no longer counts against the monthly budget.
    with psycopg.connect(plane_db) as conn:
        later = {
            ln.team: ln
            for ln in team_spend(conn, quotas, budgets, datetime(2099, 1, 1, 0, 0, tzinfo=UTC))
        }
    assert later["financial-ml"].spent_usd == 0.0 and later["financial-ml"].placed == 0
    assert later["financial-ml"].gpus_held == fin.gpus_held  # held GPUs are held until released

    with psycopg.connect(plane_db) as conn, pytest.raises(ValueError, match="timezone"):
        team_spend(conn, quotas, budgets, datetime(2026, 11, 25))


def test_spend_markdown_shows_budget_and_quota_in_figures() -> None:
    from assets.spend import TeamSpend

    line = TeamSpend(
        team="financial-ml", period="monthly", period_start="2026-11-01T00:00:00Z",
        budget_usd=100.0, spent_usd=40.0, reserved_usd=10.0, budget_used_share=0.5,
        gpu_quota=4, gpus_held=1, runs_settled=2, placed=3, deferred=0, rejected=1,
        last_decision_at=None,
    )  # fmt: skip
    row = spend_markdown([line]).splitlines()[2]
    # budget: $40 spent + $10 reserved of $100; GPUs: 1 held of a quota of 4
    assert row == "| financial-ml | $50.00 of $100.00 (50%) | 1 of 4 (25%) |"
    none = TeamSpend(**{**line.__dict__, "budget_usd": None, "budget_used_share": None,
                        "gpu_quota": None})  # fmt: skip
    assert spend_markdown([none]).splitlines()[2] == (
        "| financial-ml | $50.00 (no budget set) | 1 (no GPU quota) |"
    )
    assert "No team" in spend_markdown([])


def test_team_spend_asset_materializes_table_chart_and_totals(
    plane_db: str, tmp_path: Path
) -> None:
    placed = _log_decisions(plane_db)
    plane = PlaneResource(
        postgres=PostgresResource(),
        quotas_file=str(SEED / "quotas.yaml"),
        budgets_file=str(SEED / "budgets.yaml"),
    )
    lakehouse = LakehouseResource(root=str(tmp_path / "lake"))
    result = dg.materialize([team_spend_asset], resources={"plane": plane, "lakehouse": lakehouse})
    assert result.success
    meta = result.asset_materializations_for_node(team_spend_asset.op.name)[0].metadata
    assert meta["dagster/row_count"].value == 4
    assert meta["spent_usd"].value == 1.5  # the ledger was written today
    held = sum(d.request.gpu_count for ds in placed.values() for d in ds[1:])
    assert meta["gpus_held"].value == held
    rows = {r.data["team"]: r.data for r in meta["teams"].value.records}
    assert rows["financial-ml"]["spent_usd"] == 1.5 and rows["financial-ml"]["gpu_quota"] == 16
    assert "| financial-ml | $" in meta["spend_chart"].value
    # per team, numbers the Plots tab charts over materializations
    fin = rows["financial-ml"]
    assert meta["team/financial-ml/spent_usd"] == dg.MetadataValue.float(1.5)
    assert meta["team/financial-ml/reserved_usd"] == dg.MetadataValue.float(fin["reserved_usd"])
    assert meta["team/financial-ml/gpus_held"] == dg.MetadataValue.int(fin["gpus_held"])
    assert meta["team/financial-ml/budget_used_share"].value == pytest.approx(
        (1.5 + fin["reserved_usd"]) / 5000, abs=1e-6
    )
    assert meta["team/financial-ml/quota_used_share"].value == pytest.approx(fin["gpus_held"] / 16)
    assert all(isinstance(meta[f"team/{t}/spent_usd"], dg.FloatMetadataValue) for t in rows)
    chart = Path(meta["chart_svg"].value)
    assert chart.read_text().startswith("<svg") and "financial-ml" in chart.read_text()
    table = lakehouse.read("reports", "team_spend")
    assert table.filter(table["team"] == "financial-ml")["spent_usd"].to_list() == [1.5]
    assert SPEND_KEY.to_user_string() == "plane/team_spend"


def test_decision_summary_names_cluster_region_hardware_cost_and_explain_command() -> None:
    tags = {
        "plane/decision_id": "89c8bca1bc8fdf639149",
        "plane/cluster": "eu-fra-a10",
        "plane/region": "eu-central-1",
        "plane/zone": "EU",
        "plane/gpu_type": "A10",
        "plane/gpu_count": "1",
        "plane/est_cost_usd": "2.4420",
        "plane/est_duration_s": "8000",
    }
    assert decision_summary(tags) == "eu-fra-a10 (eu-central-1, EU) | 1x A10 | est $2.44 for 2.22 h"
    local = {**tags, "plane/cluster": "local", "plane/region": "local", "plane/gpu_count": "0"}
    assert decision_summary(local) == "local (EU) | CPU | est $2.44 for 2.22 h"
    assert decision_summary({**local, "plane/zone": ""}).startswith("local (zone unknown) |")
    with pytest.raises(ValueError, match="plane/decision_id"):
        decision_summary({k: v for k, v in tags.items() if k != "plane/decision_id"})


def test_every_placed_run_request_carries_the_summary_tag(plane_db: str) -> None:
    from reasoning_plane.launch import SUMMARY as SUMMARY_TAG
    from reasoning_plane.tick import Pending, run_tick
    from sensors.placement import _run_requests

    snap = snapshot()
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        result = run_tick(
            conn,
            [Pending(request("eu-1"), "k1"), Pending(request("ghost", datasets=("x",)), "k2")],
            lambda c: snap,
            PlacementPolicy(),
        )
        conn.commit()
    (run,) = _run_requests(result, PlacementPolicy())  # the rejected one: nothing
    assert run.tags[SUMMARY_TAG] == decision_summary(run.tags)
    assert run.tags[SUMMARY_TAG].startswith(f"{run.tags['plane/cluster']} (")
    assert f" for {float(run.tags['plane/est_duration_s']) / 3600:.2f} h" in run.tags[SUMMARY_TAG]
    assert run.tags["plane/explain"] == f"plane explain {run.tags['plane/decision_id']}"


def test_run_status_sensors_handle_placed_and_unplaced_runs_in_one_tick(plane_db: str) -> None:
    """A tick that sees a placed run and an ordinary one settles the first and ignores the
    second; mixing a SkipReason with a reaction would fail every tick from then on."""
    from sensors.ledger import plane_metering_sensor

    (decision,) = place_batch([request("mixed-1")], snapshot(), PlacementPolicy())
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.record_decision(conn, decision)
        store.reserve(conn, decision)
        conn.commit()

    @dg.op
    def work() -> None:
        pass

    @dg.job
    def some_job() -> None:
        work()

    plane = PlaneResource(postgres=PostgresResource())
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None):
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"plane": plane}
            ) as context:
                return plane_metering_sensor.evaluate_tick(context)

        first = tick(None)  # sets its cursor: only runs that finish from now on count
        placed = some_job.execute_in_process(
            instance=instance, tags={"plane/decision_id": decision.decision_id}
        )
        some_job.execute_in_process(instance=instance)  # not placed by the plane
        second = tick(first.cursor)
    assert len(second.dagster_run_reactions) == 2
    assert all(r.error is None for r in second.dagster_run_reactions)
    with psycopg.connect(plane_db) as conn:
        row = conn.execute(
            "SELECT run_id FROM plane.ledger WHERE decision_id = %s AND kind = 'settle'",
            (decision.decision_id,),
        ).fetchone()
    assert row == (placed.run_id,)
