from data_plane.classification import (
    UNKNOWN,
    combine_residency,
    level_label,
    most_restrictive_classification,
    normalise_classification,
    residency_parts,
)


def test_unknown_classification_is_most_restrictive() -> None:
    assert most_restrictive_classification(["PUBLIC", "PII"]) == "PII"
    assert most_restrictive_classification(["PII", None]) == UNKNOWN
    assert most_restrictive_classification(["PUBLIC", "made-up"]) == UNKNOWN
    assert most_restrictive_classification([]) == UNKNOWN


def test_classification_order() -> None:
    assert most_restrictive_classification(["PUBLIC", "INTERNAL"]) == "INTERNAL"
    assert most_restrictive_classification(["CONFIDENTIAL", "INTERNAL", "PUBLIC"]) == "CONFIDENTIAL"
    assert normalise_classification(" pii ") == "PII"


def test_level_labels_follow_the_seed() -> None:
    assert level_label("PII") == "Level_3"
    assert level_label("PUBLIC") == "Level_0"
    assert level_label(None) == "Level_3"  # unknown is handled at least as strictly as PII


def test_combine_residency() -> None:
    assert combine_residency(["EU", "EU"]) == "EU"
    assert combine_residency(["US", "EU"]) == "EU+US"
    assert combine_residency(["EU+US", "APAC"]) == "APAC+EU+US"
    assert combine_residency(["EU", UNKNOWN]) == UNKNOWN
    assert combine_residency(["EU", None]) == UNKNOWN
    assert combine_residency([]) == UNKNOWN
    assert residency_parts("EU+US") == frozenset({"EU", "US"})
    assert residency_parts("") == frozenset({UNKNOWN})
