"""Versioned schemas: each store module's tables, built by ordered migration steps.

Each schema's owner module (``reasoning_plane.store``, ``data_plane.catalog_store``, ...) keeps
its migration steps and its ``GRANTS`` together (a :class:`Schema`) and calls :func:`ensure`: an
administrator's connection applies the steps the database has not had yet, in order, and the
grants, and records the version in ``plane_meta.schema_versions``; a service role's connection
only checks that the recorded version is this code's and, if not, has an administrator apply
them (the embedded server's superuser, or ``PLANE_ADMIN_DATABASE_URL``), else says to run
``plane db migrate``.

A service connection found (or brought) at this code's version is remembered (`checked`), so a
hot path that calls `ensure` on every request (the gateway's key check,
`credentials.authenticate`) pays the check once per connection, not per call. A new connection
is checked again: a service that reconnects (after a restart or a migration that dropped its
connection) still refuses an old schema.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from data_plane.roles import (
    ADMIN_URL_ENV,
    AGENT,
    SERVICE_ROLES,
    can_create_roles,
    ensure_roles,
    grant,
    is_service,
    usage,
)
from resources.database import database_url, is_embedded  # no Dagster import


class MigrationNeeded(RuntimeError):
    """The schema is missing or older than this code, and this connection may not change it."""


def version_of(*parts: object) -> str:
    """The stamp of a schema: a hash of the steps, DDL and grants that build it."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


Step = str | Callable[[psycopg.Connection], None]


@dataclass(frozen=True)
class Schema:
    """How one unit (a store module's tables) is built: ``steps`` in order, step ``i`` taking
    the schema from version ``i`` to ``i + 1`` (SQL, or a function of the administrator's
    connection), then ``finish``, run on every set-up (idempotent: hash chains, grants).

    A released step is never edited: a change of shape is a new step at the end (``ALTER
    TABLE ...``), so that it reaches every database that has the older shape. The first step
    of each unit is the DDL of the release before versions were recorded (commit 6dbeeab),
    written ``IF NOT EXISTS``: on a database that release built it changes nothing.
    ``probe``: a table the first step creates; when it is missing the unit is at version 0
    whatever is recorded (its schema was dropped). ``extra``: what else the stamp covers (the
    grants), so that a service sees a change made only there."""

    unit: str
    probe: str
    steps: tuple[Step, ...]
    finish: Callable[[psycopg.Connection], None] | None = None
    extra: tuple[object, ...] = ()

    @property
    def version(self) -> int:
        return len(self.steps)

    @property
    def stamp(self) -> str:
        steps = [
            s if isinstance(s, str) else f"{s.__module__}.{s.__qualname__}" for s in self.steps
        ]
        return version_of(self.unit, steps, self.extra)


