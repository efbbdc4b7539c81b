import polars as pl
import pytest

from data_plane.chunking import chunk_frame, split_text


def test_split_packs_sentences_under_the_limit() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = split_text(text, max_chars=120)
    assert all(len(c) <= 120 for c in chunks)
    assert " ".join(chunks) == text  # nothing lost, order kept
    assert split_text("   ") == []
    assert split_text("short text") == ["short text"]


def test_run_on_sentence_is_cut_at_words() -> None:
    text = "word " * 100
    chunks = split_text(text, max_chars=50)
    assert all(len(c) <= 50 for c in chunks) and " ".join(chunks) == text.strip()
    with pytest.raises(ValueError):
        split_text("x", max_chars=5)


def test_ids_are_stable_and_change_only_with_content() -> None:
    frame = pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "body": ["Hello there.", None, "Bye now."],
            "subject": ["S1", "S2", ""],
        }
    )
    first = chunk_frame(frame, dataset_id="t", text_columns=["body", "subject"], key="id")
    again = chunk_frame(frame, dataset_id="t", text_columns=["body", "subject"], key="id")
    assert first.equals(again)
    assert first.height == 4  # 2 bodies (one null) + 2 subjects (one empty)
    assert first["chunk_id"].n_unique() == 4
    changed = frame.with_columns(
        pl.when(pl.col("id") == "c")
        .then(pl.lit("Changed."))
        .otherwise(pl.col("body"))
        .alias("body")
    )
    second = chunk_frame(changed, dataset_id="t", text_columns=["body", "subject"], key="id")
    assert len(set(second["chunk_id"]) - set(first["chunk_id"])) == 1
    hashes = dict(
        zip(second["row_ref"] + second["source_column"], second["content_hash"], strict=True)
    )
    assert (
        hashes["abody"]
        == dict(zip(first["row_ref"] + first["source_column"], first["content_hash"], strict=True))[
            "abody"
        ]
    )


def test_long_text_becomes_several_chunks_without_key() -> None:
    frame = pl.DataFrame({"text": ["One. " * 400]})
    chunks = chunk_frame(frame, dataset_id="t", text_columns=["text"], key=None, max_chars=200)
    assert chunks.height > 1 and chunks["row_ref"].unique().to_list() == ["0"]
    assert chunks["chunk_index"].to_list() == list(range(chunks.height))


def test_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        chunk_frame(pl.DataFrame({"a": ["x"]}), dataset_id="t", text_columns=["nope"], key=None)
