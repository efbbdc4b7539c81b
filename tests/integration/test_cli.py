"""The dagster CLI as users' CI runs it, and the README's main command, for real."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster
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


def test_dg_check_defs() -> None:
    """`dg check defs` (dagster-dg-cli, the successor of `dagster definitions validate`) from
    the repository root: pyproject's [tool.dg] names the project and its definitions module."""
    dg = BIN / "dg"
    assert dg.exists(), "dagster-dg-cli is a dev dependency (pyproject.toml)"
    version = run([str(dg), "--version"], REPO)
    assert version.stdout.split()[-1] == dagster.__version__, version.stdout
    proc = run([str(dg), "check", "defs", "--use-active-venv"], REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "All definitions loaded successfully" in out


def test_asset_materialize_skips_no_plane_and_plane_run_places_it(
    sample_catalog: Path, tmp_path: Path
) -> None:
    """`dagster asset materialize --select '*'` on a machine declared US used to embed EU
    personal data: every governed step now refuses in-process (nothing read), and `plane run`
    runs the same selection through the plane on the PostgreSQL-backed instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "PLANE_SOURCES_FILE": str(sample_catalog),
        "PLANE_LOCAL_ZONE": "US",
        "PLANE_LOCAL_CERTIFICATIONS": "ISO27001",
    }
    proc = run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "stack_defs", "--select", "*"],
        cwd=tmp_path,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "reads governed data" in out and "nothing was read" in out
    assert "plane run --select" in out
    assert "RUN_SUCCESS" not in out

    placed = run([str(BIN / "plane"), "run", "--select", "*"], cwd=tmp_path, env=env)
    assert placed.returncode == 0, placed.stderr[-5000:]
    table = placed.stdout.split("\n\n")[-1].splitlines()  # the summary after the progress lines
    row = next(x for x in table if x.startswith("ingested/customer_orders_us"))
    assert row.split()[1] == "succeeded"  # US data on the machine declared US
    row = next(x for x in table if x.startswith("ingested/support_tickets"))
    assert row.split()[1] == "rejected" and "residency EU; cluster zone is US" in row

    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PlaneRunStorage"  # PostgreSQL
            runs = instance.get_runs()
            assert any(r.status == DagsterRunStatus.SUCCESS for r in runs)
            unplaced = [
                sorted(k.to_user_string() for k in r.asset_selection or ())
                for r in runs
                if r.status == DagsterRunStatus.SUCCESS and "plane/decision_id" not in r.tags
            ]
            # the assets on no governed data: the spend view and the serving assets (the
            # residency plan, the served models' catalog records, the endpoints)
            assert sorted(unplaced) == [
                ["plane/team_spend"],
                ["serving/endpoints"],
                ["serving/model_catalog"],
                ["serving/residency_plan"],
            ]
    finally:
        del os.environ["DAGSTER_HOME"]

    summary = run([str(BIN / "plane"), "catalog"], cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    line = next(x for x in summary.stdout.splitlines() if x.startswith("customer_orders_us"))
    assert line.split()[1:5] == ["396", "4", "PII", "US"]
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
    # through the plane: US personal data is rejected on this machine declared EU, with why
    rejected = next(
        x for x in proc.stdout.splitlines() if x.startswith("ingested/customer_orders_us")
    )
    assert "rejected" in rejected and "residency US; cluster zone is EU" in rejected
