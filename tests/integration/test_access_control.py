"""Access control on the real PostgreSQL: the Cedar engine decides, denials land in the
append-only ``governance.access_log`` with the policy version, and model use is governed by the
same engine."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest

from data_plane import access_log, catalog_store, classifier, model_registry
from data_plane.access import load_principals
from data_plane.authz import Authorizer
from data_plane.catalog import tag_dataset
from data_plane.policy import load_policy
from data_plane.retrieval import Retriever, load_store_config
from resources.vectors import connect_store, log_access

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "governance.yaml")
PRINCIPALS = load_principals(REPO / "config" / "principals.yaml")
ENGINE = Authorizer(REPO / "config" / "policies")
WHEN = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _entry(name: str, endpoint: str, owner: str, classification: str | None):
    return tag_dataset(
        dataset_id=name,
        storage_endpoints=[endpoint],
        source_system="test",
        owner_team=owner,
        declared_classification=classification,
        declared_retention="1_year",
        pii_columns={},
        last_updated=WHEN,
        policy=POLICY,
    )


@pytest.fixture
def catalog(database_url: str, fresh_schema: None) -> Iterator[psycopg.Connection]:
    # Autocommit: the test's own reads hold no lock while the code under test writes the log.
    pg = psycopg.connect(database_url, autocommit=True)
    catalog_store.ensure_schema(pg)
    for entry in (
        _entry("customer_orders_eu", "s3://eu-central-1/customer-data", "financial-ml", "PII"),
        _entry("talks", "s3://us-east-1/media", "media-ml", "PUBLIC"),
        _entry("mystery", "s3://nowhere-9/x", "financial-ml", "PUBLIC"),  # residency UNKNOWN
        _entry("segment_topic_classifier", "s3://us-east-1/media", "media-ml", "PUBLIC"),
    ):
        catalog_store.upsert_entry(pg, entry)
    with pg:
        yield pg


def _retriever(conn: psycopg.Connection) -> Retriever:
    def no_embedding(texts: list[str]) -> np.ndarray:
        raise AssertionError("planning must not embed")

    return Retriever(
        stores=load_store_config(REPO / "config" / "vector_stores.yaml"),
        connect=connect_store,
        embed=no_embedding,
        catalog=lambda: catalog_store.list_entries(conn),
        principals=PRINCIPALS,
        authorizer=ENGINE,
        audit=log_access,
    )


def test_denied_reads_are_logged_with_the_policy_version(catalog: psycopg.Connection) -> None:
    retriever = _retriever(catalog)
    plan = {s.region: ds for s, ds, _ in retriever.plan(PRINCIPALS["guest"], "US")}
    assert plan == {"US": ["segment_topic_classifier", "talks"]}
    rows = {r.resource: r for r in access_log.entries(catalog, principal="guest")}
    assert set(rows) == {"Dataset::customer_orders_eu", "Dataset::mystery"}
    assert "forbid: unknown-residency" in rows["Dataset::mystery"].reasons
    eu = rows["Dataset::customer_orders_eu"]
    assert eu.decision == "deny" and eu.action == "retrieve" and eu.on_behalf_of is None
    assert eu.policy_version == ENGINE.version and "forbid: store-region" in eu.reasons
    assert eu.context["serve_region"] == "US" and eu.at is not None

    # An agent acting for a user: the user's narrower rights apply, and both names are logged.
    plan = {
        s.region: ds
        for s, ds, _ in retriever.plan(
            PRINCIPALS["finance-assistant"], "EU", PRINCIPALS["anna.schmidt"]
        )
    }
    assert plan == {"EU": ["customer_orders_eu"]}  # not the US data the agent alone could read
    alone = {s.region: ds for s, ds, _ in retriever.plan(PRINCIPALS["finance-assistant"], "EU")}
    assert "talks" in alone["US"]
    acted = access_log.entries(catalog, principal="finance-assistant")
    talks = [r for r in acted if r.resource == "Dataset::talks" and r.on_behalf_of]
    assert talks and talks[0].on_behalf_of == "anna.schmidt"
    assert any(x.startswith("anna.schmidt: forbid: store-region") for x in talks[0].reasons)


def test_access_log_is_append_only(catalog: psycopg.Connection) -> None:
    _retriever(catalog).plan(PRINCIPALS["guest"], "US").__next__()
    count = catalog.execute("SELECT count(*) FROM governance.access_log").fetchone()[0]
    assert count >= 2
    for statement in (
        "UPDATE governance.access_log SET decision = 'allow'",
        "DELETE FROM governance.access_log",
        "TRUNCATE governance.access_log",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            catalog.execute(statement)
        catalog.rollback()
    assert catalog.execute("SELECT count(*) FROM governance.access_log").fetchone()[0] == count


def _register(conn: psycopg.Connection, name: str) -> None:
    rng = np.random.default_rng(0)
    vectors = np.vstack([rng.normal(0, 1, (20, 4)), rng.normal(3, 1, (20, 4))])
    labels = ["a"] * 20 + ["b"] * 20
    model = classifier.train(vectors, labels, [str(i) for i in range(40)])
    data, sha = classifier.dump(model)
    model_registry.ensure_schema(conn)
    model_registry.register(
        conn,
        model_name=name,
        fingerprint=model.fingerprint,
        artifact=data,
        artifact_sha256=sha,
        metrics=model.metrics,
        lineage={},
        governance={},
    )


def test_model_use_goes_through_the_same_engine(catalog: psycopg.Connection) -> None:
    catalog.execute("DROP SCHEMA IF EXISTS models CASCADE")
    catalog.commit()
    try:
        _register(catalog, "segment_topic_classifier")
        _register(catalog, "uncatalogued_model")
        catalog.commit()
        logged: list = []
        version, model = model_registry.use_model(
            catalog,
            "segment_topic_classifier",
            principal=PRINCIPALS["guest"],
            authorizer=ENGINE,
            audit=logged.extend,
        )
        assert version.version == 1 and model.labels == ("a", "b") and not logged
        with pytest.raises(model_registry.ModelAccessDenied, match="model-region") as denied:
            model_registry.use_model(
                catalog,
                "segment_topic_classifier",
                principal=PRINCIPALS["anna.schmidt"],  # EU only; the model is US
                authorizer=ENGINE,
                audit=log_access,
            )
        assert denied.value.decision.policy_version == ENGINE.version
        # No catalog record: unknown governance, denied to everyone (fail closed).
        with pytest.raises(model_registry.ModelAccessDenied, match="unknown-classification"):
            model_registry.use_model(
                catalog,
                "uncatalogued_model",
                principal=PRINCIPALS["jordan.lee"],
                authorizer=ENGINE,
                audit=log_access,
            )
        rows = access_log.entries(catalog)
        assert {(r.principal, r.action, r.resource) for r in rows} >= {
            ("anna.schmidt", "use_model", "Model::segment_topic_classifier"),
            ("jordan.lee", "use_model", "Model::uncatalogued_model"),
        }
    finally:
        catalog.rollback()
        catalog.execute("DROP SCHEMA IF EXISTS models CASCADE")
        catalog.commit()


def test_read_grants_are_the_cedar_decisions_a_principal_gets_alone(
    catalog: psycopg.Connection,
) -> None:
    """What the stores' search functions let a key read (`retrieval.read_grants`) is exactly
    what `Retriever.plan` allows the principal acting alone, in every region."""
    from data_plane.retrieval import read_grants

    entries = catalog_store.list_entries(catalog)
    stores = load_store_config(REPO / "config" / "vector_stores.yaml")
    grants = read_grants(ENGINE, PRINCIPALS, entries, stores)
    hashes = {e.dataset_id: catalog_store.entry_hash(e) for e in entries}
    assert all(h == hashes[d] for _, d, _, h in grants)
    retriever = _retriever(catalog)
    for principal in PRINCIPALS.values():
        for region in ("EU", "US"):
            planned = {d for _, ds, _ in retriever.plan(principal, region) for d in ds}
            granted = {d for p, d, r, _ in grants if p == principal.name and r == region}
            assert granted == planned, (principal.name, region)
    assert ("guest", "talks", "US") in {(p, d, r) for p, d, r, _ in grants}
    assert not [g for g in grants if g[0] == "guest" and g[1] == "customer_orders_eu"]
