from pathlib import Path

import pytest

from data_plane.access import Principal, load_principals, may_read_chunk, may_read_dataset
from data_plane.errors import InputFileError

REPO = Path(__file__).resolve().parents[2]


def p(**kw) -> Principal:
    base = dict(
        name="x",
        teams=frozenset({"financial-ml"}),
        clearance="PII",
        regions=frozenset({"EU"}),
        home_region="EU",
    )
    return Principal(**{**base, **kw})


def test_team_scoped_classifications() -> None:
    assert may_read_dataset(p(), "PII", "financial-ml", "orders")
    assert not may_read_dataset(p(), "PII", "commerce-analytics", "orders")
    assert may_read_dataset(p(grants=frozenset({"orders"})), "PII", "other", "orders")
    assert not may_read_dataset(p(), "CONFIDENTIAL", "other", "d")
    assert may_read_dataset(p(teams=frozenset()), "INTERNAL", "other", "d")


def test_clearance_and_unknown() -> None:
    assert not may_read_dataset(p(clearance="INTERNAL"), "PII", "financial-ml", "orders")
    assert may_read_dataset(p(clearance="PUBLIC"), "PUBLIC", "any", "talks")
    assert not may_read_dataset(p(), "UNKNOWN", "financial-ml", "mystery")  # fail closed


def test_pii_chunks_never_leave_their_region() -> None:
    both = p(regions=frozenset({"EU", "US"}))
    assert may_read_chunk(
        both, store_region="EU", chunk_residency="EU", pii=True, serve_region="EU"
    )
    assert not may_read_chunk(
        both, store_region="EU", chunk_residency="EU", pii=True, serve_region="US"
    )
    assert may_read_chunk(
        both, store_region="EU", chunk_residency="EU", pii=False, serve_region="US"
    )
    assert not may_read_chunk(
        p(), store_region="US", chunk_residency="US", pii=False, serve_region="US"
    )  # US is not one of the principal's regions
    assert not may_read_chunk(
        both, store_region="US", chunk_residency="EU", pii=False, serve_region="US"
    )  # a row in the wrong store is never served


def test_shipped_principals_load() -> None:
    principals = load_principals(REPO / "config" / "principals.yaml")
    assert principals["support-copilot"].kind == "agent"
    assert principals["anna.schmidt"].regions == frozenset({"EU"})


@pytest.mark.parametrize(
    "text",
    [
        "principals: [{name: a, clearance: SECRET, regions: [EU], home_region: EU}]",
        "principals: [{name: a, clearance: PII, regions: [eu], home_region: EU}]",
        "principals: [{name: a, clearance: PII, regions: [EU], home_region: EU, admin: true}]",
        "principals: [{name: a, clearance: PII, regions: [EU], home_region: EU},"
        " {name: a, clearance: PII, regions: [EU], home_region: EU}]",
        "principals: [{name: '../etc', clearance: PII, regions: [EU], home_region: EU}]",
        "people: []",
    ],
)
def test_bad_principal_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "principals.yaml"
    path.write_text(text)
    with pytest.raises(InputFileError, match=r"principals\.yaml"):
        load_principals(path)
