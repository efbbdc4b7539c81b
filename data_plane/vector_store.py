"""Layer 1B: per-region vector stores of text-chunk embeddings in PostgreSQL + pgvector.

Each residency region has its own store: one PostgreSQL schema (``vectors_eu`` for ``EU``) holding
a table ``<schema>.chunks``. In production each region's store may live on a different server, so
every function takes the psycopg connection of that store.

An embedding of EU personal data is EU personal data, so a store refuses rows of any other
residency twice over: :func:`upsert_chunks` raises :class:`ResidencyViolation` before writing
anything, and the table itself carries ``CONSTRAINT chunks_residency_guard CHECK (residency =
'<region>')`` so that no other writer can slip a foreign row in either.

Transactions: every function runs in ``conn.transaction()``. On an idle connection that is a
transaction of its own (committed at the end, writes included); inside a transaction the caller
already opened it is a savepoint, and the caller's commit decides. Searches always roll back their
(read-only) block, so their ``SET LOCAL`` planner settings never leak into the caller's session.

Identifiers are validated and composed with :class:`psycopg.sql.Identifier`; values are passed as
query parameters (``psycopg.sql.Literal`` only where PostgreSQL takes no parameters: DDL).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from data_plane import migrations, roles
from data_plane.classification import ZONE_PATTERN, ZONE_RE

EMBEDDING_DIM = 384
MAX_DIM = 2000  # the most dimensions an HNSW index on ``vector`` supports
MAX_K = 1000
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
MIN_PGVECTOR = (0, 8, 0)  # iterative index scans (hnsw.iterative_scan) arrived in 0.8.0
CLASSIFICATIONS = frozenset({"PUBLIC", "INTERNAL", "CONFIDENTIAL", "PII", "UNKNOWN"})

TABLE = "chunks"
RESIDENCY_GUARD = "chunks_residency_guard"
HNSW_INDEX = "chunks_embedding_hnsw"
# A batch at least this large, and at least as large as the store it goes into, rebuilds the HNSW
# index once after the load instead of inserting into it row by row (about 4x faster for 2,000 x
# 384-dim rows into an empty store; 3,000 rows into a 300-row store: 5.7 s of row-by-row
# insertion against 1.4 s with the rebuild; 300 rows into a 30-row store: 0.20 s against
# 0.055 s).
REBUILD_INDEX_MIN_ROWS = 200
# Memory for that rebuild (SET LOCAL): pgvector builds the graph in memory while it fits, far
# faster than on disk (100,000 x 384-dim vectors need about 300 MB).
INDEX_BUILD_MEMORY = "1GB"
DATASET_INDEX = "chunks_dataset_idx"

_SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# Columns written by upsert_chunks, in COPY order, with their binary COPY types. ``model`` is
# one value per call (a parameter); ``embedded_at`` is set by the database.
_STAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("chunk_id", "text"),
    ("dataset_id", "text"),
    ("source_column", "text"),
    ("row_ref", "text"),
    ("chunk_index", "int4"),
    ("text", "text"),
    ("classification", "text"),
    ("residency", "text"),
    ("owner_team", "text"),
    ("pii", "bool"),
    ("pii_types", "text[]"),
    ("content_hash", "text"),
    ("embedding", "vector"),
)
_UPDATED_COLUMNS = (*(name for name, _ in _STAGE_COLUMNS if name != "chunk_id"), "model")


class VectorStoreError(ValueError):
    """A vector store that cannot be used as asked (missing, misconfigured, bad input)."""


class ResidencyViolation(VectorStoreError):
    """A chunk whose residency is not the region of the store it was sent to."""

    def __init__(self, chunk_id: str, residency: str, store: RegionStore) -> None:
        self.chunk_id = chunk_id
        self.residency = residency
        self.region = store.region
        self.schema = store.schema
        super().__init__(
            f"residency violation: chunk {chunk_id!r} has residency {residency!r} but store "
            f"{store.region} (schema {store.schema}) only accepts residency {store.region!r}; "
            "nothing was written"
        )


@dataclass(frozen=True)
class RegionStore:
    """The vector store of one residency region: a schema holding the table ``chunks``."""

    region: str
    schema: str
    dim: int = EMBEDDING_DIM

    def __post_init__(self) -> None:
        if not isinstance(self.region, str) or not ZONE_RE.fullmatch(self.region):
            raise VectorStoreError(
                f"vector store region {self.region!r} is invalid: expected an upper-case zone "
                f"name matching ^{ZONE_PATTERN}$ (e.g. 'EU')"
            )
        if not isinstance(self.schema, str) or not _SCHEMA_RE.fullmatch(self.schema):
            raise VectorStoreError(
                f"vector store schema {self.schema!r} (region {self.region}) is invalid: expected "
                "^[a-z][a-z0-9_]{0,62}$ (e.g. 'vectors_eu')"
            )
        dim_ok = isinstance(self.dim, int) and not isinstance(self.dim, bool)
        if not dim_ok or not 1 <= self.dim <= MAX_DIM:
            raise VectorStoreError(
                f"vector store {self.region} (schema {self.schema}): dim must be an int between "
                f"1 and {MAX_DIM}, got {self.dim!r}"
            )

    @property
    def label(self) -> str:
        return f"vector store {self.region} (schema {self.schema})"


@dataclass(frozen=True)
class ChunkRow:
    """One text chunk to embed and store, with the governance tags it inherits."""

    chunk_id: str
    dataset_id: str
    source_column: str
    row_ref: str
    chunk_index: int
    text: str
    classification: str
    residency: str
    owner_team: str
    pii_types: tuple[str, ...]
    content_hash: str

    @property
    def pii(self) -> bool:
        """Whether the chunk counts as personal data: PII found in it, or a PII classification."""
        return bool(self.pii_types) or self.classification == "PII"


@dataclass(frozen=True)
class SearchHit:
    """A chunk found by a search; ``score`` is the cosine similarity (1 - cosine distance)."""

    chunk_id: str
    dataset_id: str
    row_ref: str
    text: str
    classification: str
    residency: str
    owner_team: str
    pii: bool
    score: float


# --------------------------------------------------------------------------------------------
# helpers


def _table(store: RegionStore) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(store.schema), sql.Identifier(TABLE))


@contextmanager
def _store_transaction(
    conn: psycopg.Connection, store: RegionStore, *, force_rollback: bool = False
) -> Iterator[None]:
    """``conn.transaction()``, turning "the table is missing" into an error naming the store."""
    try:
        with conn.transaction(force_rollback=force_rollback):
            yield
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        raise VectorStoreError(
            f"{store.label} is not set up on this database (call ensure_store first): {exc}"
        ) from exc


def _ensure_vector_types(conn: psycopg.Connection, store: RegionStore) -> None:
    """Register pgvector's adapters on the connection once (binary COPY needs the 'vector' oid)."""
    if conn.adapters.types.get("vector") is not None:
        return
    try:
        register_vector(conn)
    except psycopg.ProgrammingError as exc:
        raise VectorStoreError(
            f"{store.label}: the pgvector type 'vector' is not available on this connection "
            f"(is the extension installed and on the search_path?): {exc}"
        ) from exc


