"""Classification levels and data-residency zones, and how they combine (fail closed).

Classification is ordered ``PUBLIC < INTERNAL < CONFIDENTIAL < PII < UNKNOWN``: a value nobody has
established is treated as more restrictive than anything known. Residency is a zone name (``EU``,
``US``...); data combined from several zones carries all of them (``EU+US``) and may only be
processed where *every* part may be, and ``UNKNOWN`` absorbs everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

UNKNOWN = "UNKNOWN"

# A residency zone's name (EU, US, APAC, UK ...), as every configuration file writes it.
ZONE_PATTERN = r"[A-Z][A-Z0-9_]{0,31}"
ZONE_RE = re.compile(ZONE_PATTERN)

CLASSIFICATIONS: tuple[str, ...] = ("PUBLIC", "INTERNAL", "CONFIDENTIAL", "PII", UNKNOWN)
_RANK = {name: rank for rank, name in enumerate(CLASSIFICATIONS)}

# The operator-facing "Level_N" label of each classification (seed: PII is Level_3). UNKNOWN is
# labelled like the highest known level: it must be handled at least as strictly.
_LEVEL = {"PUBLIC": 0, "INTERNAL": 1, "CONFIDENTIAL": 2, "PII": 3, UNKNOWN: 3}


def normalise_classification(value: str | None) -> str:
    """Upper-cased classification; ``None``/empty/unrecognised become ``UNKNOWN`` (fail closed)."""
    if value is None:
        return UNKNOWN
    name = str(value).strip().upper()
    return name if name in _RANK else UNKNOWN


def classification_rank(value: str | None) -> int:
    return _RANK[normalise_classification(value)]


def most_restrictive_classification(values: Iterable[str | None]) -> str:
    """The most restrictive of the given classifications; ``UNKNOWN`` for none at all."""
    names = [normalise_classification(v) for v in values]
    if not names:
        return UNKNOWN
    return max(names, key=_RANK.__getitem__)


def level_label(classification: str | None) -> str:
    """``Level_N`` as used in ``compliance_tags.data_classification``."""
    return f"Level_{_LEVEL[normalise_classification(classification)]}"


def residency_parts(residency: str | None) -> frozenset[str]:
    """The zones a residency value is made of: ``"EU+US"`` -> {EU, US}; missing -> {UNKNOWN}."""
    if residency is None or not str(residency).strip():
        return frozenset({UNKNOWN})
    parts = frozenset(p.strip().upper() for p in str(residency).split("+") if p.strip())
    return parts or frozenset({UNKNOWN})


def combine_residency(values: Iterable[str | None]) -> str:
    """Residency of data derived from inputs with these residencies.

    Equal zones stay as they are; different zones give a composite (``EU+US``) that only a
    location allowed by every part may process; any ``UNKNOWN`` input makes the result UNKNOWN.
    """
    parts: set[str] = set()
    seen = False
    for value in values:
        seen = True
        parts |= residency_parts(value)
    if not seen or UNKNOWN in parts:
        return UNKNOWN
    return "+".join(sorted(parts))
