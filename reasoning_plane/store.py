"""The reasoning plane's durable state in PostgreSQL (schema ``plane``).

* ``plane.decisions``: append-only decision log (a trigger refuses UPDATE and DELETE): every
  decision with all candidates, reasons and costs, keyed by decision id, request, run key, policy
  version and the hash of the telemetry snapshot used;
* ``plane.decision_claims``: the one run that may carry out each placed decision, claimed
  atomically at launch (or by the run itself when nothing launched it): a decision launches at
  most one run;
* ``plane.decision_runs``: which Dagster run carried out which decision;
* ``plane.ledger``: append-only budget and GPU ledger: ``reserve`` before launch, then ``settle``
  (actual cost) or ``release`` when the run ends;
* ``plane.telemetry``: pushed GPU telemetry samples;
* ``plane.requests``: explicit workload requests waiting to be placed (and re-placements).

Reservations are made in one transaction per tick under the tick's advisory lock, re-checking
quota and budget against the ledger as it is at that moment, so two sensor ticks (or daemons)
placing at once can never jointly exceed a quota or a budget.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.copy import QueuedLibpqWriter
from psycopg.types.json import Jsonb

from data_plane.hash_chain import ensure_chain
from data_plane.migrations import Schema, ensure
from data_plane.roles import (
    AGENT,
    ANY_NODE,
    PLANE,
    STEWARD,
    WORKER,
    create_agent_role,
    grant,
    usage,
)
from reasoning_plane.binding import SignedDecision, binding_of
from reasoning_plane.explain import Renderer, explain, to_dict
from reasoning_plane.model import CPU, Decision, Snapshot, TeamUsage, TelemetrySample
from reasoning_plane.policy import PlacementPolicy
from reasoning_plane.signing import Signer

# Migration steps (`data_plane.migrations.Schema`): released steps are never edited; a change is a
# new step at the end. Step 1 is the schema as the release before versioned migrations built it.
DDL = """
CREATE SCHEMA IF NOT EXISTS plane;
CREATE TABLE IF NOT EXISTS plane.decisions (
    decision_id     text PRIMARY KEY,
    request_id      text NOT NULL,
    run_key         text,
    workload        text NOT NULL,
    team            text NOT NULL,
    status          text NOT NULL,
    cluster         text,
    gpu_type        text,
    executor        text,
    est_cost_usd    double precision,
    policy_version  text NOT NULL,
    snapshot_hash   text NOT NULL,
    payload         jsonb NOT NULL,
    explanation     text NOT NULL,
    decided_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    binding         jsonb,
    signature       text,
    key_id          text
);
ALTER TABLE plane.decisions ADD COLUMN IF NOT EXISTS binding jsonb,
    ADD COLUMN IF NOT EXISTS signature text, ADD COLUMN IF NOT EXISTS key_id text;
CREATE INDEX IF NOT EXISTS decisions_workload ON plane.decisions (workload, decided_at);
CREATE INDEX IF NOT EXISTS decisions_run_key ON plane.decisions (run_key);
CREATE TABLE IF NOT EXISTS plane.snapshots (
    telemetry_sha text PRIMARY KEY,
    telemetry     jsonb NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS plane.decision_runs (
    run_id      text PRIMARY KEY,
    decision_id text NOT NULL REFERENCES plane.decisions (decision_id),
    linked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS plane.decision_claims (
    decision_id text PRIMARY KEY REFERENCES plane.decisions (decision_id),
    run_id      text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS plane.ledger (
    id          bigserial PRIMARY KEY,
    team        text NOT NULL,
    decision_id text NOT NULL REFERENCES plane.decisions (decision_id),
    run_id      text,
    kind        text NOT NULL CHECK (kind IN ('reserve', 'settle', 'release')),
    cluster     text,
    gpu_type    text,
    gpus        integer NOT NULL,
    usd         double precision NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_one_reserve ON plane.ledger (decision_id)
    WHERE kind = 'reserve';
CREATE UNIQUE INDEX IF NOT EXISTS ledger_one_close ON plane.ledger (decision_id)
    WHERE kind IN ('settle', 'release');
CREATE TABLE IF NOT EXISTS plane.telemetry (
    id             bigserial PRIMARY KEY,
    cluster        text NOT NULL,
    gpu_type       text NOT NULL,
    free_gpus      integer NOT NULL CHECK (free_gpus >= 0),
    utilisation    double precision NOT NULL CHECK (utilisation BETWEEN 0 AND 1),
    free_memory_gb double precision,
    observed_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    node           text NOT NULL DEFAULT ''
);
ALTER TABLE plane.telemetry ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT '';
-- the free memory of each of the node's GPUs of this type (NULL: not reported)
ALTER TABLE plane.telemetry ADD COLUMN IF NOT EXISTS free_memory_per_gpu_gb double precision[];
CREATE INDEX IF NOT EXISTS telemetry_latest_node
    ON plane.telemetry (cluster, gpu_type, node, observed_at DESC);
CREATE TABLE IF NOT EXISTS plane.requests (
    request_id  text PRIMARY KEY,
    payload     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'pending',
    decision_id text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION plane.refuse_change() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'decisions_append_only') THEN
        CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON plane.decisions
            FOR EACH ROW EXECUTE FUNCTION plane.refuse_change();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'snapshots_append_only') THEN
        CREATE TRIGGER snapshots_append_only BEFORE UPDATE OR DELETE ON plane.snapshots
            FOR EACH ROW EXECUTE FUNCTION plane.refuse_change();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'claims_append_only') THEN
        CREATE TRIGGER claims_append_only BEFORE UPDATE OR DELETE ON plane.decision_claims
            FOR EACH ROW EXECUTE FUNCTION plane.refuse_change();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'claims_no_truncate') THEN
        CREATE TRIGGER claims_no_truncate BEFORE TRUNCATE ON plane.decision_claims
            FOR EACH STATEMENT EXECUTE FUNCTION plane.refuse_change();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'ledger_append_only') THEN
        CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON plane.ledger
            FOR EACH ROW EXECUTE FUNCTION plane.refuse_change();
    END IF;
END $$;
"""


# Step 3 (issue 15): one decision record per gateway request (`reasoning_plane.serving.records`),
# written in batches off the request path (`serving.records.Recorder`), append-only and chained.
# A placed request's row is written when it has ended, with its settlement (actual cost, tokens),
# so no row is ever updated; its settled cost counts in the team's spend with the batch ledger's.
SERVING_DDL = """
CREATE TABLE IF NOT EXISTS plane.serving_decisions (
    request_id         text PRIMARY KEY,
    decision_id        text NOT NULL,
    decided_at         timestamptz NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    team               text NOT NULL,
    principal          text NOT NULL,
    model              text NOT NULL,
    status             text NOT NULL CHECK (status IN ('placed', 'deferred', 'rejected')),
    endpoint_id        text,
    cluster            text,
    reason             text NOT NULL,
    runner_up          text,
    runner_up_usd      double precision,
    fastest_endpoint   text,
    fastest_usd        double precision,
    fastest_feasible   boolean,
    estimated_usd      double precision,
    actual_usd         double precision,
    settled_at         timestamptz,
    prompt_tokens      integer NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  integer NOT NULL CHECK (completion_tokens >= 0),
    rejected_by_rule   jsonb NOT NULL,
    policy_version     text NOT NULL,
    snapshot_hash      text NOT NULL,
    payload            jsonb NOT NULL,
    CHECK ((status = 'placed') = (estimated_usd IS NOT NULL)),
    CHECK ((actual_usd IS NULL) = (settled_at IS NULL)),
    CHECK (actual_usd IS NULL OR status = 'placed')
);
CREATE INDEX IF NOT EXISTS serving_decisions_decided
    ON plane.serving_decisions (decided_at, model);
