"""Ingestion of malformed files: clear errors or quarantine, and never a lost record."""

import json
from pathlib import Path

import polars as pl
import pytest

from data_plane.ingest import SourceFileError, ingest
from data_plane.sources import ColumnSpec, SourceSpec

COLUMNS = (
    ColumnSpec("order_id", "string", required=True),
    ColumnSpec("amount", "float", required=True, minimum=0),
    ColumnSpec("qty", "integer"),
    ColumnSpec("ts", "datetime"),
    ColumnSpec("status", "string", allowed=("paid", "shipped")),
    ColumnSpec("note", "string"),
)


def spec_for(path: Path, fmt: str, **kw) -> SourceSpec:
    return SourceSpec(
        name="orders",
        format=fmt,
        path=path,
        storage_endpoint="s3://eu-central-1/x",
        source_system="ERP",
        owner_team="finance",
        columns=COLUMNS,
        key="order_id",
        **kw,
    )


HEADER = "order_id,amount,qty,ts,status,note\n"


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_clean_csv_is_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path, "o.csv", HEADER + 'A1,12.50,3,2024-10-29T08:00:00Z,paid,"hello, world"\n'
    )
    result = ingest(spec_for(path, "csv"))
    assert result.quarantine.is_empty()
    row = result.valid.row(0, named=True)
    assert row["amount"] == 12.5 and row["qty"] == 3 and row["note"] == "hello, world"
    assert result.valid.schema["ts"] == pl.Datetime("us", "UTC")
    assert len(result.content_hash) == 64


def test_bad_csv_rows_are_quarantined_with_reasons(tmp_path: Path) -> None:
    lines = [
        "A1,1.0,1,2024-01-01T00:00:00Z,paid,ok",  # good
        "A2,12,50x,1,2024-01-01T00:00:00Z,paid,extra",  # too many fields
        "A3,1.0",  # too few fields
        "A4,abc,1,2024-01-01T00:00:00Z,paid,x",  # wrong type
        "A5,-3,1,2024-01-01T00:00:00Z,paid,x",  # below minimum
        ",1.0,1,2024-01-01T00:00:00Z,paid,x",  # missing key
        "A6,1.0,1,31/02/2024,paid,x",  # bad datetime
        "A7,1.0,1,2024-01-01T00:00:00Z,lost,x",  # not allowed
        "A1,2.0,1,2024-01-01T00:00:00Z,paid,dup",  # duplicate key
        "A8,1.0,1.5,2024-01-01T00:00:00Z,paid,x",  # float in integer column
        "A9,2.0,2,2024-01-02T00:00:00Z,shipped,fine",  # good
    ]
    path = write(tmp_path, "o.csv", HEADER + "\n".join(lines) + "\n")
    result = ingest(spec_for(path, "csv"))
    assert sorted(result.valid["order_id"].to_list()) == ["A1", "A9"]
    assert result.records_read == len(lines)  # nothing lost
    reasons = " / ".join(result.quarantine["reason"].to_list())
    for expected in [
        "malformed CSV line: too many columns",
        "malformed CSV line: missing columns",
        "amount: not a valid float (abc)",
        "amount: below the minimum 0",
        "order_id: required value missing",
        "ts: not a valid datetime (31/02/2024)",
        "status: not an allowed value (lost",
        "order_id: duplicate key (A1, first at record 0)",
        "qty: not a valid integer (1.5)",
    ]:
        assert expected in reasons
    parse_errors = result.quarantine.filter(pl.col("source_line").is_not_null())
    assert sorted(parse_errors["source_line"].to_list()) == [3, 4]
    assert "A2,12,50x" in " ".join(parse_errors["raw_record"].to_list())
    kinds = result.quarantine_reasons()
    assert kinds["amount: not a valid float"] == 1


def test_non_utf8_bytes_in_csv_are_quarantined(tmp_path: Path) -> None:
    data = (HEADER + "A1,1.0,1,2024-01-01T00:00:00Z,paid,ok\n").encode()
    data += b"A2,1.0,1,2024-01-01T00:00:00Z,paid,caf\xe9 latin-1\n"
    path = write(tmp_path, "o.csv", data)
    result = ingest(spec_for(path, "csv"))
    assert result.valid["order_id"].to_list() == ["A1"]
    assert "invalid encoding" in result.quarantine["reason"][0]
    assert result.quarantine["source_line"][0] == 3


