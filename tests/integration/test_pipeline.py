"""The Layer 1 graph materialized for real: files -> lakehouse -> catalog in PostgreSQL."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg
import pytest
import yaml

from data_plane import catalog_store
from stack_defs.definitions import build_defs
from tests.placed import GDPR_EU, PlacedResult, run_placed_result

SERVING = Path(__file__).resolve().parents[2] / "config" / "serving.yaml"

US = ("US", "ISO27001,SOC2")


def _materialize(
    sources: Path, lake: Path, selection: str = "*", zone: tuple[str, str] = GDPR_EU
) -> PlacedResult:
    """The graph placed by the reasoning plane and run on this machine declared in ``zone``."""
    defs = build_defs(sources_file=sources, lakehouse_root=str(lake))
    return run_placed_result(defs, selection, instance=dg.DagsterInstance.ephemeral(), zone=zone)


def _checks(result: PlacedResult) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_main_graph_ingests_tags_and_derives(
    sample_catalog: Path, tmp_path: Path, pg: psycopg.Connection, fresh_schema: None
) -> None:
    lake = tmp_path / "lake"
    result = _materialize(sample_catalog, lake)  # this machine declared EU (GDPR)
    outcomes = result.outcomes
    # US personal data is not processed on an EU machine, nor what reads it.
    assert outcomes["ingested/customer_orders_us"].status == "rejected"
    assert (
        "customer_orders_us is PII with residency US"
        in outcomes["ingested/customer_orders_us"].reason
    )
    assert outcomes["curated/daily_revenue"].status == "skipped"
    us = _materialize(sample_catalog, lake, zone=US)  # the same machine declared US
    assert us.outcomes["ingested/customer_orders_us"].status == "succeeded"
    assert us.outcomes["ingested/customer_orders_eu"].status == "rejected"
    assert all(
        o.status == "succeeded"
        for k, o in outcomes.items()
        if "customer_orders_us" not in k and k != "curated/daily_revenue"
    ), outcomes
    # EU and US personal data together: no single zone may process them.
    revenue = us.outcomes["curated/daily_revenue"]
    assert revenue.status in ("rejected", "skipped"), revenue
    checks = _checks(result)
    # The shipped gateway endpoints are cluster addresses, unreachable from here: the
    # endpoints' check says so. Every data-plane check passes.
    assert checks.pop(("serving/endpoints", "models_served_compliantly")) is False
    assert checks and all(checks.values()), [k for k, v in checks.items() if not v]
    assert ("ingested/customer_orders_eu", "quarantine_below_threshold") in checks
    assert ("catalog/customer_orders_eu", "residency_known") in checks
    assert ("catalog/support_tickets", "pii_columns_tagged") in checks

    eu = catalog_store.get_entry(pg, "customer_orders_eu")
    assert eu is not None
    record = eu.record.to_dict()
    assert record["data_residency"] == "EU"
    assert record["classification"] == "PII"
    assert record["compliance_tags"]["gdpr_compliant"] is True
    assert record["lineage"]["source_system"] == "SAP_ERP"
    assert {"email", "phone", "iban", "customer_name"} <= set(eu.pii_columns)
    assert eu.row_count == 594 and eu.quarantined_rows == 6

    tickets = catalog_store.get_entry(pg, "support_tickets")
    assert tickets is not None and "body" in tickets.pii_columns  # PII inside free text
    talks = catalog_store.get_entry(pg, "conference_transcripts")
    assert talks is not None and talks.record.classification == "PUBLIC" and not talks.pii_columns

    assert catalog_store.get_entry(pg, "daily_revenue") is None  # never derived: see above

    quarantine = pl.read_parquet(lake / "quarantine" / "customer_orders_eu.parquet")
    assert quarantine.height == 6 and quarantine["reason"].null_count() == 0
    ingested = pl.read_parquet(lake / "ingested" / "customer_orders_eu.parquet")
    assert ingested.height + quarantine.height == 600  # nothing lost
    manifest = json.loads((lake / "ingested" / "customer_orders_eu.json").read_text())
    assert len(manifest["content_hash"]) == 64

    # Materialization metadata and tags a person sees in the UI.
    mats = {
        m.materialization.asset_key.to_user_string(): m.materialization
        for m in result.get_asset_materialization_events()
    }
    meta = mats["catalog/customer_orders_eu"].metadata
    assert meta["data_residency"].value == "EU"
    assert meta["catalog_record"].value == record
    schema = meta["dagster/column_schema"].value
    assert {c.name: c.tags.get("pii") for c in schema.columns}["email"] == "email"
    assert mats["ingested/customer_orders_eu"].metadata["quarantined_rows"].value == 6

    # Re-running is idempotent: same tables, no new catalog history.
    history = pg.execute("SELECT count(*) FROM governance.catalog_history").fetchone()[0]
    again = _materialize(sample_catalog, lake)
    assert all(o.status != "failed" for o in again.outcomes.values())
    assert pl.read_parquet(lake / "ingested" / "customer_orders_eu.parquet").equals(ingested)
    pg.rollback()
    assert pg.execute("SELECT count(*) FROM governance.catalog_history").fetchone()[0] == history
    datasets = {r[0] for r in pg.execute("SELECT dataset_id FROM governance.catalog")}
    assert datasets == {
        "customer_orders_eu",
        "customer_orders_us",
        "support_tickets",
        "conference_transcripts",
        "segment_topic_classifier",
        "conference_transcripts_topics",
        # the served models' records (serving/model_catalog, from config/serving.yaml)
        *(m["name"] for m in yaml.safe_load(SERVING.read_text())["models"]),
    }


def test_unknown_region_is_never_ingested_and_undeclared_pii_fails_its_check(
    sample_catalog: Path, tmp_path: Path, pg: psycopg.Connection, fresh_schema: None
) -> None:
    doc = yaml.safe_load(sample_catalog.read_text())
    tickets = next(s for s in doc["sources"] if s["name"] == "support_tickets")
    tickets["storage_endpoint"] = "s3://atlantis-1/support"  # a region nobody mapped
    doc["derived"] = []
    sample_catalog.write_text(yaml.safe_dump(doc))
    result = _materialize(sample_catalog, tmp_path / "lake")
    # Unknown residency is the most restrictive: no cluster may even ingest it (fail closed).
    ingest = result.outcomes["ingested/support_tickets"]
    assert ingest.status == "rejected" and "unknown residency" in ingest.reason
    assert not (tmp_path / "lake" / "ingested" / "support_tickets.parquet").exists()
    assert catalog_store.get_entry(pg, "support_tickets") is None
    assert _checks(result)[("catalog/customer_orders_eu", "residency_known")] is True

    tickets["storage_endpoint"] = "s3://eu-west-1/support-tickets"
    tickets["pii_columns"] = ["customer_email"]  # body holds PII but is not declared
    sample_catalog.write_text(yaml.safe_dump(doc))
    result = _materialize(sample_catalog, tmp_path / "lake2", "*catalog/support_tickets")
    assert _checks(result)[("catalog/support_tickets", "pii_columns_tagged")] is False


def test_too_much_quarantine_fails_the_check(
    sample_catalog: Path, tmp_path: Path, fresh_schema: None
) -> None:
    doc = yaml.safe_load(sample_catalog.read_text())
    for s in doc["sources"]:
        if s["name"] == "customer_orders_eu":
            s["quarantine_max_share"] = 0.005
    sample_catalog.write_text(yaml.safe_dump(doc))
    result = _materialize(sample_catalog, tmp_path / "lake")
    assert _checks(result)[("ingested/customer_orders_eu", "quarantine_below_threshold")] is False


def test_empty_source_file_fails_the_step_with_a_clear_error(
    sample_catalog: Path, tmp_path: Path, fresh_schema: None
) -> None:
    (sample_catalog.parent / "samples" / "support_tickets.jsonl").write_bytes(b"")
    result = _materialize(sample_catalog, tmp_path / "lake")
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1, [e.message for e in failures]
    message = failures[0].event_specific_data.error.cause.message
    assert "support_tickets.jsonl" in message and "empty" in message
    # The other sources were still ingested.
    assert (tmp_path / "lake" / "ingested" / "customer_orders_eu.parquet").exists()


@pytest.mark.parametrize("module", ["assets", "sensors", "resources", "stack_defs", "data_plane"])
def test_top_level_packages_are_this_repository(module: str) -> None:
    imported = __import__(module)
    assert Path(imported.__file__).resolve().parents[1] == Path(__file__).resolve().parents[2]
