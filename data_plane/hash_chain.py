"""Tamper evidence for the append-only logs: a hash chain kept by PostgreSQL itself.

Every row inserted into a chained table gets, from a ``BEFORE INSERT`` trigger:

* ``chain_pos``: its position, 1, 2, 3, ... with no gap (under a per-table advisory lock held to
  the end of the inserting transaction, so concurrent writers form one line);
* ``prev_hash``: the ``row_hash`` of the row before it (empty for the first);
* ``row_hash``: SHA-256 of ``prev_hash`` followed by the row's JSON (``to_jsonb`` of every
  column but the two hashes, in UTC with shortest-exact floats, whatever the session settings).

The logs are append-only already (triggers refuse ``UPDATE`` and ``DELETE``, and ``ensure_chain``
adds one refusing ``TRUNCATE``); the chain catches what those triggers cannot: a superuser who
disables them, or edits the files. `verify_chain` recomputes every hash in the database and names
the first row that was changed, removed or reordered. Rewriting the whole chain after the
tampered row, or cutting its tail, is caught against a head recorded outside PostgreSQL: every
placement tick writes the heads to an anchor file (`data_plane.anchors`), which ``plane
verify-log`` checks by default (or ``--expect-head``).

Rows written before a table was chained (an older install) have no position; they are counted,
not verified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

# One trigger function per chained table, so that its query of the last row is static SQL
# (planned once per session) rather than built and planned again for every row.
CHAIN_FUNCTION = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE OR REPLACE FUNCTION audit.{function}() RETURNS trigger LANGUAGE plpgsql
SET TimeZone TO 'UTC' SET extra_float_digits TO 1 SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    last_pos  bigint;
    last_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit:chain:{table}'));
    SELECT chain_pos, row_hash INTO last_pos, last_hash FROM {table}
        WHERE chain_pos IS NOT NULL ORDER BY chain_pos DESC LIMIT 1;
    NEW.chain_pos := coalesce(last_pos, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, '');
    NEW.row_hash := encode(sha256(convert_to(
        NEW.prev_hash || ((to_jsonb(NEW) - 'prev_hash' - 'row_hash')::text), 'UTF8')), 'hex');
    RETURN NEW;
END $$;
"""

