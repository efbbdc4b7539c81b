"""Workers the crash-safety tests start as real subprocesses and kill with SIGKILL.

``python -m tests.integration.crash_workers embed N BATCH HOLD_AT`` loads N chunks into a
regional vector store the way ``embeddings/<source>`` does (ids already stored are skipped, the
rest is sent in batches through `vector_store.upsert_chunks`, then chunks no longer present are
deleted); ``catalog N VERSION HOLD_AT`` upserts N catalog entries with
`catalog_store.upsert_entry`. Embeddings are a deterministic function of the chunk id (the
model is not what is tested here).

``HOLD_AT`` (>= 1) is the batch / entry at which the worker prints ``HOLD <i>`` and waits inside
the still-open transaction that wrote it, so the test can kill it exactly there; 0: never hold.
Each committed batch / entry prints ``DONE <i>``.
"""

import hashlib
import sys
import time
from datetime import UTC, datetime

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from data_plane import catalog_store
from data_plane.catalog import tag_dataset
from data_plane.policy import load_policy
from data_plane.vector_store import (
    EMBEDDING_DIM,
    ChunkRow,
    RegionStore,
    delete_chunks_not_in,
    ensure_store,
    existing_chunk_ids,
    upsert_chunks,
)
from resources.database import database_url, project_root

STORE = RegionStore(region="EU", schema="vectors_crash_eu")
MODEL = "crash-test-model"


def chunk_id(i: int) -> str:
    return f"crash-{i:05d}"


def vector(cid: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(cid.encode()).digest()[:8], "big")
    v = np.random.default_rng(seed).normal(size=EMBEDDING_DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def row(cid: str) -> ChunkRow:
    return ChunkRow(
        chunk_id=cid,
        dataset_id="crash_tickets",
        source_column="body",
        row_ref=cid,
        chunk_index=0,
        text=f"text of {cid}",
        classification="INTERNAL",
        residency="EU",
        owner_team="customer-support",
        pii_types=(),
        content_hash=hashlib.sha256(cid.encode()).hexdigest(),
    )


def say(line: str) -> None:
    print(line, flush=True)


def embed(n: int, batch: int, hold_at: int) -> None:
    ids = [chunk_id(i) for i in range(n)]
    with psycopg.connect(database_url()) as conn:
        register_vector(conn)
        ensure_store(conn, STORE)
        existing = existing_chunk_ids(conn, STORE, "crash_tickets", MODEL)
        todo = [c for c in ids if c not in existing]
        say(f"TODO {len(todo)}")
        written = 0
        for number, offset in enumerate(range(0, len(todo), batch), start=1):
            part = todo[offset : offset + batch]
            matrix = np.vstack([vector(c) for c in part])
            if number == hold_at:
                with conn.transaction():
                    written += upsert_chunks(conn, STORE, [row(c) for c in part], matrix, MODEL)
                    say(f"HOLD {number}")
                    time.sleep(600)  # killed here, the batch written but not committed
            else:
                written += upsert_chunks(conn, STORE, [row(c) for c in part], matrix, MODEL)
            say(f"DONE {number}")
        deleted = delete_chunks_not_in(conn, STORE, "crash_tickets", ids)
        say(f"FINISHED written={written} deleted={deleted}")


def catalog(n: int, version: int, hold_at: int) -> None:
    policy = load_policy(project_root() / "config" / "governance.yaml")
    with psycopg.connect(database_url()) as conn:
        catalog_store.ensure_schema(conn)
        for i in range(1, n + 1):
            entry = tag_dataset(
                dataset_id=f"crash_dataset_{i:04d}",
                storage_endpoints=["s3://eu-central-1/crash"],
                source_system="crash-test",
                owner_team="financial-ml",
                declared_classification="INTERNAL",
                declared_retention="1_year",
                pii_columns={},
                last_updated=datetime(2026, 11, version, tzinfo=UTC),
                policy=policy,
                row_count=1000 * version + i,
            )
            if i == hold_at:
                with conn.transaction():
                    catalog_store.upsert_entry(conn, entry)
                    say(f"HOLD {i}")
                    time.sleep(600)
            else:
                catalog_store.upsert_entry(conn, entry)
            say(f"DONE {i}")
        say("FINISHED")


if __name__ == "__main__":
    kind, *numbers = sys.argv[1:]
    {"embed": embed, "catalog": catalog}[kind](*map(int, numbers))
