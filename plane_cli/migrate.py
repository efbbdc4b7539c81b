"""``plane db migrate``: every schema of the project brought to this code's version."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from data_plane import access_log, catalog_store, credentials, model_registry, vector_store
from data_plane.migrations import MigrationNeeded, apply_pending
from data_plane.roles import can_create_roles, ensure_roles
from reasoning_plane import store


def migrate(conn: psycopg.Connection, stores: Iterable[object] = ()) -> list[tuple[str, int, int]]:
    """As an administrator: create the roles, then bring every schema to this code's version,
    its pending steps in order, one transaction per schema, and its grants; (schema, version,
    steps applied now) of each. ``stores``: the configured regional vector stores."""
    if not can_create_roles(conn):
        raise MigrationNeeded(
            f"{conn.info.user} may not create roles (CREATEROLE): run the set-up as an "
            "administrator"
        )
    ensure_roles(conn)
    schemas = [
        store.SCHEMA,
        catalog_store.SCHEMA,
        credentials.SCHEMA,
        access_log.SCHEMA,
        model_registry.SCHEMA,
        *[vector_store.store_schema(region_store) for region_store in stores],
    ]
    done = []
    for schema in schemas:
        applied = apply_pending(conn, schema)
        done.append((schema.unit, schema.version, applied))
    return done
