"""Per-region vector stores (Layer 1B) on the real embedded PostgreSQL + pgvector.

Every test creates its own store schemas (``vectors_eu_<hex8>``) and drops them at the end.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from data_plane.vector_store import (
    EMBEDDING_DIM,
    ChunkRow,
    RegionStore,
    ResidencyViolation,
    VectorStoreError,
    delete_chunks_not_in,
    ensure_store,
    exact_search_store,
    existing_chunk_ids,
    fetch_dataset_vectors,
    search_store,
    store_stats,
    upsert_chunks,
)

MakeStore = Callable[..., RegionStore]
N = 2000
DATASETS = ("orders", "tickets", "emails", "notes")


@pytest.fixture
def make_store(pg: psycopg.Connection) -> Iterator[MakeStore]:
    """Factory of uniquely named stores; every schema it named is dropped afterwards."""
    created: list[str] = []

    def make(
        region: str = "EU", dim: int = EMBEDDING_DIM, schema: str | None = None
    ) -> RegionStore:
        name = schema or f"vectors_{region.lower()}_{uuid.uuid4().hex[:8]}"
        created.append(name)
        return RegionStore(region=region, schema=name, dim=dim)

    yield make
    pg.rollback()
    for name in created:
        pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    pg.commit()


def unit_vectors(n: int, dim: int = EMBEDDING_DIM, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def chunk_rows(
    n: int, *, residency: str = "EU", start: int = 0, prefix: str = "c"
) -> list[ChunkRow]:
    rows = []
    for i in range(start, start + n):
        pii = i % 5 == 0
        rows.append(
            ChunkRow(
                chunk_id=f"{prefix}{i:06d}",
                dataset_id=DATASETS[i % len(DATASETS)],
                source_column="body",
                row_ref=str(i),
                chunk_index=0,
                text=f"chunk text number {i}",
                classification="PII" if pii else "INTERNAL",
                residency=residency,
                owner_team="financial-ml",
                pii_types=("email",) if pii else (),
                content_hash=f"h{i}",
            )
        )
    return rows


def table_rows(pg: psycopg.Connection, store: RegionStore) -> list[tuple]:
    """Every column of every stored chunk (embedding as text), ordered: a table snapshot."""
    table = sql.SQL("{}.chunks").format(sql.Identifier(store.schema))
    query = sql.SQL("SELECT *, embedding::text FROM {} ORDER BY chunk_id").format(table)
    with pg.transaction():
        return [r[:-2] + r[-1:] for r in pg.execute(query).fetchall()]


def count(pg: psycopg.Connection, store: RegionStore) -> int:
    return store_stats(pg, store)["chunks"]


@pytest.fixture
def loaded(pg: psycopg.Connection, make_store: MakeStore) -> tuple[RegionStore, np.ndarray]:
    store = make_store("EU")
    ensure_store(pg, store)
    vectors = unit_vectors(N, seed=42)
    assert upsert_chunks(pg, store, chunk_rows(N), vectors, "minilm") == N
    return store, vectors


# ------------------------------------------------------------------------------------------------
# set-up


def test_ensure_store_twice_is_harmless(pg: psycopg.Connection, make_store: MakeStore) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    ensure_store(pg, store)
    stats = store_stats(pg, store)
    assert stats == {
        "region": "EU",
        "schema": store.schema,
        "chunks": 0,
        "datasets": {},
        "foreign_residency_rows": 0,
        "hnsw_index": True,
        "residency_guard": True,
        "models": [],
    }
    assert pg.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # committed
    index = pg.execute(
        """
        SELECT am.amname, c.reloptions, pg_get_indexdef(c.oid) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam
        WHERE n.nspname = %s AND c.relname = 'chunks_embedding_hnsw'
        """,
        (store.schema,),
    ).fetchone()
    assert index is not None
    assert index[0] == "hnsw" and sorted(index[1]) == ["ef_construction=64", "m=16"]
    assert "vector_cosine_ops" in index[2]
    guard = pg.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = "
        "'chunks_residency_guard' AND conrelid = %s::regclass",
        (f"{store.schema}.chunks",),
    ).fetchone()
    assert guard == ("CHECK ((residency = 'EU'::text))",)
    pg.rollback()


def test_ensure_store_concurrent_callers(database_url: str, make_store: MakeStore) -> None:
    store = make_store("EU")
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        try:
            with psycopg.connect(database_url) as conn:
                barrier.wait()
                ensure_store(conn, store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(database_url) as conn:
        assert store_stats(conn, store)["hnsw_index"] is True


def test_existing_table_of_another_region_or_dim_is_refused(
    pg: psycopg.Connection, make_store: MakeStore
) -> None:
    eu = make_store("EU")
    ensure_store(pg, eu)
    with pytest.raises(VectorStoreError, match=r"residency guard.*'US'"):
        ensure_store(pg, RegionStore("US", eu.schema))
    with pytest.raises(VectorStoreError, match=r"vector\(384\).*expected vector\(8\)"):
        ensure_store(pg, RegionStore("EU", eu.schema, dim=8))


def test_store_names_are_validated() -> None:
    for region in ("eu", "", "E-U", "EU'; DROP TABLE x; --", "A" * 33):
        with pytest.raises(VectorStoreError, match="region"):
            RegionStore(region, "vectors_eu")
    for schema in ("Vectors", "1vectors", 'vectors"; drop', "v" * 64, "vectors-eu"):
        with pytest.raises(VectorStoreError, match="schema"):
            RegionStore("EU", schema)
    for dim in (0, 2001, True):
        with pytest.raises(VectorStoreError, match="dim"):
            RegionStore("EU", "vectors_eu", dim=dim)
    assert RegionStore("UNKNOWN", "vectors_unknown").dim == EMBEDDING_DIM


def test_missing_store_error_names_it(pg: psycopg.Connection, make_store: MakeStore) -> None:
    store = make_store("EU")
    with pytest.raises(VectorStoreError, match=rf"EU \(schema {store.schema}\).*ensure_store"):
        store_stats(pg, store)
    assert pg.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# ------------------------------------------------------------------------------------------------
# writes


def hnsw_oid(pg: psycopg.Connection, store: RegionStore) -> int:
    """The HNSW index's oid: a new one means the index was dropped and built again."""
    row = pg.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'chunks_embedding_hnsw'",
        (store.schema,),
    ).fetchone()
    pg.commit()
    assert row is not None
    return int(row[0])