CREATE INDEX IF NOT EXISTS serving_decisions_team_settled
    ON plane.serving_decisions (team, settled_at) WHERE actual_usd IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS serving_decisions_decision_id
    ON plane.serving_decisions (decision_id);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'serving_decisions_append_only') THEN
        CREATE TRIGGER serving_decisions_append_only
            BEFORE UPDATE OR DELETE ON plane.serving_decisions
            FOR EACH ROW EXECUTE FUNCTION plane.refuse_change();
    END IF;
END $$;
"""

# Step 4 (issue 16): how placement ticks went, for the metrics exporter (`plane metrics`): one
# row per tick source, cumulative counts (a Prometheus histogram of tick durations in
# `TICK_BUCKETS_S`, failures), written by each tick in its own transaction, so the exporter is
# right whichever process ticked (the Dagster code server, `plane run`).
TICK_STATS_DDL = """
CREATE TABLE IF NOT EXISTS plane.tick_stats (
    source          text PRIMARY KEY,
    ticks           bigint NOT NULL DEFAULT 0,
    failures        bigint NOT NULL DEFAULT 0,
    duration_sum_s  double precision NOT NULL DEFAULT 0,
    bucket_counts   bigint[] NOT NULL,
    last_duration_s double precision,
    last_ok_at      timestamptz,
    last_failure_at timestamptz,
    last_error      text
);
"""
TICK_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def record_tick(conn: psycopg.Connection, source: str, duration_s: float) -> None:
    """Count a tick that decided in ``duration_s`` (call in the tick's transaction)."""
    counts = [int(duration_s <= le) for le in TICK_BUCKETS_S]
    conn.execute(
        "INSERT INTO plane.tick_stats AS t (source, ticks, duration_sum_s, bucket_counts,"
        " last_duration_s, last_ok_at) VALUES (%(s)s, 1, %(d)s, %(c)s, %(d)s, now())"
        " ON CONFLICT (source) DO UPDATE SET ticks = t.ticks + 1,"
        " duration_sum_s = t.duration_sum_s + %(d)s, last_duration_s = %(d)s,"
        " last_ok_at = now(), bucket_counts = ARRAY(SELECT a + b FROM"
        " unnest(t.bucket_counts, %(c)s::bigint[]) WITH ORDINALITY AS x(a, b, i) ORDER BY i)",
        {"s": source, "d": duration_s, "c": counts},
    )


def record_tick_failure(conn: psycopg.Connection, source: str, error: str) -> None:
    """Count a tick that failed (in a transaction of its own: the tick's was rolled back)."""
    conn.execute(
        "INSERT INTO plane.tick_stats AS t (source, failures, bucket_counts, last_failure_at,"
        " last_error) VALUES (%(s)s, 1, %(c)s, now(), %(e)s) ON CONFLICT (source) DO UPDATE"
        " SET failures = t.failures + 1, last_failure_at = now(), last_error = %(e)s",
        {"s": source, "c": [0] * len(TICK_BUCKETS_S), "e": error[:2000]},
    )


# Step 5 (issue 15, items 5-6): the model residency loop, Kubernetes-style. The
# ``serving/residency_plan`` asset writes what each node should hold (``residency_desired``,
# replaced whole per plan); each node's serving agent (`serving.node_agent`, ``plane
# node-agent``) applies its node's rows through the runtime adapters it holds for its lifetime
# and writes back what its runtimes hold (``residency_actual``: state, since when, where it
# answers, the last error and why). A cold row in ``residency_actual`` remembers when a model
# went (the planner's cool-down). Both are state, not history: rows are replaced.
RESIDENCY_DDL = """
CREATE TABLE IF NOT EXISTS plane.residency_desired (
    node        text NOT NULL,
    runtime     text NOT NULL,
    model       text NOT NULL,
    state       text NOT NULL CHECK (state IN ('loaded', 'sleeping', 'cold')),
    why         text NOT NULL,
    plan_id     text NOT NULL,
    planned_at  timestamptz NOT NULL,
    PRIMARY KEY (node, runtime, model)
);
CREATE TABLE IF NOT EXISTS plane.residency_actual (
    node        text NOT NULL,
    runtime     text NOT NULL,
    model       text NOT NULL,
    state       text NOT NULL CHECK (state IN ('loaded', 'sleeping', 'cold')),
    since       timestamptz NOT NULL,
    url         text,
    error       text,
    plan_id     text,
    reported_at timestamptz NOT NULL,  -- the agent's clock
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),  -- the plane's (not the agents')
    PRIMARY KEY (node, runtime, model)
);
-- the residency sensor reads the requests recorded since its cursor every few seconds
CREATE INDEX IF NOT EXISTS serving_decisions_recorded
    ON plane.serving_decisions (recorded_at);
"""

# Step 6: each serving node agent writes (and reads) its own node's rows only. It logs in as its
# node's agent role (`data_plane.roles.agent_role`, the telemetry agent's identity on that node,
# mapped in ``plane.agent_nodes``); row-level security keys on that login (``session_user``),
# which the agent cannot choose. The policies are the grants' (below), made where the roles exist.
RESIDENCY_RLS = """
ALTER TABLE plane.residency_desired ENABLE ROW LEVEL SECURITY;
ALTER TABLE plane.residency_actual ENABLE ROW LEVEL SECURITY;
"""

# see data_plane.hash_chain
CHAINED = ("plane.decisions", "plane.ledger", "plane.snapshots", "plane.serving_decisions")

# Who may do what on plane.* (data_plane.roles). No service role owns a table, so none can
# truncate, disable a trigger or change a table.
ROLES_DDL = """
CREATE TABLE IF NOT EXISTS plane.agent_nodes (
    role    text PRIMARY KEY,
    cluster text NOT NULL,
    node    text NOT NULL
);
CREATE OR REPLACE FUNCTION plane.claim_decision(p_decision text, p_run text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE holder text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM plane.decisions WHERE decision_id = p_decision
                   AND status = 'placed') THEN
        RAISE EXCEPTION 'decision % is not a placed decision', p_decision;
    END IF;
    INSERT INTO plane.decision_claims (decision_id, run_id) VALUES (p_decision, p_run)
        ON CONFLICT (decision_id) DO NOTHING;
    SELECT run_id INTO holder FROM plane.decision_claims WHERE decision_id = p_decision;
    RETURN holder;
END $$;
REVOKE ALL ON FUNCTION plane.claim_decision(text, text) FROM PUBLIC;
ALTER TABLE plane.telemetry ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS everyone_reads ON plane.telemetry;
CREATE POLICY everyone_reads ON plane.telemetry FOR SELECT USING (true);
DROP POLICY IF EXISTS plane_writes ON plane.telemetry;
DROP POLICY IF EXISTS agent_own_node ON plane.telemetry;
DROP POLICY IF EXISTS plane_plans ON plane.residency_desired;
DROP POLICY IF EXISTS steward_reads ON plane.residency_desired;
DROP POLICY IF EXISTS agent_own_node ON plane.residency_desired;
DROP POLICY IF EXISTS plane_reads ON plane.residency_actual;
DROP POLICY IF EXISTS steward_reads ON plane.residency_actual;
DROP POLICY IF EXISTS agent_own_node ON plane.residency_actual;
"""
_AGENT_MAPPED = (
    "EXISTS (SELECT 1 FROM plane.agent_nodes a WHERE a.role = session_user"
    " AND a.cluster = telemetry.cluster AND a.node IN (telemetry.node, '*'))"
)
# A serving node agent's rows: those of the one node its login is mapped to (a cluster-wide
# telemetry role, node ``*``, has none).
_AGENT_OWN_RESIDENCY = (
    "EXISTS (SELECT 1 FROM plane.agent_nodes a WHERE a.role = session_user"
    " AND a.node <> '*' AND a.node = {table}.node)"
)
# Samples further ahead than this are refused by the database itself (the plane refuses
# anything beyond max_clock_skew_s, default 5 s): a node cannot freeze its pool for long.
AGENT_MAX_AHEAD_S = 60
GRANTS = [
    # what earlier versions granted is taken back first: grants below are the whole set
    *[
        (role, f"REVOKE ALL ON ALL TABLES IN SCHEMA plane FROM {role}")
        for role in (PLANE, WORKER, STEWARD, AGENT)
    ],
    *[
        (role, f"REVOKE ALL ON FUNCTION plane.claim_decision(text, text) FROM {role}")
        for role in (WORKER, STEWARD)
    ],
    *usage("plane", PLANE, WORKER, STEWARD, AGENT),
    (PLANE, f"GRANT SELECT ON ALL TABLES IN SCHEMA plane TO {PLANE}"),
    (
        PLANE,
        "GRANT INSERT ON plane.decisions, plane.snapshots, plane.ledger, plane.decision_runs,"
        f" plane.requests TO {PLANE}",
    ),
    (PLANE, f"GRANT UPDATE (status, decision_id, updated_at) ON plane.requests TO {PLANE}"),
    # the gateway (role plane) appends decision records; a steward reads them
    (PLANE, f"GRANT INSERT ON plane.serving_decisions TO {PLANE}"),
    (STEWARD, f"GRANT SELECT ON plane.serving_decisions TO {STEWARD}"),
    # the residency asset (role plane) writes the desired state and reads every node's report;
    # each serving node agent (its node's agent role, `plane node-agent`) reads its node's
    # desired rows and reports its node's actual state, no other node's (row-level security)
    (PLANE, f"GRANT INSERT, DELETE ON plane.residency_desired TO {PLANE}"),
    (
        PLANE,
        f"CREATE POLICY plane_plans ON plane.residency_desired FOR ALL TO {PLANE}"
        " USING (true) WITH CHECK (true)",
    ),
    (
        PLANE,
        f"CREATE POLICY plane_reads ON plane.residency_actual FOR SELECT TO {PLANE} USING (true)",
    ),
    (STEWARD, f"GRANT SELECT ON plane.residency_desired, plane.residency_actual TO {STEWARD}"),
    *[
        (
            STEWARD,
            f"CREATE POLICY steward_reads ON plane.{table} FOR SELECT TO {STEWARD} USING (true)",
        )
        for table in ("residency_desired", "residency_actual")
    ],
    (AGENT, f"GRANT SELECT ON plane.residency_desired TO {AGENT}"),
    (
        AGENT,
        f"CREATE POLICY agent_own_node ON plane.residency_desired FOR SELECT TO {AGENT}"
        f" USING ({_AGENT_OWN_RESIDENCY.format(table='residency_desired')})",
    ),
    (AGENT, f"GRANT SELECT, DELETE ON plane.residency_actual TO {AGENT}"),
    # not received_at: that is the plane's clock (a report is no fresher than its arrival)
    (
        AGENT,
        "GRANT INSERT (node, runtime, model, state, since, url, error, plan_id, reported_at)"
        f" ON plane.residency_actual TO {AGENT}",
    ),
    (
        AGENT,
        f"CREATE POLICY agent_own_node ON plane.residency_actual FOR ALL TO {AGENT}"
        f" USING ({_AGENT_OWN_RESIDENCY.format(table='residency_actual')})"
        f" WITH CHECK ({_AGENT_OWN_RESIDENCY.format(table='residency_actual')})",
    ),
    (PLANE, f"GRANT USAGE ON SEQUENCE plane.ledger_id_seq TO {PLANE}"),
    # each tick counts itself (`record_tick`); the metrics exporter reads (SELECT, above)
    (PLANE, f"GRANT INSERT, UPDATE ON plane.tick_stats TO {PLANE}"),
    # claims only through the function, and only by the plane (launcher, `plane run`)
    (PLANE, f"GRANT EXECUTE ON FUNCTION plane.claim_decision(text, text) TO {PLANE}"),
    *[
        (
            role,
            "GRANT SELECT ON plane.decisions, plane.decision_claims, plane.decision_runs,"
            f" plane.snapshots TO {role}",
        )
        for role in (WORKER, STEWARD)
    ],
    (AGENT, f"GRANT SELECT ON plane.agent_nodes TO {AGENT}"),
    (AGENT, f"GRANT SELECT, DELETE ON plane.telemetry TO {AGENT}"),
    # not received_at: that is the plane's clock
    (
        AGENT,
        "GRANT INSERT (cluster, gpu_type, free_gpus, utilisation, free_memory_gb, observed_at,"
        f" node, free_memory_per_gpu_gb) ON plane.telemetry TO {AGENT}",
    ),
    (AGENT, f"GRANT USAGE ON SEQUENCE plane.telemetry_id_seq TO {AGENT}"),
    (
        AGENT,
        f"CREATE POLICY agent_own_node ON plane.telemetry FOR ALL TO {AGENT}"
        f" USING ({_AGENT_MAPPED}) WITH CHECK ({_AGENT_MAPPED}"
        f" AND observed_at <= now() + make_interval(secs => {AGENT_MAX_AHEAD_S}))",
    ),
]
# Step 2: a request's status is one the plane writes (`reasoning_plane.tick`, the sensors).
# (Written to be safe to run again, should plane_meta ever be lost.)
REQUEST_STATUS = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'requests_status_known'
                   AND conrelid = 'plane.requests'::regclass) THEN
        ALTER TABLE plane.requests ADD CONSTRAINT requests_status_known
            CHECK (status IN ('pending', 'deferred', 'placed', 'rejected'));
    END IF;
