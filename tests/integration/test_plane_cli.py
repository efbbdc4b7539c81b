"""`plane place / explain / replay / request` as a user runs them."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml

from reasoning_plane import store
from reasoning_plane.inputs import load_fleet

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed_scenario"
PLANE = str(Path(sys.executable).parent / "plane")
NOW = "2026-11-25T12:00:02Z"


def plane(*args: str, cwd: Path = SEED) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PLANE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )


def place_args(requests: str = "requests.yaml", **over: str) -> list[str]:
    files = {
        "fleet": "fleet.yaml",
        "quotas": "quotas.yaml",
        "catalog": "catalog.json",
        "requests": requests,
        "budgets": "budgets.yaml",
        "telemetry": "telemetry.yaml",
    }
    files.update(over)
    return ["place", *[a for k, v in files.items() for a in (f"--{k}", v)], "--now", NOW]


def test_place_seed_scenario() -> None:
    proc = plane(*place_args(), "--json")
    assert proc.returncode == 0, proc.stderr
    decisions = {d["request"]["request_id"]: d for d in json.loads(proc.stdout)}
    eu = decisions["eu-orders-copilot-inference"]
    assert eu["cluster"] == "eu-fra-a10" and eu["zone"] == "EU"
    us = next(c for c in eu["candidates"] if c["candidate"].startswith("us-east-a100"))
    assert {r["rule"] for r in us["reasons"]} == {"residency", "compliance"}
    text = plane(*place_args())
    assert "CHOSEN" in text.stdout and "cluster zone is US" in text.stdout


def test_place_exit_3_when_nothing_is_feasible(tmp_path: Path) -> None:
    doc = yaml.safe_load((SEED / "requests.yaml").read_text())
    doc["requests"] = [dict(doc["requests"][0], gpu_memory_gb=500)]
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = plane(*place_args(requests=str(path)))
    assert proc.returncode == 3
    assert "gpu_memory" in proc.stdout and "REJECTED" in proc.stdout


def test_place_exit_2_on_bad_input_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "quotas.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: t}\n"
        "spec: {hard: {requests.nvidia.com/gpu: 500m}}\n"
    )
    proc = plane(*place_args(quotas=str(bad)))
    assert proc.returncode == 2
    assert "quotas.yaml" in proc.stderr and "requests.nvidia.com/gpu" in proc.stderr
    proc = plane(*place_args(), "--now", "yesterday")
    assert proc.returncode == 2 and "--now" in proc.stderr


def test_request_explain_and_replay(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS plane CASCADE")
    from data_plane import credentials

    with psycopg.connect(database_url) as conn:  # the requester's credential
        _, key = credentials.issue(conn, "anna.schmidt")
        conn.commit()
    os.environ["PLANE_API_KEY"] = key
    try:
        queued = plane("request", "--requests", "requests.yaml")
        assert queued.returncode == 0 and "eu-orders-copilot-inference: queued" in queued.stdout
        assert "already queued" in plane("request", "--requests", "requests.yaml").stdout
    finally:
        del os.environ["PLANE_API_KEY"]

    # Log a decision as the sensor would, then explain and replay it.
    from reasoning_plane.inputs import (
        load_budgets,
        load_catalog_records,
        load_quotas,
        load_requests,
        load_telemetry,
    )
    from reasoning_plane.model import Snapshot
    from reasoning_plane.policy import PlacementPolicy
    from reasoning_plane.tick import Pending, run_tick

    snap = Snapshot(
        fleet=load_fleet(SEED / "fleet.yaml"),
        quotas=load_quotas(SEED / "quotas.yaml"),
        budgets=load_budgets(SEED / "budgets.yaml"),
        usage={},
        telemetry=load_telemetry(SEED / "telemetry.yaml"),
        catalog=load_catalog_records(SEED / "catalog.json"),
        now=datetime(2026, 11, 25, 12, 0, 2, tzinfo=UTC),
    )
    pending = [
        Pending(r, f"cli-test:{r.request_id}") for r in load_requests(SEED / "requests.yaml")
    ]
    with psycopg.connect(database_url) as conn:
        store.ensure_schema(conn)
        result = run_tick(conn, pending, lambda c: snap, PlacementPolicy())
        conn.commit()
    decision = result.decisions[0][0]
    explained = plane("explain", decision.decision_id)
    assert explained.returncode == 0 and decision.decision_id in explained.stdout
    assert plane("explain", "no-such-run").returncode == 4

    same = plane("replay", "--fleet", "fleet.yaml", "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["changed"] == []
    # Without the EU A10 cluster, the EU order work must move to the H100 (or nowhere).
    fleet = yaml.safe_load((SEED / "fleet.yaml").read_text())
    fleet["clusters"] = [c for c in fleet["clusters"] if c["name"] != "eu-fra-a10"]
    smaller = tmp_path / "fleet.yaml"
    smaller.write_text(yaml.safe_dump(fleet))
    changed = plane("replay", "--fleet", str(smaller), "--json")
    report = json.loads(changed.stdout)
    assert report["replayed"] == 2 and len(report["changed"]) == 2
    moved = {c["request_id"]: c for c in report["changed"]}
    assert moved["eu-orders-copilot-inference"]["after"] == "placed eu-par-h100/H100-80GB"
    assert report["cost_delta_usd"] > 0
    text = plane("replay", "--fleet", str(smaller))
    assert "would differ" in text.stdout


@pytest.mark.parametrize("missing", ["--fleet", "--requests"])
def test_place_requires_its_files(missing: str) -> None:
    args = [a for a in place_args()]
    i = args.index(missing)
    del args[i : i + 2]
    assert plane(*args).returncode == 2  # argparse usage error