# TRUNCATE fires no row trigger: a statement trigger refuses it on every chained table.
REFUSE_TRUNCATE = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE OR REPLACE FUNCTION audit.refuse_truncate() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME;
END $$;
"""

# the settings of each chain function, as pg_proc.proconfig lists them
_SETTINGS = "TimeZone=UTC;extra_float_digits=1;search_path=pg_catalog, pg_temp"
MAX_PROBLEMS = 20
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$")


def _parts(table: str) -> tuple[str, str]:
    if not _NAME.match(table):
        raise ValueError(f"not a schema-qualified table name: {table!r}")
    schema, name = table.split(".")
    return schema, name


def is_chained(conn: psycopg.Connection, table: str) -> bool:
    """Whether ``table`` exists and carries the chain columns."""
    schema, name = _parts(table)
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = %s"
        " AND table_name = %s AND column_name = 'chain_pos')",
        (schema, name),
    ).fetchone()
    return bool(row and row[0])


def ensure_chain(conn: psycopg.Connection, table: str) -> None:
    """Chain ``table`` (``schema.name``): add the chain columns, index, trigger function and
    trigger, each only when missing or different, so that a set-up that finds them in place
    runs no DDL and takes no lock on the table. Call inside the transaction that creates the
    table (under its DDL lock)."""
    schema, name = _parts(table)
    ident = sql.Identifier(schema, name)
    function = f"chain_{schema}_{name}"
    trigger = f"{name}_hash_chain"
    no_truncate = f"{name}_no_truncate"
    # Names are checked by _parts (lower-case letters, digits, underscores): safe to format in.
    source = CHAIN_FUNCTION.format(function=function, table=table)
    body = source.split("AS $$", 1)[1].rsplit("$$;", 1)[0]
    have_function, have_columns, have_index, have_trigger, have_no_truncate = conn.execute(
        """
        SELECT
          (SELECT p.prosrc || array_to_string(coalesce(p.proconfig, '{}'), ';')
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'audit' AND p.proname = %(function)s),
          (SELECT count(*) FROM information_schema.columns
           WHERE table_schema = %(schema)s AND table_name = %(name)s
             AND column_name IN ('chain_pos', 'prev_hash', 'row_hash')),
          (SELECT count(*) FROM pg_indexes
           WHERE schemaname = %(schema)s AND indexname = %(index)s),
          (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE t.tgname = %(trigger)s AND c.relname = %(name)s AND n.nspname = %(schema)s),
          (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE t.tgname = %(no_truncate)s AND c.relname = %(name)s AND n.nspname = %(schema)s)
        """,
        {
            "function": function,
            "schema": schema,
            "name": name,
            "index": f"{name}_chain_pos",
            "trigger": trigger,
            "no_truncate": no_truncate,
        },
    ).fetchone()
    if have_function != body + _SETTINGS:  # the body or its settings (search_path) changed
        conn.execute(source)
    if have_columns < 3:
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS chain_pos bigint,"
                " ADD COLUMN IF NOT EXISTS prev_hash text, ADD COLUMN IF NOT EXISTS row_hash text"
            ).format(ident)
        )
    if not have_index:
        conn.execute(
            sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (chain_pos)").format(
                sql.Identifier(f"{name}_chain_pos"), ident
            )
        )
    if not have_trigger:
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(sql.Identifier(trigger), ident, sql.Identifier("audit", function))
        )
    conn.execute(REFUSE_TRUNCATE)  # idempotent; replaces an older, unpinned version
    if not have_no_truncate:
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE TRUNCATE ON {} FOR EACH STATEMENT"
                " EXECUTE FUNCTION audit.refuse_truncate()"
            ).format(sql.Identifier(no_truncate), ident)
        )


@dataclass(frozen=True)
class ChainReport:
    table: str
    chained: int  # rows on the chain
    unchained: int  # rows written before the table was chained (not verifiable)
    head_pos: int  # position and hash of the last row (0, "" when empty)
    head_hash: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def head(self) -> str:
        return f"{self.head_pos}:{self.head_hash}"


def verify_chain(
    conn: psycopg.Connection, table: str, *, expect_head: str | None = None
) -> ChainReport:
    """Recompute ``table``'s chain; every broken link is a problem, the first ones named.

    ``expect_head``: ``POS:HASH`` recorded earlier; the row at POS must still have that hash
    (catches a chain rewritten from some row on, or rows removed from its end)."""
    schema, name = _parts(table)
    ident = sql.Identifier(schema, name)
    problems: list[str] = []
    prev_hash, expected_pos, head_pos, head_hash = "", 1, 0, ""
    hashes_at: dict[int, str] = {}
    want_pos: int | None = None
    if expect_head is not None:
        pos_text, _, want_hash = expect_head.partition(":")
        if not pos_text.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", want_hash):
            raise ValueError(f"expected head must be POS:SHA256HEX, got {expect_head!r}")
        want_pos = int(pos_text)
    with conn.transaction():
        conn.execute("SET LOCAL TimeZone TO 'UTC'")
        conn.execute("SET LOCAL extra_float_digits TO 1")
        (unchained,) = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE chain_pos IS NULL").format(ident)
        ).fetchone()
        query = sql.SQL(
            "SELECT chain_pos, prev_hash, row_hash, encode(sha256(convert_to(prev_hash ||"
            " ((to_jsonb(t) - 'prev_hash' - 'row_hash')::text), 'UTF8')), 'hex')"
            " FROM {} t WHERE chain_pos IS NOT NULL ORDER BY chain_pos"
        ).format(ident)
        chained = 0
        with conn.cursor(name=f"verify_{name}") as cur:
            cur.itersize = 5000
            cur.execute(query)
            for pos, prev, stored, recomputed in cur:
                chained += 1
                if pos != expected_pos:
                    problems.append(
                        f"{table}: positions {expected_pos}..{pos - 1} are missing (rows deleted)"
                        if pos > expected_pos
                        else f"{table}: position {pos} repeats"
                    )
                if prev != prev_hash:
                    problems.append(
                        f"{table}: row {pos} does not follow row {pos - 1} "
                        "(rows removed, inserted or reordered)"
                    )
                if stored != recomputed:
                    problems.append(f"{table}: row {pos} was changed after it was written")
                if want_pos == pos:
                    hashes_at[pos] = stored
                prev_hash, expected_pos = stored, pos + 1
                head_pos, head_hash = pos, stored
    if want_pos is not None:
        found = hashes_at.get(want_pos)
        if found is None:
            problems.append(
                f"{table}: the recorded head {want_pos} is past the end of the chain "
                f"({head_pos} rows): rows were removed from its end"
            )
        elif found != expect_head.partition(":")[2]:  # type: ignore[union-attr]
            problems.append(
                f"{table}: row {want_pos} no longer has the recorded head hash: the chain "
                "was rewritten"
            )
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
    return ChainReport(table, chained, int(unchained), head_pos, head_hash, problems)