def test_a_load_larger_than_the_store_rebuilds_the_index_once(
    pg: psycopg.Connection, make_store: MakeStore
) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    vectors = unit_vectors(3 * N, seed=5)
    upsert_chunks(pg, store, chunk_rows(300), vectors[:300], "minilm")
    before = hnsw_oid(pg, store)
    # 2,000 rows into a 300-row store: one index build after the merge.
    assert upsert_chunks(pg, store, chunk_rows(N, start=300), vectors[300 : N + 300], "m") == N
    rebuilt = hnsw_oid(pg, store)
    assert rebuilt != before
    # 1,000 rows into a 2,300-row store: inserted into the existing index.
    assert (
        upsert_chunks(pg, store, chunk_rows(1000, start=N + 300), vectors[N + 300 : N + 1300], "m")
        == 1000
    )
    assert hnsw_oid(pg, store) == rebuilt
    stats = store_stats(pg, store)
    assert stats["chunks"] == N + 1300 and stats["hnsw_index"] is True
    pg.execute("SET enable_seqscan = off")
    pg.execute("SET enable_bitmapscan = off")
    for i in (0, 299, 300, N + 299, N + 1299):
        hit = search_store(pg, store, vectors[i], 1, allowed_datasets=None, exclude_pii=False)
        assert hit[0].chunk_id == f"c{i:06d}"
    pg.rollback()
    pg.execute("RESET enable_seqscan")
    pg.execute("RESET enable_bitmapscan")
    pg.commit()