def _check_query(store: RegionStore, query_embedding: np.ndarray) -> np.ndarray:
    query = np.asarray(query_embedding, dtype=np.float64)
    if query.ndim == 2 and query.shape[0] == 1:
        query = query[0]
    if query.shape != (store.dim,):
        raise VectorStoreError(
            f"{store.label}: query embedding must have shape ({store.dim},), "
            f"got {tuple(np.shape(query_embedding))}"
        )
    query32 = query.astype(np.float32)
    if not np.all(np.isfinite(query32)):
        raise VectorStoreError(f"{store.label}: query embedding has non-finite values")
    if not np.any(query32):
        raise VectorStoreError(
            f"{store.label}: query embedding is all zeros (cosine distance is undefined)"
        )
    return query32


def _check_k(store: RegionStore, k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
        raise VectorStoreError(f"{store.label}: k must be an int between 1 and {MAX_K}, got {k!r}")


def _check_datasets(store: RegionStore, allowed: Sequence[str] | None) -> list[str] | None:
    if allowed is None:
        return None
    if isinstance(allowed, str | bytes):
        raise VectorStoreError(
            f"{store.label}: allowed_datasets must be a sequence of dataset ids or None, "
            f"not a single string {allowed!r}"
        )
    datasets = list(allowed)
    if not all(isinstance(d, str) for d in datasets):
        raise VectorStoreError(f"{store.label}: allowed_datasets must contain only strings")
    return datasets


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


# --------------------------------------------------------------------------------------------
# store set-up


# Bump when _create_store or _store_grants change: a service role then has them re-run.
_STORE_VERSION = "chunks 4"


def ensure_store(conn: psycopg.Connection, store: RegionStore) -> None:
    """Create the store's schema, table, residency guard and indexes if absent (idempotent).

    Concurrent callers are serialised with a transaction-scoped advisory lock per schema. An
    existing table is checked: a residency guard for another region, or an embedding column of
    another dimension, raises :class:`VectorStoreError` instead of silently mixing stores.
    Run workers (``rp_worker``) write the chunks; no other service role may read them with a
    plain ``SELECT`` (`data_plane.roles`).
    """
    migrations.ensure(conn, store_schema(store))


def store_schema(store: RegionStore) -> migrations.Schema:
    """A region's store as a unit of `data_plane.roles`. Its shape follows from the region and
    dimension and is checked against the table on every set-up (``_create_store``, idempotent,
    its ``finish``): no versioned steps yet; a change of shape bumps ``_STORE_VERSION`` and
    becomes the first step."""
    return migrations.Schema(
        unit=f"vectors {store.region}",
        probe=f"{store.schema}.{TABLE}",
        steps=(),
        finish=lambda admin: _create_store(admin, store),
        extra=(_STORE_VERSION, store.schema, store.region, store.dim),
    )


def _store_grants(store: RegionStore, vector_schema: str) -> list[tuple[str, str]]:
    """Run workers write the chunks; readers only call the search function."""
    vector = f"{vector_schema}.vector"
    function = f"{store.schema}.{SEARCH_FUNCTION}(text, text, text[], boolean, {vector}, integer)"
    return [
        *roles.usage(store.schema, roles.WORKER, roles.READER),
        (
            roles.WORKER,
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {store.schema}.{TABLE} TO {roles.WORKER}",
        ),
        (roles.READER, f"GRANT EXECUTE ON FUNCTION {function} TO {roles.READER}"),
    ]


SEARCH_FUNCTION = "governed_search"


def _search_function(store: RegionStore, vector_schema: str) -> sql.Composed:
    """The readers' only way to chunk text: the caller's API key is checked here (hashed, not
    revoked, as `credentials`), and only datasets its principal may read served in the given
    region are searched (``governance.read_grants``, valid while the catalog entry is the one
    they were decided on); PII chunks only for a region that is the store's own, and not when
    the caller excludes them. It runs as its owner (SECURITY DEFINER) with the search_path
    pinned to pg_catalog: pgvector's type and operator are named with their schema, so nothing
    a caller could create is ever looked up.
    """
    return sql.SQL(
        """
        CREATE OR REPLACE FUNCTION {function}(p_key text, p_serve_region text,
            p_datasets text[], p_exclude_pii boolean, p_query {vector}, p_k integer)
        RETURNS TABLE (chunk_id text, dataset_id text, row_ref text, text text,
            classification text, residency text, owner_team text, pii boolean,
            distance double precision)
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
        AS $$
        #variable_conflict use_column
        DECLARE
            who text;
            readable text[];
        BEGIN
            IF p_k IS NULL OR p_k < 1 OR p_k > 1000 THEN
                RAISE EXCEPTION 'k must be between 1 and 1000, got %', p_k;
            END IF;
            SELECT k.principal INTO who FROM governance.api_keys k
             WHERE k.key_hash = encode(sha256(convert_to(p_key, 'UTF8')), 'hex')
               AND k.revoked_at IS NULL;
            IF who IS NULL THEN
                RAISE EXCEPTION 'API key unknown or revoked'
                    USING ERRCODE = 'invalid_authorization_specification';
            END IF;
            readable := ARRAY(
                SELECT g.dataset_id FROM governance.read_grants g
                JOIN governance.catalog c
                  ON c.dataset_id = g.dataset_id AND c.entry_hash = g.entry_hash
                WHERE g.principal = who AND g.serve_region = p_serve_region
                  AND (p_datasets IS NULL OR g.dataset_id = ANY(p_datasets)));
            RETURN QUERY
                SELECT ch.chunk_id, ch.dataset_id, ch.row_ref, ch.text, ch.classification,
                       ch.residency, ch.owner_team, ch.pii,
                       (ch.embedding OPERATOR({distance}) p_query)::double precision
                FROM {table} ch
                WHERE ch.dataset_id = ANY(readable)
                  AND (NOT ch.pii OR (NOT p_exclude_pii AND {region} = p_serve_region))
                ORDER BY ch.embedding OPERATOR({distance}) p_query
                LIMIT p_k;
        END $$;
        REVOKE ALL ON FUNCTION {function}(text, text, text[], boolean, {vector}, integer)
            FROM PUBLIC;
        """
    ).format(
        function=sql.Identifier(store.schema, SEARCH_FUNCTION),
        table=_table(store),
        region=sql.Literal(store.region),
        vector=sql.Identifier(vector_schema, "vector"),
        distance=sql.SQL("{}.<=>").format(sql.Identifier(vector_schema)),
    )


def _create_store(conn: psycopg.Connection, store: RegionStore) -> None:
    schema = sql.Identifier(store.schema)
    table = _table(store)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            (f"reasoning_plane.vector_store:{store.schema}",),
        )
        ext = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        if ext is None:
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise VectorStoreError(
                    f"{store.label}: the pgvector extension 'vector' is not installed and could "
                    f"not be created (ask an administrator to run CREATE EXTENSION vector): {exc}"
                ) from exc
            ext = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
        assert ext is not None
        if _version_tuple(ext[0]) < MIN_PGVECTOR:
            raise VectorStoreError(
                f"{store.label}: pgvector {ext[0]} is installed but >= "
                f"{'.'.join(map(str, MIN_PGVECTOR))} is needed (iterative HNSW scans)"
            )

        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(
            sql.SQL(
                """
                CREATE TABLE IF NOT EXISTS {table} (
                    chunk_id       text PRIMARY KEY,
                    dataset_id     text NOT NULL,
                    source_column  text NOT NULL,
                    row_ref        text NOT NULL,
                    chunk_index    int NOT NULL,
                    text           text NOT NULL,
                    classification text NOT NULL,
                    residency      text NOT NULL
                        CONSTRAINT {guard} CHECK (residency = {region}),
                    owner_team     text NOT NULL,
                    pii            boolean NOT NULL,
                    pii_types      text[] NOT NULL,
                    content_hash   text NOT NULL,
                    model          text NOT NULL,
                    embedding      vector({dim}) NOT NULL,
                    embedded_at    timestamptz NOT NULL DEFAULT now()
                )
                """
            ).format(
                table=table,
                guard=sql.Identifier(RESIDENCY_GUARD),
                region=sql.Literal(store.region),
                dim=sql.Literal(store.dim),
            )
        )
        _verify_table(conn, store)
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (dataset_id)").format(
                sql.Identifier(DATASET_INDEX), table
            )
        )
        conn.execute(_hnsw_ddl(store))
        (vector_schema,) = conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        conn.execute(_search_function(store, vector_schema))
        roles.grant(conn, _store_grants(store, vector_schema))


