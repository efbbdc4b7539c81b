"""`LakehouseResource`: Parquet tables on disk, queried with DuckDB.

Each table is one Parquet file ``<root>/<layer>/<name>.parquet`` with a JSON manifest beside it
(lineage: content hash of the source, row counts, when written). Files are written to a temporary
name and renamed, so readers never see half a table and a re-run replaces the table whole
(idempotent). DuckDB reads them in place; there is no database file to lock, so several Dagster
processes may write different tables at once.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
from pydantic import Field

from resources.database import state_dir

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class LakehouseResource(dg.ConfigurableResource):
    """Parquet + DuckDB lakehouse. Default root: ``$PLANE_STATE_DIR/lakehouse``."""

    root: str | None = Field(default=None, description="Folder of the lakehouse tables.")

    def root_path(self) -> Path:
        path = Path(self.root).expanduser() if self.root else state_dir() / "lakehouse"
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()

    def table_path(self, layer: str, name: str) -> Path:
        for part, value in (("layer", layer), ("table name", name)):
            if not _NAME.match(value):
                raise ValueError(f"invalid lakehouse {part} {value!r}: use lower_snake_case")
        return self.root_path() / layer / f"{name}.parquet"

    def write(
        self, layer: str, name: str, frame: pl.DataFrame, manifest: dict[str, Any] | None = None
    ) -> Path:
        """Replace the table atomically; returns its path."""
        path = self.table_path(layer, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".parquet.tmp{os.getpid()}")
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
        if manifest is not None:
            man = path.with_suffix(".json")
            tmp_man = man.with_suffix(f".json.tmp{os.getpid()}")
            tmp_man.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            os.replace(tmp_man, man)
        return path

    def exists(self, layer: str, name: str) -> bool:
        return self.table_path(layer, name).exists()

    def read(self, layer: str, name: str) -> pl.DataFrame:
        path = self.table_path(layer, name)
        if not path.exists():
            raise FileNotFoundError(
                f"lakehouse table {layer}/{name} does not exist yet ({path}); materialize it first"
            )
        return pl.read_parquet(path)

    def manifest(self, layer: str, name: str) -> dict[str, Any]:
        path = self.table_path(layer, name).with_suffix(".json")
        if not path.exists():
            raise FileNotFoundError(f"no manifest for lakehouse table {layer}/{name} ({path})")
        return json.loads(path.read_text())

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view ``<layer>.<name>`` per table."""
        con = duckdb.connect()
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