def test_bulk_upsert_is_idempotent_and_updates_changes(
    pg: psycopg.Connection, make_store: MakeStore
) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    rows, vectors = chunk_rows(N), unit_vectors(N, seed=1)
    assert upsert_chunks(pg, store, rows, vectors, "minilm") == N
    stats = store_stats(pg, store)
    assert stats["chunks"] == N and stats["hnsw_index"] is True  # index rebuilt after first load
    assert stats["datasets"] == {d: N // len(DATASETS) for d in DATASETS}
    assert stats["models"] == ["minilm"] and stats["foreign_residency_rows"] == 0
    assert store_stats(pg, store, "orders")["chunks"] == N // len(DATASETS)

    before = table_rows(pg, store)
    assert upsert_chunks(pg, store, rows, vectors, "minilm") == 0  # nothing changed
    assert table_rows(pg, store) == before  # same state, embedded_at included

    changed = list(range(0, N, N // 10))[:10]
    new_vectors = unit_vectors(10, seed=99)
    new_rows = [replace(rows[i], text=f"changed {i}") for i in changed]
    assert upsert_chunks(pg, store, new_rows, new_vectors, "minilm") == 10
    assert count(pg, store) == N
    after = {r[0]: r for r in table_rows(pg, store)}
    table = sql.SQL("{}.chunks").format(sql.Identifier(store.schema))
    for n, i in enumerate(changed):
        stored = pg.execute(
            sql.SQL("SELECT text, embedding::text FROM {} WHERE chunk_id = %s").format(table),
            (rows[i].chunk_id,),
        ).fetchone()
        assert stored[0] == f"changed {i}"
        got = np.array([float(x) for x in stored[1].strip("[]").split(",")], dtype=np.float32)
        np.testing.assert_allclose(got, new_vectors[n], rtol=1e-6)
    pg.rollback()
    untouched = [r for r in before if r[0] not in {rows[i].chunk_id for i in changed}]
    assert all(after[r[0]] == r for r in untouched)


def test_upsert_inside_a_caller_transaction(pg: psycopg.Connection, make_store: MakeStore) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    with pg.transaction(force_rollback=True):
        assert upsert_chunks(pg, store, chunk_rows(5), unit_vectors(5), "m") == 5
        assert upsert_chunks(pg, store, chunk_rows(5, start=5), unit_vectors(5, seed=2), "m") == 5
        assert count(pg, store) == 10
    assert count(pg, store) == 0  # the caller's rollback decides


def test_residency_violation_writes_nothing(pg: psycopg.Connection, make_store: MakeStore) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    upsert_chunks(pg, store, chunk_rows(20), unit_vectors(20), "minilm")
    before = table_rows(pg, store)

    batch = chunk_rows(50, start=100)
    batch[-1] = replace(batch[-1], residency="US")  # the bad row is the last of the batch
    with pytest.raises(ResidencyViolation) as info:
        upsert_chunks(pg, store, batch, unit_vectors(50, seed=3), "minilm")
    message = str(info.value)
    assert batch[-1].chunk_id in message and "'US'" in message and "EU" in message
    assert store.schema in message
    assert isinstance(info.value, ValueError)
    assert table_rows(pg, store) == before
    assert count(pg, store) == 20

    # The database itself refuses a foreign row, whoever writes it.
    table = sql.SQL("{}.chunks").format(sql.Identifier(store.schema))
    with pytest.raises(psycopg.errors.CheckViolation) as db_info:
        pg.execute(
            sql.SQL(
                "INSERT INTO {} (chunk_id, dataset_id, source_column, row_ref, chunk_index, text, "
                "classification, residency, owner_team, pii, pii_types, content_hash, model, "
                "embedding) VALUES ('x', 'd', 'c', 'r', 0, 't', 'PII', 'US', 'team', true, "
                "'{{email}}', 'h', 'm', %s::vector)"
            ).format(table),
            ("[" + ",".join(["0.1"] * EMBEDDING_DIM) + "]",),
        )
    assert db_info.value.diag.constraint_name == "chunks_residency_guard"
    pg.rollback()
    assert count(pg, store) == 20
    assert store_stats(pg, store)["foreign_residency_rows"] == 0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda rows, v: (rows, v[:-1]), r"shape \(10, 384\)"),
        (lambda rows, v: (rows, v[:, :-1]), r"shape \(10, 384\)"),
        (lambda rows, v: (rows, np.where(np.arange(10)[:, None] == 9, np.nan, v)), "non-finite"),
        (lambda rows, v: (rows, np.where(np.arange(10)[:, None] == 4, 0.0, v)), "all zeros"),
        (lambda rows, v: ([*rows[:-1], rows[0]], v), "more than once"),
        (lambda rows, v: ([*rows[:-1], replace(rows[-1], classification="SECRET")], v), "SECRET"),
        (lambda rows, v: ([*rows[:-1], replace(rows[-1], text="a\x00b")], v), "NUL"),
    ],
)
def test_invalid_batches_write_nothing(
    pg: psycopg.Connection, make_store: MakeStore, mutate, match: str
) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    rows, vectors = mutate(chunk_rows(10), unit_vectors(10))
    with pytest.raises(VectorStoreError, match=match):
        upsert_chunks(pg, store, rows, vectors, "minilm")
    assert count(pg, store) == 0


