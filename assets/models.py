"""Model artifacts: a topic classifier for video segments, and batch inference that never
pays twice.

``models/segment_topic_classifier`` trains a logistic regression on the stored embeddings of the
labelled conference transcripts, evaluates it on a held-out split (check: accuracy at least
`data_plane.classifier.MIN_ACCURACY`), and registers the artifact with its metrics, training-data
lineage and inherited governance in ``models.registry``. ``models/segment_topics`` tags every
segment with the latest version, skipping segments whose text that version already tagged, and
reports the share of model calls avoided. Both reuse the embeddings already in the store: no text
is encoded twice.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import polars as pl
import psycopg

from assets.embeddings import embeddings_key
from assets.governance import catalog_key, entry_metadata
from assets.ingestion import ingested_key
from assets.tags import governance_tags, owner
from assets.workloads import cpu_workload_metadata
from data_plane import classifier, model_registry
from data_plane.catalog import derive_record
from data_plane.embedder import MODEL_ID
from data_plane.policy import GovernancePolicy
from data_plane.sources import SourceSpec
from data_plane.vector_store import fetch_dataset_vectors
from resources.governance import GovernanceCatalogResource
from resources.guard import PlacementGuardResource
from resources.lakehouse import LakehouseResource
from resources.postgres import PostgresResource
from resources.vectors import VectorStoresResource

MODELS_GROUP = "models"
ACCURACY_CHECK = "holdout_accuracy_above_threshold"


@dataclass(frozen=True)
class ClassifierSpec:
    name: str
    dataset: str
    label_column: str
    holdout_share: float = 0.2
    seed: int = 7
    min_accuracy: float = classifier.MIN_ACCURACY


TOPIC_CLASSIFIER = ClassifierSpec(
    name="segment_topic_classifier", dataset="conference_transcripts", label_column="topic"
)


def row_vectors(
    vectors: VectorStoresResource, residency: str, dataset: str
) -> tuple[list[str], list[str], np.ndarray]:
    """(row_refs, row content hashes, mean chunk embedding per row) from the dataset's store."""
    store = vectors.store_for(residency)
    if store is None:
        raise ValueError(f"{dataset}: no vector store serves residency {residency}")
    with vectors.connect(store) as conn:
        refs, hashes, matrix = fetch_dataset_vectors(conn, store, dataset, MODEL_ID)
    if not refs:
        raise LookupError(
            f"{dataset}: no embeddings in the {store.region} store; "
            f"materialize embeddings/{dataset} first"
        )
    frame = pl.DataFrame({"row_ref": refs, "content_hash": hashes, "i": range(len(refs))})
    groups = frame.group_by("row_ref", maintain_order=True).agg(
        pl.col("content_hash").first(), pl.col("i")
    )
    means = np.stack([matrix[idx].mean(axis=0) for idx in groups.get_column("i").to_list()])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return groups["row_ref"].to_list(), groups["content_hash"].to_list(), means


def build_model_assets(
    spec: ClassifierSpec, source: SourceSpec, policy: GovernancePolicy
) -> list[dg.AssetsDefinition]:
    residency = policy.residency_of_endpoints([source.storage_endpoint])
    tags = governance_tags(residency, source.classification)
    model_key = dg.AssetKey(["models", spec.name])
    return [
        _build_train_asset(spec, source, tags, model_key),
        _build_predict_asset(spec, source, tags, model_key),
    ]


def _build_train_asset(
    spec: ClassifierSpec, source: SourceSpec, tags: dict[str, str], model_key: dg.AssetKey
) -> dg.AssetsDefinition:
    @dg.asset(
        key=model_key,
        deps=[embeddings_key(spec.dataset), ingested_key(spec.dataset), catalog_key(spec.dataset)],
        group_name=MODELS_GROUP,
        description=(
            f"Logistic-regression topic classifier over {MODEL_ID} embeddings of "
            f"`{spec.dataset}`, trained on `{spec.label_column}`; registered in models.registry."
        ),
        kinds={"scikit-learn", "postgres"},
        owners=[owner(source.owner_team)],
        tags=tags,
        metadata={
            "min_accuracy": spec.min_accuracy,
            **cpu_workload_metadata(datasets=[spec.dataset], writes_catalog=True),
        },
        check_specs=[
            dg.AssetCheckSpec(
                ACCURACY_CHECK,
                asset=model_key,
                description=f"Held-out accuracy is at least {spec.min_accuracy:.0%}.",
            )
        ],
    )
    def _train(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        vectors: VectorStoresResource,
        governance: GovernanceCatalogResource,
        postgres: PostgresResource,
        placement_guard: PlacementGuardResource,
    ) -> dg.MaterializeResult:
        placement_guard.require(context)
        return train_classifier(context, spec, source, lakehouse, vectors, governance, postgres)

    return _train


