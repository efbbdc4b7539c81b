"""`VectorStoresResource` (regional pgvector stores) and `open_retriever` for Layer 3 apps."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg
from pgvector.psycopg import register_vector
from pydantic import Field

from data_plane import access_log, catalog_store
from data_plane.access import load_principals
from data_plane.authz import POLICY_DIR, AccessDecision, Authorizer
from data_plane.catalog import CatalogEntry
from data_plane.embedder import Embedder
from data_plane.retrieval import Retriever, load_store_config, read_grants, store_for_residency
from data_plane.vector_store import RegionStore, ensure_store
from resources.database import database_url, project_root, redact_url

DEFAULT_STORES_FILE = "config/vector_stores.yaml"
DEFAULT_PRINCIPALS_FILE = "config/principals.yaml"


def _project_path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_root() / path


def store_url(region: str, default: str | None = None, role: str | None = None) -> str:
    """``PLANE_VECTOR_URL_<REGION>`` if set, else the project database (as ``role``)."""
    return os.environ.get(f"PLANE_VECTOR_URL_{region}") or database_url(
        configured=default, role=role
    )


@contextmanager
def connect_store(
    store: RegionStore, default_url: str | None = None, role: str | None = None
) -> Iterator[psycopg.Connection]:
    with psycopg.connect(store_url(store.region, default_url, role)) as conn:
        register_vector(conn)
        yield conn


class VectorStoresResource(dg.ConfigurableResource):
    """The regional vector stores declared in ``config/vector_stores.yaml``."""

    stores_file: str = Field(default=DEFAULT_STORES_FILE, description="Regional store config.")
    database_url: str | None = Field(
        default=None, description="Default database for stores without PLANE_VECTOR_URL_<REGION>."
    )
    role: str | None = Field(
        default="worker",
        description="Database role (data_plane.roles): run workers write the chunks.",
    )

    def stores(self) -> dict[str, RegionStore]:
        return load_store_config(_project_path(self.stores_file))

    def store_for(self, residency: str) -> RegionStore | None:
        return store_for_residency(self.stores(), residency)

    @contextmanager
    def connect(self, store: RegionStore) -> Iterator[psycopg.Connection]:
        with connect_store(store, self.database_url, self.role) as conn:
            ensure_store(conn, store)
            yield conn

    def describe(self, store: RegionStore) -> str:
        url = redact_url(store_url(store.region, self.database_url))
        return f"{store.region} store, schema {store.schema} on {url}"


_ACCESS_LOG_READY: set[str] = set()


def log_access(decisions: Sequence[AccessDecision], role: str | None = None) -> None:
    """Append decisions to ``governance.access_log`` in the project database (as ``role``). The
    table is set up once per process and database (its DDL locks the table; searches should not
    queue on it)."""
    url = database_url(role=role)
    with psycopg.connect(url) as conn:
        if url in _ACCESS_LOG_READY:
            try:
                access_log.append(conn, decisions)
                return
            except psycopg.errors.UndefinedTable:  # dropped since (a fresh database): set up again
                conn.rollback()
        access_log.ensure_schema(conn)
        _ACCESS_LOG_READY.add(url)
        access_log.append(conn, decisions)


def open_retriever(
    *,
    stores_file: str = DEFAULT_STORES_FILE,
    principals_file: str = DEFAULT_PRINCIPALS_FILE,
    policies_dir: str | Path = POLICY_DIR,
    embedder: Embedder | None = None,
    credential: str | None = None,
) -> Retriever:
    """Governed retrieval for Layer 3 applications::

    from resources.vectors import open_retriever
    hits = open_retriever(credential=api_key).search("refund to my IBAN", "support-copilot")

    Access is decided by the Cedar policies in ``policies_dir``; denials are appended to
    ``governance.access_log``. With ``credential`` (the caller's API key, `plane keys issue`)
    everything is read as ``rp_reader``, the chunks only through the stores' search function,
    which checks the key and the principal's read grants in the database; without one, as the
    administrator (a trusted in-process caller).
    """
    model = embedder or Embedder()
    role = "reader" if credential is not None else None

    def catalog() -> list[CatalogEntry]:
        with psycopg.connect(database_url(role=role)) as conn:
            catalog_store.ensure_schema(conn)
            return catalog_store.list_entries(conn)

    @contextmanager
    def connect(store: RegionStore) -> Iterator[psycopg.Connection]:
        with connect_store(store, role=role) as conn:
            yield conn

    return Retriever(
        stores=load_store_config(_project_path(stores_file)),
        connect=connect,
        embed=model.encode,
        catalog=catalog,
        principals=load_principals(_project_path(principals_file)),
        authorizer=Authorizer(_project_path(str(policies_dir))),
        audit=lambda decisions: log_access(decisions, role=role),
        credential=credential,
    )


def sync_read_grants(
    conn: psycopg.Connection,
    *,
    stores_file: str = DEFAULT_STORES_FILE,
    principals_file: str = DEFAULT_PRINCIPALS_FILE,
    policies_dir: str | Path = POLICY_DIR,
) -> int:
    """Decide who may read which dataset where (`retrieval.read_grants`, the Cedar policies over
    the current catalog) and store it for the stores' search functions; the number of grants.
    Run by the steward after each catalog change and by `plane db migrate`."""
    authorizer = Authorizer(_project_path(str(policies_dir)))
    grants = read_grants(
        authorizer,
        load_principals(_project_path(principals_file)),
        catalog_store.list_entries(conn),
        load_store_config(_project_path(stores_file)),
    )
    return catalog_store.replace_read_grants(conn, grants, authorizer.version)
