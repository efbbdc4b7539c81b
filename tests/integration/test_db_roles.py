"""Least privilege in PostgreSQL (issue 13, item 1): every service role can do its job and every
forbidden write or read fails for the role that must not do it (`data_plane.roles`).

The insider attacks come from the issue: a fabricated `placed` decision, a catalog rewritten to
PUBLIC, a truncated ledger, disabled append-only triggers, a plain SELECT of personal chunks,
telemetry written for another node."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from data_plane import catalog_store, migrations, roles
from data_plane.vector_store import RegionStore, ensure_store
from reasoning_plane import store
from reasoning_plane.model import TelemetrySample
from resources.database import as_user, database_url

pytestmark = pytest.mark.usefixtures("plane_db")

DENIED = (psycopg.errors.InsufficientPrivilege, psycopg.errors.RaiseException)
EU = RegionStore(region="EU", schema="vectors_roles_eu")


@pytest.fixture
def admin(plane_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(plane_db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS governance CASCADE")
    with psycopg.connect(plane_db) as conn:
        store.ensure_schema(conn)
        catalog_store.ensure_schema(conn)
        ensure_store(conn, EU)
        conn.commit()
        yield conn
    with psycopg.connect(plane_db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS vectors_roles_eu CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS governance CASCADE")


def connect(role: str) -> psycopg.Connection:
    return psycopg.connect(database_url(role=role), autocommit=True)


def refused(conn: psycopg.Connection, statement: str, params: tuple = ()) -> str:
    with pytest.raises(DENIED) as caught:
        conn.execute(statement, params)
    return str(caught.value)


DECISION_ROW = (
    "INSERT INTO plane.decisions (decision_id, request_id, workload, team, status, cluster,"
    " policy_version, snapshot_hash, payload, explanation, decided_at)"
    " VALUES ('forged', 'r', 'embeddings/support_tickets', 'support', 'placed',"
    " 'us-east-a100', 'v', 's', '{}', 'forged', now())"
)


def test_each_service_logs_in_as_its_own_role(admin) -> None:
    for role, name in roles.ROLE_NAMES.items():
        with connect(role) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (name,)
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert superuser.fetchone() == (False,)


def test_a_run_worker_cannot_fabricate_a_decision_or_touch_the_ledger(admin) -> None:
    with connect("worker") as conn:
        assert "permission denied" in refused(conn, DECISION_ROW)
        refused(
            conn,
            "INSERT INTO plane.ledger (team, decision_id, kind, gpus, usd)"
            " VALUES ('t', 'x', 'reserve', 1, 0)",
        )
        refused(conn, "UPDATE plane.requests SET status = 'placed'")
        refused(conn, "TRUNCATE plane.ledger")
        # it may read decisions (the guard verifies them) but claims none: only the plane
        # (launcher, `plane run`) does, so a worker cannot claim other teams' decisions away
        conn.execute("SELECT count(*) FROM plane.decisions")
        message = refused(conn, "SELECT plane.claim_decision('nope', 'run-1')")
        assert "permission denied for function claim_decision" in message
    with connect("plane") as conn:
        message = refused(conn, "SELECT plane.claim_decision('nope', 'run-1')")
        assert "not a placed decision" in message


def test_no_service_can_truncate_or_disable_the_append_only_triggers(admin) -> None:
    for role in roles.ROLE_NAMES:
        with connect(role) as conn:
            for table in ("plane.decisions", "plane.ledger", "governance.catalog_history"):
                refused(conn, f"TRUNCATE {table}")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")


def test_the_plane_appends_but_cannot_rewrite_or_write_the_catalog(admin) -> None:
    with connect("plane") as conn:
        conn.execute(DECISION_ROW)  # its job: it is the plane (the launcher verifies signatures)
        refused(conn, "UPDATE plane.decisions SET cluster = 'eu' WHERE decision_id = 'forged'")
        refused(conn, "DELETE FROM plane.decisions WHERE decision_id = 'forged'")
        refused(conn, "DELETE FROM plane.ledger")
        refused(
            conn,
            'UPDATE governance.catalog SET record = record || \'{"classification": "PUBLIC"}\'',
        )
        refused(
            conn,
            "INSERT INTO governance.catalog (dataset_id, record, owner_team, entry_hash)"
            " VALUES ('x', '{}', 't', 'h')",
        )


def test_only_the_steward_writes_the_catalog(admin) -> None:
    statement = "UPDATE governance.catalog SET owner_team = owner_team WHERE false"
    for role in ("plane", "worker", "reader"):
        with connect(role) as conn:
            refused(conn, statement)
    with connect("steward") as conn:
        conn.execute(statement)
        refused(conn, "DELETE FROM governance.catalog")
        refused(conn, DECISION_ROW)


def test_no_plain_select_of_chunk_text_for_the_plane_or_a_reader(admin) -> None:
    for role in ("plane", "reader", "steward"):
        with connect(role) as conn:
            refused(conn, "SELECT text FROM vectors_roles_eu.chunks")
    with connect("worker") as conn:  # the embedding asset writes (and re-reads) its output
        conn.execute("SELECT count(*) FROM vectors_roles_eu.chunks")


def _now() -> datetime:
    return datetime.now(UTC)


def sample(cluster: str, node: str) -> tuple:
    return (cluster, "A10", 1, 0.5, 20.0, datetime.now(UTC), node)


INSERT_SAMPLE = (
    "INSERT INTO plane.telemetry (cluster, gpu_type, free_gpus, utilisation, free_memory_gb,"
    " observed_at, node) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def test_an_agent_writes_and_prunes_only_its_own_nodes_samples(admin) -> None:
    mine = store.ensure_agent_role(admin, "eu-fra-a10", "node-a")
    store.ensure_agent_role(admin, "eu-fra-a10", "node-b")
    admin.execute(INSERT_SAMPLE, sample("eu-fra-a10", "node-b"))
    admin.commit()
    with psycopg.connect(as_user(database_url(), mine), autocommit=True) as conn:
        conn.execute(INSERT_SAMPLE, sample("eu-fra-a10", "node-a"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(INSERT_SAMPLE, sample("eu-fra-a10", "node-b"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(INSERT_SAMPLE, sample("", "node-a"))  # another (or no) cluster
        # the agent's own code path (store.insert_samples) works under row-level security
        store.insert_samples(
            conn, [TelemetrySample("eu-fra-a10", "A10", 1, 0.5, _now(), node="node-a")]
        )
        gone = conn.execute("DELETE FROM plane.telemetry").rowcount
        assert gone == 2  # its own rows; node-b's is not even visible to DELETE
        refused(conn, DECISION_ROW)
        refused(conn, "SELECT * FROM governance.catalog")
    left = admin.execute("SELECT node FROM plane.telemetry").fetchall()
    assert left == [("node-b",)]


def test_a_clusters_agent_daemonset_writes_its_clusters_nodes_only(admin) -> None:
    """One Secret for a cluster's agent DaemonSet (a DaemonSet cannot give each node its own):
    the role may write any node of its cluster, no other cluster's."""
    fleet = store.ensure_agent_role(admin, "eu-fra-a10")
    admin.commit()
    assert fleet != roles.agent_role("eu-fra-a10", "node-a")
    with psycopg.connect(as_user(database_url(), fleet), autocommit=True) as conn:
        conn.execute(INSERT_SAMPLE, sample("eu-fra-a10", "node-a"))
        conn.execute(INSERT_SAMPLE, sample("eu-fra-a10", "node-z"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(INSERT_SAMPLE, sample("us-east-a100", "node-a"))
    with connect("plane") as conn:  # the plane reads telemetry; only agents write it
        refused(conn, INSERT_SAMPLE, sample("eu-fra-a10", "node-a"))
        assert conn.execute("SELECT count(*) FROM plane.telemetry").fetchone() == (2,)


def _residency_row(model: str) -> dict:
    return {"runtime": "llama.cpp", "model": model, "state": "loaded", "since": _now()}


def test_a_serving_node_agent_reads_and_reports_only_its_own_nodes_residency(admin) -> None:
    """`plane node-agent --node node-a` logs in as node-a's agent role: it reads node-a's plan
    and reports node-a's state, and can neither read node-b's plan nor write, see or delete
    node-b's report (it used to log in as the plane, which could do all of that). The
    residency asset (the plane) still writes the whole plan and reads every node's report."""
    mine = store.ensure_agent_role(admin, "eu-fra-a10", "node-a")
    theirs = store.ensure_agent_role(admin, "eu-fra-a10", "node-b")
    cluster_wide = store.ensure_agent_role(admin, "eu-fra-a10")
    admin.execute("DELETE FROM plane.residency_actual")
    admin.commit()
    with connect("plane") as plane, plane.transaction():
        store.write_desired(
            plane,
            [
                ("node-a", "llama.cpp", "gemma", "loaded", "demand"),
                ("node-b", "llama.cpp", "qwen", "loaded", "demand"),
            ],
            "p1",
            _now(),
        )
    with psycopg.connect(as_user(database_url(), theirs)) as conn:
        store.report_actual(conn, "node-b", [_residency_row("qwen")], _now())
        conn.commit()
    with psycopg.connect(as_user(database_url(), mine), autocommit=True) as conn:
        assert store.agent_nodes(conn) == {("eu-fra-a10", "node-a")}
        assert [r[1] for r in store.desired_of(conn, "node-a")] == ["gemma"]
        assert store.desired_of(conn, "node-b") == []  # node-b's plan is not even visible
        assert conn.execute("SELECT node FROM plane.residency_desired").fetchall() == [("node-a",)]
        with conn.transaction():  # the agent's own code path works under row-level security
            store.report_actual(conn, "node-a", [_residency_row("gemma")], _now())
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
            conn.transaction(),
        ):
            store.report_actual(conn, "node-b", [_residency_row("fake")], _now())
        assert [r["node"] for r in store.actual_state(conn)] == ["node-a"]
        # when the plane received a report is the plane's clock, never the agent's to set
        refused(
            conn,
            "INSERT INTO plane.residency_actual (node, runtime, model, state, since,"
            " reported_at, received_at) VALUES ('node-a', 'llama.cpp', 'late', 'loaded', now(),"
            " now(), now() + interval '1 day')",
        )
        assert conn.execute("DELETE FROM plane.residency_actual").rowcount == 1  # its own
        refused(conn, "DELETE FROM plane.residency_desired")
        refused(
            conn,
            "INSERT INTO plane.residency_desired (node, runtime, model, state, why, plan_id,"
            " planned_at) VALUES ('node-a', 'llama.cpp', 'x', 'loaded', 'forged', 'p', now())",
        )
    with psycopg.connect(as_user(database_url(), cluster_wide), autocommit=True) as conn:
        assert store.desired_of(conn, "node-a") == []  # a cluster's telemetry role: no node's
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            store.report_actual(conn, "node-a", [_residency_row("gemma")], _now())
    with connect("plane") as plane:
        assert [(r["node"], r["model"]) for r in store.actual_state(plane)] == [("node-b", "qwen")]
        assert len(store.desired_of(plane, "node-a") + store.desired_of(plane, "node-b")) == 2
        assert store.agent_nodes(plane) == set()
        # the plane reads every report but writes none: only a node's own agent does
        with pytest.raises(DENIED), plane.transaction():
            store.report_actual(plane, "node-b", [_residency_row("fake")], _now())


def test_a_service_role_brings_a_dropped_schema_back_through_the_administrator(admin) -> None:
    """A service never runs DDL itself: a missing or older schema is set up by the
    administrator (embedded: its superuser), then the service goes on as its role."""
    admin.execute("DROP SCHEMA plane CASCADE")
    admin.commit()
    with connect("plane") as conn:
        store.ensure_schema(conn)
        assert conn.execute("SELECT count(*) FROM plane.decisions").fetchone() == (0,)
        owner = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'plane' AND tablename = 'ledger'"
        ).fetchone()
        assert owner is not None and owner[0] != roles.PLANE


