"""Access rules of retrieval and model use, evaluated by the Cedar engine on the shipped policy
files (config/policies/): one test per rule, each showing both sides of it."""

import shutil
from pathlib import Path

import pytest

from data_plane.access import Principal, load_principals
from data_plane.authz import Authorizer, PolicyError, Resource, policy_version
from data_plane.errors import InputFileError

REPO = Path(__file__).resolve().parents[2]
ENGINE = Authorizer(REPO / "config" / "policies")


def p(**kw) -> Principal:
    base = dict(
        name="x",
        teams=frozenset({"financial-ml"}),
        clearance="PII",
        regions=frozenset({"EU"}),
        home_region="EU",
    )
    return Principal(**{**base, **kw})


def ds(classification: str = "PII", owner: str = "financial-ml", residency: str = "EU") -> Resource:
    return Resource("orders", owner, classification, residency)


def read(principal: Principal, resource: Resource, **kw) -> bool:
    args = dict(store_region="EU", serve_region="EU", pii=False)
    return ENGINE.retrieve(principal, resource, **{**args, **kw}).allowed


def reasons(principal: Principal, resource: Resource, **kw) -> tuple[str, ...]:
    args = dict(store_region="EU", serve_region="EU", pii=False)
    return ENGINE.retrieve(principal, resource, **{**args, **kw}).reasons


def test_team_scoped_classifications() -> None:
    assert read(p(), ds("PII"))
    assert not read(p(), ds("PII", owner="commerce-analytics"))
    assert read(p(grants=frozenset({"orders"})), ds("PII", owner="other"))
    assert not read(p(), ds("CONFIDENTIAL", owner="other"))
    assert read(p(teams=frozenset()), ds("INTERNAL", owner="other"))
    (why,) = reasons(p(), ds("PII", owner="commerce-analytics"))
    assert why.startswith("no-permit") and "owned by commerce-analytics" in why


def test_clearance_and_unknown() -> None:
    assert not read(p(clearance="INTERNAL"), ds("PII"))
    assert read(p(clearance="PUBLIC"), ds("PUBLIC", owner="any"))
    assert not read(p(clearance="PUBLIC"), ds("INTERNAL", owner="any"))
    assert not read(p(), ds("UNKNOWN"))  # fail closed, even for the owner team
    assert not read(p(), ds("something-odd"))  # unrecognised: UNKNOWN
    assert "forbid: unknown-classification" in reasons(p(), ds("UNKNOWN"))


def test_unknown_residency_is_readable_by_nobody() -> None:
    for residency in ("UNKNOWN", ""):
        decision = ENGINE.retrieve(
            p(regions=frozenset({"EU", "UNKNOWN"})),
            ds("PUBLIC", residency=residency),
            store_region="UNKNOWN",
            serve_region="UNKNOWN",
            pii=False,
        )
        assert not decision.allowed
        assert "forbid: unknown-residency" in decision.reasons


def test_store_region_rule() -> None:
    both = p(regions=frozenset({"EU", "US"}))
    assert read(both, ds("PUBLIC", residency="US"), store_region="US", serve_region="US")
    # US is not one of the principal's regions
    assert not read(p(), ds("PUBLIC", residency="US"), store_region="US", serve_region="US")
    assert "forbid: store-region" in reasons(
        p(), ds("PUBLIC", residency="US"), store_region="US", serve_region="US"
    )
    # a row in the wrong store is never served
    assert not read(both, ds("PUBLIC", residency="EU"), store_region="US", serve_region="US")
    assert not read(both, ds("PUBLIC"), store_region="EU", residency="US")


def test_pii_chunks_never_leave_their_region() -> None:
    both = p(regions=frozenset({"EU", "US"}))
    assert read(both, ds(), store_region="EU", serve_region="EU", pii=True)
    assert not read(both, ds(), store_region="EU", serve_region="US", pii=True)
    assert read(both, ds(), store_region="EU", serve_region="US", pii=False)
    assert reasons(both, ds(), store_region="EU", serve_region="US", pii=True) == (
        "forbid: pii-stays-in-region",
    )


def test_agent_on_behalf_of_a_user_gets_the_intersection() -> None:
    agent = p(
        name="finance-assistant",
        kind="agent",
        teams=frozenset({"financial-ml", "commerce-analytics"}),
        regions=frozenset({"EU", "US"}),
    )
    user = p(name="anna", delegate_to=frozenset({"finance-assistant"}))
    assert ENGINE.retrieve(
        agent, ds(), store_region="EU", serve_region="EU", pii=True, on_behalf_of=user
    ).allowed
    # The agent alone may read US commerce data; acting for anna (EU, financial-ml) it may not.
    us = ds(owner="commerce-analytics", residency="US")
    alone = ENGINE.retrieve(agent, us, store_region="US", serve_region="US", pii=True)
    acting = ENGINE.retrieve(
        agent, us, store_region="US", serve_region="US", pii=True, on_behalf_of=user
    )
    assert alone.allowed and not acting.allowed
    assert acting.on_behalf_of == "anna" and any(r.startswith("anna: ") for r in acting.reasons)
    # Nor does the user's delegation widen the agent's own rights.
    narrow_agent = p(
        name="finance-assistant", kind="agent", teams=frozenset(), clearance="INTERNAL"
    )
    assert not ENGINE.retrieve(
        narrow_agent, ds(), store_region="EU", serve_region="EU", pii=True, on_behalf_of=user
    ).allowed


