"""The source-change sensor, evaluated with a real Dagster instance and the real plane tables:
a changed source is queued for placement (ingestion reads governed data), never launched
unplaced, and the placement sensor places it with the facts of the asset and the catalog."""

from pathlib import Path

import dagster as dg
import psycopg

from reasoning_plane import store
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from stack_defs.definitions import build_defs
from tests.placed import GDPR_EU, declared_zone

PLANE = PlaneResource(postgres=PostgresResource())


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None, name: str):
    sensor = defs.resolve_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"plane": PLANE}
    ) as context:
        return sensor(context)


def _queued(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return sorted(p["request_id"] for p in store.pending_requests(conn))


def test_each_changed_source_is_queued_for_placement_once(
    sample_catalog: Path, tmp_path: Path, plane_db: str, monkeypatch
) -> None:
    monkeypatch.setenv("PLANE_LOCAL_CPU_SLOTS", "8")
    defs = build_defs(sources_file=sample_catalog, lakehouse_root=str(tmp_path / "lake"))
    with dg.instance_for_test() as instance:
        first = _tick(defs, instance, None, "source_files_sensor")
        assert first.run_requests == []  # nothing is launched unplaced
        queued = _queued(plane_db)
        assert [q.split("@")[0] for q in queued] == [
            "ingested/conference_transcripts",
            "ingested/customer_orders_eu",
            "ingested/customer_orders_us",
            "ingested/support_tickets",
        ]

        second = _tick(defs, instance, first.cursor, "source_files_sensor")
        assert second.run_requests == [] and _queued(plane_db) == queued  # nothing changed

        tickets = sample_catalog.parent / "samples" / "support_tickets.jsonl"
        tickets.write_text(tickets.read_text() + '{"ticket_id": "ZD-1", "priority": "low"}\n')
        _tick(defs, instance, second.cursor, "source_files_sensor")
        new = sorted(set(_queued(plane_db)) - set(queued))
        assert len(new) == 1 and new[0].startswith("ingested/support_tickets@")

        # The placement sensor places the queued ingestions on this machine declared EU: the
        # US personal data is rejected (its residency from the source's declaration), the
        # rest placed, each run carrying its signed decision for exactly its asset.
        with declared_zone(*GDPR_EU):
            placed = _tick(defs, instance, None, "placement_sensor")
        by_asset = {r.asset_selection[0].to_user_string(): r for r in placed.run_requests}
        assert "ingested/customer_orders_us" not in by_asset
        assert by_asset["ingested/customer_orders_eu"].tags["plane/zone"] == "EU"
        assert all(len(r.asset_selection) == 1 for r in placed.run_requests)
        with psycopg.connect(plane_db) as conn:
            status = dict(conn.execute("SELECT request_id, status FROM plane.requests").fetchall())
        assert {s for r, s in status.items() if r.startswith("ingested/customer_orders_us")} == {
            "rejected"
        }
        assert not store.pending_requests(psycopg.connect(plane_db))  # none left waiting


SEED = Path(__file__).resolve().parents[2] / "examples" / "seed_scenario"


class FleetEditedMidTick(PlaneResource):
    """The plane as an operator edits the fleet file while a tick runs: the file changes just
    before the tick's snapshot is read (every cluster's namespace renamed)."""

    def snapshot(self, conn, now=None, declared=None, fleet=None):
        path = Path(self.fleet_file)
        text = path.read_text()
        if "edited-{team}" not in text:
            path.write_text(
                text.replace(
                    "    kube_context:",
                    '    namespace_template: "edited-{team}"\n    kube_context:',
                )
            )
        return super().snapshot(conn, now=now, declared=declared, fleet=fleet)


def test_the_sensors_run_tags_come_from_the_snapshot_the_tick_decided_on(
    tmp_path: Path, plane_db: str, monkeypatch
) -> None:
    """A run's tags say what its signed decision says: built from the fleet of the tick's
    snapshot, not from a second read of the fleet file (which may have changed meanwhile; the
    launcher then refuses the run, its tags and its decision disagreeing)."""
    from datetime import UTC, datetime, timedelta

    from reasoning_plane.explain import request_to_dict
    from reasoning_plane.model import TelemetrySample, WorkloadRequest
    from stack_defs.definitions import defs

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text((SEED / "fleet.yaml").read_text())
    for name in ("QUOTAS", "BUDGETS"):
        monkeypatch.setenv(f"PLANE_{name}_FILE", str(SEED / f"{name.lower()}.yaml"))
    now = datetime.now(UTC) - timedelta(seconds=1)
    asked = WorkloadRequest(
        request_id="tickets-embedding",
        workload="embeddings/support_tickets",
        team="?",
        datasets=(),
        gpu_count=0,
        gpu_memory_gb=0,
        estimated_duration_s=600,
    )
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn,
            [
                TelemetrySample("us-east-a100", "A100-80GB", 24, 0.6, now),
                TelemetrySample("eu-fra-a10", "A10", 12, 0.6, now),
                TelemetrySample("eu-par-h100", "H100-80GB", 4, 0.6, now),
            ],
        )
        store.add_request(
            conn, asked.request_id, {**request_to_dict(asked), "requested_by": "support-copilot"}
        )
        conn.commit()
    plane = FleetEditedMidTick(postgres=PostgresResource(), fleet_file=str(fleet))
    with dg.instance_for_test() as instance:
        sensor = defs.resolve_sensor_def("placement_sensor")
        with dg.build_sensor_context(
            instance=instance, definitions=defs, resources={"plane": plane}
        ) as context:
            placed = sensor(context).run_requests
    assert placed
    with psycopg.connect(plane_db) as conn:
        for request in placed:
            logged = store.signed_decision(conn, request.tags["plane/decision_id"])
            assert logged is not None and logged.binding is not None
            assert logged.binding["namespace"].startswith("edited-")
            assert request.tags["plane/namespace"] == logged.binding["namespace"]