# The applied version of each unit; readable by every service role, written by administrators.
VERSIONS = "plane_meta.schema_versions"
_VERSIONS_DDL = f"""
CREATE SCHEMA IF NOT EXISTS plane_meta;
CREATE TABLE IF NOT EXISTS {VERSIONS} (
    unit       text PRIMARY KEY,
    version    integer NOT NULL CHECK (version >= 0),
    stamp      text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


def _versions_grants() -> list[tuple[str, str]]:
    readers = (*SERVICE_ROLES, AGENT)
    return [
        *usage("plane_meta", *readers),
        *[(role, f"GRANT SELECT ON {VERSIONS} TO {role}") for role in readers],
    ]


# connection -> (unit, stamp) of each schema found at this code's version on it
_checked: weakref.WeakKeyDictionary[psycopg.Connection, set[tuple[str, str]]] = (
    weakref.WeakKeyDictionary()
)


def checked(conn: psycopg.Connection, schema: Schema) -> bool:
    """Whether `ensure` already found (or brought) ``schema`` at this code's version on
    ``conn`` (then it asks the database nothing)."""
    return (schema.unit, schema.stamp) in _checked.get(conn, ())


def _remember(conn: psycopg.Connection, schema: Schema) -> None:
    _checked.setdefault(conn, set()).add((schema.unit, schema.stamp))


def ensure(conn: psycopg.Connection, schema: Schema) -> None:
    """Bring ``schema`` to this code's version, once per connection (`checked`).

    An administrator's connection applies the pending steps in order, then ``finish``, and
    records the version, all in one transaction (`apply_pending`). A service role's connection
    checks the recorded version (two queries) and, when it is missing or another, has an
    administrator apply it: the embedded server's superuser, or ``PLANE_ADMIN_DATABASE_URL``;
    without either it raises :class:`MigrationNeeded`. Remembered per connection: a service
    connection found (or brought, by the administrator's separate, committed set-up) at this
    code's version. An administrator's connection is not (its set-up is in its caller's
    transaction, which may still roll back, and it is what changes schemas)."""
    if not is_service(conn):
        apply_pending(conn, schema)
        return
    if checked(conn, schema):
        return
    if _recorded(conn, schema) == (schema.version, schema.stamp):
        _remember(conn, schema)
        return
    url = admin_url()
    if url is None:
        raise MigrationNeeded(
            f"{schema.probe}: the schema {schema.unit!r} is missing or not at this code's version "
            f"({schema.version}), and "
            f"{conn.info.user} may not change it: run `plane db migrate` with an administrator "
            f"URL ({ADMIN_URL_ENV})"
        )
    with psycopg.connect(url) as admin:
        apply_pending(admin, schema)
    _remember(conn, schema)


def apply_pending(conn: psycopg.Connection, schema: Schema) -> int:
    """As an administrator: apply ``schema``'s steps after its recorded version, then its
    ``finish``, and record the version, in one transaction (a failing step leaves the unit
    as it was); the number of steps applied. A database newer than this code is refused."""
    with conn.transaction():
        # One set-up at a time: concurrent GRANTs on one object fail ("tuple concurrently
        # updated"), and the units share schemas and roles.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('reasoning-plane schema set-up'))")
        if can_create_roles(conn):
            ensure_roles(conn)
        if conn.execute("SELECT to_regclass(%s)", (VERSIONS,)).fetchone() == (None,):
            conn.execute(_VERSIONS_DDL)
        grant(conn, _versions_grants())  # roles created since are granted too
        recorded = _recorded(conn, schema)
        current = 0 if recorded is None else recorded[0]
        if current > schema.version:
            raise MigrationNeeded(
                f"{VERSIONS}: {schema.unit}: the database is at version {current}, newer than "
                f"this code's {schema.version}: run the release that migrated it"
            )
        for step in schema.steps[current:]:
            if isinstance(step, str):
                conn.execute(step)
            else:
                step(conn)
        if schema.finish is not None:
            schema.finish(conn)
        if recorded != (schema.version, schema.stamp):
            conn.execute(
                f"INSERT INTO {VERSIONS} (unit, version, stamp) VALUES (%s, %s, %s)"
                " ON CONFLICT (unit) DO UPDATE SET version = EXCLUDED.version,"
                " stamp = EXCLUDED.stamp, applied_at = now()",
                (schema.unit, schema.version, schema.stamp),
            )
    return schema.version - current


def _recorded(conn: psycopg.Connection, schema: Schema) -> tuple[int, str] | None:
    """(version, stamp) recorded for ``schema``; None when nothing is, or its probe table is
    gone (the schema was dropped: it is rebuilt from step one)."""
    present = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
        (VERSIONS, schema.probe),
    ).fetchone()
    if not (present and present[0]):
        return None
    row = conn.execute(
        f"SELECT version, stamp FROM {VERSIONS} WHERE unit = %s", (schema.unit,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


def admin_url() -> str | None:
    """An administrator's URL: ``PLANE_ADMIN_DATABASE_URL``, else the embedded server's superuser
    (None when an external server is used without an administrator URL)."""
    configured = os.environ.get(ADMIN_URL_ENV, "").strip()
    if configured:
        return configured
    return database_url() if is_embedded() else None
