"""The dagster CLI as users' CI runs it, and the README's main command, for real."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_definitions_validate() -> None:
    proc = run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"], REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Validation successful for code location reasoning_plane" in proc.stdout + proc.stderr


def test_asset_materialize_all_on_postgres_instance(sample_catalog: Path, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "PLANE_SOURCES_FILE": str(sample_catalog)}
    proc = run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "stack_defs", "--select", "*"],
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "RUN_SUCCESS" in proc.stdout + proc.stderr

    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PlaneRunStorage"  # PostgreSQL
            runs = instance.get_runs()
            assert runs and runs[0].status == DagsterRunStatus.SUCCESS
    finally:
        del os.environ["DAGSTER_HOME"]

    summary = run([str(BIN / "plane"), "catalog"], cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    line = next(x for x in summary.stdout.splitlines() if x.startswith("customer_orders_eu"))
    assert line.split()[1:6] == ["594", "6", "PII", "EU", "7_years"]
    show = run([str(BIN / "plane"), "catalog", "show", "nope"], cwd=tmp_path)
    assert show.returncode == 4 and "no catalog entry" in show.stderr


def test_readme_main_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/main.sh" in readme and "bash scripts/test.sh" in readme
    proc = run(["bash", "scripts/main.sh"], REPO)
    assert proc.returncode == 0, proc.stderr[-5000:]
    for dataset in (
        "customer_orders_eu",
        "customer_orders_us",
        "support_tickets",
        "conference_transcripts",
        "daily_revenue",
    ):
        assert dataset in proc.stdout
    assert "quarantined rows" in proc.stdout