END $$;
"""


def _finish(conn: psycopg.Connection) -> None:
    for table in CHAINED:
        ensure_chain(conn, table)
    conn.execute(ROLES_DDL)
    grant(conn, GRANTS)


SCHEMA = Schema(
    unit="plane",
    probe="plane.decisions",
    steps=(DDL, REQUEST_STATUS, SERVING_DDL, TICK_STATS_DDL, RESIDENCY_DDL, RESIDENCY_RLS),
    finish=_finish,
    extra=(ROLES_DDL, GRANTS, CHAINED),
)


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create or bring ``plane.*`` to this code's version (`data_plane.migrations.ensure`)."""
    ensure(conn, SCHEMA)


_DECISION_COLUMNS = (
    "decision_id, request_id, run_key, workload, team, status, cluster, gpu_type, executor,"
    " est_cost_usd, policy_version, snapshot_hash, payload, explanation, decided_at,"
    " binding, signature, key_id"
)


def _decision_row(
    decision: Decision,
    run_key: str | None,
    payload_json: str,
    explanation: str | None = None,
    signed: tuple[dict[str, Any], str, str] | None = None,
) -> tuple[Any, ...]:
    chosen = decision.chosen_evaluation
    binding, signature, kid = signed if signed is not None else (None, None, None)
    return (
        decision.decision_id,
        decision.request.request_id,
        run_key,
        decision.request.workload,
        decision.request.team,
        decision.status,
        decision.chosen.cluster if decision.chosen else None,
        decision.chosen.gpu_type if decision.chosen else None,
        decision.executor,
        chosen.cost.total_usd if chosen else None,
        decision.policy_version,
        decision.snapshot_hash,
        payload_json,
        explain(decision) if explanation is None else explanation,
        decision.decided_at,
        None if binding is None else json.dumps(binding),
        signature,
        kid,
    )


