"""Versioned migrations (issue 14, item 4): each schema is built by an ordered list of steps,
version N to N+1, recorded in ``plane_meta.schema_versions``; ``plane db migrate`` applies the
pending ones, one transaction per schema, and a service role refuses to run on an older schema.

The defect: every schema was ``CREATE ... IF NOT EXISTS``, so a changed column never reached a
database that already had the table. A database is created here as the previous release left it
(the statements its ``plane db migrate`` ran, frozen in ``tests/fixtures/release_6dbeeab.sql``),
given rows, and upgraded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from data_plane import access_log, catalog_store, credentials, migrations, model_registry, roles
from data_plane.hash_chain import ensure_chain, is_chained, verify_chain
from plane_cli.migrate import migrate
from reasoning_plane import store
from resources.database import as_user, database_url

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "release_6dbeeab.sql"
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SCHEMAS = ("plane", "governance", "models", "audit", "plane_meta", "migration_probe")


def _drop_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in SCHEMAS:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def previous_release(plane_db: str) -> Iterator[psycopg.Connection]:
    """An administrator's connection to a database as the previous release's set-up left it,
    with a few rows of each kind in it."""
    _drop_all(plane_db)
    with psycopg.connect(plane_db) as conn:
        roles.ensure_roles(conn)
        for statement in RELEASE.read_text().split("\n--;;\n"):
            conn.execute(statement)
        _old_rows(conn)
        conn.commit()
        yield conn
    _drop_all(plane_db)


def _old_rows(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO plane.decisions (decision_id, request_id, workload, team, status, cluster,"
        " policy_version, snapshot_hash, payload, explanation, decided_at)"
        " VALUES ('d-old', 'r-old', 'embeddings/support_tickets', 'support', 'placed',"
        " 'us-east-a100', 'v1', 's1', '{\"old\": true}', 'placed on us-east-a100', now())"
    )
    conn.execute(
        "INSERT INTO plane.ledger (team, decision_id, kind, cluster, gpu_type, gpus, usd)"
        " VALUES ('support', 'd-old', 'reserve', 'us-east-a100', 'A100', 2, 3.5)"
    )
    conn.execute(
        "INSERT INTO plane.requests (request_id, payload, status, decision_id)"
        " VALUES ('r-old', '{\"request_id\": \"r-old\"}', 'placed', 'd-old'),"
        " ('r-waiting', '{\"request_id\": \"r-waiting\"}', 'pending', NULL)"
    )
    conn.execute(
        "INSERT INTO governance.catalog (dataset_id, record, owner_team, entry_hash)"
        " VALUES ('support_tickets', '{}', 'support', 'h1')"
    )
    conn.execute(
        "INSERT INTO governance.api_keys (key_id, key_hash, principal)"
        " VALUES ('k1', 'hash', 'alice')"
    )


def _connect_as(role: str) -> psycopg.Connection:
    return psycopg.connect(database_url(role=role), autocommit=True)


def test_a_database_of_the_previous_release_is_upgraded_and_keeps_its_rows(
    previous_release,
) -> None:
    conn = previous_release
    done = {unit for unit, _version, _applied in migrate(conn)}
    conn.commit()
    assert {"plane", "catalog", "api_keys", "access_log", "models"} <= done
    # every row is still there, as it was
    assert conn.execute(
        "SELECT request_id, status, payload FROM plane.decisions WHERE decision_id = 'd-old'"
    ).fetchone() == ("r-old", "placed", {"old": True})
    assert conn.execute("SELECT kind, gpus, usd FROM plane.ledger").fetchall() == [
        ("reserve", 2, 3.5)
    ]
    assert conn.execute("SELECT request_id, status FROM plane.requests ORDER BY 1").fetchall() == [
        ("r-old", "placed"),
        ("r-waiting", "pending"),
    ]
    assert conn.execute("SELECT owner_team FROM governance.catalog").fetchall() == [("support",)]
    assert conn.execute("SELECT principal FROM governance.api_keys").fetchall() == [("alice",)]
    # the chained logs still verify, the old rows included
    for table in store.CHAINED:
        report = verify_chain(conn, table)
        assert not report.problems, report.problems
    # each schema's version is recorded: the number of its steps
    versions = dict(conn.execute("SELECT unit, version FROM plane_meta.schema_versions").fetchall())
    assert versions["plane"] == store.SCHEMA.version
    assert versions["catalog"] == catalog_store.SCHEMA.version
    assert versions["api_keys"] == credentials.SCHEMA.version
    assert versions["access_log"] == access_log.SCHEMA.version
    assert versions["models"] == model_registry.SCHEMA.version


def test_a_changed_column_reaches_a_database_that_already_has_the_table(previous_release) -> None:
    """A request's status is one of pending, deferred, placed, rejected: a constraint added to
    ``plane.requests`` after the previous release, which ``CREATE TABLE IF NOT EXISTS`` never
    applied to a database that had the table."""
    conn = previous_release
    migrate(conn)
    conn.commit()
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO plane.requests (request_id, payload, status) VALUES ('x', '{}', 'bogus')"
        )
    conn.rollback()


def test_a_database_of_the_last_release_gets_the_serving_decision_log(previous_release) -> None:
    """Issue 15 adds ``plane.serving_decisions`` as step 3 of ``plane``: a database at step 2
    (the last release, with batch rows and a chained ledger) gets the table, chained, with
    the gateway's grant, and its old rows and chains still verify."""
    conn = previous_release
    last = migrations.Schema(
        unit="plane",
        probe="plane.decisions",
        steps=store.SCHEMA.steps[:2],
        finish=lambda c: [ensure_chain(c, t) for t in store.CHAINED if "serving" not in t],
    )
    migrations.apply_pending(conn, last)
    conn.commit()
    assert conn.execute("SELECT to_regclass('plane.serving_decisions')").fetchone() == (None,)
    # the serving log (step 3), the ticks' counts (4, issue 16), the residency loop (5), each
    # node's residency rows its own agent's (6)
    assert migrations.apply_pending(conn, store.SCHEMA) == 4
    conn.commit()
    assert conn.execute("SELECT count(*) FROM plane.ledger").fetchone() == (1,)
    for table in store.CHAINED:
        assert is_chained(conn, table) and not verify_chain(conn, table).problems
    with _connect_as("plane") as gateway:
        store.ensure_schema(gateway)  # at this code's version
        assert gateway.execute(
            "SELECT has_table_privilege('plane.serving_decisions', 'INSERT')"
        ).fetchone() == (True,)
        assert gateway.execute(
            "SELECT has_table_privilege('plane.tick_stats', 'INSERT, UPDATE')"
        ).fetchone() == (True,)
        # the residency planner's demand query runs on it
        assert (
            gateway.execute(
                "SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens)"
                " FROM plane.serving_decisions WHERE decided_at > now() - interval '1 day'"
                " GROUP BY model"
            ).fetchall()
            == []
        )
    with _connect_as("worker") as worker:
        assert worker.execute(
            "SELECT has_table_privilege('plane.serving_decisions', 'INSERT')"
        ).fetchone() == (False,)


