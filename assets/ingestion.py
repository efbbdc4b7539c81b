"""Layer 1C ingestion: one asset per declared source, built by a factory.

Each ``ingested/<source>`` asset reads the source file, validates it against the schema declared
in ``data/sources.yaml``, writes the valid rows to the lakehouse and the refused rows, with their
reasons, to ``quarantine/<source>``. Its check ``quarantine_below_threshold`` fails when too large a
share of the file was refused. The data version is the content hash of the source file, so Dagster
shows downstream assets as stale exactly when the source changed.
"""

import time
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from assets.progress import heartbeat
from assets.tags import governance_tags, owner
from assets.workloads import DECLARED_KEY, cpu_workload_metadata
from data_plane.catalog import declared_record
from data_plane.ingest import IngestResult, ingest
from data_plane.policy import GovernancePolicy
from data_plane.sources import SourceSpec
from resources.guard import PlacementGuardResource
from resources.lakehouse import LakehouseResource, Location

INGESTION_GROUP = "ingestion"
QUARANTINE_CHECK = "quarantine_below_threshold"
HEARTBEAT_S = 10.0  # a "still reading" line this often while a large file is read

_DAGSTER_TYPES = {
    pl.String: "string",
    pl.Int64: "int64",
    pl.Float64: "float64",
    pl.Boolean: "bool",
    pl.Date: "date",
    pl.Datetime: "timestamp (UTC)",
}


def ingested_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["ingested", source])


def column_schema(frame: pl.DataFrame, spec: SourceSpec | None = None) -> dg.TableSchema:
    descriptions = {c.name: c.description for c in spec.columns} if spec else {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=_DAGSTER_TYPES.get(type(dtype), str(dtype)),
                description=descriptions.get(name) or None,
            )
            for name, dtype in frame.schema.items()
        ]
    )


def _reasons_markdown(result: IngestResult) -> str:
    reasons = result.quarantine_reasons()
    if not reasons:
        return "No record was quarantined."
    lines = ["| reason | records |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in reasons.items()]
    return "\n".join(lines)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _quarantine_limit(spec: SourceSpec, policy: GovernancePolicy) -> float:
    """The share of a source's records that may be quarantined: its own, else the policy's."""
    return (
        spec.quarantine_max_share
        if spec.quarantine_max_share is not None
        else policy.quarantine_max_share
    )


def build_ingestion_asset(spec: SourceSpec, policy: GovernancePolicy) -> dg.AssetsDefinition:
    """The ingestion asset (and its quarantine check) of one declared source."""
    max_share = _quarantine_limit(spec, policy)
    residency = policy.residency_of_endpoints([spec.storage_endpoint])

    @dg.asset(
        key=ingested_key(spec.name),
        group_name=INGESTION_GROUP,
        description=(spec.description or f"Ingested {spec.name}")
        + f"\n\nSource: `{spec.source_system}` at `{spec.storage_endpoint}` ({spec.format}).",
        kinds={"polars", "duckdb", "parquet"},
        owners=[owner(spec.owner_team)],
        tags=governance_tags(residency, spec.classification),
        metadata={
            "source_system": spec.source_system,
            "storage_endpoint": spec.storage_endpoint,
            "format": spec.format,
            "source_file": dg.MetadataValue.path(spec.location),
            "quarantine_max_share": max_share,
            **cpu_workload_metadata(datasets=[spec.name]),
            DECLARED_KEY: dg.MetadataValue.json(declared_record(spec, policy).to_dict()),
        },
        check_specs=[
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=ingested_key(spec.name),
                description=f"At most {max_share:.0%} of the source's records are quarantined.",
            )
        ],
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        placement_guard: PlacementGuardResource,
    ) -> dg.MaterializeResult:
        placement_guard.require(context)  # before a byte of the source is read
        return ingest_source(context, spec, lakehouse, max_share)

    return _ingest


