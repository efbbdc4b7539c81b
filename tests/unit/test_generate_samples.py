"""Tests for scripts/generate_samples.py (deterministic enterprise sample sources)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate_samples.py"
FILES = (
    "customer_orders_eu.csv",
    "customer_orders_us.parquet",
    "support_tickets.jsonl",
    "conference_transcripts.parquet",
)
EXPECTED_ROWS = {
    1.0: {"eu": 600, "us": 400, "tickets": 300, "transcripts": 1200},
    0.5: {"eu": 300, "us": 200, "tickets": 150, "transcripts": 600},
}
IBAN_LENGTHS = {"DE": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TOPICS = {
    "gpu_infrastructure",
    "data_governance",
    "mlops",
    "security",
    "vector_search",
    "llm_serving",
}


def _load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_samples", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_samples"] = module
    spec.loader.exec_module(module)
    return module


gs = _load_module()


@pytest.fixture(scope="module")
def run_a(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return gs.generate(tmp_path_factory.mktemp("run_a"))


@pytest.fixture(scope="module")
def run_b(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return gs.generate(tmp_path_factory.mktemp("run_b"), scale=1.0, seed=7)


@pytest.fixture(scope="module")
def run_half(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return gs.generate(tmp_path_factory.mktemp("run_half"), scale=0.5)


@pytest.fixture(params=[1.0, 0.5], ids=["scale1", "scale0.5"])
def scaled(request: pytest.FixtureRequest, run_a: dict[str, Path], run_half: dict[str, Path]):
    scale = request.param
    return scale, (run_a if scale == 1.0 else run_half)


# ---------------------------------------------------------------------------------------------
# plain-Python validators (independent of the generator's own implementation)
# ---------------------------------------------------------------------------------------------


def iban_is_valid(iban: str) -> bool:
    compact = iban.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", compact):
        return False
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(ord(c) - 55) if c.isalpha() else c for c in rearranged)
    return int(numeric) % 97 == 1


def luhn_is_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def read_eu(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def classify_eu_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    """Return the detected problem of every bad row (in file order)."""
    col = {name: i for i, name in enumerate(header)}
    seen: set[str] = set()
    problems = []
    for row in rows:
        if len(row) != len(header):
            problems.append("truncated_line")
            continue
        order_id, amount, ts = row[col["order_id"]], row[col["amount_eur"]], row[col["order_ts"]]
        if order_id == "":
            problems.append("missing_order_id")
        elif order_id in seen:
            problems.append("duplicate_order_id")
        elif not is_number(amount):
            problems.append("amount_not_numeric")
        elif float(amount) < 0:
            problems.append("negative_amount")
        elif not ISO_UTC.match(ts):
            problems.append("order_ts_not_iso")
        seen.add(order_id)
    return problems


def expected_kinds(n: int, kinds: tuple[str, ...]) -> list[str]:
    n_bad = max(3, round(0.01 * n))
    return [kinds[i % len(kinds)] for i in range(n_bad)]


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------


def test_generate_returns_all_files(run_a: dict[str, Path]) -> None:
    assert set(run_a) == {
        "customer_orders_eu",
        "customer_orders_us",
        "support_tickets",
        "conference_transcripts",
    }
    assert sorted(p.name for p in run_a.values()) == sorted(FILES)
    for path in run_a.values():
        assert path.is_file() and path.stat().st_size > 0


def test_deterministic_bytes(run_a: dict[str, Path], run_b: dict[str, Path]) -> None:
    for key in run_a:
        assert run_a[key].read_bytes() == run_b[key].read_bytes(), key


def test_other_seed_differs(tmp_path: Path, run_a: dict[str, Path]) -> None:
    other = gs.generate(tmp_path, scale=1.0, seed=8)
    assert other["customer_orders_eu"].read_bytes() != run_a["customer_orders_eu"].read_bytes()


def test_default_files_are_small(run_a: dict[str, Path]) -> None:
    assert sum(p.stat().st_size for p in run_a.values()) < 1_000_000


def test_row_counts(scaled: tuple[float, dict[str, Path]]) -> None:
    scale, paths = scaled
    expected = EXPECTED_ROWS[scale]
    _, eu_rows = read_eu(paths["customer_orders_eu"])
    assert len(eu_rows) == expected["eu"]
    assert pq.read_metadata(paths["customer_orders_us"]).num_rows == expected["us"]
    lines = paths["support_tickets"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == expected["tickets"]
    assert pq.read_metadata(paths["conference_transcripts"]).num_rows == expected["transcripts"]
    assert gs.row_counts(scale) == {
        "customer_orders_eu": expected["eu"],
        "customer_orders_us": expected["us"],
        "support_tickets": expected["tickets"],
        "conference_transcripts": expected["transcripts"],
    }


def test_eu_header_and_values(run_a: dict[str, Path]) -> None:
    header, rows = read_eu(run_a["customer_orders_eu"])
    assert header == [
        "order_id",
        "customer_id",
        "customer_name",
        "email",
        "phone",
        "iban",
        "country",
        "city",
        "order_ts",
        "amount_eur",
        "currency",
        "status",
        "notes",
    ]
    full = [r for r in rows if len(r) == len(header)]
    col = {name: i for i, name in enumerate(header)}
    assert {r[col["country"]] for r in full} <= {"DE", "FR", "NL", "ES", "IT", "IE", "AT"}
    assert {r[col["currency"]] for r in full} == {"EUR"}
    assert {r[col["status"]] for r in full} <= {
        "created",
        "paid",
        "shipped",
        "delivered",
        "returned",
    }
    assert all(re.fullmatch(r"C-EU-\d{5}", r[col["customer_id"]]) for r in full)
    assert all(r[col["phone"]].startswith("+") for r in full)
    assert all("@" in r[col["email"]] for r in full)
    good_ids = [r[col["order_id"]] for r in full if r[col["order_id"]]]
    assert all(re.fullmatch(r"SO-2024-\d{6}", x) for x in good_ids)
    good_ts = [r[col["order_ts"]] for r in full if ISO_UTC.match(r[col["order_ts"]])]
    assert all(ts.startswith("2024-") for ts in good_ts)
    amounts = [r[col["amount_eur"]] for r in full if is_number(r[col["amount_eur"]])]
    assert all(re.fullmatch(r"-?\d+\.\d{2}", a) for a in amounts)
    # some names carry accents, some notes contain commas / contact details
    assert any(not r[col["customer_name"]].isascii() for r in full)
    notes = [r[col["notes"]] for r in full]
    assert any("," in n for n in notes)
    contact_share = sum(1 for n in notes if "@" in n or "+" in n) / len(notes)
    assert 0.05 < contact_share < 0.3


def test_eu_ibans_are_valid(run_a: dict[str, Path], run_half: dict[str, Path]) -> None:
    for paths in (run_a, run_half):
        header, rows = read_eu(paths["customer_orders_eu"])
        ibans = [r[header.index("iban")] for r in rows if len(r) == len(header)]
        assert ibans
        for iban in ibans:
            assert iban_is_valid(iban), iban
            compact = iban.replace(" ", "")
            assert iban == " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        assert {i[:2] for i in ibans} == set(IBAN_LENGTHS)


def test_iban_validator_rejects_bad_check_digits() -> None:
    assert iban_is_valid("DE89 3704 0044 0532 0130 00")
    assert not iban_is_valid("DE88 3704 0044 0532 0130 00")


def test_eu_bad_rows(scaled: tuple[float, dict[str, Path]]) -> None:
    scale, paths = scaled
    header, rows = read_eu(paths["customer_orders_eu"])
    problems = classify_eu_rows(header, rows)
    n = EXPECTED_ROWS[scale]["eu"]
    expected = expected_kinds(n, gs.EU_BAD_KINDS)
    assert len(problems) == max(3, round(0.01 * n))
    assert problems == expected
    assert gs.n_bad_rows(n) == len(expected)


def test_eu_bad_row_values(tmp_path: Path) -> None:
    """At a scale with >= 6 bad rows every kind appears with its documented value."""
    path = tmp_path / "eu.csv"
    gs.write_eu_orders(path, 600, seed=7)
    header, rows = read_eu(path)
    problems = classify_eu_rows(header, rows)
    assert problems == list(gs.EU_BAD_KINDS)
    col = {name: i for i, name in enumerate(header)}
    full = [r for r in rows if len(r) == len(header)]
    assert sum(r[col["amount_eur"]] == "12,50x" for r in full) == 1
    assert sum(r[col["order_ts"]] == "31/02/2024" for r in full) == 1
    assert sum(r[col["amount_eur"]] == "-15.00" for r in full) == 1
    assert sum(r[col["order_id"]] == "" for r in full) == 1
    ids = Counter(r[col["order_id"]] for r in full if r[col["order_id"]])
    assert [v for v in ids.values() if v > 1] == [2]
    assert sum(len(r) == gs.EU_TRUNCATED_FIELDS for r in rows) == 1


def test_us_orders_schema_and_cards(run_a: dict[str, Path]) -> None:
    table = pq.read_table(run_a["customer_orders_us"])
    schema = {f.name: str(f.type) for f in table.schema}
    assert schema == {
        "order_id": "string",
        "customer_name": "string",
        "email": "string",
        "phone": "string",
        "card_number": "string",
        "state": "string",
        "order_ts": "timestamp[us, tz=UTC]",
        "amount_usd": "double",
        "ip_address": "string",
        "channel": "string",
    }
    data = table.to_pydict()
    for card in data["card_number"]:
        assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", card), card
        assert card[0] in "245"
        assert luhn_is_valid(card), card
    assert not luhn_is_valid("4111 1111 1111 1112")
    for phone in data["phone"]:
        assert re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}|\d{3}-\d{3}-\d{4}", phone), phone
    assert set(data["channel"]) == {"web", "mobile", "store"}
    assert all(re.fullmatch(r"[A-Z]{2}", s) for s in data["state"])
    ips = data["ip_address"]
    assert any(":" in ip for ip in ips) and any("." in ip for ip in ips)
    years = {ts.year for ts in data["order_ts"] if ts is not None}
    assert years == {2024}


def test_us_bad_rows(scaled: tuple[float, dict[str, Path]]) -> None:
    scale, paths = scaled
    data = pq.read_table(paths["customer_orders_us"]).to_pydict()
    n = EXPECTED_ROWS[scale]["us"]
    kinds = expected_kinds(n, gs.US_BAD_KINDS)
    counts = Counter(kinds)
    ids = [x for x in data["order_id"] if x is not None]
    assert sum(x is None for x in data["order_id"]) == counts["null_order_id"]
    assert sum(a < 0 for a in data["amount_usd"]) == counts["negative_amount"]
    assert sum(ts is None for ts in data["order_ts"]) == counts["null_order_ts"]
    assert len(ids) - len(set(ids)) == counts["duplicate_order_id"]
    assert all(re.fullmatch(r"US-\d{6}", x) for x in ids)
    assert len(kinds) == gs.n_bad_rows(n)


def _parse_tickets(path: Path) -> tuple[list[dict], int]:
    records, unparseable = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            unparseable += 1
    return records, unparseable


def test_tickets_bad_lines(scaled: tuple[float, dict[str, Path]]) -> None:
    scale, paths = scaled
    n = EXPECTED_ROWS[scale]["tickets"]
    counts = Counter(expected_kinds(n, gs.TICKET_BAD_KINDS))
    records, unparseable = _parse_tickets(paths["support_tickets"])
    assert unparseable == counts["invalid_json"]
    bad_priority = [r for r in records if r["priority"] not in {"low", "normal", "high", "urgent"}]
    assert len(bad_priority) == counts["invalid_priority"]
    assert {r["priority"] for r in bad_priority} <= {"super-urgent"}
    bad_ts = [r for r in records if not ISO_UTC.match(r["created_at"])]
    assert len(bad_ts) == counts["invalid_created_at"]
    assert {r["created_at"] for r in bad_ts} <= {"yesterday"}
    assert unparseable + len(bad_priority) + len(bad_ts) == gs.n_bad_rows(n)


def test_tickets_content(run_a: dict[str, Path]) -> None:
    path = run_a["support_tickets"]
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.endswith("}"):
            keys = list(json.loads(line))
            assert keys == sorted(keys)
    records, _ = _parse_tickets(path)
    assert {r["language"] for r in records} == {"en", "de", "fr"}
    assert {r["channel"] for r in records} == {"email", "chat", "phone"}
    assert all(re.fullmatch(r"ZD-\d{5,}", r["ticket_id"]) for r in records)
    assert len({r["ticket_id"] for r in records}) == len(records)
    assert all("@" in r["customer_email"] for r in records)
    for r in records:
        sentences = re.findall(r"[.?!](?:\s|$)", r["body"])
        assert 2 <= len(sentences) <= 5, r["body"]
    contact = re.compile(r"@|\+\d{2}|\(\d{3}\) \d{3}-\d{4}|\b\d{3}-\d{3}-\d{4}\b")
    share = sum(bool(contact.search(r["body"])) for r in records) / len(records)
    assert 0.25 < share < 0.55
    iban_re = re.compile(r"\b(?:DE|FR|NL|ES|IT)\d{2}(?: ?[A-Z0-9]{4}){3,6}(?: ?[A-Z0-9]{1,4})?")
    ibans = [m.group(0) for r in records for m in iban_re.finditer(r["body"])]
    assert ibans
    assert all(iban_is_valid(i) for i in ibans)


def test_transcripts(scaled: tuple[float, dict[str, Path]]) -> None:
    _, paths = scaled
    table = pq.read_table(paths["conference_transcripts"])
    assert {f.name: str(f.type) for f in table.schema} == {
        "segment_id": "string",
        "video_id": "string",
        "talk_title": "string",
        "track": "string",
        "start_s": "double",
        "end_s": "double",
        "text": "string",
        "topic": "string",
    }
    data = table.to_pydict()
    assert set(data["topic"]) == TOPICS
    for start, end in zip(data["start_s"], data["end_s"], strict=True):
        assert end > start
        assert 20.0 - 0.011 <= end - start <= 60.0 + 0.011
    for seg, vid in zip(data["segment_id"], data["video_id"], strict=True):
        assert re.fullmatch(r"KC24-T\d{3,}-S\d{4}", seg)
        assert seg.startswith(vid + "-")
    assert len(set(data["segment_id"])) == len(data["segment_id"])
    assert all(t.count(".") + t.count("?") >= 2 for t in data["text"])
    assert all(v is not None for col in data.values() for v in col)


def test_transcripts_structure(run_a: dict[str, Path]) -> None:
    data = pq.read_table(run_a["conference_transcripts"]).to_pydict()
    talks = Counter(data["video_id"])
    assert 30 <= len(talks) <= 50
    # each talk is dominated by one topic, with a minority of off-topic segments
    by_talk: dict[str, Counter] = {}
    for vid, topic in zip(data["video_id"], data["topic"], strict=True):
        by_talk.setdefault(vid, Counter())[topic] += 1
    majority = sum(c.most_common(1)[0][1] for c in by_talk.values())
    off_topic_share = 1 - majority / len(data["topic"])
    assert 0.04 < off_topic_share < 0.18
    # generic filler is shared by all topics, so texts are not trivially separable
    filler = "So let me show you the next slide."
    assert {t for t, x in zip(data["topic"], data["text"], strict=True) if filler in x} == TOPICS
    # no person names from the generator's name lists
    names = set(gs.US_FIRST_NAMES) | {n for v in gs.EU_FIRST_NAMES.values() for n in v}
    words = {w for t in data["text"] for w in re.findall(r"[A-Za-zÀ-ÿ']+", t)}
    assert not names & words


def test_cli_prints_one_line_per_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert gs.main(["--out", str(tmp_path), "--scale", "0.1", "--seed", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 4
    for line, name in zip(out, FILES, strict=True):
        assert name in line and "rows=" in line and "size=" in line
