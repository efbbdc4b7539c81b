"""Governance catalog records (Layer 1A) in the JSON shape operators already use.

A record serialises exactly to::

    {"dataset_id", "classification", "data_residency", "retention_policy",
     "storage_endpoints": [...],
     "compliance_tags": {"gdpr_compliant": bool, "data_classification": "Level_N"},
     "lineage": {"source_system", "last_updated"}}

`tag_dataset` builds the record of an ingested source from its PII findings and the governance
policy; `derive_record` builds the record of an asset computed from other governed assets: it
inherits the most restrictive classification and residency of its inputs (fail closed).
Facts that do not belong in that shape (PII columns, regulations, lineage inputs) live in
`CatalogEntry` beside the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from data_plane.classification import (
    UNKNOWN,
    classification_rank,
    combine_residency,
    level_label,
    most_restrictive_classification,
    normalise_classification,
    residency_parts,
)
from data_plane.policy import GovernancePolicy

RECORD_KEYS = (
    "dataset_id",
    "classification",
    "data_residency",
    "retention_policy",
    "storage_endpoints",
    "compliance_tags",
    "lineage",
)


class CatalogRecordError(ValueError):
    """A catalog record that does not have the operator JSON shape."""


@dataclass(frozen=True)
class CatalogRecord:
    dataset_id: str
    classification: str
    data_residency: str
    retention_policy: str
    storage_endpoints: tuple[str, ...]
    gdpr_compliant: bool
    data_classification: str
    source_system: str
    last_updated: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "classification": self.classification,
            "data_residency": self.data_residency,
            "retention_policy": self.retention_policy,
            "storage_endpoints": list(self.storage_endpoints),
            "compliance_tags": {
                "gdpr_compliant": self.gdpr_compliant,
                "data_classification": self.data_classification,
            },
            "lineage": {"source_system": self.source_system, "last_updated": self.last_updated},
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @property
    def residency_known(self) -> bool:
        return UNKNOWN not in residency_parts(self.data_residency)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "record") -> CatalogRecord:
        """Strict parse of the operator JSON shape; unknown residency/classification fail closed."""
        if not isinstance(raw, Mapping):
            raise CatalogRecordError(f"{where}: must be a JSON object")
        unknown = sorted(set(raw) - set(RECORD_KEYS))
        if unknown:
            raise CatalogRecordError(f"{where}.{unknown[0]}: unknown key")
        for key in ("dataset_id", "compliance_tags", "lineage"):
            if key not in raw:
                raise CatalogRecordError(f"{where}.{key}: required")
        if not isinstance(raw["dataset_id"], str) or not raw["dataset_id"]:
            raise CatalogRecordError(f"{where}.dataset_id: must be non-empty text")
        tags = raw["compliance_tags"]
        lineage = raw["lineage"]
        if not isinstance(tags, Mapping) or not isinstance(lineage, Mapping):
            raise CatalogRecordError(f"{where}: compliance_tags and lineage must be objects")
        endpoints = raw.get("storage_endpoints", [])
        if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
            raise CatalogRecordError(f"{where}.storage_endpoints: must be a list of text")
        gdpr = tags.get("gdpr_compliant", False)
        if not isinstance(gdpr, bool):
            raise CatalogRecordError(f"{where}.compliance_tags.gdpr_compliant: must be a boolean")
        residency = raw.get("data_residency")
        return cls(
            dataset_id=raw["dataset_id"],
            classification=normalise_classification(raw.get("classification")),
            data_residency=combine_residency([residency if isinstance(residency, str) else None]),
            retention_policy=str(raw.get("retention_policy") or UNKNOWN),
            storage_endpoints=tuple(endpoints),
            gdpr_compliant=gdpr,
            data_classification=str(tags.get("data_classification") or level_label(UNKNOWN)),
            source_system=str(lineage.get("source_system") or UNKNOWN),
            last_updated=str(lineage.get("last_updated") or ""),
        )


@dataclass(frozen=True)
class CatalogEntry:
    """A catalog record plus the facts behind it that the JSON shape has no room for."""

    record: CatalogRecord
    owner_team: str
    pii_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)
    regulations: tuple[str, ...] = ()
    derived_from: tuple[str, ...] = ()
    declared_classification: str | None = None
    row_count: int | None = None
    quarantined_rows: int | None = None
    content_hash: str | None = None
    licence: str | None = None  # a served model's licence (config/serving.yaml); None for data

    @property
    def dataset_id(self) -> str:
        return self.record.dataset_id


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _gdpr_compliant(
    classification: str, residency: str, retention: str, policy: GovernancePolicy
) -> bool:
    """True when the data is personal data held under GDPR controls.

    That is: classified PII, residency known and entirely in zones whose regulation is GDPR, and a
    retention policy set. Data outside GDPR's scope, or with anything unknown, is False.
    """
    if classification != "PII" or retention in ("", UNKNOWN):
        return False
    zones = residency_parts(residency)
    if UNKNOWN in zones:
        return False
    return all(policy.regulations.get(z) == "GDPR" for z in zones)


def _build_record(
    dataset_id: str,
    classification: str,
    residency: str,
    retention: str,
    endpoints: Iterable[str],
    source_system: str,
    last_updated: datetime,
    policy: GovernancePolicy,
) -> CatalogRecord:
    return CatalogRecord(
        dataset_id=dataset_id,
        classification=classification,
        data_residency=residency,
        retention_policy=retention,
        storage_endpoints=tuple(endpoints),
        gdpr_compliant=_gdpr_compliant(classification, residency, retention, policy),
        data_classification=level_label(classification),
        source_system=source_system,
        last_updated=_iso(last_updated),
    )


def _detected(pii_columns: Mapping[str, Sequence[str]] | None) -> str | None:
    """What the PII scan says: UNKNOWN if a column could not be classified, PII if any column
    holds PII, nothing otherwise."""
    if not pii_columns:
        return None
    if any(UNKNOWN in types for types in pii_columns.values()):
        return UNKNOWN
    return "PII"


def classify(declared: str | None, pii_columns: Mapping[str, Sequence[str]]) -> str:
    """Effective classification: PII when any column holds PII, never below what was declared.

    With no declaration and no PII found the classification is UNKNOWN: a scan that finds nothing
    does not make data public, so the data owner has to declare it. A column the PII scan could
    not classify (its types include ``UNKNOWN``, see `data_plane.pii.UNCLASSIFIED`) makes the
    classification UNKNOWN, whatever was declared: fail closed.
    """
    detected = _detected(pii_columns)
    if declared is None:
        return detected or UNKNOWN
    return max((declared, detected or declared), key=classification_rank)


def tag_dataset(
    *,
    dataset_id: str,
    storage_endpoints: Sequence[str],
    source_system: str,
    owner_team: str,
    declared_classification: str | None,
    declared_retention: str | None,
    pii_columns: Mapping[str, Sequence[str]],
    last_updated: datetime,
    policy: GovernancePolicy,
    row_count: int | None = None,
    quarantined_rows: int | None = None,
    content_hash: str | None = None,
) -> CatalogEntry:
    """Catalog entry of an ingested source."""
    classification = classify(declared_classification, pii_columns)
    residency = policy.residency_of_endpoints(list(storage_endpoints))
    retention = declared_retention or policy.default_retention(classification)
    regulations = tuple(policy.regulation_for(residency)) if classification == "PII" else ()
    return CatalogEntry(
        record=_build_record(
            dataset_id,
            classification,
            residency,
            retention,
            storage_endpoints,
            source_system,
            last_updated,
            policy,
        ),
        owner_team=owner_team,
        pii_columns={k: list(v) for k, v in pii_columns.items()},
        regulations=regulations,
        declared_classification=declared_classification,
        row_count=row_count,
        quarantined_rows=quarantined_rows,
        content_hash=content_hash,
    )


def _retention_years(retention: str) -> float:
    head = retention.split("_", 1)[0]
    try:
        value = float(head)
    except ValueError:
        return float("inf")  # legal_hold, UNKNOWN, anything unparsed: keep longest
    return value / 12 if "month" in retention else value


def derive_record(
    *,
    dataset_id: str,
    inputs: Sequence[CatalogEntry],
    owner_team: str,
    storage_endpoints: Sequence[str],
    last_updated: datetime,
    policy: GovernancePolicy,
    pii_columns: Mapping[str, Sequence[str]] | None = None,
    row_count: int | None = None,
) -> CatalogEntry:
    """Catalog entry of an asset derived from governed inputs (propagation rule).

    Classification is the most restrictive of the inputs' (and PII if the output itself holds
    PII); residency combines the inputs' residencies (different zones give a composite such as
    ``EU+US``; any unknown gives UNKNOWN); retention is the longest of the inputs'. Deriving from
    no input at all is refused: the result would have no governance to inherit.
    """
    if not inputs:
        raise ValueError(f"{dataset_id}: a derived dataset needs at least one governed input")
    classification = most_restrictive_classification(
        [e.record.classification for e in inputs] + [d for d in [_detected(pii_columns)] if d]
    )
    residency = combine_residency(e.record.data_residency for e in inputs)
    retention = max((e.record.retention_policy for e in inputs), key=_retention_years)
    regulations = tuple(sorted({r for e in inputs for r in e.regulations}))
    return CatalogEntry(
        record=_build_record(
            dataset_id,
            classification,
            residency,
            retention,
            storage_endpoints,
            "derived:" + "+".join(sorted(e.dataset_id for e in inputs)),
            last_updated,
            policy,
        ),
        owner_team=owner_team,
        pii_columns={k: list(v) for k, v in (pii_columns or {}).items()},
        regulations=regulations,
        derived_from=tuple(sorted(e.dataset_id for e in inputs)),
        row_count=row_count,
    )


def declared_record(spec: Any, policy: GovernancePolicy) -> CatalogRecord:
    """The record a source's declaration in the source catalog implies before it is ingested and
    tagged (``spec``: a `data_plane.sources.SourceSpec`): residency from its storage endpoint,
    classification as declared, PII where ``pii_columns`` are declared. Operator configuration,
    never a requester's word; the tagged catalog entry replaces it once it exists."""
    return tag_dataset(
        dataset_id=spec.name,
        storage_endpoints=[spec.storage_endpoint],
        source_system=spec.source_system,
        owner_team=spec.owner_team,
        declared_classification=spec.classification,
        declared_retention=spec.retention_policy,
        pii_columns={c: ["declared"] for c in spec.pii_columns},
        last_updated=datetime.fromtimestamp(0, UTC),
        policy=policy,
    ).record


def declared_model_entry(
    *,
    model: str,
    owner_team: str,
    classification: str,
    residency: str,
    licence: str,
    source_system: str,
    policy: GovernancePolicy,
) -> CatalogEntry:
    """Catalog entry of a served model as its operator declared it (``config/serving.yaml``):
    ``classification`` and ``residency`` are those of the data it may serve; anything not
    declared arrives here as UNKNOWN and stays the most restrictive value. Its timestamp is
    fixed (epoch), so declaring the same facts again changes nothing."""
    classification = normalise_classification(classification)
    residency = combine_residency([residency])
    retention = policy.default_retention(classification)
    regulations = tuple(policy.regulation_for(residency)) if classification == "PII" else ()
    return CatalogEntry(
        record=_build_record(
            model,
            classification,
            residency,
            retention,
            (),
            source_system,
            datetime.fromtimestamp(0, UTC),
            policy,
        ),
        owner_team=owner_team,
        regulations=regulations,
        declared_classification=None if classification == UNKNOWN else classification,
        licence=licence,
    )
