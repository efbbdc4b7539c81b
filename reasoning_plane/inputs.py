"""Strict loaders for the reasoning plane's input files: fleet, quotas, budgets, requests,
governance catalog records and GPU telemetry.

Every file is read by `data_plane.files` (at most 10 MB, UTF-8, YAML or JSON by suffix, duplicate
keys refused) and validated by its pydantic model (`reasoning_plane.config.plane`), which refuses
what it does not understand (unknown keys, wrong types, out-of-range or non-finite numbers,
duplicate names); the model then builds the plain dataclasses of `reasoning_plane.model`. Every
loader raises only `InputFileError`, whose message names the file and the field
(``clusters[1] (us-east-a100).pools[0].total``) and says what is wrong. Timestamps must carry a
time zone and are returned in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from data_plane.catalog import CatalogRecord, CatalogRecordError
from data_plane.config import kind, validate
from data_plane.errors import InputFileError
from data_plane.files import (
    MAX_FILE_BYTES,
    PARSE_ERRORS,
    json_error,
    json_loads,
    read_document,
    read_documents,
    read_text,
    show,
)
from reasoning_plane.config.plane import (
    BudgetsFile,
    FleetFile,
    RequestsFile,
    ResourceQuotaModel,
    TelemetryFile,
)
from reasoning_plane.model import Budget, Fleet, TeamQuota, TelemetrySample, WorkloadRequest

__all__ = [
    "MAX_FILE_BYTES",
    "load_budgets",
    "load_catalog_records",
    "load_fleet",
    "load_quotas",
    "load_requests",
    "load_telemetry",
]


def load_fleet(path: Path | str) -> Fleet:
    """The GPU fleet: clusters, their zones, prices, latencies and GPU pools."""
    path = Path(path)
    return validate(FleetFile, read_document(path), path).build()


def load_budgets(path: Path | str) -> dict[str, Budget]:
    """Spending limit per team and period."""
    path = Path(path)
    return validate(BudgetsFile, read_document(path), path).build()


def load_requests(path: Path | str) -> list[WorkloadRequest]:
    """Workload requests to place, in file order."""
    path = Path(path)
    return validate(RequestsFile, read_document(path), path).build()


def load_telemetry(path: Path | str) -> dict[tuple[str, str], TelemetrySample]:
    """The newest telemetry sample per (cluster, gpu_type).

    ``free_memory_per_gpu_gb`` (optional): the free memory of each GPU of the pool. With it a
    GPU counts as free for a request only if its free memory meets the request's; without it
    (most telemetry files) every one of ``free_gpus`` counts, whatever the request's memory
    (`constraints.free_gpus_for`)."""
    path = Path(path)
    return validate(TelemetryFile, read_document(path), path).build()


# --------------------------------------------------------------------------------------------
# Quotas (Kubernetes ResourceQuota manifests)
# --------------------------------------------------------------------------------------------


def _named(where: str, raw: Any) -> str:
    """``where (name)`` when the manifest's metadata has a short readable name."""
    if isinstance(raw, Mapping):
        name = raw.get("name")
        if isinstance(name, str) and 0 < len(name) <= 128 and name.isprintable():
            return f"{where} ({name})"
    return where


def _kind_of(path: Path, doc: Any, where: str) -> str:
    """The ``kind`` of a manifest (which must be a mapping of text keys)."""
    if not isinstance(doc, Mapping):
        raise InputFileError(path, where, f"must be a mapping, got {kind(doc)}")
    if "kind" not in doc:
        raise InputFileError(path, f"{where}.kind", "required")
    if not isinstance(doc["kind"], str):
        raise InputFileError(path, f"{where}.kind", f"must be text, got {show(doc['kind'])}")
    return doc["kind"]


