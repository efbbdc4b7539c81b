"""Sensor: when a source file's content changes, queue its ingestion for the reasoning plane.

Ingestion reads governed data, so it is placed like any other workload: this sensor does not
launch runs itself, it queues a request for ``ingested/<source>`` in ``plane.requests``.
``placement_sensor`` places it on a compliant cluster (the source's residency and compliance
come from the catalog, or from the source's declaration before its first tagging) and launches
the placed run; the tagging, derived datasets, chunks and embeddings that read the new data then
become due and are placed in turn.
"""

import json

import dagster as dg

from assets.ingestion import ingested_key
from data_plane.changes import detect_changes
from data_plane.sources import SourceCatalog
from reasoning_plane import store
from reasoning_plane.explain import request_to_dict
from reasoning_plane.model import WorkloadRequest
from resources.plane import PlaneResource


def ingestion_request(source: str, team: str, content_hash: str) -> WorkloadRequest:
    """The queued request for a changed source (the placement sensor fills in the facts from the
    asset and the catalog: `sensors.placement.request_for`)."""
    return WorkloadRequest(
        request_id=f"{ingested_key(source).to_user_string()}@{content_hash[:16]}",
        workload=ingested_key(source).to_user_string(),
        team=team,
        datasets=(source,),
        gpu_count=0,
        gpu_memory_gb=0.0,
        estimated_duration_s=120.0,
    )


def build_source_files_sensor(catalog: SourceCatalog) -> dg.SensorDefinition:
    teams = {s.name: s.owner_team for s in catalog.sources}

    @dg.sensor(
        name="source_files_sensor",
        description=(
            "Watches the files of data/sources.yaml; when one's content hash changes, queues its "
            "ingestion in plane.requests for placement_sensor to place (downstream tagging, "
            "derived datasets and embeddings follow as their inputs change)."
        ),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def source_files_sensor(context: dg.SensorEvaluationContext, plane: PlaneResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        changes, new_cursor, missing = detect_changes(catalog.sources, cursor)
        for name in missing:
            context.log.warning(f"source file of {name} is missing; nothing requested for it")
        queued = []
        if changes:
            with plane.connect() as conn:
                for change in changes:
                    request = ingestion_request(
                        change.source, teams[change.source], change.content_hash
                    )
                    payload = {
                        **request_to_dict(request),
                        "requested_by": "system:source_files_sensor",
                    }
                    if store.add_request(conn, request.request_id, payload):
                        queued.append(request.request_id)
                conn.commit()
        for request_id in queued:
            context.log.info(f"queued {request_id} for placement")
        return dg.SensorResult(cursor=json.dumps(new_cursor, sort_keys=True))

    return source_files_sensor
