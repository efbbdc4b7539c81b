"""Catalog records: the operator JSON shape, fail-closed defaults and the propagation rule."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from data_plane.catalog import (
    CatalogRecord,
    CatalogRecordError,
    classify,
    derive_record,
    tag_dataset,
)
from data_plane.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "governance.yaml")
WHEN = datetime(2024, 10, 29, 8, 0, tzinfo=UTC)


def entry(name: str, endpoint: str, declared: str | None, pii: dict | None = None, **kw):
    return tag_dataset(
        dataset_id=name,
        storage_endpoints=[endpoint],
        source_system="SAP_ERP",
        owner_team="financial-ml",
        declared_classification=declared,
        declared_retention=kw.pop("retention", None),
        pii_columns=pii or {},
        last_updated=WHEN,
        policy=POLICY,
        **kw,
    )


def test_eu_orders_serialise_to_the_operator_shape() -> None:
    e = entry(
        "customer_orders_eu",
        "s3://eu-central-1/customer-data",
        "PII",
        {"email": ["email"]},
        retention="7_years",
    )
    assert e.record.to_dict() == {
        "dataset_id": "customer_orders_eu",
        "classification": "PII",
        "data_residency": "EU",
        "retention_policy": "7_years",
        "storage_endpoints": ["s3://eu-central-1/customer-data"],
        "compliance_tags": {"gdpr_compliant": True, "data_classification": "Level_3"},
        "lineage": {"source_system": "SAP_ERP", "last_updated": "2024-10-29T08:00:00Z"},
    }
    assert e.regulations == ("GDPR",)
    assert CatalogRecord.from_dict(e.record.to_dict()) == e.record


def test_detected_pii_raises_a_lower_declaration() -> None:
    assert classify("INTERNAL", {"notes": ["email"]}) == "PII"
    assert classify("PUBLIC", {}) == "PUBLIC"
    assert classify(None, {}) == "UNKNOWN"  # nothing declared and nothing found: not public
    assert classify(None, {"x": ["phone"]}) == "PII"


def test_unknown_region_fails_closed() -> None:
    e = entry("mystery", "s3://mars-north-1/x", "PII", {"email": ["email"]})
    assert e.record.data_residency == "UNKNOWN"
    assert not e.record.residency_known
    assert e.record.gdpr_compliant is False  # unknown residency: not held under GDPR controls
    e2 = entry("undeclared", "s3://eu-west-1/x", None)
    assert e2.record.classification == "UNKNOWN"
    assert e2.record.data_classification == "Level_3"
    assert e2.record.retention_policy == "legal_hold"


def test_us_pii_is_not_gdpr_and_gets_ccpa() -> None:
    e = entry("us", "s3://us-east-1/x", "PII", {"email": ["email"]})
    assert e.record.gdpr_compliant is False
    assert e.regulations == ("CCPA",)


def test_derived_inherits_most_restrictive_residency_and_classification() -> None:
    eu = entry("eu", "s3://eu-central-1/x", "PII", {"email": ["email"]}, retention="7_years")
    us = entry("us", "s3://us-east-1/x", "INTERNAL", retention="3_years")
    derived = derive_record(
        dataset_id="daily",
        inputs=[eu, us],
        owner_team="finance",
        storage_endpoints=["file:///lake/daily.parquet"],
        last_updated=WHEN,
        policy=POLICY,
    )
    r = derived.record
    assert (r.classification, r.data_residency, r.retention_policy) == ("PII", "EU+US", "7_years")
    assert derived.derived_from == ("eu", "us")
    assert r.source_system == "derived:eu+us"
    assert r.gdpr_compliant is False  # EU+US is not entirely under GDPR controls

    only_eu = derive_record(
        dataset_id="eu_features",
        inputs=[eu],
        owner_team="finance",
        storage_endpoints=[],
        last_updated=WHEN,
        policy=POLICY,
    )
    assert only_eu.record.data_residency == "EU"
    assert only_eu.record.gdpr_compliant is True


def test_derived_from_unknown_is_unknown() -> None:
    pub = entry("talks", "gs://us-central1/x", "PUBLIC")
    mystery = entry("mystery", "s3://nowhere/x", "PUBLIC")
    d = derive_record(
        dataset_id="mix",
        inputs=[pub, mystery],
        owner_team="media",
        storage_endpoints=[],
        last_updated=WHEN,
        policy=POLICY,
    )
    assert d.record.data_residency == "UNKNOWN"
    # Output that itself holds PII is PII even if every input was public.
    d2 = derive_record(
        dataset_id="pub2",
        inputs=[pub],
        owner_team="media",
        storage_endpoints=[],
        last_updated=WHEN,
        policy=POLICY,
        pii_columns={"speaker": ["person_name"]},
    )
    assert d2.record.classification == "PII"


def test_derive_without_inputs_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one governed input"):
        derive_record(
            dataset_id="x",
            inputs=[],
            owner_team="t",
            storage_endpoints=[],
            last_updated=WHEN,
            policy=POLICY,
        )


@pytest.mark.parametrize(
    "raw",
    [
        {"dataset_id": "x", "compliance_tags": {}, "lineage": {}, "extra": 1},
        {"compliance_tags": {}, "lineage": {}},
        {"dataset_id": "x", "compliance_tags": {"gdpr_compliant": "yes"}, "lineage": {}},
        {"dataset_id": "x", "compliance_tags": {}, "lineage": {}, "storage_endpoints": "s3://a"},
        ["not", "an", "object"],
    ],
)
def test_from_dict_is_strict(raw) -> None:
    with pytest.raises(CatalogRecordError):
        CatalogRecord.from_dict(raw)


def test_from_dict_fails_closed_on_missing_values() -> None:
    r = CatalogRecord.from_dict({"dataset_id": "x", "compliance_tags": {}, "lineage": {}})
    assert (r.classification, r.data_residency) == ("UNKNOWN", "UNKNOWN")
