"""The model registry and the prediction store (PostgreSQL schema ``models``).

``models.registry`` keeps every trained version: artifact bytes and hash, metrics, training-data
lineage and the governance inherited from the training data. Training again on the same data with
the same parameters returns the existing version instead of adding one. ``models.predictions``
keeps each prediction keyed by model version and the content hash of the input, so the same input
is never sent to the same model version twice.

Layer 3 users and agents load a model with `use_model`, which asks the same policy engine as
retrieval (`data_plane.authz`, action ``use_model``) and logs denials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from data_plane.access import Principal
from data_plane.authz import AccessDecision, Authorizer, Resource
from data_plane.migrations import Schema, ensure
from data_plane.roles import PLANE, READER, WORKER, grant, usage

if TYPE_CHECKING:
    from data_plane.classifier import TrainedClassifier

DDL = """
CREATE SCHEMA IF NOT EXISTS models;
CREATE TABLE IF NOT EXISTS models.registry (
    model_name      text NOT NULL,
    version         integer NOT NULL,
    fingerprint     text NOT NULL,
    artifact        bytea NOT NULL,
    artifact_sha256 text NOT NULL,
    metrics         jsonb NOT NULL,
    lineage         jsonb NOT NULL,
    governance      jsonb NOT NULL,
    dagster_run_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version),
    UNIQUE (model_name, fingerprint)
);
CREATE TABLE IF NOT EXISTS models.predictions (
    model_name    text NOT NULL,
    version       integer NOT NULL,
    content_hash  text NOT NULL,
    dataset_id    text NOT NULL,
    row_ref       text NOT NULL,
    label         text NOT NULL,
    confidence    real NOT NULL,
    predicted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version, content_hash),
    FOREIGN KEY (model_name, version) REFERENCES models.registry (model_name, version)
);
"""


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    fingerprint: str
    artifact_sha256: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    governance: dict[str, Any]


# Run workers train and apply models (their outputs); the plane and readers look them up.
GRANTS = [
    *usage("models", PLANE, WORKER, READER),
    (WORKER, f"GRANT SELECT, INSERT, UPDATE ON models.registry, models.predictions TO {WORKER}"),
    *[
        (role, f"GRANT SELECT ON models.registry, models.predictions TO {role}")
        for role in (PLANE, READER)
    ],
]


def _finish(conn: psycopg.Connection) -> None:
    grant(conn, GRANTS)


# Migration steps (`data_plane.migrations.Schema`): released steps are never edited; a change is a
# new step at the end. Step 1 is the schema as the release before versioned migrations built it.
SCHEMA = Schema(
    unit="models", probe="models.registry", steps=(DDL,), finish=_finish, extra=(GRANTS,)
)


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create or bring the schema to this code's version (`data_plane.migrations.ensure`)."""
    ensure(conn, SCHEMA)


def register(
    conn: psycopg.Connection,
    *,
    model_name: str,
    fingerprint: str,
    artifact: bytes,
    artifact_sha256: str,
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    governance: dict[str, Any],
    run_id: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Register a trained model; returns (version, created). Same fingerprint: existing version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"models:{model_name}",))
        existing = conn.execute(
            "SELECT version FROM models.registry WHERE model_name = %s AND fingerprint = %s",
            (model_name, fingerprint),
        ).fetchone()
        if existing:
            version = get_version(conn, model_name, existing[0])
            assert version is not None
            return version, False
        row = conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM models.registry WHERE model_name = %s",
            (model_name,),
        ).fetchone()
        number = int(row[0]) if row else 1
        conn.execute(
            "INSERT INTO models.registry (model_name, version, fingerprint, artifact,"
            " artifact_sha256, metrics, lineage, governance, dagster_run_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                model_name,
                number,
                fingerprint,
                artifact,
                artifact_sha256,
                Jsonb(metrics),
                Jsonb(lineage),
                Jsonb(governance),
                run_id,
            ),
        )
    created = get_version(conn, model_name, number)
    assert created is not None
    return created, True


_COLUMNS = "model_name, version, fingerprint, artifact_sha256, metrics, lineage, governance"


