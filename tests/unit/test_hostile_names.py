"""Hostile names through the policy engine (issue 8, item 7): principal, team and dataset names
are only identifiers to Cedar (structured entity ids, never policy text), so whatever their
characters (quotes, ``::``, policy syntax, unicode, NUL, 10k characters) a decision depends only
on the facts: the same as for plain names with the same relationships."""

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.access import Principal
from data_plane.authz import Authorizer, Resource

REPO = Path(__file__).resolve().parents[2]
ENGINE = Authorizer(REPO / "config" / "policies")
NASTY = st.sampled_from(
    [
        'x" || true || "',
        'Plane::Team::"financial-ml"',
        "permit(principal, action, resource);",
        "'; DROP SCHEMA governance CASCADE; --",
        "../../etc/passwd",
        "\u0000",
        "\u202e\u200b",
        "\U0001f4a5",
        "a" * 10_000,
        " ",
    ]
)
NAMES = NASTY | st.text(min_size=1, max_size=40)
CLASSIFICATIONS = st.sampled_from(["PUBLIC", "INTERNAL", "CONFIDENTIAL", "PII", "UNKNOWN", "pii"])


@settings(max_examples=150, deadline=None)
@given(
    who=NAMES,
    team=NAMES,
    owner=NAMES,
    dataset=NAMES,
    member=st.booleans(),
    granted=st.booleans(),
    classification=CLASSIFICATIONS,
    clearance=st.sampled_from(["PUBLIC", "INTERNAL", "CONFIDENTIAL", "PII"]),
    pii=st.booleans(),
    serve=st.sampled_from(["EU", "US"]),
)
def test_decisions_depend_on_facts_not_on_names(
    who: str,
    team: str,
    owner: str,
    dataset: str,
    member: bool,
    granted: bool,
    classification: str,
    clearance: str,
    pii: bool,
    serve: str,
) -> None:
    def decide(p_name: str, p_team: str, o_team: str, d_name: str) -> tuple[bool, int]:
        principal = Principal(
            name=p_name,
            teams=frozenset({o_team if member else p_team}),
            clearance=clearance,
            regions=frozenset({"EU"}),
            home_region="EU",
            grants=frozenset({d_name} if granted else set()),
        )
        decision = ENGINE.retrieve(
            principal,
            Resource(d_name, o_team, classification, "EU"),
            store_region="EU",
            serve_region=serve,
            pii=pii,
        )
        assert decision.resource == f"Dataset::{d_name}" and decision.principal == p_name
        return decision.allowed, len(decision.reasons)

    if team == owner:
        team = owner + "-other"
    assert decide(who, team, owner, dataset) == decide("p", "t", "o", "d")