def test_without_an_administrator_a_service_says_to_migrate(admin, monkeypatch) -> None:
    admin.execute("DROP SCHEMA plane CASCADE")
    admin.commit()
    monkeypatch.setattr(migrations, "admin_url", lambda: None)
    with (
        connect("plane") as conn,
        pytest.raises(migrations.MigrationNeeded, match="plane db migrate"),
    ):
        store.ensure_schema(conn)


# -- readers: chunk text only through the store's search function ---------------------------


def _vector(seed: int) -> list[float]:
    import numpy as np

    v = np.random.default_rng(seed).normal(size=EU.dim)
    return (v / np.linalg.norm(v)).tolist()


@pytest.fixture
def stocked(admin) -> psycopg.Connection:
    """The EU store with a PII chunk of support_tickets and a public one of eu_talks; the
    catalog's entries; support-copilot may read both served in EU (a grant as `sync_read_grants`
    writes), media-tagger only eu_talks."""
    from data_plane.vector_store import SEARCH_FUNCTION  # noqa: F401 (the function exists)

    catalog_store.ensure_schema(admin)
    for dataset, owner in (("support_tickets", "customer-support"), ("eu_talks", "media-ml")):
        admin.execute(
            "INSERT INTO governance.catalog (dataset_id, record, owner_team, entry_hash)"
            " VALUES (%s, '{}', %s, %s) ON CONFLICT (dataset_id) DO UPDATE"
            " SET entry_hash = EXCLUDED.entry_hash",
            (dataset, owner, f"h-{dataset}"),
        )
    for n, (dataset, pii) in enumerate((("support_tickets", True), ("eu_talks", False))):
        admin.execute(
            "INSERT INTO vectors_roles_eu.chunks (chunk_id, dataset_id, source_column, row_ref,"
            " chunk_index, text, classification, residency, owner_team, pii, pii_types,"
            " content_hash, model, embedding) VALUES (%s, %s, 'body', %s, 0, %s, %s, 'EU', 't',"
            " %s, '{}', 'c', 'm', %s::vector)",
            (
                f"c{n}",
                dataset,
                f"r{n}",
                f"text of {dataset}",
                "PII" if pii else "PUBLIC",
                pii,
                str(_vector(n)),
            ),
        )
    grants = [
        ("support-copilot", "support_tickets", "EU", "h-support_tickets"),
        ("support-copilot", "eu_talks", "EU", "h-eu_talks"),
        ("support-copilot", "eu_talks", "US", "h-eu_talks"),
        ("support-copilot", "support_tickets", "US", "h-support_tickets"),
        ("media-tagger", "eu_talks", "EU", "h-eu_talks"),
    ]
    catalog_store.replace_read_grants(admin, grants, "test")
    admin.commit()
    return admin