def _build_predict_asset(
    spec: ClassifierSpec, source: SourceSpec, tags: dict[str, str], model_key: dg.AssetKey
) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["models", f"{spec.dataset}_topics"]),
        deps=[model_key, embeddings_key(spec.dataset)],
        group_name=MODELS_GROUP,
        description=(
            f"Every segment of `{spec.dataset}` tagged by the latest {spec.name}; segments whose "
            "text this model version already tagged are skipped (never pay twice)."
        ),
        kinds={"scikit-learn", "parquet", "postgres"},
        owners=[owner(source.owner_team)],
        tags=tags,
        metadata=cpu_workload_metadata(datasets=[spec.dataset], writes_catalog=True),
    )
    def _predict(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        vectors: VectorStoresResource,
        governance: GovernanceCatalogResource,
        postgres: PostgresResource,
        placement_guard: PlacementGuardResource,
    ) -> dg.MaterializeResult:
        placement_guard.require(context)
        return tag_segments(
            context, spec, source, model_key, lakehouse, vectors, governance, postgres
        )

    return _predict


def _labelled_rows(
    lakehouse: LakehouseResource, spec: ClassifierSpec, source: SourceSpec, refs: list[str]
) -> list[tuple[int, str]]:
    """(index into ``refs``, label) of every labelled source row that has embeddings."""
    labels = (
        lakehouse.read("ingested", spec.dataset)
        .select(pl.col(source.key).cast(pl.String).alias("row_ref"), pl.col(spec.label_column))
        .filter(pl.col(spec.label_column).is_not_null())
    )
    index = {r: i for i, r in enumerate(refs)}
    return [(index[r], lab) for r, lab in labels.iter_rows() if r in index]


def train_classifier(
    context: dg.AssetExecutionContext,
    spec: ClassifierSpec,
    source: SourceSpec,
    lakehouse: LakehouseResource,
    vectors: VectorStoresResource,
    governance: GovernanceCatalogResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    """Train on the stored embeddings, register the version, record its catalog entry."""
    source_entry = governance.require(spec.dataset)
    refs, hashes, means = row_vectors(vectors, source_entry.record.data_residency, spec.dataset)
    labelled = _labelled_rows(lakehouse, spec, source, refs)
    rows = [i for i, _ in labelled]
    trained = classifier.train(
        means[rows],
        [lab for _, lab in labelled],
        [hashes[i] for i in rows],
        holdout_share=spec.holdout_share,
        seed=spec.seed,
    )
    artifact, sha = classifier.dump(trained)
    entry = derive_record(
        dataset_id=spec.name,
        inputs=[source_entry],
        owner_team=source.owner_team,
        storage_endpoints=["postgres://models.registry"],
        last_updated=datetime.now(UTC),
        policy=governance.policy,
    )
    with postgres.connect() as conn:
        model_registry.ensure_schema(conn)
        version, created = model_registry.register(
            conn,
            model_name=spec.name,
            fingerprint=trained.fingerprint,
            artifact=artifact,
            artifact_sha256=sha,
            metrics=trained.metrics,
            lineage={
                "dataset": spec.dataset,
                "embedding_model": MODEL_ID,
                "label_column": spec.label_column,
                "rows": len(rows),
                "source_content_hash": source_entry.content_hash,
            },
            governance=entry.record.to_dict(),
            run_id=context.run.run_id,
        )
    governance.upsert(entry, run_id=context.run.run_id)
    accuracy = version.metrics["accuracy"]
    context.log.info(
        f"{spec.name} v{version.version} ({'new' if created else 'unchanged'}):"
        f" accuracy {accuracy:.3f} on {version.metrics['n_test']} held-out rows"
    )
    return dg.MaterializeResult(
        metadata={
            **entry_metadata(entry),
            **_version_metadata(version, created),
            "artifact_sha256": sha,
            "artifact_bytes": len(artifact),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ACCURACY_CHECK,
                passed=accuracy >= spec.min_accuracy,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"accuracy {accuracy:.3f} (threshold {spec.min_accuracy:.2f})",
                metadata={"accuracy": accuracy},
            )
        ],
    )