def test_unterminated_quote_refuses_the_file_rather_than_drop_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", HEADER + 'A1,1.0,1,,paid,"never closed\nA2,1.0,1,,paid,x\n')
    with pytest.raises(SourceFileError, match="could not be parsed as CSV records"):
        ingest(spec_for(path, "csv"))


def test_multiline_quoted_fields_are_records_not_losses(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", HEADER + 'A1,1.0,1,,paid,"two\nlines"\n\nA2,1.0,1,,paid,x\n')
    result = ingest(spec_for(path, "csv"))
    assert result.valid["note"].to_list() == ["two\nlines", "x"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_empty_file_is_a_clear_error(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, f"o.{fmt}", b"")
    with pytest.raises(SourceFileError, match="empty"):
        ingest(spec_for(path, fmt))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match="not found"):
        ingest(spec_for(tmp_path / "absent.csv", "csv"))


def test_header_only_gives_zero_rows(tmp_path: Path) -> None:
    result = ingest(spec_for(write(tmp_path, "o.csv", HEADER), "csv"))
    assert result.valid.height == 0 and result.quarantine.height == 0


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "order_id,qty\nA1,1\n")
    with pytest.raises(SourceFileError) as err:
        ingest(spec_for(path, "csv"))
    assert err.value.field == "amount"
    assert "o.csv" in str(err.value)


def test_extra_and_missing_optional_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "order_id,amount,surprise\nA1,1.0,hello\n")
    result = ingest(spec_for(path, "csv"))
    assert result.extra_columns == ("surprise",)
    assert result.valid["surprise"].to_list() == ["hello"]  # kept, not dropped
    assert result.valid["qty"].to_list() == [None]


def test_jsonl_with_broken_lines(tmp_path: Path) -> None:
    good = {
        "order_id": "J1",
        "amount": 3.5,
        "qty": 2,
        "ts": "2024-01-01T00:00:00Z",
        "status": "paid",
        "note": "n",
    }
    lines = [
        json.dumps(good),
        '{"order_id": "J2", "amount": ',
        "[1, 2, 3]",
        json.dumps({**good, "order_id": "J3", "amount": "lots"}),
        "",
        json.dumps({**good, "order_id": "J4"}),
    ]
    data = ("\n".join(lines) + "\n").encode() + b'{"order_id": "J5", "note": "\xff"}\n'
    result = ingest(spec_for(write(tmp_path, "o.jsonl", data), "jsonl"))
    assert sorted(result.valid["order_id"].to_list()) == ["J1", "J4"]
    reasons = result.quarantine["reason"].to_list()
    assert any("not valid JSON" in r for r in reasons)
    assert any("not a JSON object" in r for r in reasons)
    assert any("invalid UTF-8" in r for r in reasons)
    assert any("amount: not a valid float (lots)" in r for r in reasons)
    assert result.records_read == 6  # every non-blank line; the blank one is not a record


def test_clean_jsonl_fast_path_types(tmp_path: Path) -> None:
    rows = [
        {
            "order_id": f"J{i}",
            "amount": i + 0.5,
            "qty": i,
            "ts": "2024-01-01T00:00:00Z",
            "status": "paid",
            "note": None,
            "nested": {"a": i},
        }
        for i in range(5)
    ]
    path = write(tmp_path, "o.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    result = ingest(spec_for(path, "jsonl"))
    assert result.valid.height == 5 and result.quarantine.is_empty()
    assert result.valid["qty"].to_list() == [0, 1, 2, 3, 4]
    assert result.extra_columns == ("nested",)


def test_parquet_typed_and_invalid(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "order_id": ["P1", "P2", None],
            "amount": [1.0, -2.0, 3.0],
            "qty": [1, 2, 3],
            "ts": pl.Series([1, 2, 3]).cast(pl.Datetime("ms")),
            "status": ["paid", "paid", "paid"],
            "note": ["a", "b", "c"],
        }
    )
    path = tmp_path / "o.parquet"
    frame.write_parquet(path)
    result = ingest(spec_for(path, "parquet"))
    assert result.valid["order_id"].to_list() == ["P1"]
    assert result.valid.schema["ts"] == pl.Datetime("us", "UTC")
    assert result.quarantine.height == 2