def _hnsw_ddl(store: RegionStore) -> sql.Composed:
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)"
    ).format(sql.Identifier(HNSW_INDEX), _table(store))


def _verify_table(conn: psycopg.Connection, store: RegionStore) -> None:
    """Check that an existing ``chunks`` table really is this region's store."""
    regclass = f"{store.schema}.{TABLE}"  # both parts validated: plain lower-case identifiers
    guard = conn.execute(
        """
        SELECT pg_get_expr(conbin, conrelid), convalidated
        FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s AND contype = 'c'
        """,
        (regclass, RESIDENCY_GUARD),
    ).fetchone()
    expected = f"(residency = {sql.Literal(store.region).as_string(conn)}::text)"
    if guard is None or guard[0] != expected or not guard[1]:
        found = "none" if guard is None else f"{guard[0]} (validated={guard[1]})"
        raise VectorStoreError(
            f"{store.label}: table {regclass} exists but its residency guard "
            f"{RESIDENCY_GUARD} is not CHECK {expected}; found {found}. Refusing to use it."
        )
    column = conn.execute(
        """
        SELECT format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = %s::regclass AND attname = 'embedding' AND NOT attisdropped
        """,
        (regclass,),
    ).fetchone()
    if column is None or column[0] != f"vector({store.dim})":
        found = "no embedding column" if column is None else column[0]
        raise VectorStoreError(
            f"{store.label}: table {regclass} exists with {found}, expected vector({store.dim})"
        )


