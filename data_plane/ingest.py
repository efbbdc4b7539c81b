"""Layer 1C: read a declared source, validate it against its schema, split good rows from bad.

Nothing is silently dropped: every record of the file ends up either in the typed, valid table or
in the quarantine table with the reason it was refused (a CSV line with the wrong number of fields,
bytes that are not UTF-8, a line that is not JSON, a value of the wrong type, a missing required
value, a value out of range or not allowed, a duplicate key). Problems that make the whole file
unusable (missing, empty, unreadable Parquet, a required column absent from the header) raise
`SourceFileError` naming the file and the problem.

CSV is parsed by DuckDB in strict mode with its rejects table (so malformed lines are reported,
never truncated); JSONL by polars, falling back to a line-by-line parse only when the file holds
broken lines; Parquet by polars. Validation is vectorised over whole columns with polars.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from data_plane.errors import InputFileError
from data_plane.sources import ColumnSpec, SourceSpec

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "dataset": pl.String(),
    "source_file": pl.String(),
    "source_line": pl.Int64(),
    "record_index": pl.Int64(),
    "reason": pl.String(),
    "raw_record": pl.String(),
}

REASON_SEPARATOR = " | "  # between several reasons for one record

_DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
)
_POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "float": pl.Float64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us", "UTC"),
}


class SourceFileError(InputFileError):
    """The file as a whole cannot be ingested (nothing was written)."""


@dataclass(frozen=True)
class IngestResult:
    """The outcome of ingesting one source file."""

    dataset: str
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    content_hash: str
    source_bytes: int
    source_modified: float
    extra_columns: tuple[str, ...]
    seconds: float

    @property
    def records_read(self) -> int:
        return self.valid.height + self.quarantine.height

    @property
    def quarantine_share(self) -> float:
        total = self.records_read
        return self.quarantine.height / total if total else 0.0

    def quarantine_reasons(self) -> dict[str, int]:
        """Quarantined records per kind of reason (the reason text without its values)."""
        if self.quarantine.is_empty():
            return {}
        kinds = (
            self.quarantine.select(pl.col("reason").str.split(REASON_SEPARATOR).alias("kind"))
            .explode("kind")
            .select(pl.col("kind").str.extract(r"^(.*?)(?: \(|$)"))
            .group_by("kind")
            .len()
            .sort(["len", "kind"], descending=[True, False])
        )
        return dict(zip(kinds["kind"].to_list(), kinds["len"].to_list(), strict=True))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def _read_csv_header(spec: SourceSpec) -> list[str]:
    with spec.path.open("rb") as fh:
        first = fh.readline()
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceFileError(spec.path, "header", "the header line is not valid UTF-8") from None
    header = next(csv.reader([line]), [])
    header = [h.strip() for h in header]
    if not any(header):
        raise SourceFileError(spec.path, "header", "the first line is empty; expected column names")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise SourceFileError(spec.path, "header", f"duplicate column name {duplicates[0]!r}")
    return header


def _read_csv(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    header = _read_csv_header(spec)
    columns = ", ".join(f"'{h.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for h in header)
    con = duckdb.connect()
    try:
        relation = con.sql(
            "SELECT * FROM read_csv(?, header = true, auto_detect = false, strict_mode = true,"
            " delim = ',', quote = '\"', escape = '\"', all_varchar = true, store_rejects = true,"
            f" parallel = false, columns = {{{columns}}})",
            params=[str(spec.path)],
        )
        frame = relation.pl()
        # One row per rejected line (DuckDB reports a line once per missing column).
        rejects = con.sql(
            "SELECT line, any_value(error_type ORDER BY column_idx) AS error_type,"
            " any_value(csv_line) AS csv_line,"
            " any_value(error_message ORDER BY column_idx) AS error_message"
            " FROM reject_errors GROUP BY line ORDER BY line"
        ).pl()
    except duckdb.Error as exc:
        raise SourceFileError(spec.path, "", f"cannot parse CSV: {exc}") from None
    finally:
        con.close()
    quarantine = rejects.select(
        pl.lit(spec.name).alias("dataset"),
        pl.lit(str(spec.path)).alias("source_file"),
        pl.col("line").cast(pl.Int64).alias("source_line"),
        pl.lit(None, pl.Int64).alias("record_index"),
        pl.format(
            "malformed CSV line: {} ({})",
            pl.col("error_type").cast(pl.String).str.to_lowercase(),
            pl.col("error_message"),
        ).alias("reason"),
        pl.col("csv_line").alias("raw_record"),
    )
    _check_csv_accounted(spec, frame, quarantine)
    return frame, quarantine


def _newlines(frame: pl.DataFrame) -> int:
    counts = frame.select(
        pl.sum_horizontal(pl.col(pl.String).str.count_matches("\n").fill_null(0)).sum()
    )
    return int(counts.item() or 0)


def _check_csv_accounted(spec: SourceSpec, frame: pl.DataFrame, rejects: pl.DataFrame) -> None:
    """Every non-blank line of the file must be a header, part of a record or a rejected line.

    DuckDB may drop the tail of a file that ends inside an unterminated quote without reporting
    it; rather than lose those lines silently, the whole file is refused.
    """
    with spec.path.open("rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    non_blank = sum(1 for line in lines if line.strip())
    accounted = (
        1
        + frame.height
        + _newlines(frame)
        + rejects.height
        + _newlines(rejects.select("raw_record"))
    )
    if non_blank > accounted:
        raise SourceFileError(
            spec.path,
            "",
            f"{non_blank - accounted} of {non_blank} lines could not be parsed as CSV records "
            "(an unterminated quote?); nothing was ingested",
        )


def _json_scalar_to_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _read_jsonl_slow(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Line-by-line parse, used only when the fast whole-file parse fails."""
    records: list[dict[str, str | None]] = []
    bad: list[dict[str, object]] = []
    with spec.path.open("rb") as fh:
        for number, raw_line in enumerate(fh, start=1):
            stripped = raw_line.strip()
            if not stripped:
                continue
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append(
                    {
                        "line": number,
                        "reason": f"invalid UTF-8 (at byte {exc.start})",
                        "raw": stripped.decode("utf-8", errors="replace"),
                    }
                )
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                bad.append(
                    {
                        "line": number,
                        "reason": f"not valid JSON ({exc.msg}, column {exc.colno})",
                        "raw": text,
                    }
                )
                continue
            if not isinstance(obj, dict):
                bad.append(
                    {
                        "line": number,
                        "reason": f"not a JSON object ({type(obj).__name__})",
                        "raw": text,
                    }
                )
                continue
            records.append({str(k): _json_scalar_to_text(v) for k, v in obj.items()})
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    frame = (
        pl.DataFrame(records, schema=dict.fromkeys(keys, pl.String), orient="row")
        if records
        else pl.DataFrame(schema=dict.fromkeys(keys, pl.String))
    )
    quarantine = pl.DataFrame(
        {
            "dataset": [spec.name] * len(bad),
            "source_file": [str(spec.path)] * len(bad),
            "source_line": [b["line"] for b in bad],
            "record_index": [None] * len(bad),
            "reason": [f"malformed JSONL line: {b['reason']}" for b in bad],
            "raw_record": [b["raw"] for b in bad],
        },
        schema=QUARANTINE_SCHEMA,
    )
    return frame, quarantine


