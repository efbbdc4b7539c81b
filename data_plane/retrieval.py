"""Governed retrieval over the regional vector stores (Layer 1B, for Layer 3 applications).

``Retriever.search(query, principal, k, region)`` embeds the query once, then asks only the
stores the principal may read from, only for datasets the principal may read (classification,
team ownership, grants), and excludes chunks holding PII from any store outside ``region`` (the
region the answer is served in): PII chunks never leave their region. Every hit is checked again
after the query (defence in depth) before it is returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg

from data_plane.access import Principal, may_read_chunk, may_read_dataset
from data_plane.catalog import CatalogEntry
from data_plane.classification import UNKNOWN, residency_parts
from data_plane.errors import InputFileError
from data_plane.files import read_yaml
from data_plane.vector_store import RegionStore, SearchHit, search_store

_ZONE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_SCHEMA = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def load_store_config(path: Path | str) -> dict[str, RegionStore]:
    """Regional stores from ``config/vector_stores.yaml`` (region -> schema)."""
    path = Path(path)
    raw = read_yaml(path)
    if (
        not isinstance(raw, Mapping)
        or set(raw) != {"stores"}
        or not isinstance(raw["stores"], Mapping)
    ):
        raise InputFileError(path, "(top level)", "must be a mapping with a 'stores' mapping")
    stores: dict[str, RegionStore] = {}
    schemas: set[str] = set()
    for region, spec in raw["stores"].items():
        where = f"stores.{region}"
        if not isinstance(region, str) or not _ZONE.match(region) or region == UNKNOWN:
            raise InputFileError(path, where, "region must be an upper-case zone name like EU")
        if not isinstance(spec, Mapping) or set(spec) != {"schema"}:
            raise InputFileError(path, where, "must be a mapping with the single key 'schema'")
        schema = spec["schema"]
        if not isinstance(schema, str) or not _SCHEMA.match(schema):
            raise InputFileError(path, f"{where}.schema", "must be a lower_snake_case name")
        if schema in schemas:
            raise InputFileError(path, f"{where}.schema", f"schema {schema!r} used twice")
        schemas.add(schema)
        stores[region] = RegionStore(region=region, schema=schema)
    return stores


def store_for_residency(stores: Mapping[str, RegionStore], residency: str) -> RegionStore | None:
    """The one store that may hold data of this residency; None for composite/unknown/unserved."""
    parts = residency_parts(residency)
    if len(parts) != 1 or UNKNOWN in parts:
        return None
    return stores.get(next(iter(parts)))


@dataclass
class Retriever:
    """Governed search over the regional stores."""

    stores: Mapping[str, RegionStore]
    connect: Callable[[RegionStore], AbstractContextManager[psycopg.Connection]]
    embed: Callable[[list[str]], np.ndarray]
    catalog: Callable[[], Sequence[CatalogEntry]]
    principals: Mapping[str, Principal] = field(default_factory=dict)

    def principal(self, name: str) -> Principal:
        try:
            return self.principals[name]
        except KeyError:
            raise LookupError(f"unknown principal {name!r}") from None

    def plan(
        self, principal: Principal, region: str
    ) -> Iterator[tuple[RegionStore, list[str], bool]]:
        """(store, readable datasets in it, exclude_pii) for every store the principal may read."""
        entries = list(self.catalog())
        for store_region, store in sorted(self.stores.items()):
            if store_region not in principal.regions:
                continue
            datasets = [
                e.dataset_id
                for e in entries
                if e.record.data_residency == store_region
                and may_read_dataset(principal, e.record.classification, e.owner_team, e.dataset_id)
            ]
            if datasets:
                yield store, datasets, store_region != region

    def search(
        self, query: str, principal: Principal | str, k: int = 5, region: str | None = None
    ) -> list[SearchHit]:
        """Top-``k`` chunks for ``query`` that ``principal`` may see, served in ``region``."""
        if isinstance(principal, str):
            principal = self.principal(principal)
        region = region or principal.home_region
        if not _ZONE.match(region) or region == UNKNOWN:
            raise ValueError(f"region must be a zone name like EU, got {region!r}")
        if not 1 <= k <= 1000:
            raise ValueError(f"k must be between 1 and 1000, got {k}")
        if not query.strip():
            raise ValueError("query is empty")
        if len(query) > 10_000:
            raise ValueError("query is longer than 10,000 characters")
        plan = list(self.plan(principal, region))
        if not plan:
            return []
        vector = self.embed([query])[0]
        entries = {e.dataset_id: e for e in self.catalog()}
        hits: list[SearchHit] = []
        for store, datasets, exclude_pii in plan:
            with self.connect(store) as conn:
                found = search_store(
                    conn, store, vector, k, allowed_datasets=datasets, exclude_pii=exclude_pii
                )
            for hit in found:
                entry = entries.get(hit.dataset_id)
                if (
                    entry is not None
                    and may_read_dataset(
                        principal, entry.record.classification, entry.owner_team, hit.dataset_id
                    )
                    and may_read_chunk(
                        principal,
                        store_region=store.region,
                        chunk_residency=hit.residency,
                        pii=hit.pii,
                        serve_region=region,
                    )
                ):
                    hits.append(hit)
        hits.sort(key=lambda h: -h.score)
        return hits[:k]
