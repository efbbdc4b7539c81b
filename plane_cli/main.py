"""``plane``: the command line of Reasoning Plane.

    plane catalog                 summary of the governance catalog (datasets, rows, PII, ...)
    plane catalog show DATASET    one catalog record in the operator JSON shape
    plane search QUERY --principal NAME [--region EU] [-k 5] [--json]
                                  governed retrieval over the regional vector stores
    plane db-url                  the PostgreSQL URL in use (password redacted)

Exit codes: 0 success, 2 bad input, 4 not found.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import psycopg

from data_plane import catalog_store
from data_plane.catalog import CatalogEntry
from data_plane.vector_store import VectorStoreError
from resources.database import database_url, redact_url

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 4


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def catalog_summary(entries: Sequence[CatalogEntry]) -> str:
    rows = []
    for e in entries:
        r = e.record
        rows.append(
            [
                e.dataset_id,
                "-" if e.row_count is None else e.row_count,
                "-" if e.quarantined_rows is None else e.quarantined_rows,
                r.classification,
                r.data_residency,
                r.retention_policy,
                "yes" if r.gdpr_compliant else "no",
                ", ".join(sorted(e.pii_columns)) or "-",
            ]
        )
    table = format_table(
        [
            "dataset",
            "rows",
            "quarantined",
            "classification",
            "residency",
            "retention",
            "gdpr",
            "pii columns",
        ],
        rows,
    )
    total_rows = sum(e.row_count or 0 for e in entries)
    total_q = sum(e.quarantined_rows or 0 for e in entries)
    return f"{table}\n\n{len(entries)} datasets, {total_rows} rows, {total_q} quarantined rows."


def _catalog(args: argparse.Namespace) -> int:
    with psycopg.connect(database_url()) as conn:
        catalog_store.ensure_schema(conn)
        if args.dataset:
            entry = catalog_store.get_entry(conn, args.dataset)
            if entry is None:
                print(f"plane: no catalog entry for {args.dataset!r}", file=sys.stderr)
                return EXIT_NOT_FOUND
            print(entry.record.to_json(indent=2))
            return EXIT_OK
        entries = catalog_store.list_entries(conn)
    if args.json:
        print(json.dumps([e.record.to_dict() for e in entries], indent=2))
    elif not entries:
        print("The governance catalog is empty: run the main job first (see README).")
    else:
        print(catalog_summary(entries))
    return EXIT_OK


def _search(args: argparse.Namespace) -> int:
    from resources.vectors import open_retriever  # loads the model only for this command

    retriever = open_retriever()
    try:
        principal = retriever.principal(args.principal)
    except LookupError as exc:
        print(f"plane: {exc} (see config/principals.yaml)", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        hits = retriever.search(args.query, principal, k=args.k, region=args.region)
    except VectorStoreError as exc:
        print(
            f"plane: {exc}\nplane: run the main job first (bash scripts/main.sh)", file=sys.stderr
        )
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps([hit.__dict__ for hit in hits], indent=2))
        return EXIT_OK
    region = args.region or principal.home_region
    print(f"{len(hits)} results for {principal.name} served in {region}:")
    rows = [
        [
            f"{h.score:.3f}",
            h.dataset_id,
            h.row_ref,
            h.residency,
            h.classification,
            "yes" if h.pii else "no",
            h.text[:70],
        ]
        for h in hits
    ]
    print(format_table(["score", "dataset", "row", "residency", "class", "pii", "text"], rows))
    return EXIT_OK


def _db_url(_: argparse.Namespace) -> int:
    print(redact_url(database_url()))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plane", description="Reasoning Plane command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    cat = sub.add_parser("catalog", help="show the governance catalog")
    cat_sub = cat.add_subparsers(dest="catalog_command")
    show = cat_sub.add_parser("show", help="one dataset's record as JSON")
    show.add_argument("dataset")
    cat.add_argument("--json", action="store_true", help="all records as a JSON list")
    cat.set_defaults(func=_catalog, dataset=None)

    search = sub.add_parser("search", help="governed retrieval (Layer 1B)")
    search.add_argument("query")
    search.add_argument("--principal", required=True, help="a name from config/principals.yaml")
    search.add_argument("--region", help="region the answer is served in (default: home region)")
    search.add_argument("-k", type=int, default=5, help="number of results (1-1000)")
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=_search)

    db = sub.add_parser("db-url", help="the PostgreSQL URL in use (password redacted)")
    db.set_defaults(func=_db_url)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # bad input files and arguments: say what and where
        print(f"plane: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