def _signed(
    decision: Decision, run_key: str | None, snapshot: Snapshot | None, signer: Signer | None
) -> tuple[dict[str, Any], str, str] | None:
    if signer is None or snapshot is None:
        return None
    binding = binding_of(decision, snapshot, run_key)
    return binding, signer.sign(binding), signer.key_id


def _payload_json(decision: Decision, snapshot_payload: dict[str, Any] | None) -> str:
    payload = to_dict(decision)
    if snapshot_payload is not None:
        payload["snapshot"] = snapshot_payload
    return json.dumps(payload)


def record_decision(
    conn: psycopg.Connection,
    decision: Decision,
    *,
    run_key: str | None = None,
    snapshot_payload: dict[str, Any] | None = None,
    snapshot: Snapshot | None = None,
    signer: Signer | None = None,
) -> None:
    """Append a decision (idempotent on its id: a re-evaluated tick does not duplicate it),
    signed with ``signer`` when given (its binding needs the ``snapshot`` it was decided on)."""
    conn.execute(
        f"INSERT INTO plane.decisions ({_DECISION_COLUMNS})"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s,"
        " %s::jsonb, %s, %s) ON CONFLICT (decision_id) DO NOTHING",
        _decision_row(
            decision,
            run_key,
            _payload_json(decision, snapshot_payload),
            signed=_signed(decision, run_key, snapshot, signer),
        ),
    )


def record_decisions(
    conn: psycopg.Connection,
    decisions: Sequence[tuple[Decision, str | None]],
    snapshot: Snapshot | None = None,
    signer: Signer | None = None,
) -> None:
    """Append many decisions (with their run keys) at once, each with what it read of
    ``snapshot`` (`snapshot_payload`): the same rows as `record_decision` one by one, idempotent
    on the decision id, written with one COPY into a temporary table and one INSERT.

    The snapshot's telemetry, the same for every decision of a tick, is serialised once and
    stored once, in ``plane.snapshots`` keyed by the SHA-256 of its JSON; each decision's
    snapshot refers to it (``telemetry_ref``) and the readers here (`decisions`,
    `decision_for`) put it back in place, so a logged payload reads as `record_decision`'s.
    With a ``signer`` each decision's binding is signed (`reasoning_plane.signing`).
    """
    if not decisions:
        return
    shared = _SharedSnapshot(snapshot) if snapshot is not None else None
    with conn.transaction(), conn.cursor() as cur:
        if shared is not None:
            cur.execute(
                "INSERT INTO plane.snapshots (telemetry_sha, telemetry) VALUES (%s, %s::jsonb)"
                " ON CONFLICT (telemetry_sha) DO NOTHING",
                (shared.telemetry_sha, shared.telemetry_json),
            )
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS plane_decisions_in"
            " (LIKE plane.decisions INCLUDING DEFAULTS, ord integer NOT NULL) ON COMMIT DROP"
        )
        cur.execute("TRUNCATE plane_decisions_in")
        # Rows are rendered while a thread sends the previous ones and the server parses them.
        with cur.copy(
            f"COPY plane_decisions_in ({_DECISION_COLUMNS}, ord) FROM STDIN",
            writer=QueuedLibpqWriter(cur),
        ) as copy:
            for i, (decision, run_key) in enumerate(decisions):
                signed = _signed(decision, run_key, snapshot, signer)
                if shared is None:
                    row = _decision_row(
                        decision, run_key, _payload_json(decision, None), signed=signed
                    )
                else:
                    row = _decision_row(
                        decision,
                        run_key,
                        shared.payload_json(decision),
                        shared.renderer.explain(decision),
                        signed,
                    )
                copy.write_row((*row, i))
        cur.execute(
            f"INSERT INTO plane.decisions ({_DECISION_COLUMNS})"
            f" SELECT {_DECISION_COLUMNS} FROM plane_decisions_in ORDER BY ord"
            " ON CONFLICT (decision_id) DO NOTHING"
        )
        cur.execute("TRUNCATE plane_decisions_in")


# A deferred or rejected decision is logged again only when its outcome changes: its status, or
# its reason beyond the numbers in it (an age, a count of free GPUs), which move every tick
# while the cause stays the same ("telemetry of edge/A10 is 35 s old" then "... 65 s old").
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def outcome_key(status: str, reason: str) -> tuple[str, str]:
    """What must change for work re-decided every tick to be logged again."""
    return status, _NUMBER.sub("#", reason)


def last_outcomes(
    conn: psycopg.Connection, run_keys: Sequence[str]
) -> dict[str, tuple[str, str, str]]:
    """Per run key of ``run_keys`` with a logged decision: (decision id, status, reason) of its
    latest one."""
    if not run_keys:
        return {}
    rows = conn.execute(
        "SELECT DISTINCT ON (run_key) run_key, decision_id, status, payload->>'reason'"
        " FROM plane.decisions WHERE run_key = ANY(%s)"
        " ORDER BY run_key, decided_at DESC, recorded_at DESC",
        (list(run_keys),),
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3] or "") for r in rows}


def _reservation(decision: Decision, run_id: str | None) -> tuple[Any, ...]:
    chosen = decision.chosen_evaluation
    if chosen is None:
        raise ValueError(f"decision {decision.decision_id} placed nothing; nothing to reserve")
    gpus = 0 if chosen.candidate.gpu_type == CPU else decision.request.gpu_count
    return (
        decision.request.team,
        decision.decision_id,
        run_id,
        chosen.candidate.cluster,
        chosen.candidate.gpu_type,
        gpus,
        chosen.cost.total_usd,
    )


