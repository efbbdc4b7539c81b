"""The plane's metrics for Prometheus, read from PostgreSQL by a small exporter (``plane metrics``).

Where they live: the placement sensor ticks inside the Dagster code server (a gRPC process the
daemon calls, restarted at will, one or several replicas), ``plane run`` ticks in a CLI process,
the schedule in yet another evaluation. A ``prometheus_client`` registry in any of them would see
only its own ticks, lose its counters on every restart, and be scraped on a port the code server
does not serve. Everything the metrics say is already in PostgreSQL, written in the tick's own
transaction: the decision log (``plane.decisions``), the ledger, the queued requests, the
telemetry, and the ticks' own counts (``plane.tick_stats``). The exporter reads them at each
scrape, so every series is right whichever process decided, survives restarts, and needs only
the read grants the plane role has. A scrape that cannot reach the database answers
``plane_database_up 0`` (and nothing else, rather than stale numbers).

Series (labels):

* ``plane_tick_duration_seconds`` histogram (source: placement_sensor, recurring_placement_schedule,
  plane_run), ``plane_tick_failures_total``, ``plane_tick_last_success_timestamp_seconds``;
* ``plane_decisions_total`` (status, rule, team): logged decision records; deferred work decided
  again with the same outcome is one record (`reasoning_plane.tick`), so this counts outcomes;
  ``rule`` is the rule that kept a deferred or rejected request from its best compliant option
  (``none`` for placed work);
* ``plane_oldest_deferred_seconds`` (team): how long the longest-waiting work has waited (due
  work whose latest decision is deferred, since its first; queued requests, since queued);
* ``plane_telemetry_age_seconds`` (cluster, gpu_type): age of each pool's sample (its oldest
  node's); ``+Inf`` for a pool of the fleet file with none;
* ``plane_budget_used_ratio``, ``plane_quota_used_ratio`` (team): (spent + reserved) / budget
  and GPUs held / quota, with ``plane_budget_usd``, ``plane_spent_usd``, ``plane_reserved_usd``,
  ``plane_gpus_held``, ``plane_gpu_quota`` (the spend view's numbers, `assets.spend.team_spend`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from reasoning_plane import store
from reasoning_plane.snapshot import fleet_telemetry

log = logging.getLogger(__name__)

# The rule that kept unplaced work from its best compliant option (the reason's "failed: <rule>:",
# or "is not enough; <rule>:" when the batch's earlier placements took what it needed),
# else, when no candidate is compliant, the first governance rule its first candidate broke.
_DECISION_COUNTS = """
SELECT status, team,
       CASE WHEN status = 'placed' THEN 'none'
            ELSE coalesce(
                substring(payload->>'reason' FROM '(?:failed:|is not enough;) ([a-z_]+):'),
                payload #>> '{candidates,0,reasons,0,rule}', 'no_candidate') END,
       count(*), max(chain_pos)
FROM plane.decisions WHERE (%(after)s::bigint IS NULL OR chain_pos > %(after)s)
GROUP BY 1, 2, 3
"""

_OLDEST_DEFERRED = """
WITH latest AS (
    SELECT DISTINCT ON (workload) workload, team, run_key, status FROM plane.decisions
    WHERE run_key IS NOT NULL AND run_key NOT LIKE 'request:%%'
    ORDER BY workload, decided_at DESC
), waiting AS (
    SELECT l.team, min(d.decided_at) AS since
    FROM latest l JOIN plane.decisions d ON d.run_key = l.run_key
    WHERE l.status = 'deferred' GROUP BY l.team, l.run_key
    UNION ALL
    SELECT coalesce(d.team, 'undecided'), r.created_at
    FROM plane.requests r LEFT JOIN plane.decisions d ON d.decision_id = r.decision_id
    WHERE r.status IN ('pending', 'deferred')
)
SELECT team, extract(epoch FROM clock_timestamp() - min(since)) FROM waiting GROUP BY team
"""


class PlaneCollector(Collector):
    """Reads the plane's state at each scrape (see the module's docstring).

    ``connect``: a fresh connection to the plane's database (the exporter's own role needs
    only SELECT on ``plane.*``); ``config``: the quotas, budgets and fleet as the plane reads
    them (`resources.plane.PlaneResource`), read again at each scrape (a ConfigMap edited is
    seen without a restart)."""

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[psycopg.Connection]],
        config: Callable[[], tuple[dict, dict, Any]],
    ) -> None:
        self._connect = connect
        self._config = config
        self._lock = threading.Lock()  # scrapes in parallel share the decision counts
        self._counts: dict[tuple[str, str, str], int] = {}
        self._after: int | None = None  # the decision log's chain position counted up to

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("plane_database_up", "1 when the plane's database answered")
        try:
            with self._connect() as conn:
                families = list(self._families(conn))
        except (psycopg.Error, OSError, RuntimeError) as exc:  # RuntimeError: MigrationNeeded
            log.warning("metrics: the plane's database is unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, conn: psycopg.Connection) -> Iterator[Metric]:
        yield from self._ticks(conn)
        yield self._decisions(conn)
        oldest = GaugeMetricFamily(
            "plane_oldest_deferred_seconds",
            "Seconds the longest-waiting deferred or queued work of each team has waited",
            labels=["team"],
        )
        for team, age in conn.execute(_OLDEST_DEFERRED).fetchall():
            oldest.add_metric([team], max(0.0, float(age)))
        yield oldest
        quotas, budgets, fleet = self._config()
        yield self._telemetry(conn, fleet)
        yield from self._spend(conn, quotas, budgets)

    def _ticks(self, conn: psycopg.Connection) -> Iterator[Metric]:
        hist = HistogramMetricFamily(
            "plane_tick_duration_seconds",
            "Placement tick duration (lock, snapshot, placement, decision log, reservations)",
            labels=["source"],
        )
        failures = CounterMetricFamily(
            "plane_tick_failures", "Placement ticks that raised", labels=["source"]
        )
        last_ok = GaugeMetricFamily(
            "plane_tick_last_success_timestamp_seconds",
            "Unix time of the last tick that decided",
            labels=["source"],
        )
        rows = conn.execute(
            "SELECT source, ticks, failures, duration_sum_s, bucket_counts, last_ok_at"
            " FROM plane.tick_stats ORDER BY source"
        ).fetchall()
        for source, ticks, failed, total, counts, ok_at in rows:
            buckets = [(repr(le), n) for le, n in zip(store.TICK_BUCKETS_S, counts, strict=False)]
            hist.add_metric([source], [*buckets, ("+Inf", ticks)], sum_value=total)
            failures.add_metric([source], failed)
            if ok_at is not None:
                last_ok.add_metric([source], ok_at.timestamp())
        yield from (hist, failures, last_ok)

    def _decisions(self, conn: psycopg.Connection) -> Metric:
        """Counted once per logged record: the log is append-only and chained (gap-free
        positions committed in order), so each scrape reads only what was appended since."""
        with self._lock:
            (head,) = conn.execute(
                "SELECT coalesce(max(chain_pos), 0) FROM plane.decisions"
            ).fetchone()
            if self._after is not None and head < self._after:  # the log was rebuilt: recount
                self._counts, self._after = {}, None
            rows = conn.execute(_DECISION_COUNTS, {"after": self._after}).fetchall()
            for status, team, rule, n, _ in rows:
                key = (status, rule, team)
                self._counts[key] = self._counts.get(key, 0) + int(n)
            self._after = max([head, *(int(r[4] or 0) for r in rows)])
            family = CounterMetricFamily(
                "plane_decisions",
                "Decision records logged, by status, deciding rule and team",
                labels=["status", "rule", "team"],
            )
            for (status, rule, team), n in sorted(self._counts.items()):
                family.add_metric([status, rule, team], n)
            return family

    def _telemetry(self, conn: psycopg.Connection, fleet) -> Metric:
        age = GaugeMetricFamily(
            "plane_telemetry_age_seconds",
            "Age of each GPU pool's telemetry (its oldest reporting node's sample)",
            labels=["cluster", "gpu_type"],
        )
        (clock,) = conn.execute("SELECT clock_timestamp()").fetchone()
        if fleet is None:
            latest = store.latest_telemetry(conn)
        else:  # each cluster's one source, as the tick reads it (pushed or from its Prometheus)
            latest = fleet_telemetry(conn, fleet, clock)
        for (cluster, gpu_type), sample in sorted(latest.items()):
            age.add_metric([cluster, gpu_type], (clock - sample.observed_at).total_seconds())
        if fleet is not None:  # a pool the fleet names with no sample: unknown, as stale as can be
            for cluster in fleet.clusters:
                if cluster.local:
                    continue  # read live from NVML, never through the table
                for pool in cluster.pools:
                    if (cluster.name, pool.gpu_type) not in latest:
                        age.add_metric([cluster.name, pool.gpu_type], math.inf)
        return age

    def _spend(self, conn: psycopg.Connection, quotas, budgets) -> Iterator[Metric]:
        from assets.spend import team_spend  # the spend view's numbers, one computation

        lines = team_spend(conn, quotas, budgets, datetime.now(UTC))
        specs = {
            "plane_budget_used_ratio": "(spent + reserved) / budget this period",
            "plane_quota_used_ratio": "GPUs held / GPU quota (+Inf: held with no quota)",
            "plane_budget_usd": "Budget per period (USD)",
            "plane_spent_usd": "Settled this period (USD): runs and served requests",
            "plane_reserved_usd": "Held by open reservations (USD)",
            "plane_gpus_held": "GPUs held by open reservations",
            "plane_gpu_quota": "GPU quota (requests.nvidia.com/gpu)",
        }
        families = {n: GaugeMetricFamily(n, doc, labels=["team"]) for n, doc in specs.items()}
        for line in lines:
            values = {
                "plane_budget_used_ratio": line.budget_used_share,
                "plane_budget_usd": line.budget_usd,
                "plane_spent_usd": line.spent_usd,
                "plane_reserved_usd": line.reserved_usd,
                "plane_gpus_held": line.gpus_held,
                "plane_gpu_quota": line.gpu_quota,
                "plane_quota_used_ratio": None
                if line.gpu_quota is None
                else (
                    line.gpus_held / line.gpu_quota
                    if line.gpu_quota
                    else (math.inf if line.gpus_held else 0.0)
                ),
            }
            for name, value in values.items():
                if value is not None:
                    families[name].add_metric([line.team], float(value))
        yield from families.values()


def registry_for(
    connect: Callable[[], AbstractContextManager[psycopg.Connection]],
    config: Callable[[], tuple[dict, dict, Any]],
) -> CollectorRegistry:
    """A registry holding only the plane's collector (no process metrics: the exporter's own
    are not the plane's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlaneCollector(connect, config))
    return registry


def plane_registry() -> CollectorRegistry:
    """The plane's collector configured as the sensors are: the database from
    ``PLANE_DATABASE_URL`` (or the embedded server), quotas, budgets and fleet from
    ``PLANE_QUOTAS_FILE``, ``PLANE_BUDGETS_FILE``, ``PLANE_FLEET_FILE``."""
    from resources.plane import PlaneResource
    from resources.postgres import PostgresResource

    plane = PlaneResource(postgres=PostgresResource())

    def config():
        fleet = plane.fleet() if plane.fleet_file or os.environ.get("PLANE_FLEET_FILE") else None
        return plane.quotas(), plane.budgets(), fleet

    return registry_for(plane.connect, config)


def serve(registry: CollectorRegistry, host: str, port: int):
    """Serve ``registry`` on http://host:port/metrics in a thread; the server (its
    ``server_port`` is the port bound, for ``port`` 0) and the thread."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=registry)
