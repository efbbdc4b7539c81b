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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import model_validator

from data_plane.classification import CLASSIFICATIONS, classification_rank
from data_plane.config import ConfigModel, Prose, Zone, checked, fail, name, one_of, validate
from data_plane.files import read_document, show


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


# --------------------------------------------------------------------------------------------
# The file's model
# --------------------------------------------------------------------------------------------


def _clearance(value: Any) -> str:
    known = CLASSIFICATIONS[:-1]
    if not isinstance(value, str) or value.upper() not in known:
        fail(f"must be one of {list(known)}, got {show(value)}")
    return value.upper()


Clearance = checked(str, _clearance, {"type": "string", "enum": list(CLASSIFICATIONS[:-1])})
PrincipalName = name(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}", "a name of letters, digits, ._@-")
Names = list[Prose] | None


class PrincipalModel(ConfigModel):
    name: PrincipalName
    kind: one_of(("user", "agent")) = "user"  # type: ignore[valid-type]
    teams: Names = None
    clearance: Clearance
    regions: list[Zone] | None = None
    home_region: Zone
    grants: Names = None
    delegate_to: Names = None
    delegated_clearance: Clearance | None = None

    @model_validator(mode="after")
    def _delegation(self) -> PrincipalModel:
        if self.delegate_to and self.kind != "user":
            fail("only users delegate to agents", ("delegate_to",))
        delegated = self.delegated_clearance
        if delegated and classification_rank(delegated) > classification_rank(self.clearance):
            fail("cannot exceed the user's own clearance", ("delegated_clearance",))
        return self

    def build(self) -> Principal:
        return Principal(
            name=self.name,
            teams=frozenset(self.teams or ()),
            clearance=self.clearance,
            regions=frozenset(self.regions or ()),
            home_region=self.home_region,
            kind=self.kind,
            grants=frozenset(self.grants or ()),
            delegate_to=frozenset(self.delegate_to or ()),
            delegated_clearance=self.delegated_clearance,
        )


class PrincipalsFile(ConfigModel):
    """The principals file (``config/principals.yaml``)."""

    single_key: ClassVar[str | None] = "principals"
    principals: list[PrincipalModel]

    @model_validator(mode="after")
    def _names(self) -> PrincipalsFile:
        kinds: dict[str, str] = {}
        for i, principal in enumerate(self.principals):
            if principal.name in kinds:
                fail(f"duplicate principal {principal.name!r}", ("principals", i, "name"))
            kinds[principal.name] = principal.kind
        for i, principal in enumerate(self.principals):
            for agent in sorted(principal.delegate_to or ()):
                if kinds.get(agent) != "agent":
                    fail(f"{agent!r} is not a declared agent", ("principals", i, "delegate_to"))
        return self


def load_principals(path: Path | str) -> dict[str, Principal]:
    path = Path(path)
    principals = validate(PrincipalsFile, read_document(path), path).principals
    return {p.name: p.build() for p in principals}
