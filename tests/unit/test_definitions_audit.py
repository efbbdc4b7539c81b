"""Every asset of the project, as the Dagster UI lists it, carries what operators filter on:
its layer's group, kinds, an owner team, a description and the governance tags."""

import dagster as dg
import pytest

from assets.tags import LAYER_GROUPS, tag_value
from data_plane.classification import CLASSIFICATIONS, UNKNOWN
from data_plane.policy import load_policy
from resources.database import project_root
from stack_defs.definitions import build_defs


@pytest.fixture(scope="module")
def graph():
    return build_defs().resolve_asset_graph()


def _zones() -> set[str]:
    zones = set(load_policy(project_root() / "config" / "governance.yaml").region_zones.values())
    return zones | {UNKNOWN}


def test_groups_are_exactly_the_layers(graph) -> None:
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == set(LAYER_GROUPS)


def test_every_asset_has_group_kinds_owner_description_and_governance_tags(graph) -> None:
    zones = _zones()
    problems = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        name = key.to_user_string()
        if node.group_name not in LAYER_GROUPS:
            problems.append(f"{name}: group {node.group_name!r} is not a layer")
        if not node.kinds:
            problems.append(f"{name}: no kinds")
        if not node.owners or not all(o.startswith("team:") for o in node.owners):
            problems.append(f"{name}: owners {node.owners} (want team:<name>)")
        if not (node.description or "").strip():
            problems.append(f"{name}: no description")
        tags = dict(node.tags)
        if tags.get("classification") not in {tag_value(c) for c in CLASSIFICATIONS}:
            problems.append(f"{name}: classification tag {tags.get('classification')!r}")
        # A composite residency (EU+US) is shown as EU_and_US; each part must be a known zone.
        parts = (tags.get("residency") or "").split("_and_")
        if not all(p in zones for p in parts):
            problems.append(f"{name}: residency tag {tags.get('residency')!r}")
    assert not problems, "\n".join(problems)


def test_tags_are_filterable_in_the_ui(graph) -> None:
    """The UI filters on tag key=value; the EU PII sources must be found that way."""
    eu_pii = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).tags.get("residency") == "EU"
        and graph.get(key).tags.get("classification") == "PII"
    }
    assert {"ingested/customer_orders_eu", "catalog/support_tickets"} <= eu_pii
    assert "ingested/customer_orders_us" not in eu_pii
    selection = dg.AssetSelection.tag("residency", "EU") & dg.AssetSelection.tag(
        "classification", "PII"
    )
    assert {k.to_user_string() for k in selection.resolve(graph)} == eu_pii


def test_sensors_and_schedules_are_described() -> None:
    defs = build_defs()
    for target in [*defs.sensors, *defs.schedules]:
        assert (target.description or "").strip(), f"{target.name} has no description"
    assert {s.name for s in defs.schedules} >= {"team_spend_schedule"}