# --------------------------------------------------------------------------------------------
# writes


def _validate_batch(
    store: RegionStore, rows: Sequence[ChunkRow], embeddings: np.ndarray, model: str
) -> np.ndarray:
    if not isinstance(model, str) or not model.strip():
        raise VectorStoreError(f"{store.label}: model must be a non-empty string, got {model!r}")
    # Residency first: the most important refusal, named precisely.
    for row in rows:
        if row.residency != store.region:
            raise ResidencyViolation(row.chunk_id, row.residency, store)
    array = np.asarray(embeddings)
    if array.shape != (len(rows), store.dim):
        raise VectorStoreError(
            f"{store.label}: embeddings must have shape ({len(rows)}, {store.dim}) for "
            f"{len(rows)} rows, got {array.shape}"
        )
    try:
        array32 = np.ascontiguousarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise VectorStoreError(f"{store.label}: embeddings are not numeric: {exc}") from exc
    finite = np.isfinite(array32).all(axis=1)
    if not finite.all():
        bad = rows[int(np.argmin(finite))].chunk_id
        raise VectorStoreError(
            f"{store.label}: embedding of chunk {bad!r} has non-finite values (NaN/inf, or out "
            "of float32 range)"
        )
    nonzero = array32.any(axis=1)
    if not nonzero.all():
        bad = rows[int(np.argmin(nonzero))].chunk_id
        raise VectorStoreError(
            f"{store.label}: embedding of chunk {bad!r} is all zeros (cosine distance undefined)"
        )
    seen: set[str] = set()
    for row in rows:
        _validate_row(store, row)
        if row.chunk_id in seen:
            raise VectorStoreError(
                f"{store.label}: chunk id {row.chunk_id!r} appears more than once in the batch"
            )
        seen.add(row.chunk_id)
    return array32


