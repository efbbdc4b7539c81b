"""Crash safety of the embedding load and the catalog update (issue 8, item 2 in part).

A real subprocess does the work against the real PostgreSQL and is killed with SIGKILL, once
between committed batches and once inside an open transaction that has already written; then
the work is run again. Afterwards every expected row is there exactly once, with the right
values, and the re-run wrote only what the killed run had not committed.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from tests.integration.crash_workers import STORE, chunk_id, vector

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
N, BATCH = 1200, 100  # 12 batches, each its own transaction


class Worker:
    def __init__(self, database_url: str, *args: object) -> None:
        env = {**os.environ, "PLANE_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.crash_workers", *map(str, args)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(
            f"worker ended before {prefix!r}: {self.lines} {self.proc.stderr.read()}"
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=60) == -signal.SIGKILL

    def finish(self) -> str:
        # Read through the same buffered stream as wait_for (communicate() would skip lines
        # already buffered there).
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.lines += [line.strip() for line in self.proc.stdout.read().splitlines()]
        code = self.proc.wait(timeout=600)
        assert code == 0, self.proc.stderr.read()
        return self.lines[-1]


def _vectors(url: str) -> dict[str, np.ndarray]:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        rows = conn.execute(
            f"SELECT chunk_id, embedding FROM {STORE.schema}.chunks WHERE dataset_id = %s",
            ("crash_tickets",),
        ).fetchall()
        total = conn.execute(f"SELECT count(*) FROM {STORE.schema}.chunks").fetchone()[0]
    assert total == len(rows) == len({r[0] for r in rows})  # no duplicate, nothing foreign
    return {r[0]: r[1].to_numpy() for r in rows}


def _wait_for_idle(url: str) -> None:
    """The killed client's backend is gone and its transaction rolled back."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(600):
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
                " AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            if not busy:
                return
            conn.execute("SELECT pg_sleep(0.1)")
    raise AssertionError("the killed worker's transaction is still open")


@pytest.fixture
def clean(database_url: str) -> Iterator[str]:
    def drop() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {STORE.schema} CASCADE")
            for table in ("governance.catalog", "governance.catalog_history"):
                if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]:
                    conn.execute(f"DELETE FROM {table} WHERE dataset_id LIKE 'crash_%'")

    drop()
    yield database_url
    drop()


def test_embedding_load_killed_twice_then_rerun_loses_and_duplicates_nothing(clean: str) -> None:
    url = clean
    # 1. Killed between batches: the committed batches stay.
    first = Worker(url, "embed", N, BATCH, 0)
    first.wait_for("DONE 3")
    first.kill()
    _wait_for_idle(url)
    after_first = _vectors(url)
    assert len(after_first) % BATCH == 0 and BATCH * 3 <= len(after_first) < N

    # 2. Killed inside the transaction of its 2nd batch, after the rows were written.
    second = Worker(url, "embed", N, BATCH, 2)
    assert second.wait_for("TODO") == f"TODO {N - len(after_first)}"
    second.wait_for("HOLD 2")
    second.kill()
    _wait_for_idle(url)
    after_second = _vectors(url)
    assert len(after_second) == len(after_first) + BATCH  # batch 1 committed, batch 2 rolled back

    # 3. The re-run writes exactly what is missing; the store then holds every chunk once.
    third = Worker(url, "embed", N, BATCH, 0)
    assert third.wait_for("TODO") == f"TODO {N - len(after_second)}"
    assert third.finish() == f"FINISHED written={N - len(after_second)} deleted=0"
    final = _vectors(url)
    assert set(final) == {chunk_id(i) for i in range(N)}
    for cid in (chunk_id(0), chunk_id(N // 2), chunk_id(N - 1)):
        assert np.allclose(final[cid], vector(cid), atol=1e-6)
    # 4. Nothing left to do.
    again = Worker(url, "embed", N, BATCH, 0)
    assert again.wait_for("TODO") == "TODO 0"
    assert again.finish() == "FINISHED written=0 deleted=0"


def _catalog_state(url: str) -> tuple[dict[str, tuple[int, str]], dict[str, list[str]]]:
    with psycopg.connect(url) as conn:
        current = {
            d: (rows, h)
            for d, rows, h in conn.execute(
                "SELECT dataset_id, row_count, entry_hash FROM governance.catalog"
                " WHERE dataset_id LIKE 'crash_%'"
            ).fetchall()
        }
        history: dict[str, list[str]] = {}
        for d, h in conn.execute(
            "SELECT dataset_id, entry_hash FROM governance.catalog_history"
            " WHERE dataset_id LIKE 'crash_%' ORDER BY id"
        ).fetchall():
            history.setdefault(d, []).append(h)
    return current, history


def test_catalog_update_killed_mid_transaction_then_rerun_is_consistent(clean: str) -> None:
    url = clean
    n = 60
    first = Worker(url, "catalog", n, 1, 25)
    first.wait_for("HOLD 25")
    first.kill()
    _wait_for_idle(url)
    current, history = _catalog_state(url)
    assert len(current) == len(history) == 24  # entry 25 was written but never committed
    assert f"crash_dataset_{25:04d}" not in current

    assert Worker(url, "catalog", n, 1, 0).finish() == "FINISHED"
    current, history = _catalog_state(url)
    assert len(current) == n and all(rows == 1000 + int(d[-4:]) for d, (rows, _) in current.items())
    for dataset, (_, digest) in current.items():
        # one history row per dataset, the current entry's: the re-run did not append again
        # what the killed run had committed, and left no orphan of what it had not
        assert history[dataset] == [digest]

    # Version 2 of every entry, killed half-way, then completed.
    second = Worker(url, "catalog", n, 2, 40)
    second.wait_for("HOLD 40")
    second.kill()
    _wait_for_idle(url)
    mid, _ = _catalog_state(url)
    assert sum(rows >= 2000 for rows, _ in mid.values()) == 39
    assert Worker(url, "catalog", n, 2, 0).finish() == "FINISHED"
    current, history = _catalog_state(url)
    assert all(rows == 2000 + int(d[-4:]) for d, (rows, _) in current.items())
    for dataset, (_, digest) in current.items():
        assert len(history[dataset]) == 2 and history[dataset][-1] == digest  # v1 then v2, once
