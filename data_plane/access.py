"""Principals (users and agents) of governed retrieval and model use, from config/principals.yaml.

The rules deciding what a principal may read or use are not here: they are Cedar policies in
``config/policies/`` evaluated by `data_plane.authz.Authorizer`. In short:

* the dataset's classification is known and not above the principal's clearance;
* ``PUBLIC`` and ``INTERNAL`` data: any principal with that clearance; ``CONFIDENTIAL`` and
  ``PII``: only members of the owning team or holders of an explicit grant on the dataset;
* the chunk's store region is one the principal may read from;
* a chunk holding PII is returned only when the request is served in the chunk's own region;
* an agent acting on behalf of a user gets only what both may do, and only when the user
  delegated to it (``delegate_to``), up to the clearance the user delegated.

``UNKNOWN`` classification or residency is readable by nobody (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_plane.classification import CLASSIFICATIONS, UNKNOWN, classification_rank
from data_plane.errors import InputFileError
from data_plane.files import read_document

_KEYS = {
    "name",
    "kind",
    "teams",
    "clearance",
    "regions",
    "home_region",
    "grants",
    "delegate_to",
    "delegated_clearance",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_ZONE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


@dataclass(frozen=True)
class Principal:
    name: str
    teams: frozenset[str]
    clearance: str
    regions: frozenset[str]
    home_region: str
    kind: str = "user"
    grants: frozenset[str] = frozenset()
    delegate_to: frozenset[str] = frozenset()  # agents that may act for this user
    delegated_clearance: str | None = None  # what they may read for it (default: clearance)


def _names(value: Any, path: Path, field: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputFileError(path, field, "must be a list of names")
    return frozenset(value)


def load_principals(path: Path | str) -> dict[str, Principal]:
    path = Path(path)
    raw = read_document(path)
    if (
        not isinstance(raw, Mapping)
        or set(raw) != {"principals"}
        or not isinstance(raw["principals"], list)
    ):
        raise InputFileError(path, "(top level)", "must be a mapping with a 'principals' list")
    principals: dict[str, Principal] = {}
    for i, item in enumerate(raw["principals"]):
        where = f"principals[{i}]"
        if not isinstance(item, Mapping):
            raise InputFileError(path, where, "must be a mapping")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise InputFileError(
                path, f"{where}.{unknown[0]}", f"unknown key; allowed: {sorted(_KEYS)}"
            )
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputFileError(path, f"{where}.name", "must be a name of letters, digits, ._@-")
        if name in principals:
            raise InputFileError(path, f"{where}.name", f"duplicate principal {name!r}")
        clearance = str(item.get("clearance", "")).upper()
        if clearance not in CLASSIFICATIONS or clearance == UNKNOWN:
            raise InputFileError(
                path, f"{where}.clearance", f"must be one of {list(CLASSIFICATIONS[:-1])}"
            )
        regions = _names(item.get("regions"), path, f"{where}.regions")
        home = item.get("home_region")
        for zone in [*regions, home]:
            if not isinstance(zone, str) or not _ZONE.match(zone) or zone == UNKNOWN:
                raise InputFileError(path, f"{where}.regions", f"invalid region {zone!r}")
        kind = item.get("kind", "user")
        if kind not in ("user", "agent"):
            raise InputFileError(path, f"{where}.kind", "must be 'user' or 'agent'")
        delegate_to = _names(item.get("delegate_to"), path, f"{where}.delegate_to")
        delegated = item.get("delegated_clearance")
        if delegate_to and kind != "user":
            raise InputFileError(path, f"{where}.delegate_to", "only users delegate to agents")
        if delegated is not None:
            delegated = str(delegated).upper()
            if delegated not in CLASSIFICATIONS or delegated == UNKNOWN:
                raise InputFileError(
                    path,
                    f"{where}.delegated_clearance",
                    f"must be one of {list(CLASSIFICATIONS[:-1])}",
                )
            if classification_rank(delegated) > classification_rank(clearance):
                raise InputFileError(
                    path, f"{where}.delegated_clearance", "cannot exceed the user's own clearance"
                )
        principals[name] = Principal(
            name=name,
            teams=_names(item.get("teams"), path, f"{where}.teams"),
            clearance=clearance,
            regions=regions,
            home_region=home,
            kind=kind,
            grants=_names(item.get("grants"), path, f"{where}.grants"),
            delegate_to=delegate_to,
            delegated_clearance=delegated,
        )
    for name, principal in principals.items():
        for agent in sorted(principal.delegate_to):
            if agent not in principals or principals[agent].kind != "agent":
                raise InputFileError(
                    path, f"principals.{name}.delegate_to", f"{agent!r} is not a declared agent"
                )
    return principals
