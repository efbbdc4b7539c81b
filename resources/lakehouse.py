"""`LakehouseResource`: Parquet tables, on local disk or on object storage per residency zone.

Each table is one Parquet file ``<root>/<layer>/<name>.parquet`` with a JSON manifest beside it
(lineage: content hash of the source, row counts, when written). Locally (the embedded default,
``$PLANE_STATE_DIR/lakehouse``) files are written to a temporary name and renamed, so readers
never see half a table and a re-run replaces the table whole (idempotent). DuckDB reads them in
place.

With ``PLANE_LAKEHOUSE_ZONES`` set (``EU=s3://plane-eu/lakehouse,US=s3://plane-us/lakehouse``),
every table is stored on object storage (fsspec/s3fs, one PUT per object, which S3 makes visible
whole) at the location of its dataset's residency zone, and nowhere else: the residency comes
from the governance catalog (or, before a source is first tagged, from its declaration in the
source catalog), never from the caller, and each location's bucket region is checked against the
governance policy's ``region_zones`` (`data_plane.object_store`). Unknown or composite residency
has no location: the write fails with the reason (fail closed). Reads go to the same location.
"""

from __future__ import annotations

import io
import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
from pydantic import Field, PrivateAttr

from data_plane.catalog import declared_record
from data_plane.classification import UNKNOWN, combine_residency
from data_plane.object_store import (
    StorageResidencyError,
    ZoneLocations,
    filesystem,
    is_remote,
    parse_zone_locations,
    s3_options,
)
from data_plane.sources import SourceCatalog, SourceSpec, load_source_catalog
from resources.database import state_dir
from resources.governance import GovernanceCatalogResource, resolve_project_path

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ZONES_ENV = "PLANE_LAKEHOUSE_ZONES"

# A table's location: a local path, or an s3:// URL (str) on object storage.
Location = Path | str


