"""The plane's Prometheus exporter over real HTTP: real ticks write the decision log, the ledger
and the tick counts in PostgreSQL; a scrape of ``/metrics``, parsed with prometheus_client's own
parser, says what they did."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import registry_for, serve
from reasoning_plane import store
from reasoning_plane.model import Budget, TeamQuota, TelemetrySample
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.tick import Pending, run_tick
from tests.unit.plane import factory

TEAM = "financial-ml"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _world(url: str):
    """Four ticks: one places a run and defers another (team quota 1 GPU), two defer it again
    (the second for the same reason as the first), one fails; the A10 pool's telemetry is 3 s
    old; a request waits."""
    now = datetime.now(UTC)
    quotas = {TEAM: TeamQuota(TEAM, 1, "test")}
    budgets = {TEAM: Budget(TEAM, 100.0)}
    with psycopg.connect(url) as conn:
        store.ensure_schema(conn)
        store.insert_samples(
            conn, [TelemetrySample("eu-fra-a10", "A10", 12, 0.5, now - timedelta(seconds=3))]
        )
        store.add_request(conn, "queued-1", {"workload": "w", "team": TEAM})
        conn.commit()

        def snapshot_of(c):
            at = datetime.now(UTC)
            return factory.snapshot(
                now=at,
                telemetry={
                    k: replace(s, observed_at=at - timedelta(seconds=1))
                    for k, s in factory.telemetry().items()
                },
                quotas=quotas,
                budgets=budgets,
                usage=store.usage(c, at - timedelta(days=31)),
            )

        pending = [
            Pending(factory.request("a", data_gb=1, latency_slo_ms=None), "run:a"),
            Pending(factory.request("b", data_gb=1, latency_slo_ms=None), "run:b"),
        ]
        first = run_tick(conn, pending, snapshot_of, PlacementPolicy(), source="placement_sensor")
        conn.commit()
        # deferred again: the quota is held by a placed run now (a new reason), then the same
        for _ in range(2):
            second = run_tick(
                conn, pending[1:], snapshot_of, PlacementPolicy(), source="placement_sensor"
            )
            conn.commit()

        def broken(c):
            raise RuntimeError("fleet file unreadable")

        with pytest.raises(RuntimeError):
            run_tick(conn, pending[1:], broken, PlacementPolicy(), source="placement_sensor")
    return quotas, budgets, first, second


def test_a_scrape_says_what_the_ticks_did(plane_db: str) -> None:
    quotas, budgets, first, second = _world(plane_db)
    statuses = sorted(d.status for d, _ in first.decisions)
    assert statuses == ["deferred", "placed"] and second.repeated  # deferred again, same reason
    registry = registry_for(
        lambda: psycopg.connect(plane_db), lambda: (quotas, budgets, factory.fleet())
    )
    server, _ = serve(registry, "127.0.0.1", 0)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).text
        again = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).text
    finally:
        server.shutdown()
    got = _samples(text)
    assert _value(got, "plane_database_up") == 1
    # three ticks decided, one failed
    assert _value(got, "plane_tick_duration_seconds_count", source="placement_sensor") == 3
    assert (
        _value(got, "plane_tick_duration_seconds_bucket", source="placement_sensor", le="+Inf") == 3
    )
    assert _value(got, "plane_tick_duration_seconds_sum", source="placement_sensor") > 0
    assert _value(got, "plane_tick_failures_total", source="placement_sensor") == 1
    # one placed, two deferred records (the third tick repeated the second), by the quota rule
    assert _value(got, "plane_decisions_total", status="placed", rule="none", team=TEAM) == 1
    assert _value(got, "plane_decisions_total", status="deferred", rule="quota", team=TEAM) == 2
    # a second scrape counts nothing twice
    assert (
        _samples(again)[
            ("plane_decisions_total", (("rule", "quota"), ("status", "deferred"), ("team", TEAM)))
        ]
        == 2
    )
    # the deferred work and the queued request wait
    assert _value(got, "plane_oldest_deferred_seconds", team=TEAM) >= 0
    assert _value(got, "plane_oldest_deferred_seconds", team="undecided") >= 0
    # telemetry: the pushed sample's age; the fleet's other pool has none (+Inf)
    age = _value(got, "plane_telemetry_age_seconds", cluster="eu-fra-a10", gpu_type="A10")
    assert 3 <= age < 600
    assert math.isinf(
        _value(got, "plane_telemetry_age_seconds", cluster="us-east-a100", gpu_type="A100-80GB")
    )
    # the placed run holds 1 GPU of a 1-GPU quota and reserves its cost of a $100 budget
    assert _value(got, "plane_quota_used_ratio", team=TEAM) == 1.0
    assert _value(got, "plane_gpus_held", team=TEAM) == 1
    reserved = _value(got, "plane_reserved_usd", team=TEAM)
    assert reserved > 0
    assert _value(got, "plane_budget_used_ratio", team=TEAM) == pytest.approx(reserved / 100.0)


def test_a_scrape_with_the_database_down_says_so() -> None:
    def down():
        raise psycopg.OperationalError("connection refused")

    registry = registry_for(down, lambda: ({}, {}, None))
    server, _ = serve(registry, "127.0.0.1", 0)
    try:
        got = _samples(httpx.get(f"http://127.0.0.1:{server.server_port}/metrics").text)
    finally:
        server.shutdown()
    assert got == {("plane_database_up", ()): 0.0}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_plane_metrics_serves_and_logs_json(plane_db: str, tmp_path) -> None:
    """``plane metrics`` as its own process, logging JSON lines (PLANE_LOG_FORMAT=json)."""
    port = _port()
    env = {
        **os.environ,
        "PLANE_DATABASE_URL": plane_db,
        "PLANE_LOG_FORMAT": "json",
        "PLANE_LOG_LEVEL": "INFO",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "plane_cli.main", "metrics", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        text = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert text is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        got = _samples(text)
        assert _value(got, "plane_database_up") == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    served = [x for x in lines if x["logger"] == "plane.metrics"]
    assert served and served[0]["url"] == f"http://127.0.0.1:{port}/metrics"
    assert {"time", "level", "message"} <= set(served[0])