def test_deferred_work_is_observed_on_its_asset_once_per_outcome(
    tmp_path: Path, plane_db: str, monkeypatch
) -> None:
    """A queued request deferred for the same reason tick after tick: one decision record and
    one observation on its asset (status, reason, decision id), not one per tick; a new reason
    (the budget raised, the quota now short) is logged and observed again."""
    from datetime import UTC, datetime, timedelta

    from reasoning_plane.explain import request_to_dict
    from reasoning_plane.model import TelemetrySample, WorkloadRequest
    from stack_defs.definitions import defs

    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {team: customer-support, limit_usd: 0.0001}\n")
    monkeypatch.setenv("PLANE_BUDGETS_FILE", str(budgets))
    monkeypatch.setenv("PLANE_QUOTAS_FILE", str(SEED / "quotas.yaml"))
    monkeypatch.setenv("PLANE_FLEET_FILE", str(SEED / "fleet.yaml"))
    asked = WorkloadRequest(
        request_id="tickets-embedding",
        workload="embeddings/support_tickets",
        team="customer-support",
        datasets=(),
        gpu_count=0,
        gpu_memory_gb=0,
        estimated_duration_s=600,
    )
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.add_request(
            conn, asked.request_id, {**request_to_dict(asked), "requested_by": "support-copilot"}
        )
        conn.commit()

    def tick(instance):
        now = datetime.now(UTC) - timedelta(seconds=1)
        with psycopg.connect(plane_db) as conn:
            store.insert_samples(
                conn,
                [
                    TelemetrySample("us-east-a100", "A100-80GB", 24, 0.6, now),
                    TelemetrySample("eu-fra-a10", "A10", 12, 0.6, now),
                    TelemetrySample("eu-par-h100", "H100-80GB", 4, 0.6, now),
                ],
            )
            conn.commit()
        return _tick(defs, instance, None, "placement_sensor")

    def logged():
        with psycopg.connect(plane_db) as conn:
            return conn.execute(
                "SELECT decision_id, status, payload->>'reason' FROM plane.decisions"
                " ORDER BY decided_at"
            ).fetchall()

    with dg.instance_for_test() as instance:
        first = tick(instance)
        assert first.run_requests == []
        (seen,) = first.asset_events
        assert isinstance(seen, dg.AssetObservation)
        assert seen.asset_key == dg.AssetKey(["embeddings", "support_tickets"])
        assert seen.metadata["plane/status"].value == "deferred"
        assert "budget" in seen.metadata["plane/reason"].value
        (record,) = logged()
        assert seen.metadata["plane/decision_id"].value == record[0]
        for _ in range(3):
            again = tick(instance)
            assert again.asset_events == [] and again.run_requests == []
        assert logged() == [record]
        with psycopg.connect(plane_db) as conn:
            (pointer,) = conn.execute(
                "SELECT decision_id FROM plane.requests WHERE request_id = 'tickets-embedding'"
            ).fetchone()
        assert pointer == record[0]  # the queued request points at a logged decision

        # the same cause with other numbers (a budget still too small): no new record
        budgets.write_text("budgets:\n  - {team: customer-support, limit_usd: 0.0002}\n")
        assert tick(instance).asset_events == [] and logged() == [record]
        # the budget is ample now: placed, logged (a placement is not an observation)
        budgets.write_text("budgets:\n  - {team: customer-support, limit_usd: 800}\n")
        placed = tick(instance)
        assert placed.run_requests and placed.asset_events == []
        assert [(r[0], r[1]) for r in logged()] == [
            (record[0], "deferred"),
            (placed.run_requests[0].tags["plane/decision_id"], "placed"),
        ]