def _version_metadata(version: model_registry.ModelVersion, created: bool) -> dict[str, object]:
    metrics = version.metrics
    return {
        "version": version.version,
        "new_version": created,
        "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4),
        "n_train": metrics["n_train"],
        "n_test": metrics["n_test"],
        "per_class_f1": dg.MetadataValue.md(
            "| topic | F1 |\n|---|---:|\n"
            + "\n".join(
                f"| {topic} | {f1:.3f} |" for topic, f1 in sorted(metrics["per_class_f1"].items())
            )
        ),
    }


def _predict_new(
    conn: psycopg.Connection,
    spec: ClassifierSpec,
    model_key: dg.AssetKey,
    refs: list[str],
    hashes: list[str],
    means: np.ndarray,
) -> tuple[model_registry.ModelVersion, list[int], dict[str, tuple[str, float]]]:
    """(latest version, indexes of the segments it newly tagged, label and confidence by content
    hash of every segment): only segments whose text this version has not tagged are predicted."""
    model_registry.ensure_schema(conn)
    version = model_registry.latest(conn, spec.name)
    if version is None:
        raise LookupError(
            f"no {spec.name} in models.registry; materialize {model_key.to_user_string()} first"
        )
    done = model_registry.predicted_hashes(conn, spec.name, version.version, hashes)
    todo = [i for i, h in enumerate(hashes) if h not in done]
    model = classifier.load(*model_registry.artifact(conn, spec.name, version.version))
    labels, confidence = model.predict(means[todo]) if todo else ([], np.empty(0))
    model_registry.store_predictions(
        conn,
        spec.name,
        version.version,
        [
            (hashes[i], spec.dataset, refs[i], lab, float(c))
            for i, lab, c in zip(todo, labels, confidence, strict=True)
        ],
    )
    rows = conn.execute(
        "SELECT content_hash, label, confidence FROM models.predictions"
        " WHERE model_name = %s AND version = %s AND content_hash = ANY(%s)",
        (spec.name, version.version, hashes),
    ).fetchall()
    return version, todo, {h: (lab, c) for h, lab, c in rows}


def tag_segments(
    context: dg.AssetExecutionContext,
    spec: ClassifierSpec,
    source: SourceSpec,
    model_key: dg.AssetKey,
    lakehouse: LakehouseResource,
    vectors: VectorStoresResource,
    governance: GovernanceCatalogResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    """Tag every segment with the latest model version, predicting only segments it has not
    tagged yet; write the table and record its catalog entry."""
    source_entry = governance.require(spec.dataset)
    refs, hashes, means = row_vectors(vectors, source_entry.record.data_residency, spec.dataset)
    with postgres.connect() as conn:
        version, todo, by_hash = _predict_new(conn, spec, model_key, refs, hashes, means)
    table = pl.DataFrame(
        {
            "row_ref": refs,
            "content_hash": hashes,
            "label": [by_hash[h][0] for h in hashes],
            "confidence": [float(by_hash[h][1]) for h in hashes],
        }
    ).with_columns(pl.lit(version.version).alias("model_version"))
    # The predictions inherit the transcripts' governance: stored in their residency zone.
    path = lakehouse.write("models", f"{spec.dataset}_topics", table, dataset=spec.dataset)
    entry = derive_record(
        dataset_id=f"{spec.dataset}_topics",
        inputs=[source_entry, governance.require(spec.name)],
        owner_team=source.owner_team,
        storage_endpoints=[path.as_uri()],
        last_updated=datetime.now(UTC),
        policy=governance.policy,
        row_count=table.height,
    )
    governance.upsert(entry, run_id=context.run.run_id)
    avoided = (len(hashes) - len(todo)) / len(hashes) if hashes else 0.0
    context.log.info(
        f"tagged {len(hashes)} segments: {len(todo)} model calls, "
        f"{len(hashes) - len(todo)} avoided ({avoided:.0%})"
    )
    counts = table.group_by("label").len().sort("len", descending=True)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "model_version": version.version,
            "model_calls": len(todo),
            "model_calls_avoided": len(hashes) - len(todo),
            "share_avoided": round(avoided, 4),
            "labels": dg.MetadataValue.md(
                "| topic | segments |\n|---|---:|\n"
                + "\n".join(f"| {lab} | {n} |" for lab, n in counts.iter_rows())
            ),
            "lakehouse_table": dg.MetadataValue.path(str(path)),
        }
    )
