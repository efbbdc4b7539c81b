"""Chain heads anchored outside PostgreSQL.

A hash chain (`data_plane.hash_chain`) proves that no row inside it was changed, but not that its
tail was not cut, or the chain rewritten from some row on by someone who can write the table:
that needs the head as it was, kept where the database cannot write. After every placement tick
the plane writes the head (``POS:HASH``) of each chained log to a JSON file in the anchor folder
(``PLANE_ANCHOR_DIR``, default ``$PLANE_STATE_DIR/anchors``): ``heads-<time>.json``, and
``latest.json`` replaced atomically. ``plane verify-log`` checks each log against the latest
anchor by default: the row at the anchored position must still carry the anchored hash.

Point ``PLANE_ANCHOR_DIR`` at storage the database's users cannot write (a volume only the plane's
process mounts, or a synced object-storage prefix with object lock): an anchor is only as good as
the place it is kept.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from data_plane.hash_chain import is_chained

ANCHOR_DIR_ENV = "PLANE_ANCHOR_DIR"
LATEST = "latest.json"
log = logging.getLogger(__name__)


def anchor_dir() -> Path:
    configured = os.environ.get(ANCHOR_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    state = os.environ.get("PLANE_STATE_DIR")
    if state:
        return Path(state).expanduser() / "anchors"
    here = Path(__file__).resolve().parents[1]
    root = here if (here / "pyproject.toml").exists() else Path.cwd()
    return root / ".plane" / "anchors"


def heads(conn: psycopg.Connection, tables: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``POS:HASH`` of the last chained row of each of ``tables`` that exists and has rows."""
    found = {}
    for table in tables:
        if not is_chained(conn, table):
            continue
        schema, _, name = table.partition(".")
        row = conn.execute(
            sql.SQL(
                "SELECT chain_pos, row_hash FROM {} WHERE chain_pos IS NOT NULL"
                " ORDER BY chain_pos DESC LIMIT 1"
            ).format(sql.Identifier(schema, name))
        ).fetchone()
        if row is not None:
            found[table] = f"{row[0]}:{row[1]}"
    return found


def latest(directory: Path | None = None) -> dict[str, Any] | None:
    """The latest anchor (``{"written_at": ..., "heads": {table: "POS:HASH"}}``), if any."""
    path = (directory or anchor_dir()) / LATEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable anchor ({exc})") from None


def write(
    conn: psycopg.Connection, tables: list[str] | tuple[str, ...], directory: Path | None = None
) -> Path | None:
    """Anchor the heads of ``tables`` (call after the transaction that wrote them committed);
    heads of logs this call did not see are kept from the previous anchor. The new anchor's
    path, or None when it could not be written (logged: the previous anchor stays valid)."""
    directory = directory or anchor_dir()
    now = datetime.now(UTC)
    try:
        previous = latest(directory) or {}
        merged = {**previous.get("heads", {}), **heads(conn, tables)}
        body = json.dumps({"written_at": now.isoformat(), "heads": merged}, sort_keys=True)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"heads-{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
        path.write_text(body)
        tmp = directory / f".{LATEST}.{os.getpid()}"
        tmp.write_text(body)
        os.replace(tmp, directory / LATEST)
        return path
    except (OSError, ValueError) as exc:
        log.warning("could not anchor the chain heads in %s: %s", directory, exc)
        return None
