"""The source catalog file (``data/sources.yaml``): what each Layer 1C source is and looks like.

Each entry declares a dataset: name, file format and location, the storage endpoint it lives at
(which decides its residency), the source system, the owning team, optionally the classification
and retention declared by the data owner, and the expected columns with their types and rules.
Loading is strict and every error names the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_plane.classification import CLASSIFICATIONS, UNKNOWN
from data_plane.errors import InputFileError
from data_plane.files import read_document

FORMATS = ("csv", "jsonl", "parquet")
COLUMN_TYPES = ("string", "integer", "float", "boolean", "date", "datetime")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TEAM_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # a Kubernetes namespace name

_SOURCE_KEYS = {
    "name",
    "description",
    "format",
    "path",
    "storage_endpoint",
    "source_system",
    "owner_team",
    "classification",
    "retention_policy",
    "key",
    "text_columns",
    "pii_columns",
    "quarantine_max_share",
    "columns",
}
_REQUIRED_SOURCE_KEYS = (
    "name",
    "format",
    "path",
    "storage_endpoint",
    "source_system",
    "owner_team",
    "columns",
)
_COLUMN_KEYS = {"type", "required", "min", "max", "allowed", "pattern", "description"}


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

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut short: a hostile file's huge value does not flood the message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value: Any, path: Path, field: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputFileError(path, field, f"must be non-empty text, got {_short(value)}")
    return value.strip()


def _names(value: Any, path: Path, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputFileError(path, field, "must be a list of column names")
    return tuple(value)


def _number(value: Any, path: Path, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputFileError(path, field, f"must be a number, got {_short(value)}")
    return float(value)


def _column(name: Any, raw: Any, path: Path, where: str) -> ColumnSpec:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputFileError(path, where, "column names must be lower_snake_case identifiers")
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise InputFileError(path, where, "must be a type name or a mapping with 'type'")
    unknown = sorted(set(raw) - _COLUMN_KEYS)
    if unknown:
        raise InputFileError(
            path, f"{where}.{unknown[0]}", f"unknown key; allowed: {sorted(_COLUMN_KEYS)}"
        )
    col_type = raw.get("type")
    if col_type not in COLUMN_TYPES:
        raise InputFileError(
            path, f"{where}.type", f"must be one of {list(COLUMN_TYPES)}, got {col_type!r}"
        )
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise InputFileError(path, f"{where}.required", "must be true or false")
    minimum = _number(raw.get("min"), path, f"{where}.min")
    maximum = _number(raw.get("max"), path, f"{where}.max")
    if (minimum is not None or maximum is not None) and col_type not in ("integer", "float"):
        raise InputFileError(path, where, "min/max apply to integer and float columns only")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise InputFileError(path, f"{where}.min", "is greater than max")
    allowed = raw.get("allowed")
    if allowed is not None:
        if (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(v, str) for v in allowed)
        ):
            raise InputFileError(
                path, f"{where}.allowed", "must be a non-empty list of text values"
            )
        if col_type != "string":
            raise InputFileError(path, f"{where}.allowed", "applies to string columns only")
        allowed = tuple(allowed)
    pattern = raw.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise InputFileError(path, f"{where}.pattern", "must be a regular expression")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputFileError(
                path, f"{where}.pattern", f"invalid regular expression: {exc}"
            ) from None
    return ColumnSpec(
        name=name,
        type=col_type,
        required=required,
        minimum=minimum,
        maximum=maximum,
        allowed=allowed,
        pattern=pattern,
        description=_text(raw.get("description"), path, f"{where}.description", required=False),
    )


def _source(raw: Any, path: Path, index: int, base_dir: Path) -> SourceSpec:
    where = f"sources[{index}]"
    if not isinstance(raw, Mapping):
        raise InputFileError(path, where, "must be a mapping")
    if isinstance(raw.get("name"), str):
        where = f"sources[{index}] ({raw['name']})"
    unknown = sorted(set(raw) - _SOURCE_KEYS)
    if unknown:
        raise InputFileError(
            path, f"{where}.{unknown[0]}", f"unknown key; allowed: {sorted(_SOURCE_KEYS)}"
        )
    for key in _REQUIRED_SOURCE_KEYS:
        if key not in raw:
            raise InputFileError(path, f"{where}.{key}", "required")
    name = _text(raw["name"], path, f"{where}.name")
    if not NAME_RE.match(name):
        raise InputFileError(
            path, f"{where}.name", "must be lower_snake_case (a-z, 0-9, _), at most 63 characters"
        )
    fmt = raw["format"]
    if fmt not in FORMATS:
        raise InputFileError(
            path, f"{where}.format", f"must be one of {list(FORMATS)}, got {fmt!r}"
        )
    rel = _text(raw["path"], path, f"{where}.path")
    file_path = (base_dir / rel).resolve()
    if not file_path.is_relative_to(base_dir.resolve()) and not Path(rel).is_absolute():
        raise InputFileError(
            path, f"{where}.path", "a relative path must stay inside the catalog's folder"
        )
    team = _text(raw["owner_team"], path, f"{where}.owner_team")
    if not TEAM_RE.match(team):
        raise InputFileError(
            path,
            f"{where}.owner_team",
            "must be a Kubernetes namespace name (lower-case, digits, '-')",
        )
    classification = raw.get("classification")
    if classification is not None and (
        not isinstance(classification, str)
        or classification.upper() not in CLASSIFICATIONS
        or classification.upper() == UNKNOWN
    ):
        raise InputFileError(
            path, f"{where}.classification", f"must be one of {list(CLASSIFICATIONS[:-1])}"
        )

    columns_raw = raw["columns"]
    if not isinstance(columns_raw, Mapping) or not columns_raw:
        raise InputFileError(
            path, f"{where}.columns", "must be a non-empty mapping of column name to type"
        )
    columns = tuple(
        _column(col, spec, path, f"{where}.columns.{col}") for col, spec in columns_raw.items()
    )
    declared = {c.name for c in columns}
    key = raw.get("key")
    if key is not None and (not isinstance(key, str) or key not in declared):
        raise InputFileError(path, f"{where}.key", f"{_short(key)} is not a declared column")
    text_columns = _names(raw.get("text_columns"), path, f"{where}.text_columns")
    pii_columns = _names(raw.get("pii_columns"), path, f"{where}.pii_columns")
    for field, names in (("text_columns", text_columns), ("pii_columns", pii_columns)):
        missing = [n for n in names if n not in declared]
        if missing:
            raise InputFileError(
                path, f"{where}.{field}", f"{missing[0]!r} is not a declared column"
            )
    share = raw.get("quarantine_max_share")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1
    ):
        raise InputFileError(
            path, f"{where}.quarantine_max_share", "must be a number between 0 and 1"
        )
    return SourceSpec(
        name=name,
        format=fmt,
        path=file_path,
        storage_endpoint=_text(raw["storage_endpoint"], path, f"{where}.storage_endpoint"),
        source_system=_text(raw["source_system"], path, f"{where}.source_system"),
        owner_team=team,
        columns=columns,
        description=_text(raw.get("description"), path, f"{where}.description", required=False),
        classification=classification.upper() if classification else None,
        retention_policy=_text(
            raw.get("retention_policy"), path, f"{where}.retention_policy", required=False
        )
        or None,
        key=key,
        text_columns=text_columns,
        pii_columns=pii_columns,
        quarantine_max_share=float(share) if share is not None else None,
    )


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


_DERIVED_KEYS = {"name", "inputs", "sql", "owner_team", "description"}


def _derived(raw: Any, path: Path, index: int, known: set[str]) -> DerivedSpec:
    where = f"derived[{index}]"
    if not isinstance(raw, Mapping):
        raise InputFileError(path, where, "must be a mapping")
    unknown = sorted(set(raw) - _DERIVED_KEYS)
    if unknown:
        raise InputFileError(
            path, f"{where}.{unknown[0]}", f"unknown key; allowed: {sorted(_DERIVED_KEYS)}"
        )
    for key in ("name", "inputs", "sql", "owner_team"):
        if key not in raw:
            raise InputFileError(path, f"{where}.{key}", "required")
    name = _text(raw["name"], path, f"{where}.name")
    if not NAME_RE.match(name):
        raise InputFileError(
            path, f"{where}.name", "must be lower_snake_case, at most 63 characters"
        )
    inputs = _names(raw["inputs"], path, f"{where}.inputs")
    if not inputs:
        raise InputFileError(path, f"{where}.inputs", "must name at least one dataset")
    for dataset in inputs:
        if dataset not in known:
            raise InputFileError(
                path,
                f"{where}.inputs",
                f"{dataset!r} is not a source or an earlier derived dataset",
            )
    team = _text(raw["owner_team"], path, f"{where}.owner_team")
    if not TEAM_RE.match(team):
        raise InputFileError(path, f"{where}.owner_team", "must be a Kubernetes namespace name")
    return DerivedSpec(
        name=name,
        inputs=inputs,
        sql=_text(raw["sql"], path, f"{where}.sql"),
        owner_team=team,
        description=_text(raw.get("description"), path, f"{where}.description", required=False),
    )


def load_source_catalog(path: Path | str) -> SourceCatalog:
    """Load sources and derived datasets; relative data paths resolve against the file's folder."""
    path = Path(path)
    raw = read_document(path)
    if not isinstance(raw, Mapping) or "sources" not in raw or set(raw) - {"sources", "derived"}:
        raise InputFileError(
            path, "(top level)", "must be a mapping with 'sources' and optionally 'derived'"
        )
    entries = raw["sources"]
    if not isinstance(entries, list) or not entries:
        raise InputFileError(path, "sources", "must be a non-empty list")
    specs = [_source(entry, path, i, path.parent) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise InputFileError(path, f"sources[{i}].name", f"duplicate source name {spec.name!r}")
        seen.add(spec.name)
    derived_raw = raw.get("derived") or []
    if not isinstance(derived_raw, list):
        raise InputFileError(path, "derived", "must be a list")
    derived: list[DerivedSpec] = []
    for i, entry in enumerate(derived_raw):
        spec = _derived(entry, path, i, set(seen))
        if spec.name in seen:
            raise InputFileError(
                path, f"derived[{i}].name", f"duplicate dataset name {spec.name!r}"
            )
        seen.add(spec.name)
        derived.append(spec)
    return SourceCatalog(sources=tuple(specs), derived=tuple(derived))


def load_sources(path: Path | str) -> list[SourceSpec]:
    """The sources of a source catalog file (see `load_source_catalog`)."""
    return list(load_source_catalog(path).sources)