def test_a_database_at_step_3_gets_the_residency_loop_tables(previous_release) -> None:
    """Issue 15 items 3 and 6 add ``plane.residency_desired`` and ``plane.residency_actual`` as
    step 5 of ``plane``: a database at step 3 (with a serving decision record) gets them with
    the grants of the residency asset and the node agents (role plane), and keeps its rows."""
    conn = previous_release
    at_3 = migrations.Schema(
        unit="plane",
        probe="plane.decisions",
        steps=store.SCHEMA.steps[:3],
        finish=lambda c: [ensure_chain(c, t) for t in store.CHAINED],
    )
    migrations.apply_pending(conn, at_3)
    conn.execute(
        "INSERT INTO plane.serving_decisions (request_id, decision_id, decided_at, team,"
        " principal, model, status, reason, prompt_tokens, completion_tokens, rejected_by_rule,"
        " policy_version, snapshot_hash, payload) VALUES ('q1', 'sd1', now(), 'support', 'p',"
        " 'gemma', 'deferred', 'no slot', 3, 0, '{}', 'v', 's', '{}')"
    )
    conn.commit()
    assert conn.execute("SELECT to_regclass('plane.residency_desired')").fetchone() == (None,)
    # the ticks' counts, the loop, each node's rows its own agent's
    assert migrations.apply_pending(conn, store.SCHEMA) == 3
    agent = store.ensure_agent_role(conn, "local", "n")
    conn.commit()
    assert conn.execute("SELECT count(*) FROM plane.serving_decisions").fetchone() == (1,)
    for table in store.CHAINED:
        assert not verify_chain(conn, table).problems
    with _connect_as("plane") as plane:
        store.ensure_schema(plane)  # at this code's version
        with plane.transaction():
            store.write_desired(plane, [("n", "llama.cpp", "gemma", "loaded", "demand")], "p1", NOW)
        assert store.desired_of(plane, "n") == [("llama.cpp", "gemma", "loaded", "demand", "p1")]
    with psycopg.connect(as_user(database_url(), agent)) as node_agent:  # node n's own login
        store.ensure_schema(node_agent)
        assert store.desired_of(node_agent, "n") == [
            ("llama.cpp", "gemma", "loaded", "demand", "p1")
        ]
        node_agent.commit()
        row = {"runtime": "llama.cpp", "model": "gemma", "state": "loaded", "since": NOW}
        with node_agent.transaction():
            store.report_actual(node_agent, "n", [row], NOW)
        with node_agent.transaction():
            store.report_actual(node_agent, "n", [{**row, "error": "x"}], NOW)  # replaced
        with pytest.raises(psycopg.errors.CheckViolation):
            store.report_actual(node_agent, "n", [{**row, "state": "warm"}], NOW)
    with _connect_as("plane") as plane:
        (got,) = store.actual_state(plane)
        assert (got["node"], got["state"], got["since"], got["error"]) == ("n", "loaded", NOW, "x")
    with _connect_as("worker") as worker:
        assert worker.execute(
            "SELECT has_table_privilege('plane.residency_desired', 'INSERT'),"
            " has_table_privilege('plane.residency_actual', 'UPDATE')"
        ).fetchone() == (False, False)


