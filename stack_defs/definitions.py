"""The one place where the project is assembled into Dagster `Definitions`.

Sources and derived datasets come from the source catalog file (``PLANE_SOURCES_FILE``, default
``data/sources.yaml``), governance rules from ``PLANE_POLICY_FILE`` (default
``config/governance.yaml``). Loading reads those two files only: no database is started and no
model is loaded until a run needs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg

from assets.curated import build_curated_asset
from assets.embeddings import build_chunks_asset, build_embeddings_asset
from assets.endpoints import endpoints_asset
from assets.governance import build_catalog_asset
from assets.ingestion import build_ingestion_asset
from assets.model_catalog import model_catalog_asset
from assets.models import TOPIC_CLASSIFIER, build_model_assets
from assets.serving import (
    SERVING_GROUP,
    ResidencyResource,
    ServingResource,
    residency_job,
    residency_plan_asset,
)
from assets.spend import SPEND_GROUP, team_spend_asset, team_spend_job, team_spend_schedule
from assets.workloads import declared_records, workload_specs
from data_plane.policy import load_policy
from data_plane.sources import load_source_catalog
from resources.database import project_root
from resources.embedding import EmbeddingModelResource
from resources.executor import placement_executor
from resources.governance import GovernanceCatalogResource
from resources.guard import PlacementGuardResource
from resources.lakehouse import LakehouseResource
from resources.plane import PlaneResource
from resources.postgres import PostgresResource
from resources.vectors import VectorStoresResource
from sensors.ledger import (
    plane_cancel_sensor,
    plane_failure_sensor,
    plane_metering_sensor,
    plane_run_started_sensor,
)
from sensors.placement import build_placement_sensor, build_recurring_schedule
from sensors.residency import residency_sensor
from sensors.source_files import build_source_files_sensor

SOURCES_FILE_ENV = "PLANE_SOURCES_FILE"
POLICY_FILE_ENV = "PLANE_POLICY_FILE"


def _path(explicit: str | Path | None, env: str, default: str) -> Path:
    value = explicit or os.environ.get(env) or default
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_root() / path


# LakehouseResource field -> the environment variable configuring it (object storage per zone).
LAKEHOUSE_ENV = {
    "zone_locations": "PLANE_LAKEHOUSE_ZONES",
    "s3_endpoint_url": "PLANE_S3_ENDPOINT_URL",
    "s3_access_key_id": "PLANE_S3_ACCESS_KEY_ID",
    "s3_secret_access_key": "PLANE_S3_SECRET_ACCESS_KEY",
    "s3_region": "PLANE_S3_REGION",
}


def _lakehouse_env() -> dict[str, dg.EnvVar]:
    """The object-storage settings that are set, as EnvVars (read at run time; the snapshot
    keeps only their names, never a secret's value)."""
    return {field: dg.EnvVar(env) for field, env in LAKEHOUSE_ENV.items() if os.environ.get(env)}


def build_defs(
    sources_file: str | Path | None = None,
    policy_file: str | Path | None = None,
    lakehouse_root: str | None = None,
    database_url: str | None = None,
) -> dg.Definitions:
    """Definitions for a source catalog and policy (tests pass their own files).

    ``database_url`` becomes resource configuration, which Dagster keeps in every job snapshot
    and shows in the launchpad: a URL carrying a password is refused here (set
    ``PLANE_DATABASE_URL``, read at run time, or pass ``dg.EnvVar("PLANE_DATABASE_URL")``)."""
    if (
        database_url is not None
        and not isinstance(database_url, dg.EnvVar)
        and urlsplit(str(database_url)).password
    ):
        raise ValueError(
            "build_defs(database_url=...): the URL carries a password, which Dagster would store "
            "in the job snapshot; set PLANE_DATABASE_URL or pass dg.EnvVar('PLANE_DATABASE_URL')"
        )
    sources_path = _path(sources_file, SOURCES_FILE_ENV, "data/sources.yaml")
    policy_path = _path(policy_file, POLICY_FILE_ENV, "config/governance.yaml")
    catalog = load_source_catalog(sources_path)
    policy = load_policy(policy_path)

    assets: list[dg.AssetsDefinition] = []
    for spec in catalog.sources:
        assets.append(build_ingestion_asset(spec, policy))
        assets.append(build_catalog_asset(spec, policy))
    assets += [build_curated_asset(spec, catalog, policy) for spec in catalog.derived]
    for spec in catalog.sources:
        if spec.text_columns:
            assets.append(build_chunks_asset(spec, policy))
            assets.append(build_embeddings_asset(spec, policy))
    by_name = {s.name: s for s in catalog.sources}
    if TOPIC_CLASSIFIER.dataset in by_name:
        assets += build_model_assets(TOPIC_CLASSIFIER, by_name[TOPIC_CLASSIFIER.dataset], policy)

    workloads = workload_specs(assets)
    declared = declared_records(assets)
    # Each part connects as its own database role (data_plane.roles): least privilege.
    postgres = PostgresResource(database_url=database_url, role="worker")
    main_job = dg.define_asset_job(
        "main_job",
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups(SPEND_GROUP, SERVING_GROUP),
        description=(
            "The whole data plane: ingest every source, tag governance, derive datasets, embed "
            "text into the regional vector stores, train and apply the topic classifier."
        ),
    )
    return dg.Definitions(
        assets=[
            *assets,
            team_spend_asset,
            residency_plan_asset,
            model_catalog_asset,
            endpoints_asset,
        ],
        jobs=[main_job, team_spend_job, residency_job],
        sensors=[
            build_source_files_sensor(catalog),
            build_placement_sensor(workloads, declared),
            plane_run_started_sensor,
            plane_metering_sensor,
            plane_failure_sensor,
            plane_cancel_sensor,
            residency_sensor,
        ],
        schedules=[build_recurring_schedule(workloads, declared), team_spend_schedule],
        executor=placement_executor,
        resources={
            "postgres": postgres,
            "lakehouse": LakehouseResource(
                root=lakehouse_root,
                **_lakehouse_env(),
                governance=GovernanceCatalogResource(
                    postgres=PostgresResource(database_url=database_url, role="worker"),
                    policy_file=str(policy_path),
                ),
                sources_file=str(sources_path),
            ),
            "governance": GovernanceCatalogResource(
                postgres=PostgresResource(database_url=database_url, role="steward"),
                policy_file=str(policy_path),
            ),
            "vectors": VectorStoresResource(database_url=database_url),
            "embedding_model": EmbeddingModelResource(),
            "plane": PlaneResource(
                postgres=PostgresResource(database_url=database_url, role="plane")
            ),
            "placement_guard": PlacementGuardResource(postgres=postgres),
            "residency": ResidencyResource(),
            "serving": ServingResource(),
        },
    )


defs = build_defs()