def _manifests(path: Path, docs: list[Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, manifest) of every manifest: documents, and the items of ``kind: List``."""
    for index, doc in enumerate(docs):
        where = f"documents[{index}]"
        if _kind_of(path, doc, where) != "List":
            yield where, doc
            continue
        unknown = sorted(map(str, set(doc) - {"apiVersion", "kind", "items", "metadata"}))
        if unknown:
            raise InputFileError(path, f"{where}.{unknown[0]}", "unknown key in a kind: List")
        items = doc.get("items")
        if not isinstance(items, list):
            raise InputFileError(path, f"{where}.items", f"must be a list, got {kind(items)}")
        for i, item in enumerate(items):
            item_where = f"{where}.items[{i}]"
            if _kind_of(path, item, item_where) == "List":
                raise InputFileError(
                    path, f"{item_where}.kind", "a List inside a List is not supported"
                )
            yield item_where, item


def load_quotas(path: Path | str) -> dict[str, TeamQuota]:
    """GPU quota per team (namespace) from Kubernetes ResourceQuota manifests.

    The file holds manifests as operators write them (``---``-separated, or a ``kind: List``).
    Other kinds are skipped, as are other resources in ``spec.hard``. Where a namespace has several
    ResourceQuotas limiting GPUs, Kubernetes enforces all of them, so the smallest counts.
    """
    path = Path(path)
    quotas: dict[str, TeamQuota] = {}
    seen: dict[tuple[str, str], str] = {}
    for where, doc in _manifests(path, read_documents(path, multi=True)):
        if doc["kind"] != "ResourceQuota":
            continue
        where = _named(where, doc.get("metadata"))
        manifest = validate(ResourceQuotaModel, doc, path, prefix=where)
        team, name = manifest.metadata.namespace, manifest.metadata.name
        if (team, name) in seen:
            raise InputFileError(
                path,
                f"{where}.metadata.name",
                f"ResourceQuota {team}/{name} appears twice (also at {seen[team, name]})",
            )
        seen[team, name] = where
        quota = manifest.build(source=f"{path}#{name}")
        if quota is not None and (team not in quotas or quota.gpus < quotas[team].gpus):
            quotas[team] = quota
    return quotas


# --------------------------------------------------------------------------------------------
# Governance catalog records (their shape is `data_plane.catalog.CatalogRecord`'s)
# --------------------------------------------------------------------------------------------


def _catalog_entries(path: Path, text: str) -> list[tuple[str, Any]]:
    """(where, raw record) of a ``.json`` or ``.jsonl`` catalog file."""
    if path.suffix.lower() == ".jsonl":
        entries: list[tuple[str, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json_loads(line)
            except (json.JSONDecodeError, *PARSE_ERRORS) as exc:
                problem = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:200]
                raise InputFileError(path, f"line {number}", f"not valid JSON: {problem}") from None
            entries.append((f"records[{len(entries)}] (line {number})", value))
        return entries
    try:
        doc = json_loads(text)
    except (json.JSONDecodeError, *PARSE_ERRORS) as exc:
        raise json_error(path, exc) from None
    if isinstance(doc, Mapping):
        if set(doc) != {"records"}:
            raise InputFileError(
                path,
                "(top level)",
                f"must be a mapping with the single key 'records', got {show(sorted(doc))}",
            )
        doc = doc["records"]
        if not isinstance(doc, list):
            raise InputFileError(path, "records", f"must be a list, got {kind(doc)}")
    elif not isinstance(doc, list):
        raise InputFileError(
            path,
            "(top level)",
            f"must be a list of records or {{'records': [...]}}, got {kind(doc)}",
        )
    return [(f"records[{i}]", raw) for i, raw in enumerate(doc)]


def load_catalog_records(path: Path | str) -> dict[str, CatalogRecord]:
    """Catalog records in the operator JSON shape, by dataset_id.

    ``.json``: a list of records or ``{"records": [...]}``; ``.jsonl``: one record per line (blank
    lines are skipped).
    """
    path = Path(path)
    records: dict[str, CatalogRecord] = {}
    for where, raw in _catalog_entries(path, read_text(path, (".json", ".jsonl"))):
        try:
            record = CatalogRecord.from_dict(raw, where=where)
        except CatalogRecordError as exc:
            field, _, problem = str(exc).rpartition(": ")
            raise InputFileError(path, field or where, problem) from None
        except RecursionError:
            raise InputFileError(path, where, "nested too deeply") from None
        if record.dataset_id in records:
            raise InputFileError(
                path, f"{where}.dataset_id", f"duplicate dataset_id {record.dataset_id!r}"
            )
        records[record.dataset_id] = record
    return records
