"""The source catalog file (``data/sources.yaml``): what each Layer 1C source is and looks like.

Each entry declares a dataset: name, file format and location, the storage endpoint it lives at
(which decides its residency), the source system, the owning team, optionally the classification
and retention declared by the data owner, and the expected columns with their types and rules.
Loading is strict (the pydantic models below, `data_plane.config`) and every error names the
file and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from data_plane.classification import CLASSIFICATIONS
from data_plane.config import (
    Bool,
    ConfigModel,
    Namespace,
    Prose,
    Share,
    checked,
    fail,
    name,
    one_of,
    validate,
)
from data_plane.files import read_document, show

FORMATS = ("csv", "jsonl", "parquet")
COLUMN_TYPES = ("string", "integer", "float", "boolean", "date", "datetime")
NAME_PATTERN = r"[a-z][a-z0-9_]{0,62}"
REMOTE_SCHEMES = ("s3",)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    description: str = ""


@dataclass(frozen=True)
class SourceSpec:
    name: str
    format: str
    path: Path
    storage_endpoint: str
    source_system: str
    owner_team: str
    columns: tuple[ColumnSpec, ...]
    description: str = ""
    classification: str | None = None
    retention_policy: str | None = None
    key: str | None = None
    text_columns: tuple[str, ...] = ()
    pii_columns: tuple[str, ...] = ()
    quarantine_max_share: float | None = None
    # An object-storage source (``s3://bucket/key``); ``path`` is then only its name.
    uri: str | None = None

    @property
    def location(self) -> str:
        """Where the source is read from: its URL, or its local path."""
        return self.uri or str(self.path)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


@dataclass(frozen=True)
class DerivedSpec:
    """A dataset computed by DuckDB SQL over other lakehouse tables (``ingested.<source>`` and
    ``curated.<derived>`` views). Its governance is inherited from its inputs."""

    name: str
    inputs: tuple[str, ...]
    sql: str
    owner_team: str
    description: str = ""


@dataclass(frozen=True)
class SourceCatalog:
    sources: tuple[SourceSpec, ...]
    derived: tuple[DerivedSpec, ...] = ()

    def names(self) -> set[str]:
        return {s.name for s in self.sources} | {d.name for d in self.derived}


# --------------------------------------------------------------------------------------------
# The file's models
# --------------------------------------------------------------------------------------------

SourceName = name(NAME_PATTERN, "lower_snake_case (a-z, 0-9, _), at most 63 characters")
ColumnName = name(NAME_PATTERN, "a lower_snake_case column name (a-z, 0-9, _)")


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        fail(f"must be a number, got {show(value)}")
    return float(value)


def _regex(value: Any) -> str:
    if not isinstance(value, str):
        fail("must be a regular expression")
    try:
        re.compile(value)
    except re.error as exc:
        fail(f"invalid regular expression: {exc}")
    return value


def _declared_classification(value: Any) -> str:
    known = CLASSIFICATIONS[:-1]
    if not isinstance(value, str) or value.upper() not in known:
        fail(f"must be one of {list(known)}, got {show(value)}")
    return value.upper()


Finite = checked(float, _finite, {"type": "number"})
Regex = checked(str, _regex, {"type": "string", "format": "regex"})
DeclaredClassification = checked(
    str, _declared_classification, {"type": "string", "enum": list(CLASSIFICATIONS[:-1])}
)
ColumnNames = list[ColumnName]


class ColumnModel(ConfigModel):
    """A column: its type name alone (``id: string``), or a mapping with ``type``."""

    type: one_of(COLUMN_TYPES)  # type: ignore[valid-type]
    required: Bool = False
    min: Finite | None = None
    max: Finite | None = None
    allowed: Annotated[list[Prose], Field(min_length=1)] | None = None
    pattern: Regex | None = None
    description: Prose | None = None

    @classmethod
    def shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ColumnModel:
        if (self.min is not None or self.max is not None) and self.type not in (
            "integer",
            "float",
        ):
            fail("min/max apply to integer and float columns only")
        if self.min is not None and self.max is not None and self.min > self.max:
            fail("is greater than max", ("min",))
        if self.allowed is not None and self.type != "string":
            fail("applies to string columns only", ("allowed",))
        return self

    def build(self, column: str) -> ColumnSpec:
        return ColumnSpec(
            name=column,
            type=self.type,
            required=self.required,
            minimum=self.min,
            maximum=self.max,
            allowed=None if self.allowed is None else tuple(self.allowed),
            pattern=self.pattern,
            description=self.description or "",
        )


Column = Annotated[
    ColumnModel,
    BeforeValidator(lambda v: v, json_schema_input_type=ColumnModel | one_of(COLUMN_TYPES)),
]


class SourceModel(ConfigModel):
    """One Layer 1C source; ``path`` is relative to the catalog file's folder (or absolute), or
    an object on object storage, ``s3://bucket/key`` (read with the lakehouse's S3 settings, from
    a bucket in the source's residency zone only)."""

    name: SourceName
    description: Prose | None = None
    format: one_of(FORMATS)  # type: ignore[valid-type]
    path: Prose
    storage_endpoint: Prose
    source_system: Prose
    owner_team: Namespace
    classification: DeclaredClassification | None = None
    retention_policy: Prose | None = None
    key: str | None = None
    text_columns: ColumnNames | None = None
    pii_columns: ColumnNames | None = None
    quarantine_max_share: Share | None = None
    columns: Annotated[dict[ColumnName, Column], Field(min_length=1)]

    @model_validator(mode="after")
    def _declared(self, info: ValidationInfo) -> SourceModel:
        if self.key is not None and self.key not in self.columns:
            fail(f"{show(self.key)} is not a declared column", ("key",))
        for field, names in (
            ("text_columns", self.text_columns),
            ("pii_columns", self.pii_columns),
        ):
            missing = [n for n in names or () if n not in self.columns]
            if missing:
                fail(f"{missing[0]!r} is not a declared column", (field,))
        scheme = urlsplit(self.path).scheme
        if scheme and len(scheme) > 1:  # a URL (one letter: a Windows drive)
            if scheme not in REMOTE_SCHEMES or not urlsplit(self.path).netloc:
                fail(
                    f"{show(self.path)}: a source is a local path or an s3://bucket/key URL",
                    ("path",),
                )
            return self
        base = (info.context or {}).get("base_dir")
        if base is not None:
            inside = (base / self.path).resolve().is_relative_to(base.resolve())
            if not inside and not Path(self.path).is_absolute():
                fail("a relative path must stay inside the catalog's folder", ("path",))
        return self

    def build(self, base_dir: Path) -> SourceSpec:
        remote = urlsplit(self.path).scheme in REMOTE_SCHEMES
        return SourceSpec(
            name=self.name,
            format=self.format,
            path=Path(Path(urlsplit(self.path).path).name)
            if remote
            else (base_dir / self.path).resolve(),
            uri=self.path if remote else None,
            storage_endpoint=self.storage_endpoint,
            source_system=self.source_system,
            owner_team=self.owner_team,
            columns=tuple(spec.build(column) for column, spec in self.columns.items()),
            description=self.description or "",
            classification=self.classification,
            retention_policy=self.retention_policy,
            key=self.key,
            text_columns=tuple(self.text_columns or ()),
            pii_columns=tuple(self.pii_columns or ()),
            quarantine_max_share=self.quarantine_max_share,
        )


