"""Pipeline throughput against the raw libraries, on the same data in the same run.

    python benchmarks/pipeline.py [--scale 1] [--vectors 100000] [--sentences 1000]

* ingestion (parse + validate + quarantine) rows/s vs a bare polars read of the same file;
* PII tagging MB/s (`data_plane.pii.detect_pii` over every column);
* embedding + pgvector load sentences/s vs bare ``model.encode`` of the same sentences;
* governed top-10 query latency (p50/p99) and recall@10 vs exact search, on ``--vectors`` stored
  vectors (the real embeddings of the transcripts, plus perturbed copies to reach the count);
* each at 1x and 10x data (``--scale`` and 10 x ``--scale``).

Writes ``benchmarks/out/pipeline.json`` and prints a Markdown section for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from machine import machine  # noqa: E402  (benchmarks/ is on sys.path)

from data_plane.embedder import MODEL_ID, Embedder, model_path  # noqa: E402
from data_plane.ingest import ingest  # noqa: E402
from data_plane.pii import detect_pii  # noqa: E402
from data_plane.sources import load_source_catalog  # noqa: E402
from data_plane.vector_store import (  # noqa: E402
    ChunkRow,
    RegionStore,
    ensure_store,
    exact_search_store,
    search_store,
    upsert_chunks,
)
from resources.database import database_url  # noqa: E402

OUT = ROOT / "benchmarks" / "out"


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ingestion(scale: float) -> dict:
    from generate_samples import generate

    data = OUT / f"data-{scale:g}"
    if not (data / "customer_orders_eu.csv").exists():
        generate(data, scale=scale, seed=7)
    catalog = load_source_catalog(ROOT / "data" / "sources.yaml")
    rows = {}
    bare_readers = {"csv": pl.read_csv, "jsonl": pl.read_ndjson, "parquet": pl.read_parquet}
    for spec in catalog.sources:
        spec = replace(spec, path=data / spec.path.name)
        result = ingest(spec)
        ours = best_of(lambda spec=spec: ingest(spec))

        def bare(spec=spec):
            try:
                bare_readers[spec.format](spec.path)
            except Exception:  # the bare reader cannot read files with broken lines
                pl.read_csv(
                    spec.path,
                    infer_schema=False,
                    truncate_ragged_lines=True,
                    separator="\x1f",
                    has_header=False,
                    quote_char=None,
                )

        raw = best_of(bare)
        frame = result.valid
        pii_s = best_of(lambda frame=frame: detect_pii(frame))
        mb = frame.estimated_size("mb")
        rows[spec.name] = {
            "format": spec.format,
            "records": result.records_read,
            "ingest_s": round(ours, 4),
            "bare_read_s": round(raw, 4),
            "ratio": round(ours / raw, 2) if raw else None,
            "rows_per_s": round(result.records_read / ours),
            "pii_mb": round(mb, 2),
            "pii_s": round(pii_s, 4),
            "pii_mb_per_s": round(mb / pii_s, 1) if pii_s else None,
        }
    return rows


def embedding(n: int, store: RegionStore, url: str) -> dict:
    texts = pl.read_parquet(ROOT / "data" / "samples" / "conference_transcripts.parquet")["text"]
    sentences = [f"{texts[i % len(texts)]} (variant {i})" for i in range(n)]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path(), device="cpu")
    model.encode(sentences[:64])  # warm-up
    t0 = time.perf_counter()
    model.encode(sentences, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    bare = time.perf_counter() - t0

    embedder = Embedder(device="cpu", batch_size=64)
    embedder.encode(sentences[:64])
    rows = [
        ChunkRow(
            f"bench-{n}-{i}",
            "bench",
            "text",
            str(i),
            0,
            s,
            "PUBLIC",
            store.region,
            "bench",
            (),
            f"h{i}",
        )
        for i, s in enumerate(sentences)
    ]
    with psycopg.connect(url) as conn:
        ensure_store(conn, store)
        conn.commit()
        t0 = time.perf_counter()
        matrix = embedder.encode(sentences)
        upsert_chunks(conn, store, rows, matrix, MODEL_ID)
        conn.commit()
        ours = time.perf_counter() - t0
    return {
        "sentences": n,
        "bare_encode_s": round(bare, 2),
        "bare_sentences_per_s": round(n / bare, 1),
        "embed_and_load_s": round(ours, 2),
        "embed_and_load_sentences_per_s": round(n / ours, 1),
        "ratio": round(ours / bare, 3),
    }


def queries(n_vectors: int, store: RegionStore, url: str, n_queries: int = 200) -> dict:
    texts = pl.read_parquet(ROOT / "data" / "samples" / "conference_transcripts.parquet")["text"]
    base = Embedder(device="cpu").encode(texts.to_list())
    rng = np.random.default_rng(7)
    reps = int(np.ceil(n_vectors / len(base)))
    matrix = np.concatenate([base + rng.normal(0, 0.04, base.shape) for _ in range(reps)])
    matrix = matrix[:n_vectors] / np.linalg.norm(matrix[:n_vectors], axis=1, keepdims=True)
    matrix = matrix.astype(np.float32)
    datasets = [f"ds{i % 8}" for i in range(n_vectors)]
    rows = [
        ChunkRow(
            f"q{i}",
            datasets[i],
            "text",
            str(i),
            0,
            "x",
            "PII" if i % 5 == 0 else "PUBLIC",
            store.region,
            "bench",
            ("email",) if i % 5 == 0 else (),
            f"h{i}",
        )
        for i in range(n_vectors)
    ]
    with psycopg.connect(url) as conn:
        ensure_store(conn, store)
        conn.commit()
        t0 = time.perf_counter()
        for start in range(0, n_vectors, 20_000):
            upsert_chunks(
                conn, store, rows[start : start + 20_000], matrix[start : start + 20_000], MODEL_ID
            )
            conn.commit()
        load_s = time.perf_counter() - t0
        conn.execute("ANALYZE")
        allowed = [f"ds{i}" for i in range(6)]  # a governed principal sees 6 of 8 datasets
        latencies, recalls = [], []
        qs = base[rng.choice(len(base), n_queries)] + rng.normal(
            0, 0.02, (n_queries, base.shape[1])
        )
        for q in qs.astype(np.float32):
            t0 = time.perf_counter()
            hits = search_store(conn, store, q, 10, allowed_datasets=allowed, exclude_pii=True)
            latencies.append((time.perf_counter() - t0) * 1000)
            exact = exact_search_store(
                conn, store, q, 10, allowed_datasets=allowed, exclude_pii=True
            )
            truth = {h.chunk_id for h in exact}
            recalls.append(len(truth & {h.chunk_id for h in hits}) / max(len(truth), 1))
    latencies.sort()
    return {
        "vectors": n_vectors,
        "load_s": round(load_s, 1),
        "queries": n_queries,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "recall_at_10": round(float(np.mean(recalls)), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0, help="sample scale of the 1x run")
    parser.add_argument("--sentences", type=int, default=1000, help="sentences of the 1x run")
    parser.add_argument("--vectors", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    OUT.mkdir(parents=True, exist_ok=True)
    url = database_url()
    suffix = uuid.uuid4().hex[:8]
    results: dict = {"machine": machine(), "command": " ".join(["python", *sys.argv])}
    results["ingestion_1x"] = ingestion(args.scale)
    results["ingestion_10x"] = ingestion(args.scale * 10)
    store = RegionStore("BENCH", f"bench_vectors_{suffix}")
    try:
        results["embedding_1x"] = embedding(args.sentences, store, url)
        results["embedding_10x"] = embedding(args.sentences * 10, store, url)
        qstore = RegionStore("BENCH", f"bench_query_{suffix}")
        results["query"] = queries(args.vectors, qstore, url)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS bench_vectors_{suffix} CASCADE")
            conn.execute(f"DROP SCHEMA IF EXISTS bench_query_{suffix} CASCADE")
    (OUT / "pipeline.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
