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

The schemas and their migrations: `data_plane.migrations`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

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


def create_agent_role(conn: psycopg.Connection, cluster: str, node: str | None = None) -> str:
    """Create the agent login role of (cluster, node), or of every node of ``cluster`` with
    ``node`` None, a member of ``rp_agent``; returns its name (mapped to its node by
    `reasoning_plane.store.ensure_agent_role`)."""
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


def can_create_roles(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])


def usage(schema: str, *roles: str) -> list[tuple[str, str]]:
    """USAGE on ``schema`` for each role."""
    return [(role, f"GRANT USAGE ON SCHEMA {schema} TO {role}") for role in roles]