def _validate_row(store: RegionStore, row: ChunkRow) -> None:
    where = f"{store.label}: chunk {row.chunk_id!r}"
    texts = {
        "chunk_id": row.chunk_id,
        "dataset_id": row.dataset_id,
        "source_column": row.source_column,
        "row_ref": row.row_ref,
        "text": row.text,
        "owner_team": row.owner_team,
        "content_hash": row.content_hash,
    }
    for name, value in texts.items():
        if not isinstance(value, str):
            raise VectorStoreError(f"{where}: {name} must be a string, got {type(value).__name__}")
        if "\x00" in value:
            raise VectorStoreError(f"{where}: {name} contains a NUL character")
    if not row.chunk_id or not row.dataset_id:
        raise VectorStoreError(f"{where}: chunk_id and dataset_id must not be empty")
    if isinstance(row.chunk_index, bool) or not isinstance(row.chunk_index, int | np.integer):
        raise VectorStoreError(f"{where}: chunk_index must be an int, got {row.chunk_index!r}")
    if not -(2**31) <= int(row.chunk_index) < 2**31:
        raise VectorStoreError(f"{where}: chunk_index {row.chunk_index} is out of int4 range")
    if row.classification not in CLASSIFICATIONS:
        raise VectorStoreError(
            f"{where}: classification {row.classification!r} is not one of "
            f"{sorted(CLASSIFICATIONS)}"
        )
    if isinstance(row.pii_types, str) or not all(
        isinstance(p, str) and "\x00" not in p for p in row.pii_types
    ):
        raise VectorStoreError(f"{where}: pii_types must be a tuple of strings")


def upsert_chunks(
    conn: psycopg.Connection,
    store: RegionStore,
    rows: Sequence[ChunkRow],
    embeddings: np.ndarray,
    model: str,
) -> int:
    """Bulk-load chunks and their embeddings into the store; returns the rows written.

    Everything is validated first (shapes, finite non-zero vectors, residency of every row: a
    foreign row raises :class:`ResidencyViolation` and nothing is written). Then, in one
    transaction, the batch is binary-COPYed into a temporary staging table and merged with one
    ``INSERT ... SELECT ... ON CONFLICT (chunk_id) DO UPDATE``. Rows whose stored values already
    equal the new ones are left untouched (``embedded_at`` included), so re-sending the same batch
    changes nothing and returns 0; the count returned is of rows inserted or changed.

    A large load (at least ``REBUILD_INDEX_MIN_ROWS`` rows and at least as many rows as the store
    holds, table owned by the current user) rebuilds the HNSW index once after the merge instead
    of inserting into it row by row, within the same transaction; searches of the store wait for
    that transaction (see :func:`_begin_bulk_load`).
    """
    array32 = _validate_batch(store, rows, embeddings, model)
    if not rows:
        return 0
    _ensure_vector_types(conn, store)

    stage = sql.Identifier(f"chunks_stage_{uuid.uuid4().hex}")
    stage_columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(
            sql.Identifier(name),
            sql.SQL("vector({})").format(sql.Literal(store.dim))
            if kind == "vector"
            else sql.SQL(kind),
        )
        for name, kind in _STAGE_COLUMNS
    )
    with _store_transaction(conn, store), conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(stage, stage_columns)
        )
        _copy_to_stage(cur, stage, rows, array32)
        rebuild = len(rows) >= REBUILD_INDEX_MIN_ROWS and _begin_bulk_load(cur, store, len(rows))
        cur.execute(_merge_sql(store, stage), (model,))
        written = cur.rowcount
        if rebuild:
            cur.execute(
                "SELECT set_config('maintenance_work_mem', %s, true)", (INDEX_BUILD_MEMORY,)
            )
            cur.execute(_hnsw_ddl(store))
        # Dropped now, not only at commit: a caller's enclosing transaction may call again.
        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
    return written