_RESERVE = (
    "INSERT INTO plane.ledger (team, decision_id, run_id, kind, cluster, gpu_type, gpus, usd)"
    " VALUES (%s, %s, %s, 'reserve', %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def reserve(conn: psycopg.Connection, decision: Decision, *, run_id: str | None = None) -> None:
    """Reserve the decision's GPUs and projected cost (call inside the tick's transaction)."""
    conn.execute(_RESERVE, _reservation(decision, run_id))


def reserve_many(conn: psycopg.Connection, decisions: Sequence[Decision]) -> None:
    """`reserve` every decision, in order, in one round of statements."""
    rows = [_reservation(d, None) for d in decisions]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(_RESERVE, rows)


def close_reservation(
    conn: psycopg.Connection,
    decision_id: str,
    *,
    run_id: str | None,
    kind: str,
    usd: float = 0.0,
) -> bool:
    """``settle`` (with the actual cost) or ``release`` a reservation; False if already closed."""
    if kind not in ("settle", "release"):
        raise ValueError("kind must be settle or release")
    with conn.transaction():
        row = conn.execute(
            "SELECT team, cluster, gpu_type, gpus FROM plane.ledger"
            " WHERE decision_id = %s AND kind = 'reserve'",
            (decision_id,),
        ).fetchone()
        if row is None:
            return False
        cur = conn.execute(
            "INSERT INTO plane.ledger (team, decision_id, run_id, kind, cluster, gpu_type, gpus,"
            " usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (row[0], decision_id, run_id, kind, row[1], row[2], row[3], usd),
        )
        return cur.rowcount == 1


def actual_cost(payload: dict[str, Any], seconds: float) -> float:
    """A logged decision's GPU cost scaled from the estimated to the actual duration, plus the
    egress."""
    chosen = next((c for c in payload["candidates"] if c["chosen"]), None)
    if chosen is None:
        return 0.0
    estimated = max(chosen["duration_s"], 1e-9)
    return chosen["gpu_usd"] * (seconds / estimated) + chosen["egress_usd"]


def close_ended_run(
    conn: psycopg.Connection, decision_id: str, run_id: str, seconds: float | None
) -> tuple[bool, float | None]:
    """Close the reservation of a run that ended (succeeded, failed or was cancelled) at what it
    used: ``settle`` at `actual_cost` for the ``seconds`` it held, or ``release`` at $0 when it
    never started (``seconds`` None). (closed now, USD settled or None when released); links the
    run to its decision."""
    link_run(conn, decision_id, run_id)
    if seconds is None:
        return close_reservation(conn, decision_id, run_id=run_id, kind="release"), None
    logged = decision_for(conn, decision_id)
    usd = actual_cost(logged.payload, seconds) if logged else 0.0
    return close_reservation(conn, decision_id, run_id=run_id, kind="settle", usd=usd), usd


def release_superseded(conn: psycopg.Connection, run_keys: Sequence[str], before: datetime) -> int:
    """Release the open reservations of earlier decisions for ``run_keys`` that no run carried
    out (call inside the tick's transaction, before its snapshot).

    A run key pending again although a decision for it was logged and reserved means the tick
    committed but its runs were never requested (the sensor process died before returning, so
    Dagster neither saved its cursor nor launched anything). The new decision supersedes the
    old one: without this its GPUs and dollars would stay reserved for ever. Both decisions
    stay in the log; the ledger says ``release`` with run id ``superseded``. Only decisions
    made ``before`` the new tick are superseded: one made at the same instant is the same
    decision (the same id), logged and reserved once."""
    if not run_keys:
        return 0
    cur = conn.execute(
        """
        INSERT INTO plane.ledger (team, decision_id, run_id, kind, cluster, gpu_type, gpus, usd)
        SELECT r.team, r.decision_id, 'superseded', 'release', r.cluster, r.gpu_type, r.gpus, 0
        FROM plane.ledger r JOIN plane.decisions d ON d.decision_id = r.decision_id
        WHERE r.kind = 'reserve' AND d.run_key = ANY(%s) AND d.decided_at < %s
          AND NOT EXISTS (SELECT 1 FROM plane.ledger c
                          WHERE c.decision_id = r.decision_id AND c.kind <> 'reserve')
          AND NOT EXISTS (SELECT 1 FROM plane.decision_runs l
                          WHERE l.decision_id = r.decision_id)
          AND NOT EXISTS (SELECT 1 FROM plane.decision_claims k
                          WHERE k.decision_id = r.decision_id)
        ORDER BY r.id
        ON CONFLICT DO NOTHING
        """,
        (list(run_keys), before),
    )
    return cur.rowcount


# The settled cost of served requests per team since %(since)s: a CTE of `usage` and
# `ledger_by_team` (the budget rule and the spend view count serving as batch work).
_SERVED = """served AS (
            SELECT team, sum(actual_usd) AS spent
            FROM plane.serving_decisions
            WHERE actual_usd IS NOT NULL AND settled_at >= %(since)s
            GROUP BY team
        )"""


def usage(conn: psycopg.Connection, period_start: datetime) -> dict[str, TeamUsage]:
    """Per team: GPUs and USD held by open reservations, and USD settled since period_start:
    batch runs (``plane.ledger``) and served requests (``plane.serving_decisions``) alike, so
    one budget covers both."""
    rows = conn.execute(
        f"""
        WITH batch AS (
            SELECT r.team,
                   coalesce(sum(r.gpus) FILTER (WHERE c.decision_id IS NULL), 0) AS gpus,
                   coalesce(sum(r.usd) FILTER (WHERE c.decision_id IS NULL), 0) AS reserved,
                   coalesce(sum(c.usd) FILTER (WHERE c.kind = 'settle' AND c.at >= %(since)s), 0)
                       AS spent
            FROM plane.ledger r
            LEFT JOIN plane.ledger c ON c.decision_id = r.decision_id AND c.kind <> 'reserve'
            WHERE r.kind = 'reserve'
            GROUP BY r.team
        ), {_SERVED}
        SELECT coalesce(b.team, s.team), coalesce(b.gpus, 0), coalesce(b.reserved, 0),
               coalesce(b.spent, 0) + coalesce(s.spent, 0)
        FROM batch b FULL JOIN served s ON s.team = b.team
        """,
        {"since": period_start},
    ).fetchall()
    return {t: TeamUsage(t, int(g), float(res), float(spent)) for t, g, res, spent in rows}


def serving_activity(
    conn: psycopg.Connection, since: datetime, until: datetime
) -> list[tuple[str, str | None, str, int, int, float]]:
    """The gateway's decisions from ``since`` to ``until`` (``plane.serving_decisions``), per
    (model asked, endpoint, status): (model, endpoint or None, status, requests, completion
    tokens settled, seconds settled) -- what the ``serving/endpoints`` asset shows."""
    rows = conn.execute(
        """
        SELECT model, endpoint_id, status, count(*),
               coalesce(sum(completion_tokens) FILTER (WHERE settled_at IS NOT NULL), 0),
               coalesce(sum((payload->'settlement'->>'seconds')::float8)
                        FILTER (WHERE settled_at IS NOT NULL), 0)
        FROM plane.serving_decisions
        WHERE decided_at >= %s AND decided_at < %s
        GROUP BY model, endpoint_id, status
        ORDER BY model, endpoint_id, status
        """,
        (since, until),
    ).fetchall()
    return [(m, e, s, int(n), int(t), float(sec)) for m, e, s, n, t, sec in rows]


def teams_logged(conn: psycopg.Connection) -> set[str]:
    """Every team the ledger or the decision log names."""
    rows = conn.execute(
        "SELECT team FROM plane.ledger UNION SELECT team FROM plane.decisions"
        " UNION SELECT team FROM plane.serving_decisions"
    ).fetchall()
    return {r[0] for r in rows}


def ledger_by_team(
    conn: psycopg.Connection, teams: Sequence[str], since: datetime
) -> dict[str, tuple[int, float, float, int]]:
    """Per team of ``teams`` with ledger rows or served requests: (GPUs held by open
    reservations, USD reserved by them, USD settled since ``since`` by runs and served requests,
    runs settled since ``since``)."""
    rows = conn.execute(
        f"""
        WITH batch AS (
            SELECT r.team,
                   coalesce(sum(r.gpus) FILTER (WHERE c.decision_id IS NULL), 0) AS gpus,
                   coalesce(sum(r.usd) FILTER (WHERE c.decision_id IS NULL), 0) AS reserved,
                   coalesce(sum(c.usd) FILTER (WHERE c.kind = 'settle' AND c.at >= %(since)s), 0)
                       AS spent,
                   count(c.decision_id) FILTER (WHERE c.kind = 'settle' AND c.at >= %(since)s)
                       AS settled
            FROM plane.ledger r
            LEFT JOIN plane.ledger c ON c.decision_id = r.decision_id AND c.kind <> 'reserve'
            WHERE r.kind = 'reserve' AND r.team = ANY(%(teams)s)
            GROUP BY r.team
        ), {_SERVED}
        SELECT coalesce(b.team, s.team), coalesce(b.gpus, 0), coalesce(b.reserved, 0),
               coalesce(b.spent, 0) + coalesce(s.spent, 0), coalesce(b.settled, 0)
        FROM batch b FULL JOIN (SELECT * FROM served WHERE team = ANY(%(teams)s)) s
            ON s.team = b.team
        """,
        {"since": since, "teams": list(teams)},
    ).fetchall()
    return {r[0]: (int(r[1]), float(r[2]), float(r[3]), int(r[4])) for r in rows}


def decisions_by_team(
    conn: psycopg.Connection, teams: Sequence[str], since: datetime
) -> dict[str, tuple[int, int, int, datetime | None]]:
    """Per team of ``teams`` in the decision log: (placed, deferred, rejected since ``since``,
    time of its last decision)."""
    rows = conn.execute(
        """
        SELECT team,
               count(*) FILTER (WHERE status = 'placed' AND decided_at >= %(since)s),
               count(*) FILTER (WHERE status = 'deferred' AND decided_at >= %(since)s),
               count(*) FILTER (WHERE status = 'rejected' AND decided_at >= %(since)s),
               max(decided_at)
        FROM plane.decisions
        WHERE team = ANY(%(teams)s)
        GROUP BY team
        """,
        {"since": since, "teams": list(teams)},
    ).fetchall()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), r[4]) for r in rows}


