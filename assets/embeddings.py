"""Layer 1B retrieval: chunk text columns, embed them, load them into the regional pgvector store.

For every source with ``text_columns``:

* ``chunks/<source>`` splits the text into chunks with content-hash ids, marks the chunks that hold
  PII, and stamps each with the dataset's governance from the catalog;
* ``embeddings/<source>`` embeds only chunks whose id is not yet in the store for this model (a
  re-run after changing 1% of rows embeds 1% of the chunks), bulk-loads them with binary COPY
  into the store of the dataset's residency, drops chunks of rows that changed or disappeared,
  and keeps the HNSW index. Data whose residency has no store (unknown, composite, or unserved
  region) is not embedded anywhere: fail closed.
"""

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import polars as pl
import psycopg

from assets.governance import catalog_key
from assets.ingestion import ingested_key
from assets.progress import RateLog, heartbeat
from assets.tags import governance_tags, owner
from assets.workloads import cpu_workload_metadata, placement_metadata, workload_metadata
from data_plane.chunking import chunk_frame
from data_plane.embedder import MODEL_ID, Embedder
from data_plane.pii import chunk_pii_types
from data_plane.policy import GovernancePolicy
from data_plane.sources import SourceSpec
from data_plane.vector_store import (
    ChunkRow,
    RegionStore,
    delete_chunks_not_in,
    existing_chunk_ids,
    store_stats,
    upsert_chunks,
)
from resources.embedding import EmbeddingModelResource
from resources.governance import GovernanceCatalogResource
from resources.guard import PlacementGuardResource
from resources.lakehouse import LakehouseResource
from resources.postgres import PostgresResource
from resources.vectors import VectorStoresResource

RETRIEVAL_GROUP = "retrieval"
COUNT_CHECK = "embedding_count_matches_chunks"
REGION_CHECK = "vectors_in_residency_region"
LOAD_BATCH = 4096  # chunks embedded and loaded per round trip
PROGRESS_S = 5.0  # at most one "encoded" progress line this often


def chunks_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["chunks", source])


def embeddings_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["embeddings", source])


def build_chunks_asset(spec: SourceSpec, policy: GovernancePolicy) -> dg.AssetsDefinition:
    residency = policy.residency_of_endpoints([spec.storage_endpoint])

    @dg.asset(
        key=chunks_key(spec.name),
        deps=[ingested_key(spec.name), catalog_key(spec.name)],
        group_name=RETRIEVAL_GROUP,
        description=(
            f"Chunks of {', '.join(f'`{c}`' for c in spec.text_columns)} of `{spec.name}`, with "
            "content-hash ids, per-chunk PII and the dataset's governance."
        ),
        kinds={"polars", "parquet"},
        owners=[owner(spec.owner_team)],
        tags=governance_tags(residency, spec.classification),
        metadata=cpu_workload_metadata(datasets=[spec.name]),
    )
    def _chunks(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        governance: GovernanceCatalogResource,
        placement_guard: PlacementGuardResource,
    ) -> dg.MaterializeResult:
        placement_guard.require(context)
        entry = governance.require(spec.name)
        frame = lakehouse.read("ingested", spec.name)
        context.log.info(f"{spec.name}: chunking {frame.height:,} rows")
        with heartbeat(context.log.info, f"chunking {spec.name}"):
            chunks = chunk_frame(
                frame, dataset_id=spec.name, text_columns=spec.text_columns, key=spec.key
            )
        context.log.info(f"{spec.name}: scanning {chunks.height:,} chunks for PII")
        with heartbeat(context.log.info, f"scanning the chunks of {spec.name} for PII"):
            pii_types = chunk_pii_types(chunks.get_column("text"))
        chunks = chunks.with_columns(
            pii_types.alias("pii_types"),
            (pii_types.list.len() > 0).alias("pii"),
            pl.lit(entry.record.classification).alias("classification"),
            pl.lit(entry.record.data_residency).alias("residency"),
            pl.lit(entry.owner_team).alias("owner_team"),
        )
        path = lakehouse.write("chunks", spec.name, chunks)
        with_pii = int(chunks.get_column("pii").sum())
        by_type = (
            chunks.select(pl.col("pii_types").explode().alias("pii_type"))
            .drop_nulls()
            .group_by("pii_type")
            .len()
            .sort(["len", "pii_type"], descending=[True, False])
        )
        context.log.info(f"{spec.name}: {chunks.height} chunks from {frame.height} rows")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": chunks.height,
                "source_rows": frame.height,
                "chunks_with_pii": with_pii,
                "pii_types": dg.MetadataValue.md(
                    "| PII type | chunks |\n|---|---:|\n"
                    + "\n".join(f"| {t} | {n} |" for t, n in by_type.iter_rows())
                    if by_type.height
                    else "No chunk holds PII."
                ),
                "classification": entry.record.classification,
                "data_residency": entry.record.data_residency,
                "mean_chunk_chars": round(
                    float(chunks.get_column("text").str.len_chars().mean() or 0), 1
                ),
                "lakehouse_table": dg.MetadataValue.path(str(path)),
            }
        )

    return _chunks