def test_delete_chunks_not_in_removes_exactly_the_stale(
    pg: psycopg.Connection, make_store: MakeStore
) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    rows = chunk_rows(40)
    upsert_chunks(pg, store, rows, unit_vectors(40), "minilm")
    orders = [r.chunk_id for r in rows if r.dataset_id == "orders"]
    keep = set(orders[:4])
    assert delete_chunks_not_in(pg, store, "orders", iter(keep)) == len(orders) - 4
    assert existing_chunk_ids(pg, store, "orders", "minilm") == keep
    others = {r.chunk_id for r in rows if r.dataset_id == "tickets"}
    assert existing_chunk_ids(pg, store, "tickets", "minilm") == others  # other datasets untouched
    assert delete_chunks_not_in(pg, store, "orders", keep) == 0
    assert delete_chunks_not_in(pg, store, "orders", []) == 4  # nothing kept: all go
    assert count(pg, store) == 30


def test_existing_chunk_ids_by_dataset_and_model(
    pg: psycopg.Connection, make_store: MakeStore
) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    rows = chunk_rows(16)
    upsert_chunks(pg, store, rows, unit_vectors(16), "minilm")
    orders = [r for r in rows if r.dataset_id == "orders"]
    upsert_chunks(pg, store, orders[:2], unit_vectors(2, seed=5), "bge-small")  # re-embedded
    assert existing_chunk_ids(pg, store, "orders", "bge-small") == {r.chunk_id for r in orders[:2]}
    assert existing_chunk_ids(pg, store, "orders", "minilm") == {r.chunk_id for r in orders[2:]}
    assert existing_chunk_ids(pg, store, "tickets", "bge-small") == set()
    assert existing_chunk_ids(pg, store, "nope", "minilm") == set()
    assert store_stats(pg, store)["models"] == ["bge-small", "minilm"]


def test_fetch_dataset_vectors(pg: psycopg.Connection, make_store: MakeStore) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    rows, vectors = chunk_rows(12), unit_vectors(12, seed=8)
    upsert_chunks(pg, store, rows, vectors, "minilm")
    refs, hashes, matrix = fetch_dataset_vectors(pg, store, "tickets", "minilm")
    expected = sorted((r.row_ref, i) for i, r in enumerate(rows) if r.dataset_id == "tickets")
    assert refs == [ref for ref, _ in expected]
    assert hashes == [rows[i].content_hash for _, i in expected]
    assert matrix.dtype == np.float32 and matrix.shape == (3, EMBEDDING_DIM)
    np.testing.assert_array_equal(matrix, vectors[[i for _, i in expected]])
    refs, hashes, matrix = fetch_dataset_vectors(pg, store, "tickets", "other-model")
    assert refs == hashes == [] and matrix.shape == (0, EMBEDDING_DIM)


def test_concurrent_first_loads(database_url: str, pg: psycopg.Connection, make_store) -> None:
    store = make_store("EU")
    ensure_store(pg, store)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def load(part: int) -> None:
        try:
            with psycopg.connect(database_url) as conn:
                rows = chunk_rows(1200, start=part * 1200)
                barrier.wait()
                assert upsert_chunks(conn, store, rows, unit_vectors(1200, seed=part), "m") == 1200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(p,)) for p in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = store_stats(pg, store)
    assert stats["chunks"] == 2400 and stats["hnsw_index"] is True


# ------------------------------------------------------------------------------------------------
# search


@pytest.fixture
def hnsw_forced(pg: psycopg.Connection, loaded) -> tuple[RegionStore, np.ndarray]:
    """The loaded store, with the planner steered onto the HNSW index for this connection.

    On only 2,000 rows the planner rightly prefers an exact scan at ef_search=100 (cheaper, and
    recall 1.0); for the recall measurement to measure the index, sequential and bitmap scans are
    switched off for the session. ``search_store`` runs unchanged.
    """
    pg.execute("SET enable_seqscan = off")
    pg.execute("SET enable_bitmapscan = off")
    pg.commit()
    return loaded


def hnsw_scans(pg: psycopg.Connection, store: RegionStore) -> int:
    """How many scans the store's HNSW index has served so far (cumulative statistics)."""
    pg.execute("SELECT pg_stat_force_next_flush()")
    pg.commit()
    pg.execute("SELECT pg_stat_clear_snapshot()")
    row = pg.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE schemaname = %s "
        "AND indexrelname = 'chunks_embedding_hnsw'",
        (store.schema,),
    ).fetchone()
    pg.commit()
    return int(row[0])