def held_gpus_by_pool(conn: psycopg.Connection, since: datetime) -> dict[tuple[str, str], int]:
    """GPUs of open reservations made after ``since`` (not yet visible in telemetry)."""
    rows = conn.execute(
        """
        SELECT r.cluster, r.gpu_type, sum(r.gpus) FROM plane.ledger r
        WHERE r.kind = 'reserve' AND r.at > %s AND NOT EXISTS (
            SELECT 1 FROM plane.ledger c
            WHERE c.decision_id = r.decision_id AND c.kind <> 'reserve')
        GROUP BY r.cluster, r.gpu_type
        """,
        (since,),
    ).fetchall()
    return {(c, g): int(n) for c, g, n in rows}


def unstarted_gpus(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    """GPUs of open reservations per (cluster, team) whose run has not started (no run linked
    to the decision): their pods do not exist yet, so a cluster's ResourceQuota status does not
    count them (`live_quotas`)."""
    rows = conn.execute(
        """
        SELECT r.cluster, r.team, sum(r.gpus) FROM plane.ledger r
        WHERE r.kind = 'reserve' AND r.gpus > 0 AND NOT EXISTS (
            SELECT 1 FROM plane.ledger c
            WHERE c.decision_id = r.decision_id AND c.kind <> 'reserve')
          AND NOT EXISTS (
            SELECT 1 FROM plane.decision_runs l WHERE l.decision_id = r.decision_id)
        GROUP BY r.cluster, r.team
        """
    ).fetchall()
    return {(c, t): int(n) for c, t, n in rows}


class FutureTelemetryError(ValueError):
    """Samples observed later than the plane's clock plus the allowed clock skew: refused, none
    of the batch stored. ``refused``: each such sample with how many seconds ahead it was."""

    def __init__(
        self, refused: Sequence[tuple[TelemetrySample, float]], max_clock_skew_s: float
    ) -> None:
        self.refused = tuple(refused)
        self.max_clock_skew_s = max_clock_skew_s
        which = ", ".join(
            f"{s.cluster}/{s.gpu_type} observed {ahead:.0f} s ahead" for s, ahead in refused
        )
        super().__init__(
            f"telemetry from the future refused: {which} of the plane's clock (max clock skew "
            f"{max_clock_skew_s:g} s); is the sending node's clock right?"
        )


def insert_samples(
    conn: psycopg.Connection,
    samples: Sequence[TelemetrySample],
    *,
    max_clock_skew_s: float | None = None,
) -> int:
    """Store pushed samples (``received_at``: the database's clock).

    Raises `FutureTelemetryError`, storing none of them, when any was observed later than the
    database's clock plus ``max_clock_skew_s`` (default: the placement policy's default)."""
    if not samples:
        return 0
    skew = PlacementPolicy().max_clock_skew_s if max_clock_skew_s is None else max_clock_skew_s
    (clock,) = conn.execute("SELECT clock_timestamp()").fetchone()
    ahead = [(s, (s.observed_at - clock).total_seconds()) for s in samples]
    refused = [(s, a) for s, a in ahead if a > skew]
    if refused:
        raise FutureTelemetryError(refused, skew)
    # INSERT, not COPY: an agent's role writes under row-level security, which COPY refuses.
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO plane.telemetry (cluster, gpu_type, free_gpus, utilisation,"
            " free_memory_gb, observed_at, node, free_memory_per_gpu_gb)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    s.cluster,
                    s.gpu_type,
                    s.free_gpus,
                    s.utilisation,
                    s.free_memory_gb,
                    s.observed_at,
                    s.node,
                    None if s.free_memory_per_gpu_gb is None else list(s.free_memory_per_gpu_gb),
                )
                for s in samples
            ],
        )
    return len(samples)


def map_agent(conn: psycopg.Connection, role: str, cluster: str, node: str) -> None:
    """Let agent login ``role`` write the samples of ``node`` of ``cluster`` (``*``: any node
    of it), through the row-level security of ``plane.telemetry``."""
    conn.execute(
        "INSERT INTO plane.agent_nodes (role, cluster, node) VALUES (%s, %s, %s)"
        " ON CONFLICT (role) DO UPDATE SET cluster = EXCLUDED.cluster, node = EXCLUDED.node",
        (role, cluster, node),
    )


NODE_WINDOW_S = 30  # a node whose latest sample is older than its pool's newest by more: gone
TELEMETRY_RETENTION_S = 3600  # the agent prunes its node's rows older than this