def ingest_source(
    context: dg.AssetExecutionContext,
    spec: SourceSpec,
    lakehouse: LakehouseResource,
    max_share: float,
) -> dg.MaterializeResult:
    """Read and validate the source file, write its valid and quarantined rows, report both."""
    result = _read_source(context, spec, lakehouse)
    lineage = _lineage(spec, result, context.run.run_id)
    _log_throughput(context, spec, result)
    written = time.perf_counter()
    path = lakehouse.write("ingested", spec.name, result.valid, manifest=lineage)
    lakehouse.write("quarantine", spec.name, result.quarantine)
    context.log.info(
        f"{spec.name}: wrote {result.valid.height:,} rows to {path} and "
        f"{result.quarantine.height:,} to quarantine in {time.perf_counter() - written:.2f}s"
    )
    if result.extra_columns:
        context.log.warning(
            f"{spec.name}: columns not in the declared schema kept as text: "
            f"{', '.join(result.extra_columns)}"
        )
    return dg.MaterializeResult(
        metadata=_ingestion_metadata(spec, result, lineage, lakehouse, path),
        data_version=dg.DataVersion(result.content_hash[:32]),
        check_results=[_quarantine_check(result, max_share)],
    )


def _read_source(
    context: dg.AssetExecutionContext, spec: SourceSpec, lakehouse: LakehouseResource
) -> IngestResult:
    # An object-storage source is read only from a bucket in its residency zone (checked first).
    remote = lakehouse.read_source(spec) if spec.uri is not None else None
    if remote is not None:
        size = len(remote[0])
    else:
        size = spec.path.stat().st_size if spec.path.exists() else 0
    context.log.info(f"{spec.name}: reading {spec.location} ({size / 1e6:,.1f} MB, {spec.format})")
    with heartbeat(
        context.log.info, f"reading and validating {spec.path.name}", every_s=HEARTBEAT_S
    ):
        return ingest(spec, remote)


def _lineage(spec: SourceSpec, result: IngestResult, run_id: str) -> dict[str, object]:
    """The manifest written beside the ingested table (read by the catalog asset)."""
    return {
        "dataset": spec.name,
        "source_system": spec.source_system,
        "storage_endpoint": spec.storage_endpoint,
        "source_file": spec.location,
        "content_hash": result.content_hash,
        "source_bytes": result.source_bytes,
        "last_updated": _iso(result.source_modified),
        "rows": result.valid.height,
        "quarantined_rows": result.quarantine.height,
        "extra_columns": list(result.extra_columns),
        "dagster_run_id": run_id,
    }


def _log_throughput(
    context: dg.AssetExecutionContext, spec: SourceSpec, result: IngestResult
) -> None:
    seconds = max(result.seconds, 1e-9)
    context.log.info(
        f"{spec.name}: {result.records_read:,} records read, {result.valid.height:,} valid, "
        f"{result.quarantine.height:,} quarantined ({result.quarantine_share:.2%}) "
        f"in {result.seconds:.2f}s: {result.records_read / seconds:,.0f} rows/s, "
        f"{result.source_bytes / 1e6 / seconds:,.1f} MB/s"
    )


def _ingestion_metadata(
    spec: SourceSpec,
    result: IngestResult,
    lineage: dict[str, object],
    lakehouse: LakehouseResource,
    path: Location,
) -> dict[str, object]:
    return {
        "dagster/row_count": result.valid.height,
        "dagster/column_schema": column_schema(result.valid, spec),
        "records_read": result.records_read,
        "quarantined_rows": result.quarantine.height,
        "quarantine_share": round(result.quarantine_share, 6),
        "quarantine_reasons": dg.MetadataValue.md(_reasons_markdown(result)),
        "quarantine_table": dg.MetadataValue.path(
            str(lakehouse.table_path("quarantine", spec.name))
        ),
        "content_hash": result.content_hash,
        "source_system": spec.source_system,
        "last_updated": lineage["last_updated"],
        "source_bytes": result.source_bytes,
        "extra_columns": ", ".join(result.extra_columns) or "none",
        "lakehouse_table": dg.MetadataValue.path(str(path)),
        "seconds": round(result.seconds, 3),
    }


def _quarantine_check(result: IngestResult, max_share: float) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=result.quarantine_share <= max_share,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{result.quarantine.height} of {result.records_read} records "
            f"({result.quarantine_share:.2%}) quarantined; limit {max_share:.0%}"
        ),
        metadata={
            "quarantined_rows": result.quarantine.height,
            "quarantine_share": round(result.quarantine_share, 6),
            "limit": max_share,
        },
    )