@pytest.mark.parametrize("steer", ["planner", "hnsw"])
def test_search_finds_the_stored_vector(
    pg: psycopg.Connection, loaded, steer: str, request: pytest.FixtureRequest
) -> None:
    store, vectors = request.getfixturevalue("hnsw_forced") if steer == "hnsw" else loaded
    for i in (0, 7, 1234):
        hits = search_store(pg, store, vectors[i], 5, allowed_datasets=None, exclude_pii=False)
        assert len(hits) == 5
        assert hits[0].chunk_id == f"c{i:06d}"
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].row_ref == str(i) and hits[0].residency == "EU"
        assert hits[0].text == f"chunk text number {i}" and hits[0].owner_team == "financial-ml"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        exact = exact_search_store(pg, store, vectors[i], 5)
        assert exact[0].chunk_id == f"c{i:06d}"


def test_search_filters(pg: psycopg.Connection, loaded) -> None:
    store, vectors = loaded
    query = unit_vectors(1, seed=7)[0]
    hits = search_store(pg, store, query, 50, allowed_datasets=["emails"], exclude_pii=True)
    exact = exact_search_store(pg, store, query, 50, allowed_datasets=["emails"], exclude_pii=True)
    assert len(hits) == 50 and [h.chunk_id for h in hits] == [h.chunk_id for h in exact]
    assert {h.dataset_id for h in hits} == {"emails"} and not any(h.pii for h in hits)

    both = search_store(
        pg, store, query, 20, allowed_datasets=("orders", "notes"), exclude_pii=False
    )
    assert len(both) == 20 and {h.dataset_id for h in both} == {"orders", "notes"}
    everything = search_store(pg, store, query, 50, allowed_datasets=None, exclude_pii=False)
    assert any(h.pii for h in everything)
    assert search_store(pg, store, query, 5, allowed_datasets=[], exclude_pii=False) == []
    assert search_store(pg, store, query, 5, allowed_datasets=["nope"], exclude_pii=False) == []
    # A PII chunk is excluded even when the query is exactly its vector.
    no_pii = search_store(pg, store, vectors[0], 3, allowed_datasets=None, exclude_pii=True)
    assert "c000000" not in {h.chunk_id for h in no_pii} and len(no_pii) == 3


def test_filtered_hnsw_search_keeps_recall_with_iterative_scan(
    pg: psycopg.Connection, hnsw_forced
) -> None:
    """A 20%-selective filter through the HNSW index still returns k hits (iterative scan)."""
    store, _ = hnsw_forced
    # Without the dataset btree index the filtered query can only go through HNSW (+ filter).
    pg.execute(sql.SQL("DROP INDEX {}.chunks_dataset_idx").format(sql.Identifier(store.schema)))
    pg.commit()
    query = unit_vectors(1, seed=7)[0]
    table = sql.SQL("{}.chunks").format(sql.Identifier(store.schema))
    with pg.transaction(force_rollback=True):  # the same query without an iterative scan
        pg.execute("SET LOCAL hnsw.ef_search = 100")
        plain = pg.execute(
            sql.SQL(
                "SELECT chunk_id FROM {} WHERE dataset_id = ANY(%s::text[]) AND NOT pii "
                "ORDER BY embedding <=> %s::vector LIMIT 50"
            ).format(table),
            (["emails"], str(query.tolist()).replace(" ", "")),
        ).fetchall()
    assert len(plain) < 50  # ef_search candidates, 20% of them pass the filter

    scans = hnsw_scans(pg, store)
    hits = search_store(pg, store, query, 50, allowed_datasets=["emails"], exclude_pii=True)
    assert hnsw_scans(pg, store) > scans  # it did go through the index
    assert len(hits) == 50
    assert {h.dataset_id for h in hits} == {"emails"} and not any(h.pii for h in hits)
    exact = exact_search_store(pg, store, query, 50, allowed_datasets=["emails"], exclude_pii=True)
    assert len({h.chunk_id for h in hits} & {h.chunk_id for h in exact}) >= 45
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_validation(pg: psycopg.Connection, loaded) -> None:
    store, vectors = loaded
    for k in (0, 1001, -1, True, 2.0):
        with pytest.raises(VectorStoreError, match="k must be"):
            search_store(pg, store, vectors[0], k, allowed_datasets=None, exclude_pii=False)
    with pytest.raises(VectorStoreError, match=rf"{store.schema}.*shape \(384,\)"):
        search_store(pg, store, vectors[0][:100], 5, allowed_datasets=None, exclude_pii=False)
    with pytest.raises(VectorStoreError, match="shape"):
        exact_search_store(pg, store, np.ones(385), 5)
    with pytest.raises(VectorStoreError, match="all zeros"):
        search_store(pg, store, np.zeros(384), 5, allowed_datasets=None, exclude_pii=False)
    with pytest.raises(VectorStoreError, match="single string"):
        search_store(pg, store, vectors[0], 5, allowed_datasets="orders", exclude_pii=False)
    with pytest.raises(ValueError, match="ef_search"):
        search_store(
            pg, store, vectors[0], 5, allowed_datasets=None, exclude_pii=False, ef_search=0
        )
    assert pg.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_search_settings_do_not_leak(pg: psycopg.Connection, loaded) -> None:
    store, vectors = loaded
    settings_sql = (
        "SELECT current_setting('enable_indexscan'), "
        "current_setting('hnsw.iterative_scan', true), current_setting('hnsw.ef_search', true)"
    )
    with pg.transaction():  # a caller's transaction: our SET LOCALs must not outlive the call
        before = pg.execute(settings_sql).fetchone()
        exact_search_store(pg, store, vectors[3], 5)
        search_store(
            pg, store, vectors[3], 5, allowed_datasets=None, exclude_pii=False, ef_search=321
        )
        after = pg.execute(settings_sql).fetchone()
    assert after == before and after[0] == "on"


