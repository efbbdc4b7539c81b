"""`PlaneResource`: the reasoning plane's inputs and state, for sensors and schedules.

Files (each optional, from the resource config or the environment):

* fleet (``PLANE_FLEET_FILE``): unset, the fleet is this machine alone (`snapshot.local_fleet`);
* GPU quotas as Kubernetes ResourceQuota manifests (``PLANE_QUOTAS_FILE``);
* budgets (``PLANE_BUDGETS_FILE``);
* placement policy (``PLANE_PLACEMENT_POLICY``), default values when unset.

Governance comes from the catalog table, usage from the ledger, remote telemetry from the
telemetry table (pushed by ``plane agent``), local telemetry live from NVML.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
from pydantic import Field

from data_plane import catalog_store
from data_plane.access import load_principals
from data_plane.authz import Authorizer, workload_resource
from data_plane.catalog import CatalogRecord
from reasoning_plane import store
from reasoning_plane.gpu_telemetry import read_gpus
from reasoning_plane.inputs import load_budgets, load_fleet, load_quotas
from reasoning_plane.model import Budget, Fleet, Snapshot, TeamQuota
from reasoning_plane.policy import PlacementPolicy, load_policy
from reasoning_plane.snapshot import build_snapshot, local_fleet
from resources.database import project_root
from resources.postgres import PostgresResource

SYSTEM_REQUESTER = "system:"  # requests queued by the plane's own sensors


def _file(value: str | None, env: str) -> Path | None:
    raw = value or os.environ.get(env)
    if not raw:
        return None
    path = Path(raw).expanduser()
    return path if path.is_absolute() else project_root() / path


class PlaneResource(dg.ConfigurableResource):
    postgres: PostgresResource
    fleet_file: str | None = Field(default=None, description="Fleet file; env PLANE_FLEET_FILE.")
    quotas_file: str | None = Field(
        default=None, description="ResourceQuota manifests; env PLANE_QUOTAS_FILE."
    )
    budgets_file: str | None = Field(default=None, description="Budgets; env PLANE_BUDGETS_FILE.")
    policy_file: str | None = Field(
        default=None, description="Placement policy; env PLANE_PLACEMENT_POLICY."
    )
    principals_file: str = Field(
        default="config/principals.yaml",
        description="Principals who may request workloads (Cedar rule request_workload).",
    )

    def request_denied(
        self, requester: str | None, workload: str, team: str, records: list[CatalogRecord]
    ) -> str | None:
        """Why ``requester`` may not request ``workload`` (None: it may). The plane's own
        sensors (``system:<sensor>``) may; anyone else is a principal of the principals file
        and the Cedar rule ``request_workload`` decides; an unknown requester may not."""
        if requester and requester.startswith(SYSTEM_REQUESTER):
            return None
        principals = load_principals(_file(self.principals_file, "PLANE_PRINCIPALS_FILE"))
        principal = principals.get(requester or "")
        if principal is None:
            return f"requester {requester!r} is not a known principal"
        decision = Authorizer().request_workload(
            principal, workload_resource(workload, team, records)
        )
        return None if decision.allowed else "; ".join(decision.reasons) or "denied"

    def policy(self) -> PlacementPolicy:
        path = _file(self.policy_file, "PLANE_PLACEMENT_POLICY")
        return load_policy(path) if path else PlacementPolicy()

    def fleet(self) -> Fleet:
        path = _file(self.fleet_file, "PLANE_FLEET_FILE")
        return load_fleet(path) if path else local_fleet(read_gpus())

    def quotas(self) -> dict[str, TeamQuota]:
        path = _file(self.quotas_file, "PLANE_QUOTAS_FILE")
        return load_quotas(path) if path else {}

    def budgets(self) -> dict[str, Budget]:
        path = _file(self.budgets_file, "PLANE_BUDGETS_FILE")
        return load_budgets(path) if path else {}

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with self.postgres.connect() as conn:
            store.ensure_schema(conn)
            catalog_store.ensure_schema(conn)
            yield conn

    def snapshot(
        self,
        conn: psycopg.Connection,
        now: datetime | None = None,
        declared: Mapping[str, CatalogRecord] | None = None,
        fleet: Fleet | None = None,
    ) -> Snapshot:
        """The tick's snapshot. Governance: the catalog's records, and for a dataset the
        catalog does not hold yet the record its declaration implies (``declared``, from the
        source catalog: see `data_plane.catalog.declared_record`). ``fleet``: instead of the
        configured one (``plane run`` places on this machine alone)."""
        fleet = fleet or self.fleet()
        local = any(c.local for c in fleet.clusters)
        stored = {e.dataset_id: e.record for e in catalog_store.list_entries(conn)}
        return build_snapshot(
            conn,
            fleet=fleet,
            quotas=self.quotas(),
            budgets=self.budgets(),
            catalog={**(declared or {}), **stored},
            now=now or datetime.now(UTC),
            local_report=read_gpus() if local else None,
        )