def get_version(conn: psycopg.Connection, model_name: str, version: int) -> ModelVersion | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM models.registry WHERE model_name = %s AND version = %s",
        (model_name, version),
    ).fetchone()
    return ModelVersion(*row) if row else None


def latest(conn: psycopg.Connection, model_name: str) -> ModelVersion | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM models.registry WHERE model_name = %s"
        " ORDER BY version DESC LIMIT 1",
        (model_name,),
    ).fetchone()
    return ModelVersion(*row) if row else None


def artifact(conn: psycopg.Connection, model_name: str, version: int) -> tuple[bytes, str]:
    row = conn.execute(
        "SELECT artifact, artifact_sha256 FROM models.registry"
        " WHERE model_name = %s AND version = %s",
        (model_name, version),
    ).fetchone()
    if row is None:
        raise LookupError(f"model {model_name} v{version} is not in the registry")
    return bytes(row[0]), row[1]


def predicted_hashes(
    conn: psycopg.Connection, model_name: str, version: int, hashes: Iterable[str]
) -> set[str]:
    """Which of these input hashes this model version has already predicted."""
    rows = conn.execute(
        "SELECT content_hash FROM models.predictions WHERE model_name = %s AND version = %s"
        " AND content_hash = ANY(%s)",
        (model_name, version, list(hashes)),
    ).fetchall()
    return {r[0] for r in rows}


def store_predictions(
    conn: psycopg.Connection,
    model_name: str,
    version: int,
    rows: Sequence[tuple[str, str, str, str, float]],
) -> int:
    """Insert (content_hash, dataset_id, row_ref, label, confidence) rows; existing ones kept."""
    if not rows:
        return 0
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS predictions_stage (content_hash text,"
            " dataset_id text, row_ref text, label text, confidence real) ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy(
            "COPY predictions_stage (content_hash, dataset_id, row_ref, label, confidence)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        cur = conn.execute(
            "INSERT INTO models.predictions (model_name, version, content_hash, dataset_id,"
            " row_ref, label, confidence) SELECT DISTINCT ON (content_hash) %s, %s, content_hash,"
            " dataset_id, row_ref, label, confidence FROM predictions_stage"
            " ON CONFLICT DO NOTHING",
            (model_name, version),
        )
        return cur.rowcount


class ModelAccessDenied(PermissionError):
    """The policy engine refused a principal the use of a model (the denial is logged)."""

    def __init__(self, decision: AccessDecision) -> None:
        self.decision = decision
        super().__init__(
            f"{decision.principal}"
            + (f" (for {decision.on_behalf_of})" if decision.on_behalf_of else "")
            + f" may not use {decision.resource}: {'; '.join(decision.reasons)}"
            + f" [policy {decision.policy_version}]"
        )


def use_model(
    conn: psycopg.Connection,
    model_name: str,
    *,
    principal: Principal,
    authorizer: Authorizer,
    serve_region: str | None = None,
    on_behalf_of: Principal | None = None,
    version: int | None = None,
    audit: Callable[[Sequence[AccessDecision]], None] | None = None,
) -> tuple[ModelVersion, TrainedClassifier]:
    """Load a registered model for ``principal`` (a Layer 3 user or agent), after the policy
    engine allowed it from the model's catalog record (owner team, classification inherited from
    its training data, residency). No catalog record: denied (fail closed). A denial is passed
    to ``audit`` and raised as `ModelAccessDenied`; the artifact is not even read."""
    from data_plane import catalog_store, classifier

    entry = catalog_store.get_entry(conn, model_name)
    resource = (
        Resource.from_entry(entry, kind="Model")
        if entry is not None
        else Resource(model_name, "", "UNKNOWN", "UNKNOWN", kind="Model")
    )
    decision = authorizer.use_model(
        principal,
        resource,
        serve_region=serve_region or (on_behalf_of or principal).home_region,
        on_behalf_of=on_behalf_of,
    )
    if not decision.allowed:
        if audit is not None:
            audit([decision])
        raise ModelAccessDenied(decision)
    chosen = get_version(conn, model_name, version) if version else latest(conn, model_name)
    if chosen is None:
        raise LookupError(f"model {model_name} v{version or 'latest'} is not in the registry")
    return chosen, classifier.load(*artifact(conn, model_name, chosen.version))
