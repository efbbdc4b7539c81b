"""Governed retrieval over the regional vector stores (Layer 1B, for Layer 3 applications).

``Retriever.search(query, principal, k, region, on_behalf_of=None)`` asks the policy engine
(`data_plane.authz`, Cedar policies in ``config/policies/``) which catalog datasets the
principal may read in their store, served in ``region``; it embeds the query once and asks only
those stores for only those datasets, excluding chunks holding PII from any store outside
``region``: PII chunks never leave their region. Every hit is authorised again after the query
(defence in depth) before it is returned. Every denial goes to ``audit`` (the append-only
``governance.access_log`` when opened by `resources.vectors.open_retriever`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import psycopg
from pydantic import Field, model_validator

from data_plane.access import Principal
from data_plane.authz import AccessDecision, Authorizer, Resource
from data_plane.catalog import CatalogEntry
from data_plane.catalog_store import entry_hash
from data_plane.classification import (
    UNKNOWN,
    ZONE_RE,
    most_restrictive_classification,
    residency_parts,
)
from data_plane.config import ConfigModel, Zone, fail, name, validate
from data_plane.files import read_document
from data_plane.vector_store import RegionStore, SearchHit, search_store

_SCHEMA = r"[a-z][a-z0-9_]{0,62}"


class StoreModel(ConfigModel):
    schema_: name(_SCHEMA, "a lower_snake_case name") = Field(alias="schema")  # type: ignore[valid-type]


class VectorStoresFile(ConfigModel):
    """The regional vector stores file (``config/vector_stores.yaml``): region -> schema."""

    single_key: ClassVar[str | None] = "stores"
    stores: dict[Zone, StoreModel]

    @model_validator(mode="after")
    def _schemas(self) -> VectorStoresFile:
        seen: set[str] = set()
        for region, store in self.stores.items():
            if store.schema_ in seen:
                fail(f"schema {store.schema_!r} used twice", ("stores", region, "schema"))
            seen.add(store.schema_)
        return self


def load_store_config(path: Path | str) -> dict[str, RegionStore]:
    """Regional stores from ``config/vector_stores.yaml`` (region -> schema)."""
    path = Path(path)
    stores = validate(VectorStoresFile, read_document(path), path).stores
    return {region: RegionStore(region=region, schema=s.schema_) for region, s in stores.items()}


def store_for_residency(stores: Mapping[str, RegionStore], residency: str) -> RegionStore | None:
    """The one store that may hold data of this residency; None for composite/unknown/unserved."""
    parts = residency_parts(residency)
    if len(parts) != 1 or UNKNOWN in parts:
        return None
    return stores.get(next(iter(parts)))


def stricter(resource: Resource, hit: SearchHit) -> Resource:
    """``resource`` (a dataset as its catalog entry says) with the most restrictive of its
    classification and the chunk's own (PII when the chunk holds PII), and the chunk's residency
    when the two disagree (the store rules then compare both against the store's region)."""
    classification = most_restrictive_classification(
        [resource.classification, hit.classification] + (["PII"] if hit.pii else [])
    )
    residency = resource.residency if hit.residency == resource.residency else UNKNOWN
    return replace(resource, classification=classification, residency=residency)


def _dataset_asks(
    stores: Mapping[str, RegionStore],
    entries: Sequence[CatalogEntry],
    principal: Principal,
    region: str,
    on_behalf_of: Principal | None,
) -> list[tuple[RegionStore | None, str, Any]]:
    """(store, dataset, Cedar ask) for every catalog dataset: may ``principal`` read it served in
    ``region`` (its PII only from a store of that region)?"""
    asks = []
    for entry in entries:
        store = store_for_residency(stores, entry.record.data_residency)
        store_region = store.region if store else UNKNOWN
        ask = Authorizer.retrieve_ask(
            principal,
            Resource.from_entry(entry),
            store_region=store_region,
            serve_region=region,
            pii=store_region == region,
            on_behalf_of=on_behalf_of,
        )
        asks.append((store, entry.dataset_id, ask))
    return asks


def read_grants(
    authorizer: Authorizer,
    principals: Mapping[str, Principal],
    entries: Sequence[CatalogEntry],
    stores: Mapping[str, RegionStore],
) -> list[tuple[str, str, str, str]]:
    """(principal, dataset, serve region, entry hash) for every read the policies allow a
    principal acting alone: the same Cedar asks as `Retriever.plan`, over every region a store or
    a principal names. The stores' search functions read chunks only within these
    (`catalog_store.replace_read_grants`), so the database itself bounds what a key can read; an
    agent acting for a user gets at most what it may alone, so this bound holds for it too."""
    regions = sorted(
        set(stores) | {r for p in principals.values() for r in (*p.regions, p.home_region)}
    )
    keys: list[tuple[str, str, str, str]] = []
    asks = []
    hashes = {e.dataset_id: entry_hash(e) for e in entries}
    for principal in principals.values():
        for region in regions:
            for store, dataset, ask in _dataset_asks(stores, entries, principal, region, None):
                if store is not None:
                    keys.append((principal.name, dataset, region, hashes[dataset]))
                    asks.append(ask)
    decisions = authorizer.many(asks)
    return [key for key, decision in zip(keys, decisions, strict=True) if decision.allowed]


@dataclass
class Retriever:
    """Governed search over the regional stores. With a ``credential`` (an API key) the stores
    are read through their search function as ``rp_reader`` (`vector_store`): the database
    checks the key and the principal's read grants itself."""

    stores: Mapping[str, RegionStore]
    connect: Callable[[RegionStore], AbstractContextManager[psycopg.Connection]]
    embed: Callable[[list[str]], np.ndarray]
    catalog: Callable[[], Sequence[CatalogEntry]]
    principals: Mapping[str, Principal] = field(default_factory=dict)
    authorizer: Authorizer = field(default_factory=Authorizer)
    audit: Callable[[Sequence[AccessDecision]], None] | None = None
    credential: str | None = None

    def principal(self, name: str) -> Principal:
        try:
            return self.principals[name]
        except KeyError:
            raise LookupError(f"unknown principal {name!r}") from None

    def _record(
        self, decisions: Sequence[AccessDecision], reads: Sequence[AccessDecision] = ()
    ) -> None:
        """Audit every denial, and ``reads``: allowed reads of personal data."""
        logged = [d for d in decisions if not d.allowed] + [d for d in reads if d.allowed]
        if logged and self.audit is not None:
            self.audit(logged)

    def plan(
        self, principal: Principal, region: str, on_behalf_of: Principal | None = None
    ) -> Iterator[tuple[RegionStore, list[str], bool]]:
        """(store, readable datasets in it, exclude_pii) for every store the principal may read.

        Every catalog dataset held in a store is asked about (served in ``region``; a store
        outside it is asked for its chunks without PII); denials are audited."""
        asks = _dataset_asks(self.stores, self.catalog(), principal, region, on_behalf_of)
        decisions = self.authorizer.many([ask for _, _, ask in asks])
        self._record(decisions)
        readable: dict[str, list[str]] = {}
        for (store, dataset, _), decision in zip(asks, decisions, strict=True):
            if decision.allowed and store is not None:
                readable.setdefault(store.region, []).append(dataset)
        for store_region, datasets in sorted(readable.items()):
            yield self.stores[store_region], datasets, store_region != region

    def search(
        self,
        query: str,
        principal: Principal | str,
        k: int = 5,
        region: str | None = None,
        *,
        on_behalf_of: Principal | str | None = None,
    ) -> list[SearchHit]:
        """Top-``k`` chunks for ``query`` that ``principal`` (acting for ``on_behalf_of``, when
        given) may see, served in ``region``."""
        if isinstance(principal, str):
            principal = self.principal(principal)
        if isinstance(on_behalf_of, str):
            on_behalf_of = self.principal(on_behalf_of)
        region = region or (on_behalf_of or principal).home_region
        _check_query(query, k, region)
        plan = list(self.plan(principal, region, on_behalf_of))
        if not plan:
            return []
        vector = self.embed([query])[0]
        entries = {e.dataset_id: e for e in self.catalog()}
        found = self._query_stores(plan, vector, k, region)
        hits = self._authorise_hits(found, entries, principal, region, on_behalf_of)
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def _query_stores(
        self,
        plan: Sequence[tuple[RegionStore, list[str], bool]],
        vector: np.ndarray,
        k: int,
        region: str,
    ) -> list[tuple[RegionStore, SearchHit]]:
        """The top-``k`` hits of every planned store, for its readable datasets only."""
        found: list[tuple[RegionStore, SearchHit]] = []
        for store, datasets, exclude_pii in plan:
            with self.connect(store) as conn:
                for hit in search_store(
                    conn,
                    store,
                    vector,
                    k,
                    allowed_datasets=datasets,
                    exclude_pii=exclude_pii,
                    credential=self.credential,
                    serve_region=region,
                ):
                    found.append((store, hit))
        return found

    def _authorise_hits(
        self,
        found: Sequence[tuple[RegionStore, SearchHit]],
        entries: Mapping[str, CatalogEntry],
        principal: Principal,
        region: str,
        on_behalf_of: Principal | None,
    ) -> list[SearchHit]:
        """Defence in depth: every hit is authorised again with its own facts, the stricter of
        the catalog's and the chunk's (a catalog rewritten to PUBLIC does not open PII chunks).
        A hit whose dataset has no catalog record any more is dropped. Denials and allowed reads
        of personal data are audited."""
        checked: list[tuple[RegionStore, SearchHit, Resource]] = []
        for store, hit in found:
            entry = entries.get(hit.dataset_id)
            if entry is not None:  # no catalog record any more: nobody may read it
                checked.append((store, hit, stricter(Resource.from_entry(entry), hit)))
        asks = [
            Authorizer.retrieve_ask(
                principal,
                resource,
                store_region=store.region,
                serve_region=region,
                pii=hit.pii,
                residency=hit.residency,
                on_behalf_of=on_behalf_of,
            )
            for store, hit, resource in checked
        ]
        decisions = self.authorizer.many(asks)
        hits: list[SearchHit] = []
        personal: list[AccessDecision] = []  # reads of personal data: logged like denials
        for (_, hit, resource), decision in zip(checked, decisions, strict=True):
            if decision.allowed:
                hits.append(hit)
                if resource.classification in ("PII", UNKNOWN):
                    personal.append(decision)
        self._record(decisions, personal)
        return hits


def _check_query(query: str, k: int, region: object) -> None:
    """Refuse a region that is not a zone name, ``k`` outside 1..1000, an empty or huge query."""
    if not isinstance(region, str):
        raise ValueError(f"region must be a zone name like EU, got {region!r}")
    if not ZONE_RE.fullmatch(region) or region == UNKNOWN:
        raise ValueError(f"region must be a zone name like EU, got {region!r}")
    if not 1 <= k <= 1000:
        raise ValueError(f"k must be between 1 and 1000, got {k}")
    if not query.strip():
        raise ValueError("query is empty")
    if len(query) > 10_000:
        raise ValueError("query is longer than 10,000 characters")
