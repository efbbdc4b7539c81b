"""The append-only access log ``governance.access_log``: every denied retrieval or model use, and
every allowed read of personal data.

One row per decision logged: who asked (principal, and the user an agent acted for), what (action,
resource), the decision, the rules that decided it, the version of the policy files, the request
context and the time. A trigger refuses ``UPDATE`` and ``DELETE``: rows are only ever added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from data_plane.authz import AccessDecision
from data_plane.hash_chain import ensure_chain
from data_plane.migrations import Schema, ensure
from data_plane.roles import PLANE, READER, STEWARD, WORKER, grant, usage

DDL = """
CREATE SCHEMA IF NOT EXISTS governance;
CREATE TABLE IF NOT EXISTS governance.access_log (
    id              bigserial PRIMARY KEY,
    principal       text NOT NULL,
    on_behalf_of    text,
    action          text NOT NULL,
    resource        text NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('allow', 'deny')),
    reasons         jsonb NOT NULL,
    policy_version  text NOT NULL,
    context         jsonb NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS access_log_principal ON governance.access_log (principal, at);
CREATE OR REPLACE FUNCTION governance.access_log_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'governance.access_log is append-only: % refused', TG_OP;
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'access_log_append_only') THEN
        CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
            ON governance.access_log
            FOR EACH STATEMENT EXECUTE FUNCTION governance.access_log_append_only();
    END IF;
END $$;
"""


@dataclass(frozen=True)
class LoggedAccess:
    principal: str
    on_behalf_of: str | None
    action: str
    resource: str
    decision: str
    reasons: list[str]
    policy_version: str
    context: dict[str, Any]
    at: datetime


# Every service records its denials and reads of personal data; nobody changes a row.
GRANTS = [
    *usage("governance", PLANE, WORKER, STEWARD, READER),
    *[
        (role, f"GRANT SELECT, INSERT ON governance.access_log TO {role}")
        for role in (PLANE, WORKER, STEWARD, READER)
    ],
    *[
        (role, f"GRANT USAGE ON SEQUENCE governance.access_log_id_seq TO {role}")
        for role in (PLANE, WORKER, STEWARD, READER)
    ],
]


def _finish(conn: psycopg.Connection) -> None:
    ensure_chain(conn, "governance.access_log")
    grant(conn, GRANTS)


# Migration steps (`data_plane.migrations.Schema`): released steps are never edited; a change is a
# new step at the end. Step 1 is the schema as the release before versioned migrations built it.
SCHEMA = Schema(
    unit="access_log", probe="governance.access_log", steps=(DDL,), finish=_finish, extra=(GRANTS,)
)


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create or bring the schema to this code's version (`data_plane.migrations.ensure`)."""
    ensure(conn, SCHEMA)


def append(conn: psycopg.Connection, decisions: Sequence[AccessDecision]) -> int:
    """Add one row per decision (in one transaction); returns the number written."""
    if not decisions:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO governance.access_log (principal, on_behalf_of, action, resource,"
            " decision, reasons, policy_version, context) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    d.principal,
                    d.on_behalf_of,
                    d.action,
                    d.resource,
                    d.decision,
                    Jsonb(list(d.reasons)),
                    d.policy_version,
                    Jsonb(dict(d.context)),
                )
                for d in decisions
            ],
        )
    return len(decisions)


def entries(
    conn: psycopg.Connection, *, principal: str | None = None, limit: int = 1000
) -> list[LoggedAccess]:
    """The newest rows first, optionally of one principal."""
    rows = conn.execute(
        "SELECT principal, on_behalf_of, action, resource, decision, reasons, policy_version,"
        " context, at FROM governance.access_log WHERE %(p)s::text IS NULL OR principal = %(p)s"
        " ORDER BY id DESC LIMIT %(n)s",
        {"p": principal, "n": limit},
    ).fetchall()
    return [LoggedAccess(*row) for row in rows]
