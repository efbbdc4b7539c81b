"""Precision and recall of the PII detector per entity type, on labelled data it did not make.

Issue 13 (item 5): the detector used to be judged on the project's own sample generator, whose
first names are mostly in the detector's own name list. This scores it instead on Microsoft
presidio-research's labelled sentences (`benchmarks/data/presidio_research/`, MIT), and scores
the detector of a baseline git ref (default ``main``, loaded from ``git show``) on the same
sentences in the same run, side by side.

Value level: every sentence is a one-value column given to ``detect_pii``; it is a true
positive for type X when the sentence has a labelled span of X and the detector reports X for
it. Mapped types: PERSON -> person_name, STREET_ADDRESS -> street_address, CREDIT_CARD ->
payment_card, PHONE_NUMBER -> phone, EMAIL_ADDRESS -> email, IBAN_CODE -> iban, US_SSN ->
us_ssn, IP_ADDRESS -> ip_address. The data set's other labels (DATE_TIME, GPE, ORGANIZATION,
...) are not PII types of the detector and are not scored. Also prints the time per 1,000-row
free-text column.

    python benchmarks/pii_eval.py [--baseline main] [--limit 1500]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "benchmarks" / "data" / "presidio_research" / "synth_dataset_v2.json"
LABELS = {
    "PERSON": "person_name",
    "STREET_ADDRESS": "street_address",
    "CREDIT_CARD": "payment_card",
    "PHONE_NUMBER": "phone",
    "EMAIL_ADDRESS": "email",
    "IBAN_CODE": "iban",
    "US_SSN": "us_ssn",
    "IP_ADDRESS": "ip_address",
}


def load_baseline(ref: str) -> ModuleType:
    """``data_plane/pii.py`` as of git ``ref``, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{ref}:data_plane/pii.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "pii_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pii_baseline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def predict(module: ModuleType, texts: list[str]) -> list[set[str]]:
    out = []
    for text in texts:
        found = module.detect_pii(pl.DataFrame({"v": [text]}, schema={"v": pl.String}))
        out.append(set(found["v"].pii_types) if "v" in found else set())
    return out


def score(truth: list[set[str]], pred: list[set[str]]) -> dict[str, tuple[int, int, int]]:
    """Per type: (true positives, false positives, false negatives)."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for t, p in zip(truth, pred, strict=True):
        for x in LABELS.values():
            if x in t and x in p:
                tp[x] += 1
            elif x in p:
                fp[x] += 1
            elif x in t:
                fn[x] += 1
    return {x: (tp[x], fp[x], fn[x]) for x in LABELS.values()}


def fmt(tp: int, fp: int, fn: int) -> tuple[str, str]:
    precision = f"{tp / (tp + fp):.2f}" if tp + fp else "-"
    recall = f"{tp / (tp + fn):.2f}" if tp + fn else "-"
    return precision, recall


def time_column(module: ModuleType, texts: list[str], rows: int = 1000) -> float:
    column = pl.DataFrame({"note": (texts * (rows // len(texts) + 1))[:rows]})
    module.detect_pii(column)  # warm-up: loads the analyzer once per process
    start = time.perf_counter()
    module.detect_pii(column)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="git ref of the detector to compare")
    parser.add_argument("--limit", type=int, default=1500, help="sentences to score")
    args = parser.parse_args()

    from data_plane import pii as current

    baseline = load_baseline(args.baseline)
    records = json.loads(DATA.read_text())[: args.limit]
    texts = [r["full_text"] for r in records]
    truth = [
        {LABELS[s["entity_type"]] for s in r["spans"] if s["entity_type"] in LABELS}
        for r in records
    ]
    support = Counter(x for t in truth for x in t)

    results = {}
    for label, module in (("baseline", baseline), ("current", current)):
        start = time.perf_counter()
        results[label] = score(truth, predict(module, texts))
        print(f"{label}: {len(texts)} sentences in {time.perf_counter() - start:.1f} s")

    print(f"\n{len(texts)} sentences of presidio-research synth_dataset_v2.json (value level)\n")
    print(
        f"| type | sentences with it | {args.baseline} precision | {args.baseline} recall "
        "| this branch precision | this branch recall |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for x in LABELS.values():
        bp, br = fmt(*results["baseline"][x])
        cp, cr = fmt(*results["current"][x])
        print(f"| {x} | {support[x]} | {bp} | {br} | {cp} | {cr} |")
    for label in ("baseline", "current"):
        counts = results[label]
        print(f"{label} (tp, fp, fn): {counts}")

    base_s = time_column(baseline, texts)
    cur_s = time_column(current, texts)
    print(
        f"\n1,000-row free-text column, detect_pii: {args.baseline} {base_s:.2f} s, "
        f"this branch {cur_s:.2f} s (names analysed on {current.FREE_TEXT_SAMPLE_ROWS} rows)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
