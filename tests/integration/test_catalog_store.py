"""The governance catalog on the real (embedded) PostgreSQL."""

from datetime import UTC, datetime
from pathlib import Path

import psycopg

from data_plane import catalog_store
from data_plane.catalog import tag_dataset
from data_plane.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "governance.yaml")


def _entry(rows: int, when: datetime):
    return tag_dataset(
        dataset_id="customer_orders_eu",
        storage_endpoints=["s3://eu-central-1/customer-data"],
        source_system="SAP_ERP",
        owner_team="financial-ml",
        declared_classification="PII",
        declared_retention="7_years",
        pii_columns={"email": ["email"]},
        last_updated=when,
        policy=POLICY,
        row_count=rows,
        quarantined_rows=1,
        content_hash="abc",
    )


def test_upsert_is_idempotent_and_history_appends_on_change(
    pg: psycopg.Connection, fresh_schema: None
) -> None:
    catalog_store.ensure_schema(pg)
    t0 = datetime(2024, 10, 29, tzinfo=UTC)
    assert catalog_store.upsert_entry(pg, _entry(10, t0), run_id="r1") is True
    # Same facts, later timestamp: no new history row.
    assert catalog_store.upsert_entry(pg, _entry(10, datetime.now(UTC)), run_id="r2") is False
    assert catalog_store.history_count(pg, "customer_orders_eu") == 1
    assert catalog_store.upsert_entry(pg, _entry(11, t0), run_id="r3") is True
    assert catalog_store.history_count(pg, "customer_orders_eu") == 2

    got = catalog_store.get_entry(pg, "customer_orders_eu")
    assert got is not None and got.row_count == 11
    assert got.record.to_dict()["compliance_tags"] == {
        "gdpr_compliant": True,
        "data_classification": "Level_3",
    }
    assert [e.dataset_id for e in catalog_store.list_entries(pg)] == ["customer_orders_eu"]
    # The stored JSON is exactly the operator shape.
    stored = pg.execute("SELECT record FROM governance.catalog").fetchone()[0]
    assert set(stored) == {
        "dataset_id",
        "classification",
        "data_residency",
        "retention_policy",
        "storage_endpoints",
        "compliance_tags",
        "lineage",
    }


def test_ensure_schema_twice_is_harmless(pg: psycopg.Connection, fresh_schema: None) -> None:
    catalog_store.ensure_schema(pg)
    catalog_store.ensure_schema(pg)
    assert catalog_store.get_entry(pg, "nope") is None
