from pathlib import Path

import pytest

from data_plane.errors import InputFileError
from data_plane.policy import load_policy, region_of_endpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("s3://eu-central-1/customer-data", "eu-central-1"),
        ("gs://us-central1/media-transcripts", "us-central1"),
        ("https://bucket.s3.eu-west-1.amazonaws.com/key", "eu-west-1"),
        ("s3://my-bucket.s3.us-east-2.amazonaws.com/x", "us-east-2"),
        ("file:///data/orders.csv", None),
        ("/data/orders.csv", None),
        ("s3://customer-data", "customer-data"),  # a candidate; the region map decides
        ("", None),
    ],
)
def test_region_of_endpoint(endpoint: str, region: str | None) -> None:
    assert region_of_endpoint(endpoint) == region


def test_residency_from_the_shipped_policy() -> None:
    policy = load_policy(REPO / "config" / "governance.yaml")
    assert policy.residency_of_endpoints(["s3://eu-central-1/customer-data"]) == "EU"
    assert policy.residency_of_endpoints(["s3://us-east-1/x"]) == "US"
    # An unmapped region, no region at all, or no endpoint: unknown, never "anywhere".
    assert policy.residency_of_endpoints(["s3://mars-north-1/x"]) == "UNKNOWN"
    assert policy.residency_of_endpoints(["s3://bucket-without-region/x"]) == "UNKNOWN"
    assert policy.residency_of_endpoints([]) == "UNKNOWN"
    assert policy.residency_of_endpoints(["s3://eu-west-1/a", "s3://us-east-1/b"]) == "EU+US"
    assert policy.regulation_for("EU") == ["GDPR"]
    assert policy.default_retention("PII") == "7_years"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "governance.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("region_zones: {eu-central-1: EU}\nsurprise: 1\n", "surprise"),
        ("regulations: {}\n", "region_zones"),
        ("region_zones: {eu-central-1: eu}\n", "region_zones.eu-central-1"),
        ("region_zones: {eu-central-1: UNKNOWN}\n", "region_zones.eu-central-1"),
        ("region_zones: {eu-central-1: EU}\nquarantine_max_share: 1.5\n", "quarantine_max_share"),
        (
            "region_zones: {eu-central-1: EU}\nretention_defaults: {SECRET: 1_year}\n",
            "retention_defaults.SECRET",
        ),
        ("region_zones: [eu-central-1]\n", "region_zones"),
        ("region_zones: {eu-central-1: EU\n", "line 2, column 1"),
    ],
)
def test_bad_policy_files_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputFileError) as err:
        load_policy(path)
    assert err.value.field == field
    assert str(path) in str(err.value)
