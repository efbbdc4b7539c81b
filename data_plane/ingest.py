"""Layer 1C: read a declared source, validate it against its schema, split good rows from bad.

Nothing is silently dropped: every record of the file ends up either in the typed, valid table or
in the quarantine table with the reason it was refused (a CSV line with the wrong number of fields,
bytes that are not UTF-8, a line that is not JSON, a value of the wrong type, a missing required
value, a value out of range or not allowed, a duplicate key). Problems that make the whole file
unusable (missing, empty, unreadable Parquet, a required column absent from the header) raise
`SourceFileError` naming the file and the problem.

CSV is parsed by polars when every record is one line and nothing in the file can be read
differently by polars and DuckDB (checked on the bytes: no carriage return, no quote character
away from a field boundary, no blank line); records with missing fields are then reported exactly
as DuckDB reports them. Any other CSV is parsed by DuckDB in strict mode with its rejects table (so
malformed lines are reported, never truncated). JSONL is read by polars; a file with broken lines
is split into lines, only the lines polars cannot parse are examined one by one, and the rest is
parsed by polars in one go (anything the two parsers disagree on takes the line-by-line path).
Parquet is read by polars.

Validation is vectorised over whole columns with polars, in two passes: a cheap pass flags every
row that may break a rule (only the columns with a type to convert or a rule to check are
touched), then the reasons are written for the flagged rows only. The file is read once; its
SHA-256 is computed in a second thread while polars parses it.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
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

# Parsed first (the common shape, several times faster than the general formats); every value it
# parses is parsed to the same instant by the first of _DATETIME_FORMATS, and every value it
# cannot parse goes through _DATETIME_FORMATS.
_DATETIME_FAST_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # releases the GIL: runs beside the parse


def _empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def _read_csv_header(spec: SourceSpec, data: bytes | None = None) -> list[str]:
    """The header of ``data`` (the source's bytes), or of the local file's first line."""
    if data is None:
        with spec.path.open("rb") as fh:
            first = fh.readline()
    else:
        first = data.split(b"\n", 1)[0] + (b"\n" if b"\n" in data else b"")
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceFileError(
            spec.location, "header", "the header line is not valid UTF-8"
        ) from None
    header = next(csv.reader([line]), [])
    header = [h.strip() for h in header]
    if not any(header):
        raise SourceFileError(
            spec.location, "header", "the first line is empty; expected column names"
        )
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise SourceFileError(spec.location, "header", f"duplicate column name {duplicates[0]!r}")
    return header


# Bytes that are whitespace to ``bytes.strip()``; bytes next to which a quote is a field boundary.
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True
_QUOTE_NEIGHBOURS = np.zeros(256, dtype=bool)
_QUOTE_NEIGHBOURS[list(b',"\n')] = True


def _line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the lines of ``data`` (as ``data.split(b"\n")`` cuts them)."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(data)]))
    return starts, ends


def _non_blank_lines(data: bytes, starts: np.ndarray, ends: np.ndarray) -> int:
    """How many lines hold something other than whitespace."""
    arr = np.frombuffer(data, dtype=np.uint8)
    filled = np.flatnonzero(ends > starts)
    maybe_blank = filled[_WHITESPACE[arr[starts[filled]]]]  # starts with whitespace: look closer
    blank = sum(1 for i in maybe_blank.tolist() if not data[starts[i] : ends[i]].strip())
    return len(filled) - blank


def _stray_quotes(arr: np.ndarray, quotes: np.ndarray) -> bool:
    """Whether some quote character touches neither a delimiter, a line end nor another quote.

    Where one does (``a, "b"``, ``x"y``), polars and DuckDB read the field differently.
    """
    if not quotes.size:
        return False
    before = arr[np.maximum(quotes - 1, 0)]
    after = arr[np.minimum(quotes + 1, len(arr) - 1)]
    at_edge = (quotes == 0) | (quotes == len(arr) - 1)
    return not bool((at_edge | _QUOTE_NEIGHBOURS[before] | _QUOTE_NEIGHBOURS[after]).all())


def _read_csv_polars(
    spec: SourceSpec, data: bytes, header: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The CSV parsed by polars, or None when the file must go to DuckDB.

    Taken only when each record is exactly one line of the file, no line is blank or starts
    with whitespace, the file holds no carriage return and every quote is at a field boundary:
    then polars reads every field as DuckDB's strict mode does (an empty field, quoted or not,
    is null). Records with fewer fields than the header (polars pads them with nulls) are
    reported in DuckDB's words; records with too many fields, or bytes that are not UTF-8, make
    polars fail and the file go to DuckDB.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(arr == 34)
    if b"\r" in data or _stray_quotes(arr, quotes):
        return None
    try:
        frame = pl.read_csv(
            data, infer_schema=False, raise_if_empty=False, truncate_ragged_lines=False
        )
    except Exception:  # polars refuses it; DuckDB reports why, line by line
        return None
    if [c.strip() for c in frame.columns] != header:
        return None
    frame.columns = header
    starts, ends = _line_bounds(data)
    lines = len(starts) - (1 if data.endswith(b"\n") else 0)
    first_bytes = arr[np.minimum(starts[:lines], len(arr) - 1)]
    if (
        lines != 1 + frame.height
        or (ends[:lines] == starts[:lines]).any()
        or _WHITESPACE[first_bytes].any()
    ):
        return None
    short, found = (
        _short_csv_records(frame, data, arr, starts, ends, header) if len(header) > 1 else ([], [])
    )
    if (np.diff(quotes) == 1).any():  # maybe a quoted empty field: polars reads "", DuckDB null
        frame = frame.with_columns(pl.when(pl.col(header) != "").then(pl.col(header)))
    if not short:
        return frame, _empty_quarantine()
    rejects = pl.DataFrame(
        {
            "dataset": [spec.name] * len(short),
            "source_file": [spec.location] * len(short),
            "source_line": [r + 2 for r in short],
            "record_index": [None] * len(short),
            "reason": [
                "malformed CSV line: missing columns "
                f"(Expected Number of Columns: {len(header)} Found: {n})"
                for n in found
            ],
            "raw_record": [data[starts[r + 1] : ends[r + 1]].decode("utf-8") for r in short],
        },
        schema=QUARANTINE_SCHEMA,
    )
    keep = np.ones(frame.height, dtype=bool)
    keep[short] = False
    return frame.filter(pl.Series(keep)), rejects


def _short_csv_records(
    frame: pl.DataFrame,
    data: bytes,
    arr: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    header: list[str],
) -> tuple[list[int], list[int]]:
    """(records with fewer fields than the header, how many fields each has).

    Record r is line r + 1 of the file (0-based, line 0 is the header) and the last field of a
    padded record is null. A record whose last field is null and whose line does not end with a
    comma is short: its last field present is not empty, so it is the last non-null one. One
    whose line ends with a comma after a non-empty field has every field. Only the rest (the
    line ends with a comma after an empty field) has its fields counted one line at a time.
    """
    candidates = frame[header[-1]].is_null().arg_true()
    if candidates.is_empty():
        return [], []
    rows = candidates.to_numpy().astype(np.int64)
    ends_with_comma = arr[ends[rows + 1] - 1] == 44
    before_last_empty = frame[header[-2]].gather(candidates).is_null().to_numpy()
    short = rows[~ends_with_comma].tolist()
    found = (
        frame[short]
        .select(
            pl.max_horizontal(
                pl.when(pl.col(name).is_not_null()).then(i + 1).otherwise(0)
                for i, name in enumerate(header)
            )
        )
        .to_series()
        .to_list()
    )
    for r in rows[ends_with_comma & before_last_empty].tolist():
        fields = len(next(csv.reader([data[starts[r + 1] : ends[r + 1]].decode("utf-8")])))
        if fields < len(header):
            short.append(r)
            found.append(fields)
    order = sorted(range(len(short)), key=short.__getitem__)
    return [short[i] for i in order], [found[i] for i in order]


def _read_csv(spec: SourceSpec, data: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    header = _read_csv_header(spec, data)
    parsed = _read_csv_polars(spec, data, header)
    if parsed is not None:
        return parsed
    return _read_csv_duckdb(spec, data, header)


def _read_csv_duckdb(
    spec: SourceSpec, data: bytes, header: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    if spec.uri is not None:  # DuckDB reads files: the object's bytes go through a temporary one
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "source.csv"
            local.write_bytes(data)
            return _read_csv_duckdb_file(spec, data, header, local)
    return _read_csv_duckdb_file(spec, data, header, spec.path)


def _read_csv_duckdb_file(
    spec: SourceSpec, data: bytes, header: list[str], local: Path
) -> tuple[pl.DataFrame, pl.DataFrame]:
    columns = ", ".join(f"'{h.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for h in header)
    con = duckdb.connect()
    try:
        relation = con.sql(
            "SELECT * FROM read_csv(?, header = true, auto_detect = false, strict_mode = true,"
            " delim = ',', quote = '\"', escape = '\"', all_varchar = true, store_rejects = true,"
            f" parallel = false, columns = {{{columns}}})",
            params=[str(local)],
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
        raise SourceFileError(spec.location, "", f"cannot parse CSV: {exc}") from None
    finally:
        con.close()
    quarantine = rejects.select(
        pl.lit(spec.name).alias("dataset"),
        pl.lit(spec.location).alias("source_file"),
        pl.col("line").cast(pl.Int64).alias("source_line"),
        pl.lit(None, pl.Int64).alias("record_index"),
        pl.format(
            "malformed CSV line: {} ({})",
            pl.col("error_type").cast(pl.String).str.to_lowercase(),
            pl.col("error_message"),
        ).alias("reason"),
        pl.col("csv_line").alias("raw_record"),
    )
    _check_csv_accounted(spec, data, frame, quarantine)
    return frame, quarantine


def _newlines(frame: pl.DataFrame) -> int:
    counts = frame.select(
        pl.sum_horizontal(pl.col(pl.String).str.count_matches("\n").fill_null(0)).sum()
    )
    return int(counts.item() or 0)


def _check_csv_accounted(
    spec: SourceSpec, data: bytes, frame: pl.DataFrame, rejects: pl.DataFrame
) -> None:
    """Every non-blank line of the file must be a header, part of a record or a rejected line.

    DuckDB may drop the tail of a file that ends inside an unterminated quote without reporting
    it; rather than lose those lines silently, the whole file is refused.
    """
    non_blank = _non_blank_lines(data, *_line_bounds(data))
    accounted = (
        1
        + frame.height
        + _newlines(frame)
        + rejects.height
        + _newlines(rejects.select("raw_record"))
    )
    if non_blank > accounted:
        raise SourceFileError(
            spec.location,
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


def _parse_jsonl_line(stripped: bytes) -> dict[str, object] | tuple[str, str]:
    """One non-blank line: its JSON object, or (reason, raw text) when it is not one."""
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 (at byte {exc.start})", stripped.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg}, column {exc.colno})", text
    if not isinstance(obj, dict):
        return f"not a JSON object ({type(obj).__name__})", text
    return obj


def _jsonl_rejects(spec: SourceSpec, bad: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dataset": [spec.name] * len(bad),
            "source_file": [spec.location] * len(bad),
            "source_line": [b["line"] for b in bad],
            "record_index": [None] * len(bad),
            "reason": [f"malformed JSONL line: {b['reason']}" for b in bad],
            "raw_record": [b["raw"] for b in bad],
        },
        schema=QUARANTINE_SCHEMA,
    )


def _read_jsonl_slow(spec: SourceSpec, data: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Line-by-line parse: the reference, used when the vectorised paths cannot decide."""
    records: list[dict[str, str | None]] = []
    bad: list[dict[str, object]] = []
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        stripped = raw_line.strip()
        if not stripped:
            continue
        parsed = _parse_jsonl_line(stripped)
        if isinstance(parsed, tuple):
            bad.append({"line": number, "reason": parsed[0], "raw": parsed[1]})
            continue
        records.append({str(k): _json_scalar_to_text(v) for k, v in parsed.items()})
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    frame = (
        pl.DataFrame(records, schema=dict.fromkeys(keys, pl.String), orient="row")
        if records
        else pl.DataFrame(schema=dict.fromkeys(keys, pl.String))
    )
    return frame, _jsonl_rejects(spec, bad)


_JSONL_MAX_SUSPECTS = 10_000  # more suspect lines than this: the line-by-line path is as fast


def _non_utf8_lines(data: bytes, starts: np.ndarray, ends: np.ndarray) -> set[int]:
    """Lines holding bytes that are not UTF-8 (at most one more than _JSONL_MAX_SUSPECTS)."""
    lines: set[int] = set()
    view, offset = memoryview(data), 0
    while offset < len(data) and len(lines) <= _JSONL_MAX_SUSPECTS:
        try:
            codecs.utf_8_decode(view[offset:], "strict", True)
            break
        except UnicodeDecodeError as exc:
            line = int(np.searchsorted(starts, offset + exc.start, side="right")) - 1
            lines.add(line)
            offset = int(ends[line]) + 1
    return lines


def _read_jsonl_screened(spec: SourceSpec, data: bytes) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The JSONL file parsed by polars in one go, minus its broken lines, each reported.

    A line is suspect when, stripped of whitespace, it does not start with ``{`` and end with
    ``}``; if polars still refuses the rest, lines holding bytes that are not UTF-8 are suspect
    too. Suspects are checked one by one with :func:`_parse_jsonl_line` (the words of the
    line-by-line path); the others go to polars. Returns None, leaving the file to the
    line-by-line path, when polars still refuses the rest, the counts disagree, or there are too
    many suspects.
    """
    starts, ends = _line_bounds(data)
    arr = np.frombuffer(data, dtype=np.uint8)
    filled = np.flatnonzero(ends > starts)
    odd = (arr[starts[filled]] != 123) | (arr[ends[filled] - 1] != 125)  # not "{ ... }"
    suspects = set(filled[odd].tolist())
    parsed = _read_jsonl_without(spec, data, starts, ends, len(filled), suspects)
    if parsed is None:
        more = _non_utf8_lines(data, starts, ends)
        if not more - suspects:
            return None
        parsed = _read_jsonl_without(spec, data, starts, ends, len(filled), suspects | more)
    return parsed


def _read_jsonl_without(
    spec: SourceSpec,
    data: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    filled: int,
    suspects: set[int],
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    if len(suspects) > _JSONL_MAX_SUSPECTS:
        return None
    bad: list[dict[str, object]] = []
    dropped: list[int] = []  # suspect lines left out of polars' input: blank or broken
    for i in sorted(suspects):
        stripped = data[starts[i] : ends[i]].strip()
        parsed = _parse_jsonl_line(stripped) if stripped else None
        if isinstance(parsed, dict):
            if stripped[:1] == b"{" and stripped[-1:] == b"}":  # whitespace around an object
                continue
            return None
        if isinstance(parsed, tuple):
            bad.append({"line": i + 1, "reason": parsed[0], "raw": parsed[1]})
        dropped.append(i)
    records = filled - len(dropped)
    if records == 0:
        return pl.DataFrame(), _jsonl_rejects(spec, bad)
    if dropped:
        pieces, previous = [], 0
        for i in dropped:
            pieces.append(data[starts[previous] : starts[i]])
            previous = i + 1
        if previous < len(starts):
            pieces.append(data[starts[previous] :])
        data = b"".join(pieces)
    try:
        frame = pl.read_ndjson(data, infer_schema_length=None)
    except Exception:
        return None
    if frame.height != records:  # a line polars skipped or split: the reference decides
        return None
    return _jsonl_text_columns(frame), _jsonl_rejects(spec, bad)


def _jsonl_text_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text: objects as JSON, lists joined by commas."""
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        *[
            pl.col(c).struct.json_encode()
            if frame.schema[c] == pl.Struct
            else pl.col(c).cast(pl.List(pl.String)).list.join(",")
            for c in nested
        ]
    ).with_columns(pl.all().cast(pl.String))


def _read_jsonl(spec: SourceSpec, data: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    return _read_jsonl_screened(spec, data) or _read_jsonl_slow(spec, data)


def _read_parquet(spec: SourceSpec, data: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    try:
        frame = pl.read_parquet(data)
    except Exception as exc:
        raise SourceFileError(spec.location, "", f"cannot read Parquet: {exc}") from None
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


def _reasons(
    spec: SourceSpec, frame: pl.DataFrame, columns: set[str] | None = None
) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """Typed columns (as ``__typed_<name>``) and one reason expression per rule.

    Only for ``columns`` when given (those where some rule may fail).
    """
    typed_exprs: list[pl.Expr] = []
    reasons: list[pl.Expr] = []
    for col in spec.columns:
        if columns is not None and col.name not in columns:
            continue
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


def _typed_column(col: ColumnSpec, raw: pl.Series, quick: pl.Series | None) -> pl.Series:
    """``raw`` converted to the declared type, null where it cannot be (as :func:`_cast`).

    ``quick`` is the conversion of text without stripping whitespace (datetimes with the one
    common format, see :func:`_quick_cast`); only the values it missed are converted again the
    general way.
    """
    if raw.dtype == _POLARS_TYPES[col.type]:
        return raw
    if quick is None:
        return raw.to_frame().select(_cast(col, raw.dtype)).to_series()
    retry = (quick.is_null() & raw.is_not_null()).arg_true()
    if retry.is_empty():
        return quick
    slow = raw.gather(retry).to_frame().select(_cast(col, pl.String())).to_series()
    return quick.scatter(retry, slow)


def _quick_cast(col: ColumnSpec, dtype: pl.DataType) -> pl.Expr | None:
    """A cheaper conversion of text whose every non-null value equals :func:`_cast`'s."""
    c = pl.col(col.name)
    if dtype != pl.String or col.type not in ("datetime", "date", "integer", "float"):
        return None
    if col.type == "datetime":
        return c.str.to_datetime(
            _DATETIME_FAST_FORMAT, strict=False, time_unit="us"
        ).dt.replace_time_zone("UTC")
    if col.type == "date":
        return c.str.to_date("%Y-%m-%d", strict=False)
    return c.cast(_POLARS_TYPES[col.type], strict=False)


def _may_fail(col: ColumnSpec, dtype: pl.DataType, typed: str) -> list[pl.Expr]:
    """Expressions true on the rows that may break one of the column's rules (a superset)."""
    raw, t = pl.col(col.name), pl.col(typed)
    masks: list[pl.Expr] = []
    if dtype != _POLARS_TYPES[col.type]:  # converted: a value that did not convert is refused
        masks.append(t.is_null() & raw.is_not_null())
    if col.required:
        blank = raw.is_null()
        masks.append(blank | (raw.str.strip_chars() == "") if dtype == pl.String else blank)
    if col.minimum is not None:
        masks.append(t < col.minimum)
    if col.maximum is not None:
        masks.append(t > col.maximum)
    if col.allowed is not None:
        masks.append(~t.is_in(list(col.allowed)))
    if col.pattern is not None:
        masks.append(~t.str.contains(col.pattern))
    return masks


def validate(
    spec: SourceSpec, frame: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, tuple[str, ...]]:
    """Split parsed records into (typed valid rows, quarantined rows, extra column names).

    Rows are flagged by cheap checks first (only columns with a type to convert or a rule to
    check); the reasons (the expressions of :func:`_reasons`) are computed for the flagged rows
    only, and a flagged row without a reason stays valid.
    """
    frame = _with_declared_columns(spec, frame)
    extra = tuple(c for c in frame.columns if c not in spec.column_names)
    typed = _typed_columns(spec, frame)
    refused = _rule_violations(spec, frame, typed)
    keep = np.ones(frame.height, dtype=bool)
    keep[refused["__record_index"].to_numpy()] = False
    if spec.key is not None:
        duplicates = _duplicate_keys(spec.key, typed[spec.key], keep)
        if duplicates is not None:
            refused = pl.concat([refused, duplicates]).sort("__record_index")
            keep[duplicates["__record_index"].to_numpy()] = False

    index = refused["__record_index"]
    quarantine = _quarantine_rows(spec, frame, refused)
    good = pl.DataFrame(
        [
            *(typed[c.name].alias(c.name) for c in spec.columns),
            *(frame[c].cast(pl.String) for c in extra),
        ]
    )
    if index.len():
        good = good.filter(pl.Series(keep))
    return good, quarantine, extra


def _with_declared_columns(spec: SourceSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every declared optional column it lacks added as nulls; a missing required
    column refuses the whole file."""
    missing = [c.name for c in spec.columns if c.name not in frame.columns]
    missing_required = [m for m in missing if spec.column(m).required]
    if missing_required:
        raise SourceFileError(
            spec.location,
            missing_required[0],
            f"required column missing from the file (found: {', '.join(frame.columns) or 'none'})",
        )
    return frame.with_columns(pl.lit(None, pl.String).alias(m) for m in missing)


def _typed_columns(spec: SourceSpec, frame: pl.DataFrame) -> dict[str, pl.Series]:
    """Every declared column converted to its declared type (null where it cannot be)."""
    schema = frame.schema
    quick_exprs = {
        c.name: e for c in spec.columns if (e := _quick_cast(c, schema[c.name])) is not None
    }
    quick = frame.select(**quick_exprs) if quick_exprs else None
    return {
        c.name: _typed_column(
            c, frame[c.name], quick[c.name] if quick is not None and c.name in quick_exprs else None
        )
        for c in spec.columns
    }


def _rule_violations(
    spec: SourceSpec, frame: pl.DataFrame, typed: dict[str, pl.Series]
) -> pl.DataFrame:
    """(``__record_index``, ``__reason``) of every record that breaks a column's type or rules.

    Rows are flagged by the cheap masks of :func:`_may_fail`; the reasons are computed for the
    flagged rows only, over the columns where some row was flagged."""
    schema = frame.schema
    converted = {c.name for c in spec.columns if schema[c.name] != _POLARS_TYPES[c.type]}
    work = frame.with_columns(typed[name].alias(f"__typed_{name}") for name in converted)
    masks = {
        c.name: pl.any_horizontal(column_masks).fill_null(False).alias(c.name)
        for c in spec.columns
        if (
            column_masks := _may_fail(
                c, schema[c.name], f"__typed_{c.name}" if c.name in converted else c.name
            )
        )
    }
    flags = work.select(masks.values()) if masks else pl.DataFrame()
    # Columns where no row may fail write no reasons; rows flagged by any column are explained.
    failing = {name for name, n in flags.sum().row(0, named=True).items() if n} if masks else set()
    flagged = (
        flags.select(pl.any_horizontal(failing)).to_series().arg_true()
        if failing
        else pl.Series(dtype=pl.UInt32)
    )
    refused = pl.DataFrame(schema={"__record_index": pl.UInt32, "__reason": pl.String})
    if not flagged.is_empty():
        suspects = frame.with_row_index("__record_index")[flagged]
        with_reasons, reason_exprs = _reasons(spec, suspects, failing)
        joined = pl.concat_str(reason_exprs, separator=REASON_SEPARATOR, ignore_nulls=True)
        refused = with_reasons.select(
            "__record_index", pl.when(joined != "").then(joined).alias("__reason")
        ).filter(pl.col("__reason").is_not_null())
    return refused


def _duplicate_keys(name: str, key: pl.Series, keep: np.ndarray) -> pl.DataFrame | None:
    """(``__record_index``, ``__reason``) of the records whose key an earlier kept record holds.

    Among otherwise valid rows (``keep``), the first occurrence of a key wins; None when no key
    repeats."""
    clean = (key.is_not_null() & pl.Series(keep)).arg_true()
    clean_keys = key.gather(clean)
    first = clean_keys.is_first_distinct()
    if first.all():
        return None
    repeated = (~first).arg_true()
    repeated_keys = clean_keys.gather(repeated)
    # The first record of each repeated key (few rows: a lookup, not a join).
    firsts = (clean_keys.is_in(repeated_keys.implode()) & first).arg_true()
    first_record = dict(
        zip(clean_keys.gather(firsts).to_list(), clean.gather(firsts).to_list(), strict=True)
    )
    return pl.DataFrame(
        {
            "__record_index": clean.gather(repeated),
            "__reason": [
                f"{name}: duplicate key ({text}, first at record {first_record[k]})"
                for k, text in zip(
                    repeated_keys.to_list(), repeated_keys.cast(pl.String).to_list(), strict=True
                )
            ],
        }
    )


def _quarantine_rows(spec: SourceSpec, frame: pl.DataFrame, refused: pl.DataFrame) -> pl.DataFrame:
    """The refused records as quarantine rows: the raw record as JSON text, with its reason."""
    index = refused["__record_index"]
    return (
        frame[index]
        .select(
            pl.lit(spec.name).alias("dataset"),
            pl.lit(spec.location).alias("source_file"),
            pl.lit(None, pl.Int64).alias("source_line"),
            pl.struct([pl.col(c).cast(pl.String) for c in frame.columns])
            .struct.json_encode()
            .alias("raw_record"),
        )
        .with_columns(
            index.cast(pl.Int64).alias("record_index"), refused["__reason"].alias("reason")
        )
        .select(list(QUARANTINE_SCHEMA))
    )


def ingest(spec: SourceSpec, remote: tuple[bytes, float] | None = None) -> IngestResult:
    """Read, parse and validate one source: its local file, or for an object-storage source
    (``spec.uri``) the bytes and modification time read from there (``remote``)."""
    started = time.perf_counter()
    if spec.uri is not None:
        if remote is None:
            raise SourceFileError(spec.uri, "", "an object-storage source is read by the lakehouse")
        data, modified = remote
    else:
        if not spec.path.exists():
            raise SourceFileError(spec.location, "", f"source file for {spec.name!r} not found")
        stat = spec.path.stat()
        data, modified = spec.path.read_bytes(), stat.st_mtime
    if not data:
        raise SourceFileError(
            spec.location, "", "file is empty (0 bytes): expected a header or records"
        )
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(_sha256, data)
        frame, parse_rejects = _READERS[spec.format](spec, data)
        content_hash = digest.result()
    if spec.format == "jsonl" and frame.width == 0 and parse_rejects.is_empty():
        raise SourceFileError(spec.location, "", "file holds no JSON records")
    valid, invalid, extra = validate(spec, frame)
    quarantine = pl.concat([parse_rejects, invalid], how="vertical")
    return IngestResult(
        dataset=spec.name,
        valid=valid,
        quarantine=quarantine,
        content_hash=content_hash,
        source_bytes=len(data),
        source_modified=modified,
        extra_columns=extra,
        seconds=time.perf_counter() - started,
    )