def _read_jsonl(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    try:
        frame = pl.read_ndjson(spec.path, infer_schema_length=None)
    except Exception:
        return _read_jsonl_slow(spec)
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    frame = frame.with_columns(
        *[
            pl.col(c).struct.json_encode()
            if frame.schema[c] == pl.Struct
            else pl.col(c).cast(pl.List(pl.String)).list.join(",")
            for c in nested
        ]
    ).with_columns(pl.all().cast(pl.String))
    return frame, _empty_quarantine()


def _read_parquet(spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    try:
        frame = pl.read_parquet(spec.path)
    except Exception as exc:
        raise SourceFileError(spec.path, "", f"cannot read Parquet: {exc}") from None
    return frame, _empty_quarantine()


_READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}


def _cast(col: ColumnSpec, dtype: pl.DataType) -> pl.Expr:
    """Expression converting the raw column to the declared type; null where it cannot."""
    c = pl.col(col.name)
    target = _POLARS_TYPES[col.type]
    if dtype == target:
        return c
    if col.type == "datetime":
        if isinstance(dtype, pl.Datetime):
            return (
                c.dt.replace_time_zone("UTC")
                if dtype.time_zone is None
                else c.dt.convert_time_zone("UTC")
            ).dt.cast_time_unit("us")
        text = c.cast(pl.String).str.strip_chars()
        return pl.coalesce(
            [
                text.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
                for f in _DATETIME_FORMATS
            ]
        )
    if col.type == "date":
        if isinstance(dtype, pl.Datetime):
            return c.dt.date()
        return c.cast(pl.String).str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    if col.type == "boolean":
        text = c.cast(pl.String).str.strip_chars().str.to_lowercase()
        return (
            pl.when(text.is_in(["true", "t", "yes", "y", "1"]))
            .then(True)
            .when(text.is_in(["false", "f", "no", "n", "0"]))
            .then(False)
            .otherwise(None)
        )
    if col.type in ("integer", "float"):
        if dtype.is_numeric():
            return c.cast(target, strict=False)
        return c.cast(pl.String).str.strip_chars().cast(target, strict=False)
    return c.cast(pl.String)


def _reasons(spec: SourceSpec, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """Typed columns (as ``__typed_<name>``) and one reason expression per rule."""
    typed_exprs: list[pl.Expr] = []
    reasons: list[pl.Expr] = []
    for col in spec.columns:
        typed = f"__typed_{col.name}"
        typed_exprs.append(_cast(col, frame.schema[col.name]).alias(typed))
        raw = pl.col(col.name)
        raw_text = raw.cast(pl.String)
        is_blank = raw.is_null() | (raw_text.str.strip_chars() == "")
        t = pl.col(typed)
        reasons.append(
            pl.when(~is_blank & t.is_null()).then(
                pl.format(f"{col.name}: not a valid {col.type} ({{}})", raw_text.str.slice(0, 80))
            )
        )
        if col.required:
            reasons.append(pl.when(is_blank).then(pl.lit(f"{col.name}: required value missing")))
        if col.minimum is not None:
            reasons.append(
                pl.when(t < col.minimum).then(
                    pl.format(f"{col.name}: below the minimum {col.minimum:g} ({{}})", t)
                )
            )
        if col.maximum is not None:
            reasons.append(
                pl.when(t > col.maximum).then(
                    pl.format(f"{col.name}: above the maximum {col.maximum:g} ({{}})", t)
                )
            )
        if col.allowed is not None:
            reasons.append(
                pl.when(t.is_not_null() & ~t.is_in(list(col.allowed))).then(
                    pl.format(
                        f"{col.name}: not an allowed value "
                        f"({{}}; allowed: {', '.join(col.allowed)})",
                        t,
                    )
                )
            )
        if col.pattern is not None:
            reasons.append(
                pl.when(t.is_not_null() & ~t.str.contains(col.pattern)).then(
                    pl.format(f"{col.name}: does not match the pattern ({{}})", t.str.slice(0, 80))
                )
            )
    return frame.with_columns(typed_exprs), reasons


def validate(
    spec: SourceSpec, frame: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, tuple[str, ...]]:
    """Split parsed records into (typed valid rows, quarantined rows, extra column names)."""
    missing = [c.name for c in spec.columns if c.name not in frame.columns]
    missing_required = [m for m in missing if spec.column(m).required]
    if missing_required:
        raise SourceFileError(
            spec.path,
            missing_required[0],
            f"required column missing from the file (found: {', '.join(frame.columns) or 'none'})",
        )
    frame = frame.with_columns(pl.lit(None, pl.String).alias(m) for m in missing)
    extra = tuple(c for c in frame.columns if c not in spec.column_names)
    frame = frame.with_row_index("__record_index")

    typed, reason_exprs = _reasons(spec, frame)
    joined = pl.concat_str(reason_exprs, separator=REASON_SEPARATOR, ignore_nulls=True)
    typed = typed.with_columns(
        pl.when(joined != "").then(joined).otherwise(None).alias("__reason")
        if reason_exprs
        else pl.lit(None, pl.String).alias("__reason")
    )
    if spec.key is not None:
        key = pl.col(f"__typed_{spec.key}")
        # Among otherwise valid rows, the first occurrence of a key wins; later ones are refused.
        clean = pl.col("__reason").is_null() & key.is_not_null()
        first = (
            typed.filter(clean)
            .group_by(f"__typed_{spec.key}")
            .agg(pl.col("__record_index").min().alias("__first"))
        )
        typed = typed.join(first, on=f"__typed_{spec.key}", how="left").sort("__record_index")
        typed = typed.with_columns(
            pl.when(clean & (pl.col("__record_index") != pl.col("__first")))
            .then(
                pl.format(
                    f"{spec.key}: duplicate key ({{}}, first at record {{}})",
                    key.cast(pl.String),
                    pl.col("__first"),
                )
            )
            .otherwise(pl.col("__reason"))
            .alias("__reason")
        ).drop("__first")

    bad = typed.filter(pl.col("__reason").is_not_null())
    raw_columns = [c for c in frame.columns if c != "__record_index"]
    quarantine = bad.select(
        pl.lit(spec.name).alias("dataset"),
        pl.lit(str(spec.path)).alias("source_file"),
        pl.lit(None, pl.Int64).alias("source_line"),
        pl.col("__record_index").cast(pl.Int64).alias("record_index"),
        pl.col("__reason").alias("reason"),
        pl.struct([pl.col(c).cast(pl.String) for c in raw_columns])
        .struct.json_encode()
        .alias("raw_record"),
    )
    good = typed.filter(pl.col("__reason").is_null()).select(
        *[pl.col(f"__typed_{c.name}").alias(c.name) for c in spec.columns],
        *[pl.col(c).cast(pl.String) for c in extra],
    )
    return good, quarantine, extra


def ingest(spec: SourceSpec) -> IngestResult:
    """Read, parse and validate one source file."""
    started = time.perf_counter()
    if not spec.path.exists():
        raise SourceFileError(spec.path, "", f"source file for {spec.name!r} not found")
    stat = spec.path.stat()
    if stat.st_size == 0:
        raise SourceFileError(
            spec.path, "", "file is empty (0 bytes): expected a header or records"
        )
    content_hash = file_sha256(spec.path)
    frame, parse_rejects = _READERS[spec.format](spec)
    if spec.format == "jsonl" and frame.width == 0 and parse_rejects.is_empty():
        raise SourceFileError(spec.path, "", "file holds no JSON records")
    valid, invalid, extra = validate(spec, frame)
    quarantine = pl.concat([parse_rejects, invalid], how="vertical")
    return IngestResult(
        dataset=spec.name,
        valid=valid,
        quarantine=quarantine,
        content_hash=content_hash,
        source_bytes=stat.st_size,
        source_modified=stat.st_mtime,
        extra_columns=extra,
        seconds=time.perf_counter() - started,
    )
