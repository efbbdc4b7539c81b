"""Hostile query strings and dataset names against the real stores (issue 8, item 7).

SQL injection, path traversal, unicode, NUL bytes and huge values, as a Layer 3 caller would
send them, through governed retrieval (real model, real pgvector), the governance catalog and
the vector store's dataset filter. Each is answered within the rules or refused with a clear
error; the tables are intact afterwards and nothing unreadable is ever returned.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_plane import catalog_store
from data_plane.access import Principal
from data_plane.authz import Authorizer
from data_plane.catalog import tag_dataset
from data_plane.embedder import Embedder
from data_plane.policy import load_policy
from data_plane.retrieval import Retriever
from data_plane.vector_store import (
    ChunkRow,
    RegionStore,
    VectorStoreError,
    ensure_store,
    search_store,
    upsert_chunks,
)
from resources.vectors import connect_store

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
STORE = RegionStore(region="US", schema="vectors_hostile_us")
POLICY = load_policy(REPO / "config" / "governance.yaml")
EVIL = "orders'); DROP SCHEMA governance CASCADE; --"
ATTACKS = [
    "'; DROP SCHEMA governance CASCADE; --",
    "' OR '1'='1",
    '") UNION SELECT text FROM vectors_hostile_us.chunks --',
    "../../../../etc/passwd",
    "%00' OR 1=1",
    "\u202eevil\u202c",
    "\U0001f4a5" * 50,
    "Robert'); DELETE FROM governance.catalog; --",
    "a" * 9_999,
    "\\x00\\x1a",
    "$(rm -rf /)",
]
QUERIES = st.sampled_from(ATTACKS) | st.text(max_size=200)
GUEST = Principal(
    name="guest", teams=frozenset(), clearance="PUBLIC", regions=frozenset({"US"}), home_region="US"
)


def _entry(name: str, classification: str, owner: str):
    return tag_dataset(
        dataset_id=name,
        storage_endpoints=["s3://us-east-1/x"],
        source_system="test",
        owner_team=owner,
        declared_classification=classification,
        declared_retention="1_year",
        pii_columns={},
        last_updated=datetime(2026, 11, 25, tzinfo=UTC),
        policy=POLICY,
    )


def _chunk(dataset: str, i: int, text: str, classification: str, owner: str) -> ChunkRow:
    return ChunkRow(
        chunk_id=f"{dataset}-{i}",
        dataset_id=dataset,
        source_column="text",
        row_ref=str(i),
        chunk_index=0,
        text=text,
        classification=classification,
        residency="US",
        owner_team=owner,
        pii_types=(),
        content_hash=f"h{i}",
    )


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[tuple[Retriever, Embedder]]:
    embedder = Embedder()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {STORE.schema} CASCADE")
    with psycopg.connect(database_url) as conn:
        catalog_store.ensure_schema(conn)
        catalog_store.upsert_entry(conn, _entry("talks", "PUBLIC", "media-ml"))
        catalog_store.upsert_entry(conn, _entry(EVIL, "CONFIDENTIAL", "financial-ml"))
        conn.commit()
    public = ["GPU scheduling on Kubernetes", "vector databases and recall", "refund policy talk"]
    secret = ["the acquisition closes on Friday", "refund to account 1234", "board minutes"]
    rows = [_chunk("talks", i, t, "PUBLIC", "media-ml") for i, t in enumerate(public)]
    rows += [_chunk(EVIL, i, t, "CONFIDENTIAL", "financial-ml") for i, t in enumerate(secret)]
    with connect_store(STORE) as conn:
        ensure_store(conn, STORE)
        upsert_chunks(conn, STORE, rows, embedder.encode([r.text for r in rows]), "m")

    def catalog():
        with psycopg.connect(database_url) as conn:
            return [e for e in catalog_store.list_entries(conn) if e.dataset_id in {"talks", EVIL}]

    retriever = Retriever(
        stores={"US": STORE},
        connect=connect_store,
        embed=embedder.encode,
        catalog=catalog,
        principals={"guest": GUEST},
        authorizer=Authorizer(REPO / "config" / "policies"),
    )
    yield retriever, embedder
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {STORE.schema} CASCADE")
        conn.execute(
            "DELETE FROM governance.catalog WHERE dataset_id = ANY(%s)", (["talks", EVIL],)
        )


def _intact(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        chunks = conn.execute(f"SELECT count(*) FROM {STORE.schema}.chunks").fetchone()[0]
        evil = conn.execute(
            "SELECT count(*) FROM governance.catalog WHERE dataset_id = %s", (EVIL,)
        ).fetchone()[0]
    return chunks, evil


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=QUERIES)
def test_hostile_queries_are_answered_within_the_rules_or_refused(world, query: str) -> None:
    retriever, _ = world
    try:
        hits = retriever.search(query, "guest", k=5)
    except ValueError as exc:  # empty, or longer than 10,000 characters: said clearly
        assert "query" in str(exc)
        assert not query.strip() or len(query) > 10_000
        return
    assert {h.dataset_id for h in hits} <= {"talks"}  # never the confidential dataset
    assert all(h.classification == "PUBLIC" for h in hits)


def test_hostile_dataset_names_round_trip_and_filter_exactly(world, database_url: str) -> None:
    retriever, embedder = world
    assert _intact(database_url) == (6, 1)
    with psycopg.connect(database_url) as conn:
        entry = catalog_store.get_entry(conn, EVIL)
        assert entry is not None and entry.dataset_id == EVIL  # stored and read back verbatim
        for name in ATTACKS:
            assert catalog_store.get_entry(conn, name) is None
        with pytest.raises(psycopg.DataError, match="NUL"):
            catalog_store.get_entry(conn, "a\x00b")
    vector = embedder.encode(["refund"])[0]
    with connect_store(STORE) as conn:
        # The dataset filter matches names exactly: injected text selects nothing.
        for name in ATTACKS:
            assert (
                search_store(conn, STORE, vector, 10, allowed_datasets=[name], exclude_pii=False)
                == []
            )
        only_evil = search_store(
            conn, STORE, vector, 10, allowed_datasets=[EVIL], exclude_pii=False
        )
        assert {h.dataset_id for h in only_evil} == {EVIL} and len(only_evil) == 3
        with pytest.raises(VectorStoreError):
            search_store(conn, STORE, vector, 10**9, allowed_datasets=None, exclude_pii=False)
    # The confidential dataset with the hostile name is readable only by its owners.
    owner = Principal(
        name="o",
        teams=frozenset({"financial-ml"}),
        clearance="CONFIDENTIAL",
        regions=frozenset({"US"}),
        home_region="US",
    )
    assert {h.dataset_id for h in retriever.search("board minutes", owner, k=10)} == {"talks", EVIL}
    with pytest.raises(LookupError, match="unknown principal"):
        retriever.search("x", "guest'; --", k=1)
    with pytest.raises(ValueError, match="region"):
        retriever.search("x", "guest", k=1, region="US'; DROP")
    with pytest.raises(ValueError, match="k must be"):
        retriever.search("x", "guest", k=10**12)
    assert _intact(database_url) == (6, 1)