def test_a_database_at_step_5_keeps_its_residency_rows_and_gives_each_node_its_own(
    previous_release,
) -> None:
    """Step 6 (row-level security on the residency tables): a database at step 5, where the
    plane role wrote every node's actual state, keeps its rows; then the plane only reads them,
    and node a's agent sees and replaces node a's rows, not node b's."""
    conn = previous_release
    at_5 = migrations.Schema(
        unit="plane",
        probe="plane.decisions",
        steps=store.SCHEMA.steps[:5],
        finish=lambda c: [
            *[ensure_chain(c, t) for t in store.CHAINED],
            c.execute("GRANT USAGE ON SCHEMA plane TO rp_plane"),
            c.execute("GRANT SELECT, INSERT, DELETE ON plane.residency_actual TO rp_plane"),
        ],
    )
    migrations.apply_pending(conn, at_5)
    conn.commit()
    row = {"runtime": "llama.cpp", "model": "gemma", "state": "loaded", "since": NOW}
    with _connect_as("plane") as plane, plane.transaction():  # as step 5 let it
        store.report_actual(plane, "a", [row], NOW)
        store.report_actual(plane, "b", [row], NOW)
    assert migrations.apply_pending(conn, store.SCHEMA) == 1
    agent = store.ensure_agent_role(conn, "local", "a")
    conn.commit()
    with _connect_as("plane") as plane:
        assert [r["node"] for r in store.actual_state(plane)] == ["a", "b"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege), plane.transaction():
            store.report_actual(plane, "b", [{**row, "error": "forged"}], NOW)
    with psycopg.connect(as_user(database_url(), agent)) as node_agent:
        assert [r["node"] for r in store.actual_state(node_agent)] == ["a"]
        with node_agent.transaction():
            store.report_actual(node_agent, "a", [{**row, "state": "cold"}], NOW)
    rows = conn.execute("SELECT node, state FROM plane.residency_actual ORDER BY 1").fetchall()
    assert rows == [("a", "cold"), ("b", "loaded")]


def test_a_service_refuses_to_run_on_the_previous_releases_schema(
    previous_release, monkeypatch
) -> None:
    monkeypatch.setattr(migrations, "admin_url", lambda: None)
    with _connect_as("plane") as conn, pytest.raises(migrations.MigrationNeeded, match="migrate"):
        store.ensure_schema(conn)
    migrate(previous_release)
    previous_release.commit()
    with _connect_as("plane") as conn:
        store.ensure_schema(conn)  # at this code's version: nothing to do, no administrator
        assert conn.execute("SELECT count(*) FROM plane.requests").fetchone() == (2,)


