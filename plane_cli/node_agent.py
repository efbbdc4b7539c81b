"""``plane node-agent --node NAME``: the serving node agent (`serving.node_agent`) of one node of
``config/serving_nodes.yaml`` (``--nodes``, else ``PLANE_SERVING_NODES_FILE``, else that file).

It holds the node's runtime adapters for its lifetime, polls the desired residency the
``serving/residency_plan`` asset records (``plane.residency_desired``), applies it and reports
what its runtimes hold (``plane.residency_actual``), as its node's own database login: the
node's agent role (`data_plane.roles.agent_role`; ``plane db agent-role --cluster C --node N``),
which row-level security lets read that node's plan and report that node's state only. On the
embedded server the role is created and used here; with an external server
``PLANE_DATABASE_URL`` is that role's URL (a login that is another node's, or no agent's, such
as the plane's, is refused). On SIGTERM or Ctrl-C it stops what it started.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

import psycopg

NODES_FILE_ENV = "PLANE_SERVING_NODES_FILE"
DEFAULT_NODES_FILE = "config/serving_nodes.yaml"


def node_agent(args: argparse.Namespace) -> int:
    from data_plane.roles import agent_role, is_service
    from reasoning_plane import store
    from reasoning_plane.serving.planner_config import load_planner_config
    from resources.database import project_root
    from serving.node_agent import NodeAgent
    from serving.residency import build_adapters, model_specs

    raw = args.nodes or os.environ.get(NODES_FILE_ENV) or DEFAULT_NODES_FILE
    path = Path(raw).expanduser()
    config = load_planner_config(path if path.is_absolute() else project_root() / path)
    node = next((n for n in config.raw.nodes if n.name == args.node), None)
    if node is None:
        known = ", ".join(sorted(n.name for n in config.raw.nodes)) or "none"
        raise ValueError(f"{config.path}: nodes: no node named {args.node!r} (known: {known})")
    url = agent_url(node.cluster, node.name)

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(url, connect_timeout=5)
        store.ensure_schema(conn)  # at this code's version, or refused saying so
        # a service login must be this node's agent (an administrator's is the operator's)
        if is_service(conn) and (node.cluster, node.name) not in store.agent_nodes(conn):
            user = conn.info.user
            conn.close()
            raise ValueError(
                f"PLANE_DATABASE_URL: user: {user} is not the agent login of node {node.name} "
                f"of {node.cluster} ({agent_role(node.cluster, node.name)}: `plane db "
                f"agent-role --cluster {node.cluster} --node {node.name}`); a node agent "
                "reads and reports its own node's rows only"
            )
        conn.commit()
        return conn

    agent = NodeAgent(
        args.node,
        build_adapters(config, args.node),
        model_specs(config),
        connect,
        retry_s=args.retry,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runtimes = ", ".join(sorted(r for _, r in agent.adapters))
    print(f"plane node-agent: node {args.node} ({runtimes}), every {args.interval:g} s", flush=True)
    try:
        if args.once:
            result = agent.poll()
            for row in result.reported:
                print(
                    f"{row['runtime']}: {row['model']} {row['state']}"
                    + (f" ({row['error']})" if row["error"] else "")
                )
            return 1 if result.failed else 0
        agent.run(stop, args.interval)
        return 0
    finally:
        agent.close()


def agent_url(cluster: str, node: str | None) -> str:
    """A node agent's own database login (`data_plane.roles.agent_role`), the telemetry
    agent's (``plane agent``) and the serving node agent's: row-level security lets it write
    this node's samples (or, with ``node`` None, its cluster's) and read this node's residency
    plan and report its state, nothing else. Embedded: created here; external: the URL the
    node was given (``PLANE_DATABASE_URL``; ``plane db agent-role`` creates the role)."""
    from reasoning_plane import store
    from resources.database import as_user, database_url, is_embedded

    if not is_embedded():
        return database_url()
    with psycopg.connect(database_url()) as admin:
        store.ensure_schema(admin)
        role = store.ensure_agent_role(admin, cluster, node)
        admin.commit()
    return as_user(database_url(), role)


def add_parser(sub) -> None:
    """``plane node-agent`` and its arguments (``sub``: the ``plane`` sub-command parsers)."""
    p = sub.add_parser(
        "node-agent",
        help="a serving node's agent: applies the residency plan through its runtime adapters",
    )
    p.add_argument("--node", required=True, help="the node's name in serving_nodes.yaml")
    p.add_argument(
        "--nodes",
        help=f"serving nodes file (default: ${NODES_FILE_ENV}, else {DEFAULT_NODES_FILE})",
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    p.add_argument(
        "--retry", type=float, default=30.0, help="seconds before a failed plan is tried again"
    )
    p.add_argument("--once", action="store_true", help="one poll, print what the node holds")
    p.set_defaults(func=node_agent)
