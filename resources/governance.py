"""`GovernanceCatalogResource`: the governance policy and the durable catalog (Layer 1A)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from data_plane import catalog_store
from data_plane.catalog import CatalogEntry
from data_plane.policy import GovernancePolicy, load_policy
from resources.database import project_root
from resources.postgres import PostgresResource

DEFAULT_POLICY_FILE = "config/governance.yaml"


def resolve_project_path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_root() / path


class GovernanceCatalogResource(dg.ConfigurableResource):
    """Reads the governance policy file and reads/writes the catalog tables in PostgreSQL."""

    postgres: PostgresResource
    policy_file: str = Field(
        default=DEFAULT_POLICY_FILE, description="Governance policy YAML (relative: project root)."
    )
    _schema_ready: bool = PrivateAttr(default=False)

    @cached_property
    def policy(self) -> GovernancePolicy:
        return load_policy(resolve_project_path(self.policy_file))

    def _ensure(self) -> None:
        if not self._schema_ready:
            with self.postgres.connect() as conn:
                catalog_store.ensure_schema(conn)
            self._schema_ready = True

    def upsert(self, entry: CatalogEntry, *, run_id: str | None = None) -> bool:
        """Write the entry; when its facts changed, decide the read grants again (the stores'
        search functions honour a grant only for the entry it was decided on)."""
        self._ensure()
        with self.postgres.connect() as conn:
            changed = catalog_store.upsert_entry(conn, entry, run_id=run_id)
            if changed:
                from resources.vectors import sync_read_grants  # loads the Cedar policies

                sync_read_grants(conn)
                conn.commit()
            return changed

    def get(self, dataset_id: str) -> CatalogEntry | None:
        self._ensure()
        with self.postgres.connect() as conn:
            return catalog_store.get_entry(conn, dataset_id)

    def require(self, dataset_id: str) -> CatalogEntry:
        entry = self.get(dataset_id)
        if entry is None:
            raise LookupError(
                f"dataset {dataset_id!r} has no governance catalog entry; materialize "
                f"catalog/{dataset_id} first"
            )
        return entry

    def entries(self) -> list[CatalogEntry]:
        self._ensure()
        with self.postgres.connect() as conn:
            return catalog_store.list_entries(conn)
