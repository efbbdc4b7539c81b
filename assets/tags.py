"""Asset tags and owners as people filter on them in the Dagster UI.

Tag values must match Dagster's tag grammar, so a composite residency ``EU+US`` is shown as
``EU_and_US``. Tags are what is known when the definitions load (residency from the storage
endpoint, the classification the data owner declared, or ``UNKNOWN``); the effective values after
PII detection are in each ``catalog/<dataset>`` materialization and in the catalog table.
"""

from __future__ import annotations

from data_plane.classification import UNKNOWN


def tag_value(value: str) -> str:
    return value.replace("+", "_and_")


def governance_tags(residency: str, classification: str | None) -> dict[str, str]:
    return {
        "residency": tag_value(residency),
        "classification": tag_value(classification or UNKNOWN),
    }


def owner(team: str) -> str:
    return f"team:{team}"


# One asset group per layer of the stack, as the Dagster UI shows them.
LAYER_GROUPS: dict[str, str] = {
    "ingestion": "1C ingestion: sources read, validated, quarantined; derived datasets",
    "governance": "1A governance catalog: PII, classification, residency, retention",
    "retrieval": "1B retrieval: chunks and embeddings in regional pgvector stores",
    "models": "models: topic classifier and its batch inference",
    "reasoning_plane": "2C reasoning plane: GPU spend, budgets and quotas per team",
    "serving": "2B serving: which model is loaded, sleeping or cold on which node, and why",
}