def governed(key: str, region: str = "EU", datasets=None, exclude_pii: bool = False) -> list:
    import numpy as np

    from data_plane.vector_store import search_store

    with connect("reader") as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        hits = search_store(
            conn,
            EU,
            np.array(_vector(0)),
            5,
            allowed_datasets=datasets,
            exclude_pii=exclude_pii,
            credential=key,
            serve_region=region,
        )
    return sorted(h.dataset_id for h in hits)


def test_a_reader_reads_only_its_keys_grants_through_the_search_function(stocked) -> None:
    from data_plane import credentials

    _, copilot = credentials.issue(stocked, "support-copilot")
    _, tagger = credentials.issue(stocked, "media-tagger")
    stocked.commit()
    assert governed(copilot) == ["eu_talks", "support_tickets"]
    # asking for a dataset by name opens nothing the grants do not
    assert governed(tagger, datasets=["support_tickets", "eu_talks"]) == ["eu_talks"]
    assert governed(tagger, region="US") == []  # no grant for US
    # PII stays in its region, and an exclusion is honoured
    assert governed(copilot, region="US") == ["eu_talks"]
    assert governed(copilot, exclude_pii=True) == ["eu_talks"]


def test_a_bad_or_revoked_key_reads_nothing(stocked) -> None:
    from data_plane import credentials
    from data_plane.vector_store import VectorStoreError

    key_id, token = credentials.issue(stocked, "support-copilot")
    stocked.commit()
    with pytest.raises(VectorStoreError, match="API key unknown or revoked"):
        governed(token + "x")
    credentials.revoke(stocked, key_id)
    stocked.commit()
    with pytest.raises(VectorStoreError, match="API key unknown or revoked"):
        governed(token)


