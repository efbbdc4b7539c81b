"""Sensor: re-ingest and re-tag a source when its file content changes."""

import json

import dagster as dg

from assets.curated import curated_key
from assets.governance import GOVERNANCE_GROUP, catalog_key
from assets.ingestion import INGESTION_GROUP, ingested_key
from data_plane.changes import detect_changes
from data_plane.sources import SourceCatalog


def _downstream(catalog: SourceCatalog, source: str) -> list[dg.AssetKey]:
    """Derived datasets that read the source, directly or through other derived ones."""
    affected = {source}
    keys: list[dg.AssetKey] = []
    for spec in catalog.derived:  # declared in dependency order
        if affected & set(spec.inputs):
            affected.add(spec.name)
            keys.append(curated_key(spec.name))
    return keys


def build_source_files_sensor(catalog: SourceCatalog) -> dg.SensorDefinition:
    @dg.sensor(
        name="source_files_sensor",
        description=(
            "Watches the files of data/sources.yaml; when one's content hash changes, requests a "
            "run that ingests it, re-tags its governance and refreshes derived datasets."
        ),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        # what its runs materialize: ingested/*, catalog/*, curated/* (not embeddings or reports)
        target=dg.AssetSelection.groups(INGESTION_GROUP, GOVERNANCE_GROUP),
    )
    def source_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        changes, new_cursor, missing = detect_changes(catalog.sources, cursor)
        for name in missing:
            context.log.warning(f"source file of {name} is missing; nothing requested for it")
        requests = [
            dg.RunRequest(
                run_key=f"{change.source}:{change.content_hash[:16]}",
                asset_selection=[
                    ingested_key(change.source),
                    catalog_key(change.source),
                    *_downstream(catalog, change.source),
                ],
                tags={"plane/trigger": "source_change", "plane/source": change.source},
            )
            for change in changes
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor, sort_keys=True))

    return source_files_sensor
