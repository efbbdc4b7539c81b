"""API keys: who is calling comes from a credential, never from a free argument.

A key is ``rpk_<key id>_<secret>``: 12 hex digits naming it, then 32 random bytes (URL-safe
base64). ``governance.api_keys`` keeps its id, the principal it stands for (a name of
``config/principals.yaml``) and the SHA-256 of the whole key, never the key itself: a key is
shown once, when it is issued (``plane keys issue``). A key is as long as a random 256-bit
secret, so a fast hash is enough (no password-stretching is needed), and the comparison is
constant-time. A revoked key stays in the table (``revoked_at``) and never authenticates again.

Callers of the ``plane`` command pass their key in ``PLANE_API_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import psycopg

from data_plane.migrations import Schema, ensure
from data_plane.roles import PLANE, READER, STEWARD, WORKER, grant, usage

API_KEY_ENV = "PLANE_API_KEY"
PREFIX = "rpk_"
_KEY = re.compile(r"^rpk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")

DDL = """
CREATE SCHEMA IF NOT EXISTS governance;
CREATE TABLE IF NOT EXISTS governance.api_keys (
    key_id     text PRIMARY KEY,
    key_hash   text NOT NULL,
    principal  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
"""


class AuthenticationError(Exception):
    """The credential is missing, malformed, unknown or revoked."""


# Services authenticate callers (they read key hashes); only an administrator issues keys.
GRANTS = [
    *usage("governance", PLANE, WORKER, STEWARD, READER),
    # readers get no look at the hashes: the stores' search function checks keys itself
    (READER, f"REVOKE ALL ON governance.api_keys FROM {READER}"),
    *[
        (role, f"GRANT SELECT ON governance.api_keys TO {role}")
        for role in (PLANE, WORKER, STEWARD)
    ],
]


def _finish(conn: psycopg.Connection) -> None:
    grant(conn, GRANTS)


# Migration steps (`data_plane.migrations.Schema`): released steps are never edited; a change is a
# new step at the end. Step 1 is the schema as the release before versioned migrations built it.
SCHEMA = Schema(
    unit="api_keys", probe="governance.api_keys", steps=(DDL,), finish=_finish, extra=(GRANTS,)
)


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create or bring the schema to this code's version (`data_plane.migrations.ensure`)."""
    ensure(conn, SCHEMA)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(conn: psycopg.Connection, principal: str) -> tuple[str, str]:
    """A new key for ``principal``: (key id, key). Only the key's hash is stored."""
    ensure_schema(conn)
    key_id = secrets.token_hex(6)
    token = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    conn.execute(
        "INSERT INTO governance.api_keys (key_id, key_hash, principal) VALUES (%s, %s, %s)",
        (key_id, _hash(token), principal),
    )
    return key_id, token


def authenticate(conn: psycopg.Connection, token: str | None) -> str:
    """The principal ``token`` stands for; `AuthenticationError` saying why when none."""
    if not token:
        raise AuthenticationError(
            f"no credential: set {API_KEY_ENV} to an API key (`plane keys issue --principal NAME`)"
        )
    match = _KEY.match(token.strip())
    if match is None:
        raise AuthenticationError(f"{API_KEY_ENV} is not a valid API key")
    ensure_schema(conn)
    row = conn.execute(
        "SELECT key_hash, principal, revoked_at FROM governance.api_keys WHERE key_id = %s",
        (match.group(1),),
    ).fetchone()
    if row is None or not hmac.compare_digest(row[0], _hash(token.strip())):
        raise AuthenticationError(f"{API_KEY_ENV} is not a valid API key")
    if row[2] is not None:
        raise AuthenticationError(
            f"API key {match.group(1)} was revoked at {row[2]:%Y-%m-%d %H:%M}"
        )
    return row[1]


def revoke(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke a key; False when there is no such key or it was revoked already."""
    ensure_schema(conn)
    cur = conn.execute(
        "UPDATE governance.api_keys SET revoked_at = now() WHERE key_id = %s"
        " AND revoked_at IS NULL",
        (key_id,),
    )
    return cur.rowcount == 1


def keys(conn: psycopg.Connection) -> list[tuple[str, str, datetime, datetime | None]]:
    """(key id, principal, created, revoked) of every key, never the key."""
    ensure_schema(conn)
    return conn.execute(
        "SELECT key_id, principal, created_at, revoked_at FROM governance.api_keys"
        " ORDER BY created_at, key_id"
    ).fetchall()
