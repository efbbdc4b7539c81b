"""The planner's demand, read from the gateway's decision records on a real PostgreSQL.

The table (``plane.serving_decisions``) is the gateway's; the test creates its shape inside one
transaction and rolls it back, so a table the gateway's own migration made is left as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from reasoning_plane.serving.planner import metered_demand, unserved_since

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_demand_per_model_over_the_window(pg: psycopg.Connection) -> None:
    pg.execute("CREATE SCHEMA IF NOT EXISTS plane")
    pg.execute("DROP TABLE IF EXISTS plane.serving_decisions")
    pg.execute(
        "CREATE TABLE plane.serving_decisions (decided_at timestamptz NOT NULL, model text, "
        "status text, endpoint_id text, prompt_tokens int, completion_tokens int,"
        " rejected_by_rule jsonb, recorded_at timestamptz)"
    )
    rows = [
        (NOW - timedelta(seconds=10), "gemma", "placed", "eu-1", 100, 20, "{}"),
        (NOW - timedelta(seconds=100), "gemma", "deferred", None, 50, None, "{}"),
        # refused by residency only: loading a model serves nothing of it, not demand
        (NOW - timedelta(seconds=200), "gemma", "rejected", None, 999, 0, '{"residency": 2}'),
        (NOW - timedelta(seconds=5000), "gemma", "placed", "eu-1", 7, 7, "{}"),  # before
        (NOW + timedelta(seconds=5), "gemma", "placed", "eu-1", 7, 7, "{}"),  # after now
        (NOW - timedelta(seconds=30), "qwen", "placed", "us-1", 1, 2, "{}"),
        # refused because the only endpoint is cold and its reload misses the SLO: demand
        (NOW - timedelta(seconds=40), "qwen", "rejected", None, 4, 0, '{"slo": 1}'),
    ]
    try:
        with pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO plane.serving_decisions VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                [(*r, r[0]) for r in rows],
            )
        got = metered_demand(pg, NOW, 600)
        assert set(got) == {"gemma", "qwen"}
        assert (got["gemma"].requests, got["gemma"].tokens) == (2, 170)
        assert got["gemma"].last_request_at == NOW - timedelta(seconds=10)
        assert got["gemma"].per_hour == pytest.approx(12.0)
        assert (got["qwen"].requests, got["qwen"].tokens) == (2, 7)
        # what the residency sensor reacts to at once: deferred or refused for the SLO
        assert unserved_since(pg, NOW - timedelta(seconds=150)) == {
            "gemma": NOW - timedelta(seconds=100),
            "qwen": NOW - timedelta(seconds=40),
        }
        assert unserved_since(pg, NOW - timedelta(seconds=60)) == {
            "qwen": NOW - timedelta(seconds=40)
        }
        with pytest.raises(ValueError, match="now: must be timezone-aware"):
            metered_demand(pg, NOW.replace(tzinfo=None), 600)
        with pytest.raises(ValueError, match="window_s"):
            metered_demand(pg, NOW, 0)
    finally:
        pg.rollback()
