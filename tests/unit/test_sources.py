from pathlib import Path

import pytest
import yaml

from data_plane.errors import InputFileError
from data_plane.sources import load_source_catalog

REPO = Path(__file__).resolve().parents[2]


def test_shipped_catalog_declares_the_enterprise_sources() -> None:
    catalog = load_source_catalog(REPO / "data" / "sources.yaml")
    by_name = {s.name: s for s in catalog.sources}
    assert {
        "customer_orders_eu",
        "customer_orders_us",
        "support_tickets",
        "conference_transcripts",
    } <= set(by_name)
    eu = by_name["customer_orders_eu"]
    assert (eu.source_system, eu.storage_endpoint, eu.format) == (
        "SAP_ERP",
        "s3://eu-central-1/customer-data",
        "csv",
    )
    assert {s.format for s in catalog.sources} == {"csv", "jsonl", "parquet"}
    for spec in catalog.sources:
        assert spec.path.exists(), spec.path
    assert [d.name for d in catalog.derived] == ["daily_revenue"]


def _minimal() -> dict:
    return {
        "sources": [
            {
                "name": "orders",
                "format": "csv",
                "path": "orders.csv",
                "storage_endpoint": "s3://eu-central-1/x",
                "source_system": "ERP",
                "owner_team": "finance",
                "columns": {"id": {"type": "string", "required": True}},
            }
        ]
    }


def _load(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    load_source_catalog(path)


def test_minimal_catalog_loads(tmp_path: Path) -> None:
    _load(tmp_path, _minimal())


@pytest.mark.parametrize(
    ("mutate", "field_part"),
    [
        (lambda d: d["sources"][0].update(surprise=1), "surprise"),
        (lambda d: d["sources"][0].update(format="xml"), "format"),
        (lambda d: d["sources"][0].pop("owner_team"), "owner_team"),
        (lambda d: d["sources"][0].update(owner_team="Finance Team"), "owner_team"),
        (lambda d: d["sources"][0].update(name="Orders!"), "name"),
        (lambda d: d["sources"][0].update(name="x" * 80), "name"),
        (lambda d: d["sources"][0].update(path="../../etc/passwd"), "path"),
        (lambda d: d["sources"][0].update(key="nope"), "key"),
        (lambda d: d["sources"][0].update(classification="TOP_SECRET"), "classification"),
        (lambda d: d["sources"][0].update(pii_columns=["nope"]), "pii_columns"),
        (lambda d: d["sources"][0]["columns"].update(amount={"type": "money"}), "type"),
        (lambda d: d["sources"][0]["columns"].update(a={"type": "float", "min": "zero"}), "min"),
        (
            lambda d: d["sources"][0]["columns"].update(a={"type": "string", "pattern": "("}),
            "pattern",
        ),
        (lambda d: d["sources"][0]["columns"].update(a={"type": "string", "min": 1}), "columns.a"),
        (lambda d: d["sources"].append(dict(d["sources"][0])), "name"),
        (
            lambda d: d.update(
                derived=[{"name": "x", "inputs": ["missing"], "sql": "select 1", "owner_team": "t"}]
            ),
            "inputs",
        ),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_bad_catalogs_name_the_field(tmp_path: Path, mutate, field_part: str) -> None:
    doc = _minimal()
    mutate(doc)
    with pytest.raises(InputFileError) as err:
        _load(tmp_path, doc)
    assert field_part in err.value.field
    assert "sources.yaml" in str(err.value)


def test_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not valid YAML"):
        _load(tmp_path, "sources: [ {name: a\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="file not found"):
        load_source_catalog(tmp_path / "nope.yaml")