class LakehouseResource(dg.ConfigurableResource):
    """Parquet + DuckDB lakehouse. Default: local, ``$PLANE_STATE_DIR/lakehouse``; with
    ``zone_locations`` one object-storage location per residency zone."""

    root: str | None = Field(default=None, description="Folder of the local lakehouse tables.")
    zone_locations: str | None = Field(
        default=None,
        description=(
            "Object storage per residency zone, ZONE=s3://bucket/prefix separated by commas "
            f"(env {ZONES_ENV}); unset: local files."
        ),
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 API endpoint (env PLANE_S3_ENDPOINT_URL); unset: AWS."
    )
    s3_access_key_id: str | None = Field(default=None, description="env PLANE_S3_ACCESS_KEY_ID")
    s3_secret_access_key: str | None = Field(
        default=None, description="env PLANE_S3_SECRET_ACCESS_KEY"
    )
    s3_region: str | None = Field(default=None, description="env PLANE_S3_REGION")
    governance: GovernanceCatalogResource | None = Field(
        default=None, description="The catalog that says each dataset's residency."
    )
    sources_file: str | None = Field(
        default=None, description="The source catalog (declared residency before tagging)."
    )
    _zones: ZoneLocations | None = PrivateAttr(default=None)

    # -- where ----------------------------------------------------------------------------

    @property
    def remote(self) -> bool:
        return bool(self.zone_locations and self.zone_locations.strip())

    def storage_options(self) -> dict[str, Any]:
        return s3_options(
            self.s3_endpoint_url, self.s3_access_key_id, self.s3_secret_access_key, self.s3_region
        )

    def zones(self) -> ZoneLocations:
        """The zone -> location map (object storage), each location verified on first use."""
        if self._zones is None:
            if self.governance is None:
                raise StorageResidencyError(
                    "the lakehouse needs the governance catalog to know where data may be stored"
                )
            locations = parse_zone_locations(self.zone_locations, ZONES_ENV)
            fs = filesystem(self.storage_options())
            self._zones = ZoneLocations(locations, fs, self.governance.policy.zone_of_region)
        return self._zones

    @cached_property
    def _sources(self) -> SourceCatalog | None:
        if not self.sources_file:
            return None
        return load_source_catalog(resolve_project_path(self.sources_file))

    def residency_of(self, dataset: str) -> str:
        """The dataset's residency: its governance catalog entry, else what its declaration in
        the source catalog implies (a source's storage endpoint, a derived dataset's inputs),
        else UNKNOWN."""
        if self.governance is not None:
            entry = self.governance.get(dataset)
            if entry is not None:
                return entry.record.data_residency
            catalog = self._sources
            if catalog is not None:
                for spec in catalog.sources:
                    if spec.name == dataset:
                        return declared_record(spec, self.governance.policy).data_residency
                for derived in catalog.derived:
                    if derived.name == dataset:
                        return combine_residency(self.residency_of(i) for i in derived.inputs)
        return UNKNOWN

    def root_path(self) -> Path:
        path = Path(self.root).expanduser() if self.root else state_dir() / "lakehouse"
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()

    def table_path(self, layer: str, name: str, dataset: str | None = None) -> Location:
        """Where the table is: locally a path; on object storage the URL in the zone of
        ``dataset``'s residency (``dataset`` defaults to the table's name)."""
        for part, value in (("layer", layer), ("table name", name)):
            if not _NAME.match(value):
                raise ValueError(f"invalid lakehouse {part} {value!r}: use lower_snake_case")
        if not self.remote:
            return self.root_path() / layer / f"{name}.parquet"
        dataset = dataset or name
        what = f"lakehouse table {layer}/{name} (dataset {dataset})"
        base = self.zones().for_residency(self.residency_of(dataset), what)
        return f"{base}/{layer}/{name}.parquet"

    # -- tables ---------------------------------------------------------------------------

    def write(
        self,
        layer: str,
        name: str,
        frame: pl.DataFrame,
        manifest: dict[str, Any] | None = None,
        *,
        dataset: str | None = None,
    ) -> Location:
        """Replace the table whole; returns its location."""
        path = self.table_path(layer, name, dataset)
        if isinstance(path, str):
            buffer = io.BytesIO()
            frame.write_parquet(buffer, compression="zstd", statistics=True)
            fs = self.zones().fs
            fs.pipe_file(path, buffer.getvalue())
            if manifest is not None:
                fs.pipe_file(_sibling(path, ".json"), _manifest_bytes(manifest))
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".parquet.tmp{os.getpid()}")
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
        if manifest is not None:
            man = path.with_suffix(".json")
            tmp_man = man.with_suffix(f".json.tmp{os.getpid()}")
            tmp_man.write_bytes(_manifest_bytes(manifest))
            os.replace(tmp_man, man)
        return path

    def write_beside(self, table: Location, suffix: str, data: bytes) -> Location:
        """A file beside a table (a chart, ...), in the table's location."""
        if isinstance(table, str):
            target = _sibling(table, suffix)
            self.zones().fs.pipe_file(target, data)
            return target
        target = table.with_suffix(suffix)
        target.write_bytes(data)
        return target

    def exists(self, layer: str, name: str, dataset: str | None = None) -> bool:
        path = self.table_path(layer, name, dataset)
        if isinstance(path, str):
            return bool(self.zones().fs.exists(path))
        return path.exists()

    def read(self, layer: str, name: str, dataset: str | None = None) -> pl.DataFrame:
        path = self.table_path(layer, name, dataset)
        missing = FileNotFoundError(
            f"lakehouse table {layer}/{name} does not exist yet ({path}); materialize it first"
        )
        if isinstance(path, str):
            try:
                return pl.read_parquet(io.BytesIO(self.zones().fs.cat_file(path)))
            except FileNotFoundError:
                raise missing from None
        if not path.exists():
            raise missing
        return pl.read_parquet(path)

    def manifest(self, layer: str, name: str, dataset: str | None = None) -> dict[str, Any]:
        path = self.table_path(layer, name, dataset)
        if isinstance(path, str):
            try:
                return json.loads(self.zones().fs.cat_file(_sibling(path, ".json")))
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"no manifest for lakehouse table {layer}/{name} ({path})"
                ) from None
        path = path.with_suffix(".json")
        if not path.exists():
            raise FileNotFoundError(f"no manifest for lakehouse table {layer}/{name} ({path})")
        return json.loads(path.read_text())

    def duckdb(self, tables: list[tuple[str, str]] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view ``<layer>.<name>`` per table: the given
        ``(layer, name)`` tables, or locally every table. On object storage each given table is
        read from its zone's location (DuckDB's own S3 support is an extension download)."""
        con = duckdb.connect()
        if self.remote:
            if tables is None:
                raise ValueError("on object storage, name the tables the query reads")
            for layer, name in tables:
                frame = self.read(layer, name)
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
                con.register(f"_{layer}_{name}", frame.to_arrow())
                con.execute(f"CREATE VIEW {layer}.{name} AS SELECT * FROM _{layer}_{name}")
            return con
        root = self.root_path()
        for path in sorted(root.glob("*/*.parquet")):
            layer, name = path.parent.name, path.stem
            if _NAME.match(layer) and _NAME.match(name):
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
                escaped = str(path).replace("'", "''")
                con.execute(
                    f"CREATE VIEW {layer}.{name} AS SELECT * FROM read_parquet('{escaped}')"
                )
        return con

    # -- sources --------------------------------------------------------------------------

    def read_source(self, spec: SourceSpec) -> tuple[bytes, float]:
        """The bytes of a source kept on object storage (``spec.uri``) and their modification
        time, after checking that the bucket is in the source's residency zone: a run reading
        an EU dataset from a location outside the EU fails before a byte is read."""
        if spec.uri is None:
            raise ValueError(f"{spec.name}: not an object-storage source")
        if self.governance is None:
            raise StorageResidencyError(
                f"{spec.name}: reading {spec.uri} needs the governance catalog (its residency)"
            )
        policy = self.governance.policy
        fs = self._source_fs()
        zones = ZoneLocations({}, fs, policy.zone_of_region)
        residency = self.residency_of(spec.name)
        zones.check_read(spec.uri, residency, f"source {spec.name}")
        info = fs.info(spec.uri)
        data = fs.cat_file(spec.uri)
        modified = info.get("LastModified")
        return data, modified.timestamp() if hasattr(modified, "timestamp") else 0.0

    def _source_fs(self) -> Any:
        return self.zones().fs if self.remote else filesystem(self.storage_options())


def _sibling(url: str, suffix: str) -> str:
    return url.rsplit(".", 1)[0] + suffix


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()


def location_uri(location: Location) -> str:
    """A table's location as a URI (``file://...`` or ``s3://...``)."""
    return location if isinstance(location, str) else location.as_uri()


__all__ = ["LakehouseResource", "Location", "StorageResidencyError", "is_remote", "location_uri"]