def test_a_failing_step_leaves_its_schema_and_rows_as_they_were(previous_release) -> None:
    """One transaction per schema: a row the new constraint refuses stops the upgrade of
    ``plane`` whole: nothing half-applied, nothing lost, no version recorded."""
    conn = previous_release
    conn.execute(
        "INSERT INTO plane.requests (request_id, payload, status) VALUES ('odd', '{}', 'odd')"
    )
    conn.commit()
    with pytest.raises(psycopg.errors.CheckViolation):
        store.ensure_schema(conn)
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM plane.requests").fetchone() == (3,)
    meta = conn.execute("SELECT to_regclass('plane_meta.schema_versions')").fetchone()[0]
    recorded = (
        0
        if meta is None
        else conn.execute(
            "SELECT count(*) FROM plane_meta.schema_versions WHERE unit = 'plane'"
        ).fetchone()[0]
    )
    assert recorded == 0


def _probe_schema(*steps: str) -> migrations.Schema:
    return migrations.Schema(unit="probe", probe="migration_probe.t", steps=steps)


def test_each_step_runs_once_in_order_and_a_new_one_changes_an_existing_column(
    plane_db: str,
) -> None:
    """The mechanism itself, on a throw-away schema: release 1 creates a table, release 2
    changes a column's type; a database of release 1 with a row gets the change and keeps
    the row, and applying again runs nothing."""
    _drop_all(plane_db)
    first = "CREATE SCHEMA migration_probe; CREATE TABLE migration_probe.t (a integer)"
    second = "ALTER TABLE migration_probe.t ALTER COLUMN a TYPE bigint"
    try:
        with psycopg.connect(plane_db) as conn:
            migrations.ensure(conn, _probe_schema(first))
            conn.execute("INSERT INTO migration_probe.t VALUES (2147483647)")
            conn.commit()
            migrations.ensure(conn, _probe_schema(first, second))
            migrations.ensure(conn, _probe_schema(first, second))  # nothing pending: no error
            conn.commit()
            kind = conn.execute(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_schema = 'migration_probe' AND column_name = 'a'"
            ).fetchone()
            assert kind == ("bigint",)
            assert conn.execute("SELECT a FROM migration_probe.t").fetchall() == [(2147483647,)]
            conn.execute("INSERT INTO migration_probe.t VALUES (2147483648)")
            # code older than the database is refused, not run against a shape it does not know
            with pytest.raises(migrations.MigrationNeeded, match="newer"):
                migrations.ensure(conn, _probe_schema(first))
    finally:
        _drop_all(plane_db)


def test_a_lost_version_table_is_recorded_again_without_harm(previous_release) -> None:
    """Should ``plane_meta`` be dropped, the next migration runs every step again over the
    existing tables: each is written to be safe to repeat, and the rows stay."""
    conn = previous_release
    migrate(conn)
    conn.commit()
    conn.execute("DROP SCHEMA plane_meta CASCADE")
    conn.commit()
    migrate(conn)
    conn.commit()
    assert conn.execute("SELECT count(*) FROM plane.requests").fetchone() == (2,)
    assert conn.execute(
        "SELECT version FROM plane_meta.schema_versions WHERE unit = 'plane'"
    ).fetchone() == (store.SCHEMA.version,)


def test_a_service_connection_checks_the_schema_once_and_a_new_one_checks_again(
    plane_db: str, monkeypatch
) -> None:
    """The gateway's key check (`credentials.authenticate`) ran the schema check on every call
    (about 7 ms, most of a key cache miss): a service connection now checks once. A database
    found at an older version later is still refused, by the next connection (the gateway's
    reconnects, a restarted service)."""
    _drop_all(plane_db)
    with psycopg.connect(plane_db, autocommit=True) as admin:
        _, key = credentials.issue(admin, "support-copilot")
    monkeypatch.setattr(migrations, "admin_url", lambda: None)
    with _connect_as("plane") as gateway:
        assert credentials.authenticate(gateway, key) == "support-copilot"
        assert migrations.checked(gateway, credentials.SCHEMA)
        with psycopg.connect(plane_db, autocommit=True) as admin:  # now "an older release's"
            admin.execute(
                f"UPDATE {migrations.VERSIONS} SET stamp = 'older' WHERE unit = 'api_keys'"
            )
        # this connection was found at this code's version: no second look
        assert credentials.authenticate(gateway, key) == "support-copilot"
    with _connect_as("plane") as again, pytest.raises(migrations.MigrationNeeded, match="migrate"):
        credentials.authenticate(again, key)
    _drop_all(plane_db)
