"""Derived datasets: DuckDB SQL over lakehouse tables, governance inherited from the inputs.

Each ``curated/<name>`` asset declared under ``derived:`` in ``data/sources.yaml`` runs its SQL
against the lakehouse views (``ingested.<source>``, ``curated.<derived>``), writes the result as a
Parquet table, and records its catalog entry: the most restrictive classification and residency
of its inputs (the propagation rule of `data_plane.catalog.derive_record`), PII if the output
itself holds PII, and the inputs as lineage.
"""

from datetime import UTC, datetime

import dagster as dg

from assets.governance import RESIDENCY_CHECK, catalog_key, entry_metadata, tagged_schema
from assets.ingestion import INGESTION_GROUP, ingested_key
from assets.tags import governance_tags, owner
from assets.workloads import cpu_workload_metadata
from data_plane.catalog import derive_record
from data_plane.classification import combine_residency, most_restrictive_classification
from data_plane.pii import detect_pii
from data_plane.policy import GovernancePolicy
from data_plane.sources import DerivedSpec, SourceCatalog
from resources.governance import GovernanceCatalogResource
from resources.guard import PlacementGuardResource
from resources.lakehouse import LakehouseResource, location_uri


def curated_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["curated", name])


def _input_deps(spec: DerivedSpec, sources: set[str]) -> list[dg.AssetKey]:
    """A source input's data and catalog entry; a derived input's asset, which writes both."""
    deps: list[dg.AssetKey] = []
    for name in spec.inputs:
        deps += [ingested_key(name), catalog_key(name)] if name in sources else [curated_key(name)]
    return deps


def _declared_governance(
    name: str, catalog: SourceCatalog, policy: GovernancePolicy
) -> tuple[str, str | None]:
    """(residency, classification) of a dataset as declared, before any run: a source's own, a
    derived dataset's combined from its inputs (the most restrictive of each)."""
    sources = {s.name: s for s in catalog.sources}
    if name in sources:
        src = sources[name]
        return policy.residency_of_endpoints([src.storage_endpoint]), src.classification
    derived = {d.name: d for d in catalog.derived}
    inner = [_declared_governance(i, catalog, policy) for i in derived[name].inputs]
    return (
        combine_residency(r for r, _ in inner),
        most_restrictive_classification(c for _, c in inner),
    )


def build_curated_asset(
    spec: DerivedSpec, catalog: SourceCatalog, policy: GovernancePolicy
) -> dg.AssetsDefinition:
    inherited = [_declared_governance(name, catalog, policy) for name in spec.inputs]
    key = curated_key(spec.name)
    source_names = {s.name for s in catalog.sources}
    tables = [("ingested" if n in source_names else "curated", n) for n in spec.inputs]

    @dg.asset(
        key=key,
        deps=_input_deps(spec, {s.name for s in catalog.sources}),
        group_name=INGESTION_GROUP,
        description=(spec.description or f"Derived dataset {spec.name}")
        + f"\n\n```sql\n{spec.sql.strip()}\n```",
        kinds={"duckdb", "parquet"},
        owners=[owner(spec.owner_team)],
        tags=governance_tags(
            combine_residency(r for r, _ in inherited),
            most_restrictive_classification(c for _, c in inherited),
        ),
        metadata={
            "inputs": ", ".join(spec.inputs),
            **cpu_workload_metadata(datasets=list(spec.inputs), writes_catalog=True),
        },
        check_specs=[
            dg.AssetCheckSpec(
                RESIDENCY_CHECK,
                asset=key,
                description="Every input has a known residency, so this dataset has one too.",
            )
        ],
    )
    def _curated(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        governance: GovernanceCatalogResource,
        placement_guard: PlacementGuardResource,
    ) -> dg.MaterializeResult:
        placement_guard.require(context)
        return derive_dataset(context, spec, lakehouse, governance, tables)

    return _curated


def derive_dataset(
    context: dg.AssetExecutionContext,
    spec: DerivedSpec,
    lakehouse: LakehouseResource,
    governance: GovernanceCatalogResource,
    tables: list[tuple[str, str]] | None = None,
) -> dg.MaterializeResult:
    """Run the derived dataset's SQL, write the table, record its inherited catalog entry.
    ``tables``: the ``(layer, name)`` tables the SQL reads (each from its own zone's location
    when the lakehouse is on object storage)."""
    inputs = [governance.require(name) for name in spec.inputs]
    with lakehouse.duckdb(tables) as con:
        frame = con.sql(spec.sql).pl()
    path = lakehouse.write(
        "curated",
        spec.name,
        frame,
        manifest={"inputs": list(spec.inputs), "rows": frame.height, "sql": spec.sql},
    )
    pii = {c: list(f.pii_types) for c, f in detect_pii(frame).items()}
    entry = derive_record(
        dataset_id=spec.name,
        inputs=inputs,
        owner_team=spec.owner_team,
        storage_endpoints=[location_uri(path)],
        last_updated=datetime.now(UTC),
        policy=governance.policy,
        pii_columns=pii,
        row_count=frame.height,
    )
    governance.upsert(entry, run_id=context.run.run_id)
    record = entry.record
    context.log.info(f"{spec.name}: {frame.height} rows; catalog entry {record.to_json()}")
    return dg.MaterializeResult(
        metadata={
            **entry_metadata(entry),
            "dagster/row_count": frame.height,
            "dagster/column_schema": tagged_schema(frame, pii),
            "lakehouse_table": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=RESIDENCY_CHECK,
                passed=record.residency_known,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"inherited residency {record.data_residency} from "
                + ", ".join(f"{e.dataset_id}={e.record.data_residency}" for e in inputs),
            )
        ],
    )