def _copy_to_stage(
    cur: psycopg.Cursor[Any],
    stage: sql.Identifier,
    rows: Sequence[ChunkRow],
    array32: np.ndarray,
) -> None:
    """Binary-COPY the rows and their vectors into the staging table."""
    copy_columns = _stage_column_names()
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(stage, copy_columns)
    with cur.copy(copy_sql) as copy:
        copy.set_types([kind for _, kind in _STAGE_COLUMNS])
        for row, vector in zip(rows, array32, strict=True):
            copy.write_row(
                (
                    row.chunk_id,
                    row.dataset_id,
                    row.source_column,
                    row.row_ref,
                    int(row.chunk_index),
                    row.text,
                    row.classification,
                    row.residency,
                    row.owner_team,
                    row.pii,
                    list(row.pii_types),
                    row.content_hash,
                    vector,
                )
            )


def _stage_column_names() -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name, _ in _STAGE_COLUMNS)


def _merge_sql(store: RegionStore, stage: sql.Identifier) -> sql.Composed:
    """The merge of the staging table into the store: insert new chunks, update a stored chunk
    only where some value differs (then ``embedded_at`` too); the model name is the parameter."""
    copy_columns = _stage_column_names()
    target_columns = sql.SQL(", ").join(
        [*(sql.Identifier(name) for name, _ in _STAGE_COLUMNS), sql.Identifier("model")]
    )
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in _UPDATED_COLUMNS
    )
    current = sql.SQL(", ").join(
        sql.SQL("c.{}").format(sql.Identifier(c)) for c in _UPDATED_COLUMNS
    )
    incoming = sql.SQL(", ").join(
        sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in _UPDATED_COLUMNS
    )
    return sql.SQL(
        """
        INSERT INTO {table} AS c ({target_columns})
        SELECT {copy_columns}, %s FROM {stage}
        ON CONFLICT (chunk_id) DO UPDATE SET {updates}, embedded_at = now()
        WHERE ({current}) IS DISTINCT FROM ({incoming})
        """
    ).format(
        table=_table(store),
        target_columns=target_columns,
        copy_columns=copy_columns,
        stage=stage,
        updates=updates,
        current=current,
        incoming=incoming,
    )


def _begin_bulk_load(cur: psycopg.Cursor[Any], store: RegionStore, batch: int) -> bool:
    """For a large batch: if the store holds at most ``batch`` rows, drop its HNSW index to
    rebuild it after the load (one build is far cheaper than ``batch`` insertions into the graph).

    Only when the current user owns the table (dropping and creating an index needs that). The
    table is first locked SHARE ROW EXCLUSIVE (concurrent writers wait, readers do not), before
    anything reads it, so two concurrent bulk loads queue instead of deadlocking; the rows are
    then counted (at most ``batch + 1`` of them are read). Dropping the index locks the table
    against readers too until the caller's transaction ends. All of it is inside the caller's
    transaction: on any error the index comes back with the rollback.
    """
    table = _table(store)
    owned = cur.execute(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = %s::regclass",
        (f"{store.schema}.{TABLE}",),
    ).fetchone()
    if not owned or not owned[0]:
        return False
    cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
    row = cur.execute(
        sql.SQL("SELECT count(*) FROM (SELECT FROM {} LIMIT %s) AS s").format(table), (batch + 1,)
    ).fetchone()
    if not row or row[0] > batch:
        return False
    cur.execute(
        sql.SQL("DROP INDEX IF EXISTS {}.{}").format(
            sql.Identifier(store.schema), sql.Identifier(HNSW_INDEX)
        )
    )
    return True


def delete_chunks_not_in(
    conn: psycopg.Connection, store: RegionStore, dataset_id: str, keep_ids: Iterable[str]
) -> int:
    """Delete the dataset's chunks whose id is not in ``keep_ids``; returns how many went."""
    keep = list(keep_ids)
    if not all(isinstance(k, str) for k in keep):
        raise VectorStoreError(f"{store.label}: keep_ids must be strings")
    with _store_transaction(conn, store), conn.cursor() as cur:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE dataset_id = %s AND chunk_id <> ALL(%s::text[])").format(
                _table(store)
            ),
            (dataset_id, keep),
        )
        return cur.rowcount


# --------------------------------------------------------------------------------------------
# reads


def existing_chunk_ids(
    conn: psycopg.Connection, store: RegionStore, dataset_id: str, model: str
) -> set[str]:
    """Ids of the chunks of ``dataset_id`` already stored with embeddings from ``model``."""
    with _store_transaction(conn, store):
        rows = conn.execute(
            sql.SQL("SELECT chunk_id FROM {} WHERE dataset_id = %s AND model = %s").format(
                _table(store)
            ),
            (dataset_id, model),
        ).fetchall()
    return {r[0] for r in rows}