def test_delegation_must_be_declared_and_is_capped() -> None:
    agent = p(name="helper", kind="agent")
    undeclared = ENGINE.retrieve(
        agent, ds(), store_region="EU", serve_region="EU", pii=False, on_behalf_of=p(name="anna")
    )
    assert not undeclared.allowed and "forbid: delegation-declared" in undeclared.reasons
    capped_user = p(name="anna", delegate_to=frozenset({"helper"}), delegated_clearance="INTERNAL")
    assert not ENGINE.retrieve(
        agent, ds("PII"), store_region="EU", serve_region="EU", pii=False, on_behalf_of=capped_user
    ).allowed
    assert ENGINE.retrieve(
        agent,
        ds("INTERNAL"),
        store_region="EU",
        serve_region="EU",
        pii=False,
        on_behalf_of=capped_user,
    ).allowed
    # A user cannot act for someone else.
    assert not ENGINE.retrieve(
        p(name="bob"),
        ds("PUBLIC"),
        store_region="EU",
        serve_region="EU",
        pii=False,
        on_behalf_of=p(name="anna", delegate_to=frozenset({"helper"})),
    ).allowed


def test_model_use_rules() -> None:
    public_us = Resource("segment_topic_classifier", "media-ml", "PUBLIC", "US")
    guest = p(name="guest", teams=frozenset(), clearance="PUBLIC", regions=frozenset({"US"}))
    assert ENGINE.use_model(guest, public_us, serve_region="US").allowed
    eu_only = p(regions=frozenset({"EU"}))
    denied = ENGINE.use_model(eu_only, public_us, serve_region="EU")
    assert not denied.allowed and denied.reasons == ("forbid: model-region",)
    assert denied.action == "use_model" and denied.resource == "Model::segment_topic_classifier"
    pii_model = Resource("churn", "financial-ml", "PII", "EU")
    both = p(regions=frozenset({"EU", "US"}))
    assert ENGINE.use_model(both, pii_model, serve_region="EU").allowed
    assert not ENGINE.use_model(both, pii_model, serve_region="US").allowed  # PII stays in EU
    assert not ENGINE.use_model(p(teams=frozenset()), pii_model, serve_region="EU").allowed
    assert not ENGINE.use_model(
        both, Resource("m", "financial-ml", "UNKNOWN", "EU"), serve_region="EU"
    ).allowed


def test_policy_version_changes_with_the_files(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config" / "policies", tmp_path / "policies")
    before = policy_version(tmp_path / "policies")
    assert before == ENGINE.version and before.startswith("sha256:")
    assert (
        ENGINE.retrieve(p(), ds(), store_region="EU", serve_region="EU", pii=False).policy_version
        == before
    )
    policy = tmp_path / "policies" / "access.cedar"
    policy.write_text(policy.read_text() + "\n// reviewed\n")
    assert policy_version(tmp_path / "policies") != before


def test_invalid_policies_are_refused(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config" / "policies", tmp_path / "policies")
    policy = tmp_path / "policies" / "access.cedar"
    # References an attribute the schema does not have: refused at load, never half-applied.
    policy.write_text(
        policy.read_text() + "\npermit (principal, action, resource) when { principal.is_admin };\n"
    )
    with pytest.raises(PolicyError, match="schema"):
        Authorizer(tmp_path / "policies")
    policy.write_text("permit (principal, action, resource) when {")
    with pytest.raises(PolicyError):
        Authorizer(tmp_path / "policies")
    policy.unlink()
    with pytest.raises(PolicyError, match=r"no \*\.cedar"):
        Authorizer(tmp_path / "policies")


def test_shipped_principals_load() -> None:
    principals = load_principals(REPO / "config" / "principals.yaml")
    assert principals["support-copilot"].kind == "agent"
    assert principals["anna.schmidt"].regions == frozenset({"EU"})
    assert principals["anna.schmidt"].delegate_to == frozenset({"finance-assistant"})


@pytest.mark.parametrize(
    "text",
    [
        "principals: [{name: a, clearance: SECRET, regions: [EU], home_region: EU}]",
        "principals: [{name: a, clearance: PII, regions: [eu], home_region: EU}]",
        "principals: [{name: a, clearance: PII, regions: [EU], home_region: EU, admin: true}]",
        "principals: [{name: a, clearance: PII, regions: [EU], home_region: EU},"
        " {name: a, clearance: PII, regions: [EU], home_region: EU}]",
        "principals: [{name: '../etc', clearance: PII, regions: [EU], home_region: EU}]",
        "principals: [{name: a, clearance: PII, regions: [EU], home_region: EU,"
        " delegate_to: [ghost]}]",
        "principals: [{name: a, clearance: INTERNAL, regions: [EU], home_region: EU,"
        " delegated_clearance: PII}]",
        "principals: [{name: a, kind: agent, clearance: PII, regions: [EU], home_region: EU,"
        " delegate_to: [a]}]",
        "people: []",
    ],
)
def test_bad_principal_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "principals.yaml"
    path.write_text(text)
    with pytest.raises(InputFileError, match=r"principals\.yaml"):
        load_principals(path)