def latest_telemetry(conn: psycopg.Connection) -> dict[tuple[str, str], TelemetrySample]:
    """Per pool: the latest sample of each of its nodes, summed. Free GPUs add up, utilisation
    is the nodes' mean, the largest free memory counts, the free memory of each GPU is the
    nodes' lists put together (ascending), and the pool's sample is as old as its oldest node's
    (freshness is judged on the stalest part). A node whose latest sample is more than
    `NODE_WINDOW_S` older than its pool's newest has stopped reporting: its GPUs are not
    counted (never assumed free). When a node of the pool gives no per-GPU memory (an agent of
    an older version) the pool's list would be incomplete: the pool then has none, and every
    reported free GPU counts whatever a request's memory, as before."""
    rows = conn.execute(
        """
        WITH latest AS (
            SELECT DISTINCT ON (cluster, gpu_type, node) cluster, gpu_type, node, free_gpus,
                   utilisation, observed_at, free_memory_gb, received_at, free_memory_per_gpu_gb
            FROM plane.telemetry ORDER BY cluster, gpu_type, node, observed_at DESC
        ), windowed AS (
            SELECT *, max(observed_at) OVER (PARTITION BY cluster, gpu_type) AS newest
            FROM latest
        ), kept AS (
            SELECT * FROM windowed WHERE observed_at >= newest - make_interval(secs => %s)
        ), per_gpu AS (
            SELECT cluster, gpu_type, array_agg(m ORDER BY m) AS memory
            FROM kept, unnest(kept.free_memory_per_gpu_gb) AS m
            GROUP BY cluster, gpu_type
        )
        SELECT k.cluster, k.gpu_type, sum(k.free_gpus)::int, avg(k.utilisation),
               min(k.observed_at), max(k.free_memory_gb), min(k.received_at),
               CASE WHEN bool_and(k.free_memory_per_gpu_gb IS NOT NULL)
                    THEN coalesce(p.memory, '{}') END
        FROM kept k LEFT JOIN per_gpu p USING (cluster, gpu_type)
        GROUP BY k.cluster, k.gpu_type, p.memory
        """,
        (NODE_WINDOW_S,),
    ).fetchall()
    return {
        (r[0], r[1]): TelemetrySample(
            *r[:7], free_memory_per_gpu_gb=None if r[7] is None else tuple(r[7])
        )
        for r in rows
    }


def prune_telemetry(
    conn: psycopg.Connection, cluster: str, node: str, keep_s: float = TELEMETRY_RETENTION_S
) -> int:
    """Delete a node's samples older than ``keep_s`` (the agent does, for its own node)."""
    cur = conn.execute(
        "DELETE FROM plane.telemetry WHERE cluster = %s AND node = %s"
        " AND observed_at < clock_timestamp() - make_interval(secs => %s)",
        (cluster, node, keep_s),
    )
    return cur.rowcount


def signed_decision(conn: psycopg.Connection, decision_id: str) -> SignedDecision | None:
    """A logged decision with its signed binding and the run that claimed it, if any."""
    row = conn.execute(
        "SELECT d.decision_id, d.status, d.workload, d.team, d.cluster, d.binding, d.signature,"
        " d.key_id, c.run_id FROM plane.decisions d"
        " LEFT JOIN plane.decision_claims c ON c.decision_id = d.decision_id"
        " WHERE d.decision_id = %s",
        (decision_id,),
    ).fetchone()
    return SignedDecision(*row) if row else None


def claim_decision(conn: psycopg.Connection, decision_id: str, run_id: str) -> str:
    """Claim a placed decision for ``run_id``; the id of the run that holds it (``run_id``
    itself when this claim, or an earlier one by the same run, holds it). Atomic: of two runs
    claiming one decision at once, exactly one gets it (the claim's primary key)."""
    with conn.transaction():
        row = conn.execute("SELECT plane.claim_decision(%s, %s)", (decision_id, run_id)).fetchone()
    return row[0]


def link_run(conn: psycopg.Connection, decision_id: str, run_id: str) -> None:
    conn.execute(
        "INSERT INTO plane.decision_runs (run_id, decision_id) VALUES (%s, %s)"
        " ON CONFLICT (run_id) DO NOTHING",
        (run_id, decision_id),
    )


@dataclass(frozen=True)
class LoggedDecision:
    decision_id: str
    status: str
    workload: str
    cluster: str | None
    payload: dict[str, Any]
    explanation: str
    decided_at: datetime


# The payload with its snapshot's telemetry back in place (see `record_decisions`).
_LOGGED = (
    "SELECT d.decision_id, d.status, d.workload, d.cluster,"
    " CASE WHEN s.telemetry IS NULL THEN d.payload"
    " ELSE jsonb_set(d.payload #- '{snapshot,telemetry_ref}', '{snapshot,telemetry}',"
    " s.telemetry) END,"
    " d.explanation, d.decided_at FROM plane.decisions d"
    " LEFT JOIN plane.snapshots s ON s.telemetry_sha = d.payload->'snapshot'->>'telemetry_ref'"
)


def decision_for(conn: psycopg.Connection, run_or_decision_id: str) -> LoggedDecision | None:
    """A decision by its id, by the Dagster run that carried it out, or by its run key."""
    row = conn.execute(
        _LOGGED + " LEFT JOIN plane.decision_runs r ON r.decision_id = d.decision_id"
        " WHERE d.decision_id = %s OR r.run_id = %s OR d.run_key = %s"
        " ORDER BY d.decided_at DESC LIMIT 1",
        (run_or_decision_id,) * 3,
    ).fetchone()
    return LoggedDecision(*row) if row else None


def decisions(
    conn: psycopg.Connection, *, since: datetime | None = None, limit: int = 10_000
) -> list[LoggedDecision]:
    rows = conn.execute(
        _LOGGED + " WHERE (%s::timestamptz IS NULL OR d.decided_at >= %s)"
        " ORDER BY d.decided_at, d.decision_id LIMIT %s",
        (since, since, limit),
    ).fetchall()
    return [LoggedDecision(*r) for r in rows]


def last_placement(conn: psycopg.Connection, workload: str) -> tuple[str | None, datetime | None]:
    """(current cluster, time of the last move) of a recurring workload, from the log."""
    rows = conn.execute(
        "SELECT cluster, decided_at FROM plane.decisions WHERE workload = %s AND status = 'placed'"
        " ORDER BY decided_at DESC LIMIT 200",
        (workload,),
    ).fetchall()
    if not rows:
        return None, None
    current = rows[0][0]
    moved_at = None
    for cluster, at in rows:
        if cluster != current:
            break
        moved_at = at
    return current, moved_at


def add_request(conn: psycopg.Connection, request_id: str, payload: dict[str, Any]) -> bool:
    cur = conn.execute(
        "INSERT INTO plane.requests (request_id, payload) VALUES (%s, %s)"
        " ON CONFLICT (request_id) DO NOTHING",
        (request_id, Jsonb(payload)),
    )
    return cur.rowcount == 1


def pending_requests(conn: psycopg.Connection, limit: int = 10_000) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT payload FROM plane.requests WHERE status IN ('pending', 'deferred')"
        " ORDER BY created_at, request_id LIMIT %s",
        (limit,),
    ).fetchall()
    return [r[0] for r in rows]


def decided_requests(conn: psycopg.Connection, request_ids: Sequence[str]) -> set[str]:
    """Which of ``request_ids`` are queued but no longer waiting (placed or rejected since they
    were read), their rows locked until the end of the transaction: a tick that read a request
    before another tick decided it sees here that it is gone."""
    if not request_ids:
        return set()
    rows = conn.execute(
        "SELECT request_id, status FROM plane.requests WHERE request_id = ANY(%s) FOR UPDATE",
        (list(request_ids),),
    ).fetchall()
    return {r for r, status in rows if status not in ("pending", "deferred")}


def mark_request(conn: psycopg.Connection, request_id: str, status: str, decision_id: str) -> None:
    conn.execute(
        "UPDATE plane.requests SET status = %s, decision_id = %s, updated_at = now()"
        " WHERE request_id = %s",
        (status, decision_id, request_id),
    )