def test_search_uses_the_hnsw_index(pg: psycopg.Connection, hnsw_forced) -> None:
    store, vectors = hnsw_forced
    start = hnsw_scans(pg, store)
    search_store(pg, store, vectors[1], 10, allowed_datasets=None, exclude_pii=False)
    after_search = hnsw_scans(pg, store)
    assert after_search > start
    exact_search_store(pg, store, vectors[1], 10)
    assert hnsw_scans(pg, store) == after_search  # the exact scan does not touch the index


def test_recall_at_10_against_exact_search(pg: psycopg.Connection, hnsw_forced) -> None:
    store, vectors = hnsw_forced
    queries = unit_vectors(20, seed=2024)
    scans = hnsw_scans(pg, store)
    recalls = []
    for query in queries:
        approx = search_store(pg, store, query, 10, allowed_datasets=None, exclude_pii=False)
        exact = exact_search_store(pg, store, query, 10)
        assert len(approx) == len(exact) == 10
        recalls.append(len({h.chunk_id for h in approx} & {h.chunk_id for h in exact}) / 10)
        # the exact scores agree with numpy's cosine similarity
        assert exact[0].score == pytest.approx(float(np.max(vectors @ query)), abs=1e-5)
    assert hnsw_scans(pg, store) >= scans + 20
    assert float(np.mean(recalls)) >= 0.9, recalls


# ------------------------------------------------------------------------------------------------
# property: an EU store never takes a foreign row


def test_property_eu_store_refuses_any_foreign_row(
    pg: psycopg.Connection, make_store: MakeStore
) -> None:
    store = make_store("EU", dim=8)
    ensure_store(pg, store)
    accepted: list[int] = []

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.sampled_from(["EU", "US", "UNKNOWN", "eu", "EU "]), min_size=1, max_size=30))
    def send(residencies: list[str]) -> None:
        before = count(pg, store)
        prefix = f"p{uuid.uuid4().hex[:8]}_"
        rows = [
            replace(row, residency=residency)
            for row, residency in zip(
                chunk_rows(len(residencies), prefix=prefix), residencies, strict=True
            )
        ]
        vectors = unit_vectors(len(rows), dim=8, seed=len(rows))
        if any(r != "EU" for r in residencies):
            with pytest.raises(ResidencyViolation):
                upsert_chunks(pg, store, rows, vectors, "minilm")
            assert count(pg, store) == before
        else:
            assert upsert_chunks(pg, store, rows, vectors, "minilm") == len(rows)
            assert count(pg, store) == before + len(rows)
            accepted.append(len(rows))

    send()
    stats = store_stats(pg, store)
    assert stats["foreign_residency_rows"] == 0
    assert stats["chunks"] == sum(accepted)
