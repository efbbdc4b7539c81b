"""Running assets the way the project runs them: placed by the reasoning plane first.

Every asset that reads governed data refuses to run without a signed decision for itself
(`resources.guard`), so tests materialize through `plane_cli.run.run_placed`, the same code as
``plane run``, on this machine declared in a zone (``PLANE_LOCAL_ZONE``) with certifications.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dagster as dg

from plane_cli.run import SUCCEEDED, Outcome, run_placed
from resources.plane import PlaneResource
from resources.postgres import PostgresResource

GDPR_EU = ("EU", "ISO27001,GDPR")


@contextmanager
def declared_zone(zone: str, certifications: str) -> Iterator[None]:
    """This machine declared in ``zone`` with ``certifications`` while the block runs."""
    saved = {k: os.environ.get(k) for k in ("PLANE_LOCAL_ZONE", "PLANE_LOCAL_CERTIFICATIONS")}
    os.environ["PLANE_LOCAL_ZONE"] = zone
    os.environ["PLANE_LOCAL_CERTIFICATIONS"] = certifications
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def materialize_placed(
    defs: dg.Definitions,
    selection: str | Iterable[dg.AssetKey] = "*",
    *,
    instance: dg.DagsterInstance,
    zone: tuple[str, str] = GDPR_EU,
    require_success: bool = True,
) -> dict[str, Outcome]:
    """Place and run ``selection`` on this machine declared in ``zone``; outcomes by asset."""
    graph = defs.resolve_asset_graph()
    keys = (
        dg.AssetSelection.from_coercible(selection).resolve(graph)
        if isinstance(selection, str)
        else set(selection)
    )
    with declared_zone(*zone):
        outcomes = run_placed(
            defs,
            keys,
            instance=instance,
            plane=PlaneResource(postgres=PostgresResource()),
            log=lambda _line: None,
        )
    by_asset = {o.asset: o for o in outcomes}
    if require_success:
        bad = {k: (o.status, o.reason) for k, o in by_asset.items() if o.status != SUCCEEDED}
        assert not bad, bad
    return by_asset


class PlacedResult:
    """The runs of one `materialize_placed` as one result (events read from the instance)."""

    def __init__(self, instance: dg.DagsterInstance, outcomes: dict[str, Outcome]) -> None:
        self.outcomes = outcomes
        self.all_events: list[dg.DagsterEvent] = [
            entry.dagster_event
            for o in outcomes.values()
            if o.run_id
            for entry in instance.all_logs(o.run_id)
            if entry.dagster_event is not None
        ]

    @property
    def run_ids(self) -> list[str]:
        return [o.run_id for o in self.outcomes.values() if o.run_id]

    @property
    def success(self) -> bool:
        return all(o.status == SUCCEEDED for o in self.outcomes.values())

    def get_asset_check_evaluations(self):
        return [
            e.event_specific_data
            for e in self.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]

    def get_asset_materialization_events(self):
        return [e for e in self.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]


def run_placed_result(
    defs: dg.Definitions,
    selection: str | Iterable[dg.AssetKey] = "*",
    *,
    instance: dg.DagsterInstance,
    zone: tuple[str, str] = GDPR_EU,
) -> PlacedResult:
    outcomes = materialize_placed(
        defs, selection, instance=instance, zone=zone, require_success=False
    )
    return PlacedResult(instance, outcomes)
