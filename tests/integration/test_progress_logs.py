"""Long work reports its progress in the run's logs: what the dagster CLI prints and the UI
shows while ingestion and embedding run (real Dagster, real PostgreSQL, the real model); and the
chunks' PII shows as a table."""

from pathlib import Path

import dagster as dg
import psycopg
import pytest

from stack_defs.definitions import build_defs
from tests.placed import run_placed_result

pytestmark = pytest.mark.slow


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.user_message]


def test_ingestion_and_embedding_log_rows_per_second(
    sample_catalog: Path, tmp_path: Path, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for schema in ("governance", "vectors_eu", "vectors_us"):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    defs = build_defs(sources_file=sample_catalog, lakehouse_root=str(tmp_path / "lake"))
    keys = [
        dg.AssetKey.from_user_string(k)
        for k in (
            "ingested/support_tickets",
            "catalog/support_tickets",
            "chunks/support_tickets",
            "embeddings/support_tickets",
        )
    ]
    with dg.instance_for_test() as instance:
        result = run_placed_result(defs, keys, instance=instance)
        assert result.success, result.outcomes
        logs = [m for run_id in result.run_ids for m in _messages(instance, run_id)]
        chunks = instance.get_latest_materialization_event(
            dg.AssetKey.from_user_string("chunks/support_tickets")
        )
    # what the UI shows about the chunks: PII types per chunk as a table
    pii_table = chunks.asset_materialization.metadata["pii_types"].value
    assert pii_table.startswith("| PII type | chunks |") and "| email |" in pii_table
    # where it reads from (the source's path or s3:// URL), how much, in which format
    reading = [m for m in logs if m.startswith("support_tickets: reading ")]
    assert reading and reading[0].split(" (")[0].endswith("support_tickets.jsonl"), reading
    assert " MB, jsonl)" in reading[0]
    read = next(m for m in logs if "records read" in m)
    assert "rows/s" in read and "MB/s" in read
    assert any(m.startswith("support_tickets: chunking ") for m in logs)
    encoded = [m for m in logs if m.startswith("support_tickets: encoded: ")]
    assert encoded and "chunks/s" in encoded[-1] and "(100%)" in encoded[-1]
    assert any(m.startswith("support_tickets: loaded: ") and "(100%)" in m for m in logs)