class DerivedModel(ConfigModel):
    """A dataset computed by DuckDB SQL over sources and earlier derived datasets."""

    name: SourceName
    inputs: Annotated[list[SourceName], Field(min_length=1)]
    sql: Prose
    owner_team: Namespace
    description: Prose | None = None

    def build(self) -> DerivedSpec:
        return DerivedSpec(
            name=self.name,
            inputs=tuple(self.inputs),
            sql=self.sql,
            owner_team=self.owner_team,
            description=self.description or "",
        )


class SourceCatalogFile(ConfigModel):
    """The source catalog file: sources, and the datasets derived from them."""

    labels: ClassVar[Mapping[str, str]] = {"sources": "name", "derived": "name"}
    sources: Annotated[list[SourceModel], Field(min_length=1)]
    derived: list[DerivedModel] | None = None

    @model_validator(mode="after")
    def _names(self) -> SourceCatalogFile:
        seen: set[str] = set()
        for i, source in enumerate(self.sources):
            if source.name in seen:
                fail(f"duplicate source name {source.name!r}", ("sources", i, "name"))
            seen.add(source.name)
        for i, derived in enumerate(self.derived or ()):
            for dataset in derived.inputs:
                if dataset not in seen:
                    fail(
                        f"{dataset!r} is not a source or an earlier derived dataset",
                        ("derived", i, "inputs"),
                    )
            if derived.name in seen:
                fail(f"duplicate dataset name {derived.name!r}", ("derived", i, "name"))
            seen.add(derived.name)
        return self


def load_source_catalog(path: Path | str) -> SourceCatalog:
    """Load sources and derived datasets; relative data paths resolve against the file's folder."""
    path = Path(path)
    context = {"base_dir": path.parent}
    catalog = validate(SourceCatalogFile, read_document(path), path, context=context)
    return SourceCatalog(
        sources=tuple(s.build(path.parent) for s in catalog.sources),
        derived=tuple(d.build() for d in catalog.derived or ()),
    )
