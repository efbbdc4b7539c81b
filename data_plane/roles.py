"""Database roles with least privilege, and the schema set-up that grants them.

Everything the plane trusts lives in one PostgreSQL database; each service connects with a role
that can do its job and nothing else:

=============  ==================================================================================
role           may
=============  ==================================================================================
``rp_plane``   the sensors, the run launcher and the ``plane`` command: read everything the plane
               decides on; add decisions, snapshots, ledger rows, claims and requests (append-only
               logs: no UPDATE, DELETE or TRUNCATE); change a request's status. Reads the
               catalog, never writes it.
``rp_worker``  run workers: write their own outputs (vector stores, the model registry); read
               the catalog and the decisions; claim a decision only through
               ``plane.claim_decision`` (one row, for a placed decision). No write on ``plane.*``
               or ``governance.catalog``.
``rp_steward`` the governance tagging assets (``catalog/*``): write ``governance.catalog`` and
               its chained history. Nothing on ``plane.*`` beyond what a worker may.
``rp_agent``   the telemetry agents: a login role per node, or per cluster for an agent
               DaemonSet that shares one Secret (``rp_agent_<scope>``, members of ``rp_agent``):
               insert and prune the samples of their own node (or their cluster's nodes) only,
               enforced by row-level security on ``plane.telemetry`` against
               ``plane.agent_nodes``.
``rp_reader``  governed retrieval: no plain ``SELECT`` on any chunk table; chunks only through
               the search path of `data_plane.retrieval` (see ``vector_store``'s grants).
=============  ==================================================================================

No service role owns a table, so none can ``ALTER TABLE ... DISABLE TRIGGER``, ``TRUNCATE`` or
drop the append-only triggers; the tables belong to the administrator that ran the set-up
(``plane db migrate``, or the embedded server's superuser). What a superuser can still do is in
the README's threat model.

Each schema's owner module (``reasoning_plane.store``, ``data_plane.catalog_store``, ...) keeps
its migration steps and its ``GRANTS`` together (a :class:`Schema`) and calls :func:`ensure`: an
administrator's connection applies the steps the database has not had yet, in order, and the
grants, and records the version in ``plane_meta.schema_versions``; a service role's connection
only checks that the recorded version is this code's and, if not, has an administrator apply
them (the embedded server's superuser, or ``PLANE_ADMIN_DATABASE_URL``), else says to run
``plane db migrate``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

PLANE = "rp_plane"
WORKER = "rp_worker"
STEWARD = "rp_steward"
AGENT = "rp_agent"
READER = "rp_reader"
SERVICE_ROLES = (PLANE, WORKER, STEWARD, READER)
ROLE_NAMES = {"plane": PLANE, "worker": WORKER, "steward": STEWARD, "reader": READER}
ADMIN_URL_ENV = "PLANE_ADMIN_DATABASE_URL"
# Asset metadata: the database role an asset's run needs beyond a run worker's ("steward" for
# the assets that write the catalog). The run launcher gives such runs that role's Secret.
DB_ROLE_METADATA = "plane/db_role"
_AGENT_PREFIX = f"{AGENT}_"
_NODE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


class MigrationNeeded(RuntimeError):
    """The schema is missing or older than this code, and this connection may not change it."""


ANY_NODE = "*"


def agent_role(cluster: str, node: str | None = None) -> str:
    """The login role of a telemetry agent: of one node (a Kubernetes node name), or with
    ``node`` None of any node of ``cluster`` (one Secret for a cluster's agent DaemonSet)."""
    if not isinstance(cluster, str) or not cluster.strip() or len(cluster) > 63:
        raise ValueError(f"cluster must be a cluster name of the fleet, got {cluster!r}")
    if node is not None and (not isinstance(node, str) or not _NODE.match(node)):
        raise ValueError(f"node must be a Kubernetes node name (a DNS label), got {node!r}")
    digest = hashlib.sha256(f"{cluster}/{node or ANY_NODE}".encode()).hexdigest()[:8]
    # PostgreSQL names are at most 63 bytes: a readable prefix, and a hash of the whole scope
    label = re.sub(r"[^a-z0-9]", "_", (node or f"all_{cluster}").lower())[:40]
    return f"{_AGENT_PREFIX}{label}_{digest}"


def is_service(conn: psycopg.Connection) -> bool:
    """Whether ``conn`` logged in as one of the service roles (not as an administrator)."""
    user = conn.info.user or ""
    return user in SERVICE_ROLES or user.startswith(_AGENT_PREFIX)


def ensure_roles(conn: psycopg.Connection) -> None:
    """Create the service roles that are missing (needs CREATEROLE; roles are cluster-wide).
    They are created without a password: an operator sets one per service (``ALTER ROLE ...
    PASSWORD``); the embedded server lets local connections in without one."""
    present = {
        r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'rp\\_%'")
    }
    if AGENT not in present:
        _create(conn, sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(AGENT)))
    for role in SERVICE_ROLES:
        if role not in present:
            _create(conn, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    # Nobody but its owner creates objects in `public` (PostgreSQL's default since 15): a
    # function planted there could be found by code running as its owner. Dagster's storage
    # user, if another, needs its own grant there (or its own schema) on older servers.
    open_to_all = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a"
        " WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')"
    ).fetchone()
    if open_to_all and open_to_all[0]:  # only then: REVOKE writes the catalog every time
        try:
            with conn.transaction():
                conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        except psycopg.errors.InsufficientPrivilege:
            pass  # not the owner of public: the operator's job (README, threat model)