def _telemetry_payload(snapshot: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "cluster": s.cluster,
            "gpu_type": s.gpu_type,
            "free_gpus": s.free_gpus,
            "utilisation": s.utilisation,
            "observed_at": s.observed_at.isoformat(),
            "free_memory_gb": s.free_memory_gb,
            # only when known (pushed samples), as in `Snapshot.telemetry_hash`
            **({"received_at": s.received_at.isoformat()} if s.received_at is not None else {}),
            **(
                {"free_memory_per_gpu_gb": list(s.free_memory_per_gpu_gb)}
                if s.free_memory_per_gpu_gb is not None
                else {}
            ),
        }
        for s in snapshot.telemetry.values()
    ]


def snapshot_payload(
    snapshot: Snapshot,
    datasets: Iterable[str],
    team: str,
    *,
    telemetry: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a decision read, stored with it so that `plane replay` can re-run it.

    ``telemetry``: the snapshot's telemetry in this form, when the caller already has it (it is
    the same for every decision of a tick)."""
    quota = snapshot.quotas.get(team)
    budget = snapshot.budgets.get(team)
    u = snapshot.usage_of(team)
    return {
        "now": snapshot.now.isoformat(),
        "telemetry": _telemetry_payload(snapshot) if telemetry is None else telemetry,
        "quota": {"team": team, "gpus": quota.gpus, "source": quota.source} if quota else None,
        "budget": (
            {"team": team, "limit_usd": budget.limit_usd, "period": budget.period}
            if budget
            else None
        ),
        "usage": {
            "team": team,
            "gpus_held": u.gpus_held,
            "reserved_usd": u.reserved_usd,
            "spent_usd": u.spent_usd,
        },
        "catalog": [snapshot.catalog[d].to_dict() for d in datasets if d in snapshot.catalog],
        # the live quotas of the team's namespaces, only when some cluster reads them (so the
        # payloads of fleets without live quotas stay as they were)
        **_live_quota_payload(snapshot, team),
    }


def _live_quota_payload(snapshot: Snapshot, team: str) -> dict[str, Any]:
    live = [c for c in snapshot.fleet.clusters if c.quotas is not None]
    if not live:
        return {}
    quotas, errors = [], {}
    for cluster in live:
        namespace = cluster.namespace(team)
        q = snapshot.cluster_quotas.get((cluster.name, namespace))
        if q is not None:
            quotas.append(
                {"cluster": cluster.name, "namespace": namespace, "gpus": q.gpus}
                | {"used": q.used, "source": q.source}
            )
        for key in (cluster.name, f"{cluster.name}/{namespace}"):
            if key in snapshot.quota_errors:
                errors[key] = snapshot.quota_errors[key]
    return {"live_quotas": quotas, "quota_errors": errors}


class _SharedSnapshot:
    """Log entries of many decisions on one snapshot: its telemetry is serialised once and
    joined into each decision's JSON, labels and rejection lists are rendered once
    (`explain.Renderer`). The stored jsonb and text are those of `record_decision`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.telemetry_json = json.dumps(_telemetry_payload(snapshot))
        self.telemetry_sha = hashlib.sha256(self.telemetry_json.encode()).hexdigest()
        self.renderer = Renderer()

    def payload_json(self, decision: Decision) -> str:
        snap = snapshot_payload(
            self.snapshot, decision.request.datasets, decision.request.team, telemetry=[]
        )
        del snap["telemetry"]
        rest = json.dumps(snap)  # never empty: "now", "quota", "budget", "usage", "catalog"
        return self.renderer.payload_json(
            decision, f'"snapshot": {{"telemetry_ref": "{self.telemetry_sha}", {rest[1:]}'
        )


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def ensure_agent_role(conn: psycopg.Connection, cluster: str, node: str | None = None) -> str:
    """As an administrator: the agent login role of (cluster, node), or of every node of
    ``cluster`` with ``node`` None, created and mapped; returns its name. The row-level
    security of ``plane.telemetry`` lets that role write (and prune) only the rows of its node,
    or of its cluster's nodes; that of ``plane.residency_desired`` and ``residency_actual``
    lets a node's role (not a cluster's) read its node's plan and report its node's state, as
    that node's serving agent (``plane node-agent``)."""
    role = create_agent_role(conn, cluster, node)
    map_agent(conn, role, cluster, node or ANY_NODE)
    return role


def agent_nodes(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """The (cluster, node) pairs this connection's login is mapped to as an agent (none for a
    login that is no agent's: the plane, an administrator)."""
    rows = conn.execute(
        "SELECT cluster, node FROM plane.agent_nodes WHERE role = session_user"
    ).fetchall()
    return {(c, n) for c, n in rows}


# -- the residency loop (steps 5-6): desired state by the plan, actual state by the node agents --


def write_desired(
    conn: psycopg.Connection,
    rows: Sequence[tuple[str, str, str, str, str]],
    plan_id: str,
    planned_at: datetime,
) -> None:
    """Replace the desired residency with ``rows`` (node, runtime, model, state, why) of one
    plan, in the caller's transaction (a node agent reads a whole plan or the one before)."""
    conn.execute("DELETE FROM plane.residency_desired")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO plane.residency_desired (node, runtime, model, state, why, plan_id,"
            " planned_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(*r, plan_id, planned_at) for r in rows],
        )


def desired_of(conn: psycopg.Connection, node: str) -> list[tuple[str, str, str, str, str]]:
    """``node``'s desired rows: (runtime, model, state, why, plan_id)."""
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT runtime, model, state, why, plan_id FROM plane.residency_desired"
            " WHERE node = %s ORDER BY runtime, model",
            (node,),
        ).fetchall()
    ]


ACTUAL_COLUMNS = ("node", "runtime", "model", "state", "since", "url", "error", "plan_id")


def actual_state(conn: psycopg.Connection, node: str | None = None) -> list[dict[str, Any]]:
    """What the node agents last reported (every node's, or ``node``'s): one dict per
    (node, runtime, model) with ``ACTUAL_COLUMNS``, ``reported_at`` (the agent's clock) and
    ``received_at`` (the plane's)."""
    sql = (
        f"SELECT {', '.join(ACTUAL_COLUMNS)}, reported_at, received_at FROM plane.residency_actual"
    )
    rows = (
        conn.execute(sql + " WHERE node = %s ORDER BY 1, 2, 3", (node,))
        if node is not None
        else conn.execute(sql + " ORDER BY 1, 2, 3")
    ).fetchall()
    keys = (*ACTUAL_COLUMNS, "reported_at", "received_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def report_actual(
    conn: psycopg.Connection, node: str, rows: Sequence[Mapping[str, Any]], reported_at: datetime
) -> None:
    """Replace ``node``'s actual state with ``rows`` (dicts with ``ACTUAL_COLUMNS`` but node),
    in the caller's transaction."""
    conn.execute("DELETE FROM plane.residency_actual WHERE node = %s", (node,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO plane.residency_actual (node, runtime, model, state, since, url, error,"
            " plan_id, reported_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    node,
                    r["runtime"],
                    r["model"],
                    r["state"],
                    r["since"],
                    r.get("url"),
                    r.get("error"),
                    r.get("plan_id"),
                    reported_at,
                )
                for r in rows
            ],
        )


def desired_states(conn: psycopg.Connection) -> dict[tuple[str, str, str], str]:
    """The desired state as last planned: (node, runtime, model) -> state."""
    rows = conn.execute("SELECT node, runtime, model, state FROM plane.residency_desired")
    return {(n, r, m): s for n, r, m, s in rows.fetchall()}