def test_corrupt_parquet_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "o.parquet", b"PAR1 this is not parquet at all")
    with pytest.raises(SourceFileError, match="cannot read Parquet"):
        ingest(spec_for(path, "parquet"))


def test_ingest_is_deterministic(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", HEADER + "A1,1.0,1,,paid,x\nA2,zz,1,,paid,x\n")
    first, second = ingest(spec_for(path, "csv")), ingest(spec_for(path, "csv"))
    assert first.valid.equals(second.valid)
    assert first.quarantine.equals(second.quarantine)
    assert first.content_hash == second.content_hash


# The fast paths must decide exactly as the reference parsers (DuckDB for CSV, the line-by-line
# parse for JSONL) on every file they accept, and hand the rest over to them.

CSV_CASES = {
    "short rows": HEADER
    + "A1,1.0,1,2024-01-01T00:00:00Z,paid,ok\nA2,1.0\nA3,2.0,1,,paid,\nA4,1.0,,\n"
    + "A5,3.0,2,,shipped\n",
    "quoted fields": HEADER
    + 'A1,1.0,1,,paid,"a, b"\n"A2","2.0",1,,paid,""\nA3,1.0,1,,paid,"say ""hi"""\nA4,"x,y"\n',
    "empty last fields": HEADER + "A1,1.0,1,,paid,\nA2,,,,,\nA3,1.0,1,,,\n",
    "no trailing newline": HEADER + "A1,1.0,1,,paid,x\nA2,1.0",
    "stray quote": HEADER + 'A1,1.0,1,,paid, "x"\nA2,1.0,1,,paid,y\n',
    "blank line": HEADER + "A1,1.0,1,,paid,x\n\nA2,1.0,1,,paid,y\n",
    "carriage returns": HEADER.replace("\n", "\r\n") + "A1,1.0,1,,paid,x\r\nA2,1.0\r\n",
    "too many fields": HEADER + "A1,1.0,1,,paid,x,extra\nA2,1.0,1,,paid,y\n",
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_csv_polars_path_decides_as_duckdb(tmp_path: Path, case: str) -> None:
    from data_plane import ingest as module

    path = write(tmp_path, "o.csv", CSV_CASES[case])
    spec = spec_for(path, "csv")
    data = path.read_bytes()
    header = module._read_csv_header(spec)
    reference = module._read_csv_duckdb(spec, data, header)
    fast = module._read_csv_polars(spec, data, header)
    if case in ("stray quote", "blank line", "carriage returns", "too many fields"):
        assert fast is None  # handed over to DuckDB
        return
    assert fast is not None
    assert fast[0].equals(reference[0])
    assert fast[1].equals(reference[1])


def test_csv_short_rows_are_reported_in_duckdb_words(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", CSV_CASES["short rows"])
    result = ingest(spec_for(path, "csv"))
    rejects = result.quarantine.filter(pl.col("source_line").is_not_null())
    assert rejects["source_line"].to_list() == [3, 5, 6]
    assert rejects["raw_record"].to_list() == ["A2,1.0", "A4,1.0,,", "A5,3.0,2,,shipped"]
    assert rejects["reason"][0] == (
        "malformed CSV line: missing columns (Expected Number of Columns: 6 Found: 2)"
    )
    assert sorted(result.valid["order_id"].to_list()) == ["A1", "A3"]


def test_jsonl_screened_path_decides_as_line_by_line(tmp_path: Path) -> None:
    from data_plane import ingest as module

    good = {"order_id": "J1", "amount": 3.5, "qty": 2, "ts": "2024-01-01T00:00:00Z"}
    lines = [
        json.dumps(good),
        '{"order_id": "J2", "amount": ',
        "   ",
        "[1, 2, 3]",
        '  {"order_id": "J3", "amount": 1}  ',
        json.dumps({**good, "order_id": "J4", "amount": "lots"}),
        '{"order_id": "J5", "amount": }',  # looks like an object: polars refuses the rest
    ]
    for name, body in {
        "broken": lines[:-1],
        "broken inside braces": lines,
    }.items():
        data = ("\n".join(body) + "\n").encode() + b'{"order_id": "J6", "note": "\xff"}\n'
        path = write(tmp_path, f"{name}.jsonl", data)
        spec = spec_for(path, "jsonl")
        screened = module._read_jsonl_screened(spec, data)
        reference = module._read_jsonl_slow(spec, data)
        if name == "broken inside braces":
            assert screened is None
            continue
        assert screened is not None
        assert screened[1].equals(reference[1])
        assert screened[0]["order_id"].to_list() == reference[0]["order_id"].to_list()
        result = ingest(spec)
        assert sorted(result.valid["order_id"].to_list()) == ["J1", "J3"]
        assert result.records_read == 6


def test_rows_flagged_by_the_cheap_pass_but_breaking_no_rule_stay_valid(tmp_path: Path) -> None:
    # "  " in an optional float column does not convert (flagged) but is blank (no reason).
    path = write(tmp_path, "o.csv", HEADER + "A1,1.0,  ,,paid,x\nA2,1.0,1,,paid,y\n")
    result = ingest(spec_for(path, "csv"))
    assert result.quarantine.is_empty()
    assert result.valid["qty"].to_list() == [None, 1]


def test_datetimes_outside_the_common_format_still_parse(tmp_path: Path) -> None:
    rows = [
        "A1,1,1,2024-01-01T00:00:00Z,paid,x",
        "A2,1,1,2024-01-01 08:30:00.250+02:00,paid,x",
        "A3,1,1, 2024-01-02T00:00:00 ,paid,x",
        "A4,1,1,2024-02-31T00:00:00Z,paid,x",
    ]
    path = write(tmp_path, "o.csv", HEADER + "\n".join(rows) + "\n")
    result = ingest(spec_for(path, "csv"))
    assert [str(v) for v in result.valid["ts"].to_list()] == [
        "2024-01-01 00:00:00+00:00",
        "2024-01-01 06:30:00.250000+00:00",
        "2024-01-02 00:00:00+00:00",
    ]
    assert "ts: not a valid datetime (2024-02-31T00:00:00Z)" in result.quarantine["reason"][0]


def test_sample_csv_takes_the_polars_path_and_matches_duckdb() -> None:
    from data_plane import ingest as module
    from data_plane.sources import load_source_catalog

    root = Path(__file__).resolve().parents[2]
    catalog = load_source_catalog(root / "data" / "sources.yaml")
    spec = next(s for s in catalog.sources if s.name == "customer_orders_eu")
    data = spec.path.read_bytes()
    header = module._read_csv_header(spec)
    fast = module._read_csv_polars(spec, data, header)
    reference = module._read_csv_duckdb(spec, data, header)
    assert fast is not None and not fast[1].is_empty()  # the sample has short lines
    assert fast[0].equals(reference[0]) and fast[1].equals(reference[1])


def test_duplicate_integer_keys_name_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    pl.DataFrame({"n": [7, 8, 7, None, 8, 7], "v": ["a", "b", "c", "d", "e", "f"]}).write_parquet(
        path
    )
    spec = SourceSpec(
        name="numbers",
        format="parquet",
        path=path,
        storage_endpoint="s3://eu-central-1/x",
        source_system="ERP",
        owner_team="finance",
        columns=(ColumnSpec("n", "integer"), ColumnSpec("v", "string")),
        key="n",
    )
    result = ingest(spec)
    assert result.valid["v"].to_list() == ["a", "b", "d"]
    assert result.quarantine["record_index"].to_list() == [2, 4, 5]
    assert result.quarantine["reason"].to_list() == [
        "n: duplicate key (7, first at record 0)",
        "n: duplicate key (8, first at record 1)",
        "n: duplicate key (7, first at record 0)",
    ]
