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
