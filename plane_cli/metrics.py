"""``plane metrics``: the plane's Prometheus exporter (`observability.metrics`).

It serves ``/metrics`` read from the plane's database at each scrape, with the configuration the
sensors read (``PLANE_DATABASE_URL``, ``PLANE_QUOTAS_FILE``, ``PLANE_BUDGETS_FILE``,
``PLANE_FLEET_FILE``), until interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading

HOST_ENV, PORT_ENV = "PLANE_METRICS_HOST", "PLANE_METRICS_PORT"
DEFAULT_PORT = 9464


def _port(raw: str | int | None) -> int:
    try:
        port = int(raw) if raw is not None else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"{PORT_ENV}: {raw!r}: not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--port: {port}: not a port number (0-65535)")
    return port


def metrics(args: argparse.Namespace) -> int:
    from observability.metrics import plane_registry, serve

    host = args.host or os.environ.get(HOST_ENV) or "127.0.0.1"
    port = _port(args.port if args.port is not None else os.environ.get(PORT_ENV))
    server, _ = serve(plane_registry(), host, port)
    logging.getLogger("plane.metrics").info(
        "serving the plane's metrics", extra={"url": f"http://{host}:{server.server_port}/metrics"}
    )
    print(f"plane metrics: on http://{host}:{server.server_port}/metrics", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


def add_parser(sub) -> None:
    """``plane metrics`` and its arguments (``sub``: the ``plane`` sub-command parsers)."""
    cmd = sub.add_parser("metrics", help="serve the plane's Prometheus metrics (/metrics)")
    cmd.add_argument(
        "--host", help=f"listen address (default: {HOST_ENV}, else 127.0.0.1; 0.0.0.0 in a pod)"
    )
    cmd.add_argument(
        "--port", type=int, help=f"listen port (default: {PORT_ENV}, else {DEFAULT_PORT})"
    )
    cmd.set_defaults(func=metrics)