def test_a_grant_is_void_once_the_catalog_entry_changed(stocked) -> None:
    """A catalog rewritten behind the steward's back (or re-tagged) voids the grants decided on
    the old entry until they are decided again: fail closed."""
    from data_plane import credentials

    _, token = credentials.issue(stocked, "support-copilot")
    stocked.execute(
        "UPDATE governance.catalog SET entry_hash = 'rewritten' WHERE dataset_id = 'eu_talks'"
    )
    stocked.commit()
    assert governed(token) == ["support_tickets"]


# -- holes found by a second reading (each failed before its fix) ---------------------------


def test_no_service_role_can_plant_functions_where_definer_code_would_find_them(admin) -> None:
    """A function planted in a schema on a SECURITY DEFINER function's or a trigger's
    search_path would run as its owner. The set-up closes ``public`` (open by default before
    PostgreSQL 15) and pins the search_path of every function it owns."""
    admin.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # as on PostgreSQL 14 and older
    admin.commit()
    store.ensure_schema(admin)
    admin.commit()
    for role in roles.ROLE_NAMES:
        with connect(role) as conn:
            refused(
                conn,
                "CREATE FUNCTION public.convert_to(t text, e text) RETURNS bytea"
                " LANGUAGE sql AS 'SELECT NULL::bytea'",
            )
    unpinned = admin.execute(
        "SELECT n.nspname || '.' || p.proname FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname IN ('plane', 'governance', 'audit', 'vectors_roles_eu')"
        " AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY(p.proconfig), false)"
    ).fetchall()
    assert unpinned == []


