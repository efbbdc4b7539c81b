"""``plane serve``: the governed OpenAI-compatible gateway (`serving.gateway`) under uvicorn.

It reads what the rest of the plane reads, from the same places:

* the serving configuration: ``--config``, else ``config/serving.yaml``
  (`reasoning_plane.config.serving`), checked against the fleet; an endpoint there that names a
  serving node takes its cluster and pool from the nodes file (``--nodes``, else
  ``PLANE_SERVING_NODES_FILE``, else ``config/serving_nodes.yaml``: read only when one does) and
  its URL, every probe, from what the node's agent last reported (``plane.residency_actual``);
* the fleet (``PLANE_FLEET_FILE``; unset, this machine alone), the budgets
  (``PLANE_BUDGETS_FILE``; unset, no budget: nothing that costs money is placed), the placement
  policy (``PLANE_PLACEMENT_POLICY``), the principals (``PLANE_PRINCIPALS_FILE``, else
  ``config/principals.yaml``), the Cedar policies (``--policies``, else ``config/policies``);
* from PostgreSQL (``PLANE_DATABASE_URL``, or the ``plane`` role's own URL beside it): the
  API keys (`data_plane.credentials`; a key that authenticated is trusted for the serving
  configuration's ``key_cache_s``, 5 s unless set, so a revoked key stops within that long)
  and the governance catalog (datasets' and models' records), reloaded every probe interval.

A file that cannot be used stops it before it listens, with the ``<file>: <field>: <problem>``
error and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import psycopg

from data_plane import catalog_store, credentials
from data_plane.catalog import CatalogEntry, CatalogRecord

DEFAULT_SERVING_FILE = "config/serving.yaml"


def _path(raw: str | None, env: str | None, default: str | None = None) -> Path | None:
    """A file named by an argument, else the environment, else ``default``; a relative path is
    the project root's (as `resources.plane` resolves them)."""
    from resources.database import project_root

    value = raw or (os.environ.get(env) if env else None) or default
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_root() / path


class Database:
    """One connection of the gateway's role, shared under a lock and opened again after the
    server dropped it (a restart), so a key check costs one query, not one connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[psycopg.Connection], object]) -> object:
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                try:
                    return work(self._conn)
                except psycopg.OperationalError:
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def authenticate(self, token: str | None) -> str:
        """The principal of an API key (`credentials.AuthenticationError` saying why not)."""
        return str(self.run(lambda conn: credentials.authenticate(conn, token)))


class Catalog:
    """The governance catalog as the gateway last read it (reloaded off the request path)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._entries: dict[str, CatalogEntry] = {}
        self._records: dict[str, CatalogRecord] = {}

    def refresh(self) -> None:
        entries = self.database.run(catalog_store.list_entries)
        assert isinstance(entries, list)
        self._entries = {e.dataset_id: e for e in entries}
        self._records = {e.dataset_id: e.record for e in entries}

    def entries(self) -> Mapping[str, CatalogEntry]:
        return self._entries

    def records(self) -> Mapping[str, CatalogRecord]:
        return self._records


def build_gateway(args: argparse.Namespace):  # -> tuple[Gateway, ServingConfig]
    """The gateway from the configuration files and the database (see the module)."""
    from data_plane.access import load_principals
    from data_plane.authz import POLICY_DIR
    from reasoning_plane.config.serving import load_serving
    from reasoning_plane.gpu_telemetry import read_gpus
    from reasoning_plane.inputs import load_budgets, load_fleet
    from reasoning_plane.policy import PlacementPolicy, load_policy
    from reasoning_plane.snapshot import local_fleet
    from resources.database import database_url
    from serving.authorization import ModelAccess
    from serving.gateway import Gateway

    fleet_file = _path(None, "PLANE_FLEET_FILE")
    fleet = load_fleet(fleet_file) if fleet_file else local_fleet(read_gpus())
    config_file = _path(args.config, None, DEFAULT_SERVING_FILE)
    assert config_file is not None
    from plane_cli.node_agent import DEFAULT_NODES_FILE, NODES_FILE_ENV
    from reasoning_plane import store

    nodes_file = _path(getattr(args, "nodes", None), NODES_FILE_ENV, DEFAULT_NODES_FILE)
    config = load_serving(config_file, fleet, nodes_file)
    budgets_file = _path(None, "PLANE_BUDGETS_FILE")
    policy_file = _path(None, "PLANE_PLACEMENT_POLICY")
    principals_file = _path(None, "PLANE_PRINCIPALS_FILE", "config/principals.yaml")
    assert principals_file is not None
    database = Database(database_url(role="plane"))
    catalog = Catalog(database)
    database.run(catalog_store.ensure_schema)  # missing or old: set up, or refused saying so
    catalog.refresh()  # before it listens: the first request is decided on the real catalog
    access = ModelAccess(catalog.entries, args.policies or POLICY_DIR)

    def refresh() -> None:
        catalog.refresh()
        access.refresh()

    gateway = Gateway(
        fleet=fleet,
        endpoints=config.endpoints,
        principals=load_principals(principals_file),
        authenticate=database.authenticate,
        catalog=catalog.records,
        budgets=load_budgets(budgets_file) if budgets_file else {},
        policy=load_policy(policy_file) if policy_file else PlacementPolicy(),
        priorities=config.priorities,
        high_priority_share=config.high_priority_share,
        access=access,
        kinds=config.kinds,
        equivalents=config.equivalents,
        slo_ttft_ms=config.slo_ttft_ms,
        probe_interval_s=config.probe_interval_s,
        key_cache_s=config.key_cache_s,
        refresh=refresh,
        # where the endpoints on serving nodes answer: their agents' latest reports
        reports=lambda: database.run(store.actual_state),
    )
    return gateway, config


def serve(args: argparse.Namespace) -> int:
    """``plane serve``: build the gateway, then serve it until interrupted."""
    import uvicorn

    from serving.gateway import create_app

    gateway, config = build_gateway(args)
    host = args.host or config.host
    port = args.port or config.port
    print(
        f"plane serve: {len(config.endpoints)} endpoints, {len(config.kinds)} models, "
        f"policy {gateway.access.version if gateway.access else '-'}, on http://{host}:{port}",
        flush=True,
    )
    from observability.logs import uvicorn_log_config

    logs = uvicorn_log_config()  # PLANE_LOG_FORMAT=json: uvicorn's lines as JSON too
    uvicorn.run(
        create_app(gateway),
        host=host,
        port=port,
        log_level=args.log_level,
        **({"log_config": logs} if logs else {}),
    )
    return 0


def add_parser(sub) -> None:
    """``plane serve`` and its arguments (``sub``: the ``plane`` sub-command parsers)."""
    serve_ = sub.add_parser(
        "serve", help="the governed OpenAI-compatible gateway (/v1/chat/completions, ...)"
    )
    serve_.add_argument(
        "--config",
        help=f"serving configuration (default: {DEFAULT_SERVING_FILE})",
    )
    serve_.add_argument("--host", help="listen address (default: the configuration's listen)")
    serve_.add_argument("--port", type=int, help="listen port (default: the configuration's)")
    serve_.add_argument(
        "--nodes",
        help="serving nodes file, for endpoints that name a node (default: "
        "PLANE_SERVING_NODES_FILE, else config/serving_nodes.yaml)",
    )
    serve_.add_argument("--policies", help="Cedar policy folder (default: config/policies)")
    serve_.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info"]
    )
    serve_.set_defaults(func=serve)
