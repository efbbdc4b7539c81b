"""The durable governance catalog: PostgreSQL tables ``governance.catalog`` and its history.

``governance.read_grants`` holds, for the current entries, which principal may read which
dataset served in which region (the Cedar decisions, `retrieval.read_grants`): the regional
stores' search functions read chunks only through it (`vector_store`).

``governance.catalog`` holds the current entry of each dataset, its ``record`` column the exact
operator JSON shape; ``governance.catalog_history`` is append-only, hash-chained
(`data_plane.hash_chain`) and gets a row each time an entry changes (re-running with the same
facts adds nothing). Upserts are transactional. `drift` finds current entries that differ from
their latest history row: changed behind the history's back (``plane verify-log --log
catalog``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from data_plane.catalog import CatalogEntry, CatalogRecord
from data_plane.hash_chain import ensure_chain
from data_plane.migrations import Schema, ensure
from data_plane.roles import PLANE, READER, STEWARD, WORKER, grant, usage

DDL = """
CREATE SCHEMA IF NOT EXISTS governance;
CREATE TABLE IF NOT EXISTS governance.catalog (
    dataset_id              text PRIMARY KEY,
    record                  jsonb NOT NULL,
    owner_team              text NOT NULL,
    pii_columns             jsonb NOT NULL DEFAULT '{}'::jsonb,
    regulations             text[] NOT NULL DEFAULT '{}',
    derived_from            text[] NOT NULL DEFAULT '{}',
    declared_classification text,
    row_count               bigint,
    quarantined_rows        bigint,
    content_hash            text,
    entry_hash              text NOT NULL,
    dagster_run_id          text,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS governance.catalog_history (
    id             bigserial PRIMARY KEY,
    dataset_id     text NOT NULL,
    record         jsonb NOT NULL,
    entry          jsonb NOT NULL,
    entry_hash     text NOT NULL,
    dagster_run_id text,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS catalog_history_dataset ON governance.catalog_history (dataset_id, id);
CREATE TABLE IF NOT EXISTS governance.read_grants (
    principal      text NOT NULL,
    dataset_id     text NOT NULL,
    serve_region   text NOT NULL,
    entry_hash     text NOT NULL,
    policy_version text NOT NULL,
    PRIMARY KEY (principal, dataset_id, serve_region)
);
CREATE TABLE IF NOT EXISTS governance.read_grants_log (
    id             bigserial PRIMARY KEY,
    grants         jsonb NOT NULL,
    policy_version text NOT NULL,
    by_role        text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION governance.replace_read_grants(p_grants jsonb, p_policy text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('governance.read_grants'));
    DELETE FROM governance.read_grants;
    INSERT INTO governance.read_grants (principal, dataset_id, serve_region, entry_hash,
        policy_version)
    SELECT g->>0, g->>1, g->>2, g->>3, p_policy FROM jsonb_array_elements(p_grants) AS g;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO governance.read_grants_log (grants, policy_version, by_role)
        VALUES (p_grants, p_policy, session_user);
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION governance.replace_read_grants(jsonb, text) FROM PUBLIC;
"""


# Only the governance tagging assets (the steward) write the catalog; everyone reads it.
GRANTS = [
    *usage("governance", PLANE, WORKER, STEWARD, READER),
    *[
        (role, f"GRANT SELECT ON governance.catalog, governance.catalog_history TO {role}")
        for role in (PLANE, WORKER, STEWARD, READER)
    ],
    (STEWARD, f"GRANT INSERT, UPDATE ON governance.catalog TO {STEWARD}"),
    (STEWARD, f"GRANT INSERT ON governance.catalog_history TO {STEWARD}"),
    # the Cedar decisions of who may read which dataset, for the stores' search functions:
    # changed only through replace_read_grants, each change a row of a chained log
    *[
        (role, f"REVOKE ALL ON governance.read_grants FROM {role}")
        for role in (PLANE, WORKER, STEWARD, READER)
    ],
    (
        STEWARD,
        f"GRANT EXECUTE ON FUNCTION governance.replace_read_grants(jsonb, text) TO {STEWARD}",
    ),
    *[
        (role, f"GRANT SELECT ON governance.read_grants, governance.read_grants_log TO {role}")
        for role in (PLANE, STEWARD)
    ],
    (STEWARD, f"GRANT USAGE ON SEQUENCE governance.catalog_history_id_seq TO {STEWARD}"),
]


def _finish(conn: psycopg.Connection) -> None:
    ensure_chain(conn, "governance.catalog_history")
    ensure_chain(conn, "governance.read_grants_log")
    grant(conn, GRANTS)


# Migration steps (`data_plane.migrations.Schema`): released steps are never edited; a change is a
# new step at the end. Step 1 is the schema as the release before versioned migrations built it.
# Step 2: a served model's licence (`assets.model_catalog`); NULL for datasets.
LICENCE = "ALTER TABLE governance.catalog ADD COLUMN IF NOT EXISTS licence text"
SCHEMA = Schema(
    unit="catalog",
    probe="governance.catalog",
    steps=(DDL, LICENCE),
    finish=_finish,
    extra=(GRANTS,),
)


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create or bring the schema to this code's version (`data_plane.migrations.ensure`)."""
    ensure(conn, SCHEMA)


def entry_to_dict(entry: CatalogEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "record": entry.record.to_dict(),
        "owner_team": entry.owner_team,
        "pii_columns": {k: list(v) for k, v in sorted(entry.pii_columns.items())},
        "regulations": list(entry.regulations),
        "derived_from": list(entry.derived_from),
        "declared_classification": entry.declared_classification,
        "row_count": entry.row_count,
        "quarantined_rows": entry.quarantined_rows,
        "content_hash": entry.content_hash,
    }
    if entry.licence is not None:  # only models have one: the hashes of datasets stay as they were
        out["licence"] = entry.licence
    return out


def entry_hash(entry: CatalogEntry) -> str:
    """Hash of the entry's facts, ignoring ``last_updated`` (a re-run changes nothing else)."""
    facts = entry_to_dict(entry)
    facts["record"] = {**facts["record"], "lineage": {**facts["record"]["lineage"]}}
    facts["record"]["lineage"].pop("last_updated", None)
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def upsert_entry(
    conn: psycopg.Connection, entry: CatalogEntry, *, run_id: str | None = None
) -> bool:
    """Write the entry; append history when its facts changed. Returns True if they changed."""
    digest = entry_hash(entry)
    facts = entry_to_dict(entry)
    with conn.transaction():
        row = conn.execute(
            "SELECT entry_hash FROM governance.catalog WHERE dataset_id = %s FOR UPDATE",
            (entry.dataset_id,),
        ).fetchone()
        changed = row is None or row[0] != digest
        conn.execute(
            """
            INSERT INTO governance.catalog AS c (dataset_id, record, owner_team, pii_columns,
                regulations, derived_from, declared_classification, row_count, quarantined_rows,
                content_hash, entry_hash, dagster_run_id, licence, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (dataset_id) DO UPDATE SET
                record = EXCLUDED.record, owner_team = EXCLUDED.owner_team,
                pii_columns = EXCLUDED.pii_columns, regulations = EXCLUDED.regulations,
                derived_from = EXCLUDED.derived_from,
                declared_classification = EXCLUDED.declared_classification,
                row_count = EXCLUDED.row_count, quarantined_rows = EXCLUDED.quarantined_rows,
                content_hash = EXCLUDED.content_hash, entry_hash = EXCLUDED.entry_hash,
                dagster_run_id = EXCLUDED.dagster_run_id, licence = EXCLUDED.licence,
                updated_at = now()
            """,
            (
                entry.dataset_id,
                Jsonb(facts["record"]),
                entry.owner_team,
                Jsonb(facts["pii_columns"]),
                facts["regulations"],
                facts["derived_from"],
                entry.declared_classification,
                entry.row_count,
                entry.quarantined_rows,
                entry.content_hash,
                digest,
                run_id,
                entry.licence,
            ),
        )
        if changed:
            conn.execute(
                "INSERT INTO governance.catalog_history (dataset_id, record, entry, entry_hash,"
                " dagster_run_id) VALUES (%s, %s, %s, %s, %s)",
                (entry.dataset_id, Jsonb(facts["record"]), Jsonb(facts), digest, run_id),
            )
    return changed


def _entry_from_row(row: tuple[Any, ...]) -> CatalogEntry:
    (record, owner, pii, regulations, derived, declared, rows, quarantined, content, licence) = row
    return CatalogEntry(
        record=CatalogRecord.from_dict(
            record, where=f"governance.catalog[{record.get('dataset_id')}]"
        ),
        owner_team=owner,
        pii_columns=pii,
        regulations=tuple(regulations),
        derived_from=tuple(derived),
        declared_classification=declared,
        row_count=rows,
        quarantined_rows=quarantined,
        content_hash=content,
        licence=licence,
    )


_SELECT = (
    "SELECT record, owner_team, pii_columns, regulations, derived_from, declared_classification,"
    " row_count, quarantined_rows, content_hash, licence FROM governance.catalog"
)


def get_entry(conn: psycopg.Connection, dataset_id: str) -> CatalogEntry | None:
    row = conn.execute(_SELECT + " WHERE dataset_id = %s", (dataset_id,)).fetchone()
    return _entry_from_row(row) if row else None


def list_entries(conn: psycopg.Connection) -> list[CatalogEntry]:
    return [_entry_from_row(r) for r in conn.execute(_SELECT + " ORDER BY dataset_id").fetchall()]


def history_count(conn: psycopg.Connection, dataset_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM governance.catalog_history WHERE dataset_id = %s", (dataset_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def drift(conn: psycopg.Connection) -> list[str]:
    """Current entries that are not what their (chained) history last recorded: an entry whose
    facts no longer hash to its latest history row, or that has no history row at all."""
    rows = conn.execute(
        "SELECT c.dataset_id, c.record, c.owner_team, c.pii_columns, c.regulations,"
        " c.derived_from, c.declared_classification, c.row_count, c.quarantined_rows,"
        " c.content_hash, c.licence, (SELECT h.entry_hash FROM governance.catalog_history h"
        "  WHERE h.dataset_id = c.dataset_id ORDER BY h.id DESC LIMIT 1)"
        " FROM governance.catalog c ORDER BY c.dataset_id"
    ).fetchall()
    problems = []
    for dataset_id, *columns, recorded in rows:
        try:
            actual = entry_hash(_entry_from_row(tuple(columns)))
        except ValueError as exc:
            problems.append(f"governance.catalog: {dataset_id} is not a valid entry ({exc})")
            continue
        if recorded is None:
            problems.append(f"governance.catalog: {dataset_id} has no history row")
        elif actual != recorded:
            problems.append(
                f"governance.catalog: {dataset_id} differs from its latest history row: the "
                "entry was changed behind its history"
            )
    return problems


def replace_read_grants(
    conn: psycopg.Connection, grants: Sequence[tuple[str, str, str, str]], policy_version: str
) -> int:
    """Replace ``governance.read_grants`` with ``grants`` ((principal, dataset, serve region,
    entry hash) each), in one transaction. A grant counts only while its entry hash is the
    catalog's, so a changed entry reads as no grant until they are computed again."""
    with conn.transaction():
        row = conn.execute(
            "SELECT governance.replace_read_grants(%s, %s)",
            (Jsonb([list(g) for g in grants]), policy_version),
        ).fetchone()
    return int(row[0])