def ensure_agent_role(conn: psycopg.Connection, cluster: str, node: str | None = None) -> str:
    """Create the agent login role of (cluster, node), or of every node of ``cluster`` with
    ``node`` None, and map it; returns its name. The row-level security of ``plane.telemetry``
    lets that role write (and prune) only the rows of its node, or of its cluster's nodes."""
    role = agent_role(cluster, node)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('reasoning-plane schema set-up'))")
    ensure_roles(conn)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
        _create(conn, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        # a member that inherits the group's grants but may not SET ROLE to it (PostgreSQL 16+)
        member = sql.SQL("GRANT {} TO {}").format(sql.Identifier(AGENT), sql.Identifier(role))
        if conn.info.server_version >= 160000:
            member = member + sql.SQL(" WITH INHERIT TRUE, SET FALSE")
        conn.execute(member)
    from reasoning_plane import store  # the owner of plane.* (which imports this module)

    store.map_agent(conn, role, cluster, node or ANY_NODE)
    return role


def _create(conn: psycopg.Connection, statement: sql.Composable) -> None:
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.errors.DuplicateObject:  # another process created it meanwhile
        pass


def grant(conn: psycopg.Connection, grants: Iterable[tuple[str, str]]) -> None:
    """Run each ``(role, GRANT ...)`` whose role exists (a database whose administrator cannot
    create roles keeps working as one URL, without them)."""
    grants = list(grants)
    present = {
        r[0]
        for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", ([r for r, _ in grants],)
        )
    }
    for role, statement in grants:
        if role in present:
            conn.execute(statement)


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


def ensure(conn: psycopg.Connection, schema: Schema) -> None:
    """Bring ``schema`` to this code's version.

    An administrator's connection applies the pending steps in order, then ``finish``, and
    records the version, all in one transaction (`apply_pending`). A service role's connection
    checks the recorded version (two queries) and, when it is missing or another, has an
    administrator apply it: the embedded server's superuser, or ``PLANE_ADMIN_DATABASE_URL``;
    without either it raises :class:`MigrationNeeded`."""
    if not is_service(conn):
        apply_pending(conn, schema)
        return
    if _recorded(conn, schema) == (schema.version, schema.stamp):
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


def apply_pending(conn: psycopg.Connection, schema: Schema) -> int:
    """As an administrator: apply ``schema``'s steps after its recorded version, then its
    ``finish``, and record the version, in one transaction (a failing step leaves the unit
    as it was); the number of steps applied. A database newer than this code is refused."""
    with conn.transaction():
        # One set-up at a time: concurrent GRANTs on one object fail ("tuple concurrently
        # updated"), and the units share schemas and roles.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('reasoning-plane schema set-up'))")
        if _can_create_roles(conn):
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


def _can_create_roles(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])


def migrate(conn: psycopg.Connection, stores: Iterable[object] = ()) -> list[tuple[str, int, int]]:
    """As an administrator: create the roles, then bring every schema to this code's version,
    its pending steps in order, one transaction per schema, and its grants (``plane db
    migrate``); (schema, version, steps applied now) of each."""
    from data_plane import access_log, catalog_store, credentials, model_registry, vector_store
    from reasoning_plane import store

    if not _can_create_roles(conn):
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


def admin_url() -> str | None:
    """An administrator's URL: ``PLANE_ADMIN_DATABASE_URL``, else the embedded server's superuser
    (None when an external server is used without an administrator URL)."""
    configured = os.environ.get(ADMIN_URL_ENV, "").strip()
    if configured:
        return configured
    from resources.database import database_url, is_embedded  # no Dagster import

    return database_url() if is_embedded() else None


def usage(schema: str, *roles: str) -> list[tuple[str, str]]:
    """USAGE on ``schema`` for each role."""
    return [(role, f"GRANT USAGE ON SCHEMA {schema} TO {role}") for role in roles]