def test_the_plane_cannot_map_agent_roles_nor_an_agent_become_its_group(admin) -> None:
    with connect("plane") as conn:
        refused(conn, "INSERT INTO plane.agent_nodes VALUES ('rp_agent', 'eu-fra-a10', '*')")
    mine = store.ensure_agent_role(admin, "eu-fra-a10", "node-a")
    admin.commit()
    with psycopg.connect(as_user(database_url(), mine), autocommit=True) as conn:
        refused(conn, "SET ROLE rp_agent")


def test_an_agent_cannot_stamp_samples_far_ahead_or_set_their_receipt(admin) -> None:
    """A sample stamped years ahead would hide its neighbours' and freeze its pool."""
    mine = store.ensure_agent_role(admin, "eu-fra-a10", "node-a")
    admin.commit()
    ahead = (*sample("eu-fra-a10", "node-a")[:5], _now() + timedelta(days=3650), "node-a")
    with psycopg.connect(as_user(database_url(), mine), autocommit=True) as conn:
        assert "row-level security" in refused(conn, INSERT_SAMPLE, ahead)
        refused(
            conn,
            "INSERT INTO plane.telemetry (cluster, gpu_type, free_gpus, utilisation,"
            " observed_at, node, received_at) VALUES ('eu-fra-a10', 'A10', 1, 0.5, now(),"
            " 'node-a', now() + interval '10 years')",
        )


def test_read_grants_change_only_through_the_recorded_path(stocked) -> None:
    """The steward decides who may read what (the Cedar policies over the catalog); a grant
    written behind that path would open data to anyone. Only `replace_read_grants` changes
    them, and each change is a row of a hash-chained log."""
    from data_plane.hash_chain import verify_chain

    forged = (
        "INSERT INTO governance.read_grants VALUES"
        " ('mallory', 'support_tickets', 'EU', 'h-support_tickets', 'forged')"
    )
    for role in roles.ROLE_NAMES:
        with connect(role) as conn:
            refused(conn, forged)
    with connect("steward") as conn:
        catalog_store.replace_read_grants(conn, [("guest", "eu_talks", "EU", "h-eu_talks")], "v2")
    logged = stocked.execute(
        "SELECT grants, policy_version FROM governance.read_grants_log ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert logged == ([["guest", "eu_talks", "EU", "h-eu_talks"]], "v2")
    assert verify_chain(stocked, "governance.read_grants_log").ok


def test_the_search_function_bounds_k_and_readers_see_no_key_hashes(stocked) -> None:
    from data_plane import credentials

    _, key = credentials.issue(stocked, "support-copilot")
    stocked.commit()
    with connect("reader") as conn:
        refused(conn, "SELECT key_hash FROM governance.api_keys")
        with pytest.raises(psycopg.errors.RaiseException, match="k must be between 1 and 1000"):
            conn.execute(
                "SELECT * FROM vectors_roles_eu.governed_search(%s, 'EU', NULL, false,"
                " %s::vector, 100000)",
                (key, str(_vector(0))),
            )


def test_plane_db_migrate_sets_everything_up(admin, capsys) -> None:
    from plane_cli.main import main

    code = main(["db", "migrate"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "plane" in out and "vectors EU" in out and "read grants" in out