def fetch_dataset_vectors(
    conn: psycopg.Connection, store: RegionStore, dataset_id: str, model: str
) -> tuple[list[str], list[str], np.ndarray]:
    """(row_refs, content_hashes, embeddings) of the dataset's chunks embedded with ``model``.

    One entry per chunk, ordered by (row_ref, chunk_index, chunk_id); the embeddings are a
    float32 array of shape (chunks, store.dim), (0, store.dim) when there are none.
    """
    _ensure_vector_types(conn, store)
    query = sql.SQL(
        "SELECT row_ref, content_hash, embedding FROM {} WHERE dataset_id = %s AND model = %s "
        "ORDER BY row_ref, chunk_index, chunk_id"
    ).format(_table(store))
    with _store_transaction(conn, store), conn.cursor(binary=True) as cur:
        rows = cur.execute(query, (dataset_id, model)).fetchall()
    if not rows:
        return [], [], np.empty((0, store.dim), dtype=np.float32)
    matrix = np.stack(
        [
            np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32)
            for *_, v in rows
        ]
    )
    return [r[0] for r in rows], [r[1] for r in rows], matrix


def store_stats(
    conn: psycopg.Connection, store: RegionStore, dataset_id: str | None = None
) -> dict[str, Any]:
    """Counts and health of the store (restricted to one dataset when ``dataset_id`` is given).

    Keys: ``region``, ``schema``, ``chunks``, ``datasets`` ({dataset_id: chunks}),
    ``foreign_residency_rows`` (rows whose residency is not the region: must be 0),
    ``hnsw_index`` (the HNSW index exists and is valid), ``residency_guard`` (the CHECK constraint
    exists and is validated) and ``models`` (distinct embedding model names, sorted).
    """
    table = _table(store)
    where = sql.SQL("WHERE dataset_id = %s") if dataset_id is not None else sql.SQL("")
    params: tuple[Any, ...] = (dataset_id,) if dataset_id is not None else ()
    regclass = f"{store.schema}.{TABLE}"
    with _store_transaction(conn, store):
        datasets = conn.execute(
            sql.SQL(
                "SELECT dataset_id, count(*) FROM {} {} GROUP BY dataset_id ORDER BY dataset_id"
            ).format(table, where),
            params,
        ).fetchall()
        foreign = conn.execute(
            sql.SQL("SELECT count(*) FROM {} {} {} residency IS DISTINCT FROM %s").format(
                table, where, sql.SQL("AND") if dataset_id is not None else sql.SQL("WHERE")
            ),
            (*params, store.region),
        ).fetchone()
        models = conn.execute(
            sql.SQL("SELECT DISTINCT model FROM {} {} ORDER BY model").format(table, where),
            params,
        ).fetchall()
        hnsw = conn.execute(
            """
            SELECT i.indisvalid FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_am am ON am.oid = c.relam
            WHERE n.nspname = %s AND c.relname = %s AND am.amname = 'hnsw'
              AND i.indrelid = %s::regclass
            """,
            (store.schema, HNSW_INDEX, regclass),
        ).fetchone()
        guard = conn.execute(
            """
            SELECT convalidated FROM pg_constraint
            WHERE conrelid = %s::regclass AND conname = %s AND contype = 'c'
            """,
            (regclass, RESIDENCY_GUARD),
        ).fetchone()
    return {
        "region": store.region,
        "schema": store.schema,
        "chunks": sum(int(n) for _, n in datasets),
        "datasets": {d: int(n) for d, n in datasets},
        "foreign_residency_rows": int(foreign[0]) if foreign else 0,
        "hnsw_index": bool(hnsw and hnsw[0]),
        "residency_guard": bool(guard and guard[0]),
        "models": [m for (m,) in models],
    }


def _search(
    conn: psycopg.Connection,
    store: RegionStore,
    query_embedding: np.ndarray,
    k: int,
    allowed_datasets: Sequence[str] | None,
    exclude_pii: bool,
    settings: dict[str, str],
    credential: str | None = None,
    serve_region: str | None = None,
) -> list[SearchHit]:
    _check_k(store, k)
    query = _check_query(store, query_embedding)
    datasets = _check_datasets(store, allowed_datasets)
    if datasets is not None and not datasets:
        return []
    _ensure_vector_types(conn, store)

    if credential is not None:  # a reader: through the store's search function only
        return _governed_search(
            conn, store, query, k, datasets, exclude_pii, settings, credential, serve_region
        )
    conditions: list[sql.Composable] = []
    params: list[Any] = [query]
    if datasets is not None:
        conditions.append(sql.SQL("dataset_id = ANY(%s::text[])"))
        params.append(datasets)
    if exclude_pii:
        conditions.append(sql.SQL("NOT pii"))
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    params.append(int(k))
    query_sql = sql.SQL(
        """
        SELECT chunk_id, dataset_id, row_ref, text, classification, residency, owner_team, pii,
               embedding <=> %s AS distance
        FROM {table} {where}
        ORDER BY distance
        LIMIT %s
        """
    ).format(table=_table(store), where=where)

    # Read-only: always rolled back, which also undoes the SET LOCALs inside a caller's transaction.
    with _store_transaction(conn, store, force_rollback=True):
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))  # = SET LOCAL
        found = conn.execute(query_sql, params).fetchall()
    return _hits(found, k)


