"""Dagster instance storage on the project's PostgreSQL (embedded by default).

``dagster.yaml`` names these classes for run, event-log and schedule storage. They are the stock
dagster-postgres storages; the only difference is where the URL comes from: the ``postgres_url``
config value when given, else ``PLANE_DATABASE_URL``, else the embedded server, started lazily
(see `resources.database`). So ``dagster dev -w workspace.yaml`` from the repository root runs on
PostgreSQL with no service installed, and production points the same file at a real server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import Field, StringSource
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from resources.database import database_url

if TYPE_CHECKING:  # the type only; the class is passed in by Dagster
    from dagster._serdes import ConfigurableClassData

_CONFIG = {
    "postgres_url": Field(
        StringSource,
        is_required=False,
        description="External PostgreSQL URL; default: PLANE_DATABASE_URL, else embedded.",
    ),
}


def _url(config_value: Mapping[str, Any]) -> str:
    return database_url("psycopg2", configured=config_value.get("postgres_url"))


class PlaneRunStorage(PostgresRunStorage):
    """`PostgresRunStorage` on the project's database."""

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return _CONFIG

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PlaneRunStorage:
        return cls(postgres_url=_url(config_value), inst_data=inst_data)


class PlaneEventLogStorage(PostgresEventLogStorage):
    """`PostgresEventLogStorage` on the project's database."""

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return _CONFIG

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PlaneEventLogStorage:
        return cls(postgres_url=_url(config_value), inst_data=inst_data)


class PlaneScheduleStorage(PostgresScheduleStorage):
    """`PostgresScheduleStorage` on the project's database."""

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return _CONFIG

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PlaneScheduleStorage:
        return cls(postgres_url=_url(config_value), inst_data=inst_data)
