"""The lakehouse on object storage, one location per residency zone, against a real S3 API
(moto's server on loopback): EU data's bytes only under the EU location, US under US; sources read
from s3:// only in their own zone; compute logs kept in a bucket after the run."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg
import pytest
import yaml

from data_plane.object_store import StorageResidencyError, parse_zone_locations
from stack_defs.definitions import build_defs
from tests.placed import GDPR_EU, run_placed_result
from tests.s3 import KEY_ID, SECRET, S3Server, moto_s3

US = ("US", "ISO27001,SOC2")
EU_LAKE, US_LAKE, EU_SOURCES, US_SOURCES = "plane-eu", "plane-us", "sources-eu", "sources-us"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with moto_s3() as server:
        server.create_bucket(EU_LAKE, "eu-central-1")
        server.create_bucket(US_LAKE, "us-east-1")
        server.create_bucket(EU_SOURCES, "eu-west-1")
        server.create_bucket(US_SOURCES, "us-east-2")
        monkeypatch.setenv("PLANE_S3_ENDPOINT_URL", server.endpoint_url)
        monkeypatch.setenv("PLANE_S3_ACCESS_KEY_ID", KEY_ID)
        monkeypatch.setenv("PLANE_S3_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv(
            "PLANE_LAKEHOUSE_ZONES", f"EU=s3://{EU_LAKE}/lake,US=s3://{US_LAKE}/lake"
        )
        yield server


def _source_on_s3(catalog: Path, s3: S3Server, name: str, bucket: str) -> None:
    """Move a sample source into a bucket and point the source catalog at it."""
    doc = yaml.safe_load(catalog.read_text())
    source = next(s for s in doc["sources"] if s["name"] == name)
    local = catalog.parent / source["path"]
    key = f"exports/{local.name}"
    s3.client().put_object(Bucket=bucket, Key=key, Body=local.read_bytes())
    local.unlink()  # nothing left to read locally
    source["path"] = f"s3://{bucket}/{key}"
    doc["derived"] = []
    catalog.write_text(yaml.safe_dump(doc))


def _run(catalog: Path, lake: Path, selection: str, zone: tuple[str, str] = GDPR_EU):
    defs = build_defs(sources_file=catalog, lakehouse_root=str(lake))
    keys = [dg.AssetKey.from_user_string(k) for k in selection.split()]
    return run_placed_result(defs, keys, instance=dg.DagsterInstance.ephemeral(), zone=zone)


def test_each_zone_data_is_stored_only_at_its_zone_location(
    sample_catalog: Path, tmp_path: Path, s3: S3Server, fresh_schema: None
) -> None:
    _source_on_s3(sample_catalog, s3, "customer_orders_eu", EU_SOURCES)
    lake = tmp_path / "lake"
    eu = _run(sample_catalog, lake, "ingested/customer_orders_eu ingested/support_tickets")
    eu_selection = "catalog/customer_orders_eu catalog/support_tickets chunks/support_tickets"
    eu2 = _run(sample_catalog, lake, eu_selection)
    us = _run(sample_catalog, lake, "ingested/customer_orders_us catalog/customer_orders_us", US)
    for result in (eu, eu2, us):
        bad = {
            k: (o.status, o.reason) for k, o in result.outcomes.items() if o.status != "succeeded"
        }
        assert not bad, bad

    eu_keys, us_keys = s3.keys(EU_LAKE), s3.keys(US_LAKE)
    assert "lake/ingested/customer_orders_eu.parquet" in eu_keys
    assert "lake/quarantine/customer_orders_eu.parquet" in eu_keys
    assert "lake/chunks/support_tickets.parquet" in eu_keys
    assert "lake/ingested/customer_orders_us.parquet" in us_keys
    # Every object names a dataset of its bucket's zone, and none of the other's.
    assert all("customer_orders_us" not in k for k in eu_keys), eu_keys
    assert all("customer_orders_eu" not in k and "support_tickets" not in k for k in us_keys)
    # The EU orders' bytes exist nowhere but the EU location (not locally either).
    eu_table = s3.get(EU_LAKE, "lake/ingested/customer_orders_eu.parquet")
    assert all(s3.get(US_LAKE, k) != eu_table for k in us_keys)
    assert not list(lake.rglob("*.parquet")) if lake.exists() else True
    # Read from the s3:// source: all 600 records accounted for.
    frame = pl.read_parquet(io.BytesIO(eu_table))
    quarantine = pl.read_parquet(
        io.BytesIO(s3.get(EU_LAKE, "lake/quarantine/customer_orders_eu.parquet"))
    )
    assert frame.height + quarantine.height == 600 and quarantine.height == 6
    assert set(quarantine["source_file"]) == {f"s3://{EU_SOURCES}/exports/customer_orders_eu.csv"}
    mats = {
        m.materialization.asset_key.to_user_string(): m.materialization
        for m in eu.get_asset_materialization_events()
    }
    meta = mats["ingested/customer_orders_eu"].metadata
    assert (
        meta["lakehouse_table"].value == f"s3://{EU_LAKE}/lake/ingested/customer_orders_eu.parquet"
    )


def test_a_source_outside_its_zone_is_never_read(
    sample_catalog: Path, tmp_path: Path, s3: S3Server, fresh_schema: None
) -> None:
    # EU personal data (declared at an eu-central-1 endpoint) kept in a bucket in us-east-2.
    _source_on_s3(sample_catalog, s3, "customer_orders_eu", US_SOURCES)
    result = _run(sample_catalog, tmp_path / "lake", "ingested/customer_orders_eu")
    outcome = result.outcomes["ingested/customer_orders_eu"]
    assert outcome.status == "failed", outcome
    failures = [
        e.step_failure_data.error.to_string()
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    assert any(
        "residency EU" in m and f"s3://{US_SOURCES}/" in m and "zone US" in m for m in failures
    ), failures
    assert s3.keys(EU_LAKE) == [] and s3.keys(US_LAKE) == []


def test_a_zone_location_in_another_zone_is_refused(
    sample_catalog: Path,
    tmp_path: Path,
    s3: S3Server,
    fresh_schema: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The operator maps EU to a bucket the storage reports in us-east-1: never written.
    monkeypatch.setenv("PLANE_LAKEHOUSE_ZONES", f"EU=s3://{US_LAKE}/eu,US=s3://{US_LAKE}/us")
    result = _run(sample_catalog, tmp_path / "lake", "ingested/customer_orders_eu")
    assert result.outcomes["ingested/customer_orders_eu"].status == "failed"
    failures = [
        e.step_failure_data.error.to_string()
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    assert any("is in zone US by its bucket's region, not EU" in m for m in failures), failures
    assert s3.keys(US_LAKE) == []


def test_unknown_and_composite_residency_have_no_location(
    tmp_path: Path, s3: S3Server, pg: psycopg.Connection, fresh_schema: None
) -> None:
    from resources.governance import GovernanceCatalogResource
    from resources.lakehouse import LakehouseResource
    from resources.postgres import PostgresResource

    lake = LakehouseResource(
        zone_locations=f"EU=s3://{EU_LAKE}/lake,US=s3://{US_LAKE}/lake",
        s3_endpoint_url=s3.endpoint_url,
        s3_access_key_id=KEY_ID,
        s3_secret_access_key=SECRET,
        governance=GovernanceCatalogResource(postgres=PostgresResource()),
        sources_file="data/sources.yaml",
    )
    frame = pl.DataFrame({"a": [1]})
    with pytest.raises(StorageResidencyError, match="residency is unknown"):
        lake.write("reports", "team_spend", frame)  # no catalog entry, no declaration
    with pytest.raises(StorageResidencyError, match="residency EU\\+US spans zones"):
        lake.write("curated", "daily_revenue", frame)  # declared from EU and US orders
    assert s3.keys(EU_LAKE) == [] and s3.keys(US_LAKE) == []
    # A declared EU source goes to the EU location.
    assert lake.write("ingested", "support_tickets", frame) == (
        f"s3://{EU_LAKE}/lake/ingested/support_tickets.parquet"
    )
    assert lake.read("ingested", "support_tickets").equals(frame)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("EU", "expected ZONE=s3://bucket/prefix"),
        ("eu=s3://b/p", "a zone is upper case"),
        ("EU=/data/lake", "is not an s3://bucket/prefix URL"),
        ("EU=s3://a/p,EU=s3://b/p", "EU: given twice"),
    ],
)
def test_zone_locations_errors_name_the_setting(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match="PLANE_LAKEHOUSE_ZONES") as err:
        parse_zone_locations(value, "PLANE_LAKEHOUSE_ZONES")
    assert problem in str(err.value)


def test_compute_logs_outlive_the_run_in_a_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Dagster job on an instance whose compute logs go to S3 (deploy/dagster.yaml's
    manager, dagster-aws's S3ComputeLogManager); its logs are read back from the bucket after
    the local copies are gone."""
    import shutil

    with moto_s3() as s3:
        s3.create_bucket("plane-logs", "eu-central-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        deployed = yaml.safe_load((Path(__file__).parents[2] / "deploy/dagster.yaml").read_text())
        logs = deployed["compute_logs"]
        assert logs["class"] == "S3ComputeLogManager"
        config = {
            **logs["config"],
            "bucket": "plane-logs",
            "region": "eu-central-1",
            "endpoint_url": s3.endpoint_url,
            "local_dir": str(tmp_path / "staging"),
        }
        home = tmp_path / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text(
            yaml.safe_dump({"compute_logs": {**logs, "config": config}})
        )

        @dg.op
        def shout() -> None:
            print("written by the step, kept after its pod")

        @dg.job
        def talk() -> None:
            shout()

        with dg.DagsterInstance.from_config(str(home)) as instance:
            result = talk.execute_in_process(instance=instance)
            assert result.success
            shutil.rmtree(tmp_path / "staging")  # the pod and its disk are gone
            keys = [k for k in s3.keys("plane-logs") if k.endswith(".out")]
            assert keys and all(k.startswith(config["prefix"] + "/") for k in keys), keys
            text = b"".join(s3.get("plane-logs", k) for k in keys).decode()
            assert "written by the step, kept after its pod" in text
            manager = instance.compute_log_manager
            # What the UI shows: the manager reads the step's log back from the bucket.
            run_id, kind, stem = keys[0].rsplit("/", 3)[1:]
            log_key = [run_id, kind, stem.removesuffix(".out")]
            assert run_id == result.run_id and manager.is_capture_complete(log_key)
            data = manager.get_log_data(log_key)
            assert b"written by the step, kept after its pod" in (data.stdout or b"")
