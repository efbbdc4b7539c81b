"""The governance policy file (``config/governance.yaml``) and residency inference.

The policy maps storage regions to residency zones, zones to privacy regulations, classifications
to default retention, and sets the quarantine and PII thresholds. Loading is strict: unknown keys,
wrong types and out-of-range values are refused with the file and field named (the pydantic model
`GovernanceFile`, `data_plane.config`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from data_plane.classification import CLASSIFICATIONS, UNKNOWN, combine_residency
from data_plane.config import ConfigModel, Prose, Share, Zone, checked, fail, validate
from data_plane.files import read_document, show

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


# --------------------------------------------------------------------------------------------
# The file's model
# --------------------------------------------------------------------------------------------


def _region(value: Any) -> str:
    if not isinstance(value, str) or not _REGION_RE.match(value.lower()):
        fail(f"region must look like 'eu-central-1', got {show(value)}")
    return value.lower()


def _classification(value: Any) -> str:
    if value not in CLASSIFICATIONS:
        fail(f"unknown classification; allowed: {list(CLASSIFICATIONS)}")
    return value


Region = checked(str, _region, {"type": "string", "pattern": _REGION_RE.pattern})
Classification = checked(str, _classification, {"type": "string", "enum": list(CLASSIFICATIONS)})


class GovernanceFile(ConfigModel):
    """The governance policy file (``config/governance.yaml``)."""

    region_zones: dict[Region, Zone]
    regulations: dict[Zone, Prose] = {}
    retention_defaults: dict[Classification, Prose] = {}
    quarantine_max_share: Share = 0.05
    pii_min_share: Share = 0.01

    def build(self) -> GovernancePolicy:
        return GovernancePolicy(
            region_zones=dict(self.region_zones),
            regulations=dict(self.regulations),
            retention_defaults=dict(self.retention_defaults),
            quarantine_max_share=self.quarantine_max_share,
            pii_min_share=self.pii_min_share,
        )


def load_policy(path: Path | str) -> GovernancePolicy:
    """Load and validate the governance policy file."""
    path = Path(path)
    return validate(GovernanceFile, read_document(path), path).build()
