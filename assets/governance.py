"""Layer 1A governance: tag each ingested dataset and record it in the governance catalog.

Each ``catalog/<source>`` asset scans every column of ``ingested/<source>`` for PII (vectorised,
`data_plane.pii`), derives classification, residency (from the storage endpoint's region),
retention and compliance tags, and upserts the entry in ``governance.catalog`` (PostgreSQL).
Checks beside it: ``residency_known`` and ``pii_columns_tagged``.
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from assets.ingestion import column_schema, ingested_key
from assets.tags import governance_tags, owner
from assets.workloads import cpu_workload_metadata
from data_plane.catalog import CatalogEntry, tag_dataset
from data_plane.catalog_store import entry_hash
from data_plane.pii import ColumnPii, detect_pii
from data_plane.policy import GovernancePolicy
from data_plane.sources import SourceSpec
from resources.governance import GovernanceCatalogResource
from resources.guard import PlacementGuardResource
from resources.lakehouse import LakehouseResource

GOVERNANCE_GROUP = "governance"
RESIDENCY_CHECK = "residency_known"
PII_CHECK = "pii_columns_tagged"


def catalog_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["catalog", dataset])


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def tagged_schema(frame: pl.DataFrame, pii: dict[str, list[str]]) -> dg.TableSchema:
    """Column schema whose columns carry ``pii`` tags, as the UI shows them."""
    base = column_schema(frame)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=col.name,
                type=col.type,
                tags={"pii": "+".join(pii[col.name])} if col.name in pii else {},
            )
            for col in base.columns
        ]
    )


def entry_metadata(entry: CatalogEntry) -> dict[str, object]:
    """Materialization metadata that shows a catalog entry in the UI."""
    record = entry.record
    pii_rows = [
        f"| `{col}` | {', '.join(types)} |" for col, types in sorted(entry.pii_columns.items())
    ]
    pii_md = (
        "| column | PII |\n|---|---|\n" + "\n".join(pii_rows) if pii_rows else "No PII detected."
    )
    return {
        "classification": record.classification,
        "data_residency": record.data_residency,
        "retention_policy": record.retention_policy,
        "gdpr_compliant": record.gdpr_compliant,
        "data_classification": record.data_classification,
        "regulations": ", ".join(entry.regulations) or "none",
        "pii_columns": dg.MetadataValue.md(pii_md),
        "catalog_record": dg.MetadataValue.json(record.to_dict()),
        "derived_from": ", ".join(entry.derived_from) or "source",
        "owner_team": entry.owner_team,
    }


def build_catalog_asset(spec: SourceSpec, policy: GovernancePolicy) -> dg.AssetsDefinition:
    """The governance-tagging asset (and its checks) of one declared source."""
    residency = policy.residency_of_endpoints([spec.storage_endpoint])
    key = catalog_key(spec.name)

    @dg.asset(
        key=key,
        deps=[ingested_key(spec.name)],
        group_name=GOVERNANCE_GROUP,
        description=(
            f"Governance catalog entry of `{spec.name}`: PII per column, classification, "
            "residency, retention and compliance tags, stored in `governance.catalog`."
        ),
        kinds={"postgres", "polars"},
        owners=[owner(spec.owner_team)],
        tags=governance_tags(residency, spec.classification),
        metadata=cpu_workload_metadata(datasets=[spec.name], writes_catalog=True),
        check_specs=[
            dg.AssetCheckSpec(
                RESIDENCY_CHECK,
                asset=key,
                description="The storage endpoint's region maps to a known residency zone.",
            ),
            dg.AssetCheckSpec(
                PII_CHECK,
                asset=key,
                description=(
                    "Every column found to hold PII is declared in pii_columns of the source "
                    "catalog and the dataset is classified PII."
                ),
            ),
        ],
    )
    def _catalog(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        governance: GovernanceCatalogResource,
        placement_guard: PlacementGuardResource,
    ) -> dg.MaterializeResult:
        placement_guard.require(context)
        return catalog_source(context, spec, lakehouse, governance)

    return _catalog


def catalog_source(
    context: dg.AssetExecutionContext,
    spec: SourceSpec,
    lakehouse: LakehouseResource,
    governance: GovernanceCatalogResource,
) -> dg.MaterializeResult:
    """Scan the ingested table for PII, tag it, upsert its catalog entry, check the result."""
    frame = lakehouse.read("ingested", spec.name)
    lineage = lakehouse.manifest("ingested", spec.name)
    findings = detect_pii(frame, min_share=governance.policy.pii_min_share)
    pii = {col: list(f.pii_types) for col, f in findings.items()}
    entry = tag_dataset(
        dataset_id=spec.name,
        storage_endpoints=[spec.storage_endpoint],
        source_system=spec.source_system,
        owner_team=spec.owner_team,
        declared_classification=spec.classification,
        declared_retention=spec.retention_policy,
        pii_columns=pii,
        last_updated=_parse_iso(lineage["last_updated"]),
        policy=governance.policy,
        row_count=lineage["rows"],
        quarantined_rows=lineage["quarantined_rows"],
        content_hash=lineage["content_hash"],
    )
    changed = governance.upsert(entry, run_id=context.run.run_id)
    context.log.info(f"catalog entry {spec.name}: {entry.record.to_json()}")
    return dg.MaterializeResult(
        metadata={
            **entry_metadata(entry),
            "dagster/column_schema": tagged_schema(frame, pii),
            "pii_detection": dg.MetadataValue.md(_pii_detection_markdown(findings)),
            "entry_changed": changed,
        },
        data_version=dg.DataVersion(entry_hash(entry)[:32]),
        check_results=[_residency_check(spec, entry), _pii_check(spec, entry, pii)],
    )


def _pii_detection_markdown(findings: dict[str, ColumnPii]) -> str:
    if not findings:
        return "No PII detected."
    return "| column | type | share of values | values |\n|---|---|---:|---:|\n" + "\n".join(
        f"| `{f.column}` | {t} | {f.match_share[t]:.1%} | {f.match_count[t]} |"
        for f in findings.values()
        for t in f.pii_types
    )


def _residency_check(spec: SourceSpec, entry: CatalogEntry) -> dg.AssetCheckResult:
    record = entry.record
    return dg.AssetCheckResult(
        check_name=RESIDENCY_CHECK,
        passed=record.residency_known,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"residency {record.data_residency} from {spec.storage_endpoint}"
            if record.residency_known
            else f"no residency zone for {spec.storage_endpoint}: add its region to "
            "region_zones in config/governance.yaml; until then it is UNKNOWN and "
            "no placement may use it"
        ),
        metadata={"data_residency": record.data_residency},
    )


def _pii_check(
    spec: SourceSpec, entry: CatalogEntry, pii: dict[str, list[str]]
) -> dg.AssetCheckResult:
    """Every column found to hold PII is declared, and a dataset holding PII is classified PII."""
    undeclared = sorted(set(pii) - set(spec.pii_columns))
    return dg.AssetCheckResult(
        check_name=PII_CHECK,
        passed=not undeclared and (not pii or entry.record.classification == "PII"),
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"PII found in undeclared columns: {', '.join(undeclared)}; add them to pii_columns"
            if undeclared
            else "all PII columns are declared and tagged"
        ),
        metadata={
            "pii_columns": ", ".join(sorted(pii)) or "none",
            "declared_pii_columns": ", ".join(spec.pii_columns) or "none",
        },
    )
