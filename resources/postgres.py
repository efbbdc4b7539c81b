"""`PostgresResource`: connections to the project's PostgreSQL (external or embedded)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from pgvector.psycopg import register_vector
from pydantic import Field

from resources.database import database_url, is_embedded, redact_url


class PostgresResource(dg.ConfigurableResource):
    """The project's PostgreSQL: `database_url` if set, else ``PLANE_DATABASE_URL``, else the
    embedded PostgreSQL + pgvector started on first use in ``.plane/pg``; as ``role``."""

    database_url: str | None = Field(
        default=None,
        description=(
            "postgresql:// URL of an external server. Unset: PLANE_DATABASE_URL, else embedded."
        ),
    )

    role: str | None = Field(
        default=None,
        description=(
            "The service's database role (plane, worker, steward, reader: data_plane.roles). "
            "Embedded: logs in as it; external: PLANE_DATABASE_URL_<ROLE> when set. Unset: the "
            "administrator (set-up and tests)."
        ),
    )

    def url(self) -> str:
        return database_url(configured=self.database_url, role=self.role)

    def describe(self) -> str:
        """Where the data goes, with any password redacted (safe for metadata and logs)."""
        kind = "embedded" if is_embedded(self.database_url) else "external"
        return f"{kind}: {redact_url(self.url())}"

    @contextmanager
    def connect(self, *, vector: bool = False) -> Iterator[psycopg.Connection]:
        """A psycopg 3 connection; with ``vector=True`` the pgvector type is registered."""
        with psycopg.connect(self.url()) as conn:
            if vector:
                register_vector(conn)
            yield conn
