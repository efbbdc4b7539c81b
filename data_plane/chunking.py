"""Chunking of text columns into retrieval units with stable, content-derived ids.

A chunk id is a hash of (dataset, column, source row, chunk position, chunk text): re-running on
unchanged data gives the same ids, so only chunks whose text changed are embedded again. Texts
that fit in one chunk (the common case) are handled column-wise with polars; only longer texts are
split, at sentence boundaries, packing sentences up to ``max_chars`` (a sentence longer than that
is cut at word boundaries).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import polars as pl

DEFAULT_MAX_CHARS = 800  # ~200 word pieces: inside all-MiniLM-L6-v2's 256-token window

CHUNK_SCHEMA: dict[str, pl.DataType] = {
    "chunk_id": pl.String(),
    "dataset_id": pl.String(),
    "source_column": pl.String(),
    "row_ref": pl.String(),
    "chunk_index": pl.Int32(),
    "text": pl.String(),
    "content_hash": pl.String(),
}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Split one text into chunks of at most ``max_chars`` characters, by sentence."""
    if max_chars < 20:
        raise ValueError("max_chars must be at least 20")
    text = " ".join(text.split())
    if not text:
        return []
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > max_chars:  # a run-on sentence: cut at a word boundary
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current} {piece}" if current else piece
        if len(candidate) <= max_chars:
            current = candidate
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def chunk_id(dataset_id: str, column: str, row_ref: str, index: int, text: str) -> str:
    return _sha("\x1f".join((dataset_id, column, row_ref, str(index), text)))[:32]


def chunk_frame(
    frame: pl.DataFrame,
    *,
    dataset_id: str,
    text_columns: Sequence[str],
    key: str | None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> pl.DataFrame:
    """Chunks of every non-empty value of the text columns; ``row_ref`` is the key (or row no.)."""
    missing = [c for c in text_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{dataset_id}: text column {missing[0]!r} is not in the dataset")
    if key is not None and key not in frame.columns:
        raise ValueError(f"{dataset_id}: key column {key!r} is not in the dataset")
    refs = (
        frame.get_column(key).cast(pl.String)
        if key
        else pl.Series("row_ref", range(frame.height)).cast(pl.String)
    )
    parts: list[pl.DataFrame] = []
    for column in text_columns:
        texts = (
            pl.DataFrame({"row_ref": refs, "raw": frame.get_column(column).cast(pl.String)})
            .with_columns(
                pl.col("raw").str.replace_all(r"\s+", " ").str.strip_chars().alias("text")
            )
            .filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
        )
        short = texts.filter(pl.col("text").str.len_chars() <= max_chars).with_columns(
            pl.lit(0, pl.Int32).alias("chunk_index")
        )
        long_rows = texts.filter(pl.col("text").str.len_chars() > max_chars)
        exploded = pl.DataFrame(
            [
                (ref, i, piece)
                for ref, text in long_rows.select("row_ref", "text").iter_rows()
                for i, piece in enumerate(split_text(text, max_chars))
            ],
            schema={"row_ref": pl.String, "chunk_index": pl.Int32, "text": pl.String},
            orient="row",
        )
        hashes = texts.select(
            "row_ref",
            pl.col("text")
            .map_batches(
                lambda s: pl.Series([_sha(t) for t in s.to_list()], dtype=pl.String),
                return_dtype=pl.String,
            )
            .alias("content_hash"),
        )
        chunks = pl.concat(
            [short.select("row_ref", "chunk_index", "text"), exploded], how="vertical"
        ).join(hashes, on="row_ref", how="left")
        ids = [
            chunk_id(dataset_id, column, ref, idx, text)
            for ref, idx, text in chunks.select("row_ref", "chunk_index", "text").iter_rows()
        ]
        parts.append(
            chunks.with_columns(
                pl.Series("chunk_id", ids, dtype=pl.String),
                pl.lit(dataset_id).alias("dataset_id"),
                pl.lit(column).alias("source_column"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=CHUNK_SCHEMA)
    return (
        pl.concat(parts, how="vertical")
        .select(list(CHUNK_SCHEMA))
        .cast(CHUNK_SCHEMA)  # type: ignore[arg-type]
        .sort(["source_column", "row_ref", "chunk_index"])
    )