def _rows(frame: pl.DataFrame) -> list[ChunkRow]:
    return [
        ChunkRow(
            chunk_id=r["chunk_id"],
            dataset_id=r["dataset_id"],
            source_column=r["source_column"],
            row_ref=r["row_ref"],
            chunk_index=r["chunk_index"],
            text=r["text"],
            classification=r["classification"],
            residency=r["residency"],
            owner_team=r["owner_team"],
            pii_types=tuple(r["pii_types"]),
            content_hash=r["content_hash"],
        )
        for r in frame.iter_rows(named=True)
    ]


def build_embeddings_asset(spec: SourceSpec, policy: GovernancePolicy) -> dg.AssetsDefinition:
    residency = policy.residency_of_endpoints([spec.storage_endpoint])
    key = embeddings_key(spec.name)

    @dg.asset(
        key=key,
        deps=[chunks_key(spec.name)],
        group_name=RETRIEVAL_GROUP,
        description=(
            f"Embeddings ({MODEL_ID}) of the chunks of `{spec.name}` in the pgvector store of "
            "its residency region, with an HNSW index."
        ),
        kinds={"sentence-transformers", "pgvector", "postgres"},
        owners=[owner(spec.owner_team)],
        tags={**governance_tags(residency, spec.classification), "plane/gpu": "optional"},
        # Workload requirements the reasoning plane reads when it places this asset's runs.
        metadata=workload_metadata(
            datasets=[spec.name],
            gpu_count=1,
            gpu_memory_gb=2,
            est_duration_s=600,
            data_gb=1.0,
            priority=100,
            gpu_optional=True,
            recurring=True,
        ),
        check_specs=[
            dg.AssetCheckSpec(
                COUNT_CHECK,
                asset=key,
                description="The store holds exactly one embedding per chunk.",
            ),
            dg.AssetCheckSpec(
                REGION_CHECK,
                asset=key,
                description="No vector of this dataset is stored outside its "
                "residency region, and no store holds a foreign-residency row.",
            ),
        ],
    )
    def _embeddings(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        vectors: VectorStoresResource,
        embedding_model: EmbeddingModelResource,
        postgres: PostgresResource,
        placement_guard: PlacementGuardResource,
    ) -> dg.MaterializeResult:
        placement_guard.require(context)
        return embed_chunks(context, spec, residency, lakehouse, vectors, embedding_model, postgres)

    return _embeddings


@dataclass(frozen=True)
class _Load:
    """What one embedding run did to the store of the dataset's residency."""

    chunks: int
    reused: int
    embedded: int
    deleted: int
    encode_seconds: float
    stats: dict[str, Any]
    elsewhere: dict[str, int]  # rows of the dataset in other regions' stores, by region