def _governed_search(
    conn: psycopg.Connection,
    store: RegionStore,
    query: np.ndarray,
    k: int,
    datasets: list[str] | None,
    exclude_pii: bool,
    settings: dict[str, str],
    credential: str,
    serve_region: str | None,
) -> list[SearchHit]:
    if not serve_region:
        raise VectorStoreError(f"{store.label}: a governed search needs the region it serves")
    statement = sql.SQL("SELECT * FROM {}(%s, %s, %s, %s, %s, %s)").format(
        sql.Identifier(store.schema, SEARCH_FUNCTION)
    )
    try:
        with _store_transaction(conn, store, force_rollback=True):
            for name, value in settings.items():
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))
            found = conn.execute(
                statement, (credential, serve_region, datasets, exclude_pii, query, int(k))
            ).fetchall()
    except psycopg.errors.InvalidAuthorizationSpecification as exc:
        raise VectorStoreError(f"{store.label}: {exc.diag.message_primary}") from None
    return _hits(found, k)


def _hits(found: list[tuple[Any, ...]], k: int) -> list[SearchHit]:
    # relaxed_order iterative scans may return results slightly out of order: re-sort exactly.
    found.sort(key=lambda r: (r[8], r[0]))
    return [
        SearchHit(
            chunk_id=r[0],
            dataset_id=r[1],
            row_ref=r[2],
            text=r[3],
            classification=r[4],
            residency=r[5],
            owner_team=r[6],
            pii=r[7],
            score=1.0 - float(r[8]),
        )
        for r in found[:k]
    ]


def search_store(
    conn: psycopg.Connection,
    store: RegionStore,
    query_embedding: np.ndarray,
    k: int,
    *,
    allowed_datasets: Sequence[str] | None,
    exclude_pii: bool,
    ef_search: int = 100,
    credential: str | None = None,
    serve_region: str | None = None,
) -> list[SearchHit]:
    """The ``k`` chunks nearest to the query by cosine distance, best first, via the HNSW index.

    ``allowed_datasets`` None means every dataset; an empty sequence returns [] without querying.
    Filters run in SQL; pgvector's iterative index scan (``hnsw.iterative_scan =
    relaxed_order``) keeps filtered queries from coming back short, and the hits are re-sorted by
    exact distance. ``ef_search`` (1..1000) is raised to ``k`` when smaller. With a
    ``credential`` (an API key) the store's search function runs the query instead
    (`_search_function`: the database checks the key and the read grants for ``serve_region``);
    a reader role has no other way to the chunks.
    """
    if isinstance(ef_search, bool) or not isinstance(ef_search, int):
        raise VectorStoreError(f"{store.label}: ef_search must be an int, got {ef_search!r}")
    if not 1 <= ef_search <= MAX_EF_SEARCH:
        raise VectorStoreError(
            f"{store.label}: ef_search must be between 1 and {MAX_EF_SEARCH}, got {ef_search}"
        )
    ef = max(ef_search, int(k)) if isinstance(k, int | np.integer) else ef_search
    return _search(
        conn,
        store,
        query_embedding,
        k,
        allowed_datasets,
        exclude_pii,
        {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": "relaxed_order"},
        credential,
        serve_region,
    )


def exact_search_store(
    conn: psycopg.Connection,
    store: RegionStore,
    query_embedding: np.ndarray,
    k: int,
    *,
    allowed_datasets: Sequence[str] | None = None,
    exclude_pii: bool = False,
) -> list[SearchHit]:
    """Like :func:`search_store` but an exact scan (index scans off): ground truth for recall."""
    return _search(
        conn,
        store,
        query_embedding,
        k,
        allowed_datasets,
        exclude_pii,
        # Index scans off (the HNSW index is only reachable through one); sequential and bitmap
        # scans explicitly on, so a session that disabled them cannot push the planner back onto
        # the (all-disabled) HNSW path.
        {
            "enable_indexscan": "off",
            "enable_indexonlyscan": "off",
            "enable_seqscan": "on",
            "enable_bitmapscan": "on",
        },
    )
