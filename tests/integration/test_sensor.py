"""The source-change sensor, evaluated with a real Dagster instance."""

from pathlib import Path

import dagster as dg

from stack_defs.definitions import build_defs


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("source_files_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return sensor(context)


def test_requests_each_changed_source_exactly_once(sample_catalog: Path, tmp_path: Path) -> None:
    defs = build_defs(sources_file=sample_catalog, lakehouse_root=str(tmp_path / "lake"))
    with dg.instance_for_test() as instance:
        first = _tick(defs, instance, None)
        keys = {r.run_key for r in first.run_requests}
        assert len(keys) == 4  # every source, first sight
        eu = next(r for r in first.run_requests if r.run_key.startswith("customer_orders_eu:"))
        assert {k.to_user_string() for k in eu.asset_selection} == {
            "ingested/customer_orders_eu",
            "catalog/customer_orders_eu",
            "curated/daily_revenue",
        }
        assert eu.tags["plane/source"] == "customer_orders_eu"

        second = _tick(defs, instance, first.cursor)
        assert second.run_requests == []  # nothing changed, nothing requested

        tickets = sample_catalog.parent / "samples" / "support_tickets.jsonl"
        tickets.write_text(tickets.read_text() + '{"ticket_id": "ZD-1", "priority": "low"}\n')
        third = _tick(defs, instance, second.cursor)
        assert [r.run_key.split(":")[0] for r in third.run_requests] == ["support_tickets"]
        assert third.run_requests[0].run_key not in keys  # new content, new run key