def embed_chunks(
    context: dg.AssetExecutionContext,
    spec: SourceSpec,
    residency: str,
    lakehouse: LakehouseResource,
    vectors: VectorStoresResource,
    embedding_model: EmbeddingModelResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    """Embed the chunks not yet in the store of their residency, load them, drop stale ones,
    and check the counts and that no vector of the dataset lies outside that store."""
    chunks = lakehouse.read("chunks", spec.name)
    residencies = chunks.get_column("residency").unique().to_list() or [residency]
    if len(residencies) != 1:
        raise ValueError(f"{spec.name}: chunks carry several residencies {residencies}")
    store = vectors.store_for(residencies[0])
    if store is None:
        return _no_store_result(context, spec, chunks, residencies[0])
    started = time.perf_counter()
    embedder = embedding_model.embedder(context.run.tags)
    with vectors.connect(store) as conn:
        load = _load_chunks(context, spec, conn, store, chunks, embedder, vectors)
    seconds = time.perf_counter() - started
    with postgres.connect() as conn:
        placement = placement_metadata(dict(context.run.tags), conn)
    stored = load.stats["datasets"].get(spec.name, 0)
    return dg.MaterializeResult(
        metadata={
            **placement,
            "chunks": load.chunks,
            "embedded": load.embedded,
            "reused": load.reused,
            "deleted_stale": load.deleted,
            "stored": stored,
            "store_region": store.region,
            "store": vectors.describe(store),
            "hnsw_index": load.stats["hnsw_index"],
            "model": MODEL_ID,
            "device": embedder.resolved_device or "not loaded (nothing to embed)",
            "seconds": round(seconds, 3),
            "sentences_per_second": round(load.embedded / load.encode_seconds, 1)
            if load.encode_seconds
            else 0.0,
        },
        check_results=_load_checks(store, stored, load),
    )


def _no_store_result(
    context: dg.AssetExecutionContext, spec: SourceSpec, chunks: pl.DataFrame, residency: str
) -> dg.MaterializeResult:
    """Fail closed: no store serves this residency, so nothing is embedded anywhere."""
    reason = (
        f"no vector store serves residency {residency} (see "
        "config/vector_stores.yaml); nothing was embedded (fail closed)"
    )
    context.log.error(f"{spec.name}: {reason}")
    return dg.MaterializeResult(
        metadata={"embedded": 0, "store_region": "none", "reason": reason},
        check_results=[
            dg.AssetCheckResult(
                check_name=COUNT_CHECK, passed=chunks.is_empty(), description=reason
            ),
            dg.AssetCheckResult(
                check_name=REGION_CHECK, passed=True, description="nothing stored anywhere"
            ),
        ],
    )


def _load_chunks(
    context: dg.AssetExecutionContext,
    spec: SourceSpec,
    conn: psycopg.Connection,
    store: RegionStore,
    chunks: pl.DataFrame,
    embedder: Embedder,
    vectors: VectorStoresResource,
) -> _Load:
    """Embed and load the chunks whose id the store lacks, delete the chunks no longer there."""
    existing = existing_chunk_ids(conn, store, spec.name, MODEL_ID)
    todo = chunks.filter(~pl.col("chunk_id").is_in(list(existing)))
    context.log.info(
        f"{spec.name}: {chunks.height} chunks, {len(existing)} already embedded, "
        f"{todo.height} to embed into {vectors.describe(store)}"
    )
    embedded = 0
    encode_seconds = 0.0
    # "encoded" every 16 batches (data_plane.embedder), at most every PROGRESS_S
    encoded = RateLog(
        context.log.info, f"{spec.name}: encoded", todo.height, unit="chunks", every_s=PROGRESS_S
    )
    loaded = RateLog(
        context.log.info, f"{spec.name}: loaded", todo.height, unit="embeddings", every_s=0
    )
    for offset in range(0, todo.height, LOAD_BATCH):
        part = todo.slice(offset, LOAD_BATCH)
        t0 = time.perf_counter()
        matrix = embedder.encode(
            part.get_column("text").to_list(),
            progress=lambda done, total, secs, base=offset: encoded.update(base + done),
        )
        encode_seconds += time.perf_counter() - t0
        embedded += upsert_chunks(conn, store, _rows(part), matrix, MODEL_ID)
        loaded.update(embedded)
    deleted = delete_chunks_not_in(conn, store, spec.name, chunks["chunk_id"].to_list())
    return _Load(
        chunks=chunks.height,
        reused=chunks.height - todo.height,
        embedded=embedded,
        deleted=deleted,
        encode_seconds=encode_seconds,
        stats=store_stats(conn, store, spec.name),
        elsewhere=_rows_elsewhere(vectors, store, spec.name),
    )


def _rows_elsewhere(
    vectors: VectorStoresResource, store: RegionStore, dataset: str
) -> dict[str, int]:
    """Rows of ``dataset`` in the stores of every other region, by region (none expected)."""
    elsewhere: dict[str, int] = {}
    for other in vectors.stores().values():
        if other.region != store.region:
            with vectors.connect(other) as other_conn:
                count = store_stats(other_conn, other, dataset)["datasets"].get(dataset, 0)
                if count:
                    elsewhere[other.region] = count
    return elsewhere


def _load_checks(store: RegionStore, stored: int, load: _Load) -> list[dg.AssetCheckResult]:
    foreign = load.stats["foreign_residency_rows"]
    region_ok = not load.elsewhere and foreign == 0
    return [
        dg.AssetCheckResult(
            check_name=COUNT_CHECK,
            passed=stored == load.chunks,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{stored} embeddings stored for {load.chunks} chunks",
        ),
        dg.AssetCheckResult(
            check_name=REGION_CHECK,
            passed=region_ok,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"all {stored} vectors in the {store.region} store"
                if region_ok
                else f"vectors outside {store.region}: {load.elsewhere}; foreign rows in "
                f"{store.region}: {foreign}"
            ),
        ),
    ]
