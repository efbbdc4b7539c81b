"""The governance policy file (``config/governance.yaml``) and residency inference.

The policy maps storage regions to residency zones, zones to privacy regulations, classifications
to default retention, and sets the quarantine and PII thresholds. Loading is strict: unknown keys,
wrong types and out-of-range values are refused with the file and field named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from data_plane.classification import CLASSIFICATIONS, UNKNOWN, combine_residency
from data_plane.errors import InputFileError
from data_plane.files import read_document

_POLICY_KEYS = {
    "region_zones",
    "regulations",
    "retention_defaults",
    "quarantine_max_share",
    "pii_min_share",
}
_ZONE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_REGION_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")
# Cloud-style region names inside host names, e.g. bucket.s3.eu-central-1.amazonaws.com
_REGION_IN_HOST = re.compile(r"(?<![a-z0-9])([a-z]{2,}(?:-[a-z]+)+-?\d)(?![a-z0-9])")


@dataclass(frozen=True)
class GovernancePolicy:
    region_zones: Mapping[str, str]
    regulations: Mapping[str, str] = field(default_factory=dict)
    retention_defaults: Mapping[str, str] = field(default_factory=dict)
    quarantine_max_share: float = 0.05
    pii_min_share: float = 0.01

    def zone_of_region(self, region: str | None) -> str:
        """Residency zone of a storage region; ``UNKNOWN`` when the region is not mapped."""
        if not region:
            return UNKNOWN
        return self.region_zones.get(region.lower(), UNKNOWN)

    def residency_of_endpoints(self, endpoints: list[str]) -> str:
        """Residency of data stored at these endpoints (``UNKNOWN`` if any region is unknown)."""
        if not endpoints:
            return UNKNOWN
        return combine_residency(self.zone_of_region(region_of_endpoint(e)) for e in endpoints)

    def regulation_for(self, residency: str) -> list[str]:
        """Privacy regulations applying to personal data with this residency (sorted)."""
        zones = residency.split("+")
        return sorted({self.regulations[z] for z in zones if z in self.regulations})

    def default_retention(self, classification: str) -> str:
        return self.retention_defaults.get(
            classification, self.retention_defaults.get(UNKNOWN, UNKNOWN)
        )


def region_of_endpoint(endpoint: str) -> str | None:
    """The storage region an endpoint names (a candidate: the region map decides), or ``None``.

    Understands ``s3://eu-central-1/customer-data`` (region as the authority, the shape operators
    use in the catalog), ``gs://europe-west4/...``, and host names that embed a cloud region such
    as ``https://bucket.s3.eu-west-1.amazonaws.com/key``. ``file://`` and bare paths have none.
    """
    parts = urlsplit(endpoint.strip())
    host = (parts.hostname or "").lower()
    if not parts.scheme or parts.scheme == "file" or not host:
        return None
    if _REGION_RE.match(host) and "." not in host:
        return host
    match = _REGION_IN_HOST.search(host)
    return match.group(1) if match else None


def _require_mapping(value: Any, path: Path, field_name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputFileError(path, field_name, f"must be a mapping, got {type(value).__name__}")
    return value


def _share(value: Any, path: Path, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputFileError(path, field_name, f"must be a number between 0 and 1, got {value!r}")
    return float(value)


def load_policy(path: Path | str) -> GovernancePolicy:
    """Load and validate the governance policy file."""
    path = Path(path)
    raw = read_document(path)
    doc = _require_mapping(raw, path, "(top level)")
    unknown = sorted(set(doc) - _POLICY_KEYS)
    if unknown:
        raise InputFileError(path, unknown[0], f"unknown key; allowed: {sorted(_POLICY_KEYS)}")
    if "region_zones" not in doc:
        raise InputFileError(path, "region_zones", "required")

    region_zones: dict[str, str] = {}
    for region, zone in _require_mapping(doc["region_zones"], path, "region_zones").items():
        where = f"region_zones.{region}"
        if not isinstance(region, str) or not _REGION_RE.match(region.lower()):
            raise InputFileError(path, where, "region must look like 'eu-central-1'")
        if not isinstance(zone, str) or not _ZONE_RE.match(zone) or zone == UNKNOWN:
            raise InputFileError(path, where, f"zone must be an upper-case name, got {zone!r}")
        region_zones[region.lower()] = zone

    regulations: dict[str, str] = {}
    for zone, regulation in _require_mapping(
        doc.get("regulations", {}), path, "regulations"
    ).items():
        if not isinstance(regulation, str) or not regulation.strip():
            raise InputFileError(path, f"regulations.{zone}", "must be a regulation name")
        regulations[str(zone)] = regulation.strip()

    retention: dict[str, str] = {}
    for classification, value in _require_mapping(
        doc.get("retention_defaults", {}), path, "retention_defaults"
    ).items():
        if classification not in CLASSIFICATIONS:
            raise InputFileError(
                path,
                f"retention_defaults.{classification}",
                f"unknown classification; allowed: {list(CLASSIFICATIONS)}",
            )
        if not isinstance(value, str) or not value.strip():
            raise InputFileError(path, f"retention_defaults.{classification}", "must be text")
        retention[classification] = value.strip()

    return GovernancePolicy(
        region_zones=region_zones,
        regulations=regulations,
        retention_defaults=retention,
        quarantine_max_share=_share(
            doc.get("quarantine_max_share", 0.05), path, "quarantine_max_share"
        ),
        pii_min_share=_share(doc.get("pii_min_share", 0.01), path, "pii_min_share"),
    )
