"""Authorisation of retrieval and model use, evaluated by the Cedar policy engine (cedarpy).

The rules are not written here: they live as versioned files in ``config/policies/``
(``access.cedar`` and its schema ``schema.cedarschema``), validated against the schema when they
are loaded. This module only states the facts of a request as Cedar entities and context:

* principals (`data_plane.access.Principal`) become ``Plane::User`` or ``Plane::Agent`` entities,
  members of their ``Plane::Team`` entities (relationships), with clearance rank, regions and
  grants (attributes); a user also names the agents it delegates to and the delegated clearance;
* datasets and models become ``Plane::Dataset`` / ``Plane::Model`` entities from their catalog
  record: owner team, classification and its rank, residency.

An agent acting on behalf of a user (``on_behalf_of``) is allowed only what *both* may do: the
request is evaluated once with the agent as principal (the delegation rules apply) and once with
the user as principal; the answer is the intersection (a delegated subset of the user's rights).

Fail closed: a request is allowed only when Cedar says ``Allow`` with no evaluation error; an
unknown classification or residency is denied by the policies themselves. Every decision carries
the policy version (SHA-256 of the policy files and schema) and the rules that decided it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cedarpy

from data_plane.access import Principal
from data_plane.catalog import CatalogEntry
from data_plane.classification import UNKNOWN, classification_rank, normalise_classification

NS = "Plane"
RETRIEVE = "retrieve"
USE_MODEL = "use_model"
REQUEST_WORKLOAD = "request_workload"
ACTIONS = (RETRIEVE, USE_MODEL, REQUEST_WORKLOAD)
_CHECKOUT = Path(__file__).resolve().parents[1]
# The checkout's config/policies; installed as a package (no checkout), the working directory's.
POLICY_DIR = (
    _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd()
) / "config/policies"
SCHEMA_FILE = "schema.cedarschema"
NO_PERMIT = "no-permit"


class PolicyError(ValueError):
    """The policy files cannot be used (missing, unparsable, or invalid against the schema)."""


@dataclass(frozen=True)
class Resource:
    """The governance facts of a dataset or model that the rules read."""

    name: str
    owner_team: str
    classification: str
    residency: str
    kind: str = "Dataset"  # or "Model", "Workload"

    @classmethod
    def from_entry(cls, entry: CatalogEntry, kind: str = "Dataset") -> Resource:
        return cls(
            name=entry.dataset_id,
            owner_team=entry.owner_team,
            classification=entry.record.classification,
            residency=entry.record.data_residency,
            kind=kind,
        )

    @property
    def label(self) -> str:
        return f"{self.kind}::{self.name}"


def workload_resource(name: str, owner_team: str, records: Iterable[Any]) -> Resource:
    """A workload as Cedar sees it: its owner team, and the most restrictive classification and
    the combined residency of the catalog records of the data it reads (UNKNOWN with none)."""
    from data_plane.classification import combine_residency, most_restrictive_classification

    records = list(records)
    return Resource(
        name=name,
        owner_team=owner_team,
        classification=most_restrictive_classification(r.classification for r in records)
        if records
        else UNKNOWN,
        residency=combine_residency(r.data_residency for r in records) if records else UNKNOWN,
        kind="Workload",
    )


@dataclass(frozen=True)
class AccessDecision:
    """One authorisation answer, as written to the access log."""

    principal: str
    on_behalf_of: str | None
    action: str
    resource: str
    allowed: bool
    reasons: tuple[str, ...]
    policy_version: str
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"


def _uid(kind: str, name: str) -> dict[str, str]:
    return {"type": f"{NS}::{kind}", "id": name}


def _ref(kind: str, name: str) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(kind, name)}


def _rank(classification: str) -> int:
    return classification_rank(classification)


def _principal_kind(principal: Principal) -> str:
    if principal.kind == "agent":
        return "Agent"
    if principal.kind == "user":
        return "User"
    raise ValueError(f"principal {principal.name!r} has unknown kind {principal.kind!r}")


def _principal_entity(principal: Principal) -> dict[str, Any]:
    kind = _principal_kind(principal)
    attrs: dict[str, Any] = {
        "clearance": _rank(principal.clearance),
        "regions": sorted(principal.regions),
        "grants": sorted(principal.grants),
    }
    if kind == "User":
        attrs["delegates"] = [_ref("Agent", a) for a in sorted(principal.delegate_to)]
        attrs["delegated_clearance"] = _rank(principal.delegated_clearance or principal.clearance)
    return {
        "uid": _uid(kind, principal.name),
        "attrs": attrs,
        "parents": [_uid("Team", t) for t in sorted(principal.teams)],
    }


def _resource_entity(resource: Resource) -> dict[str, Any]:
    if resource.kind not in ("Dataset", "Model", "Workload"):
        raise ValueError(f"unknown resource kind {resource.kind!r}")
    classification = normalise_classification(resource.classification)
    return {
        "uid": _uid(resource.kind, resource.name),
        "attrs": {
            "name": resource.name,
            "owner": _ref("Team", resource.owner_team),
            "classification": classification,
            "rank": _rank(classification),
            "residency": resource.residency or UNKNOWN,
        },
        "parents": [],
    }


def _policy_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.cedar"))
    if not files:
        raise PolicyError(f"{directory}: no *.cedar policy files")
    return files


def policy_version(directory: Path | str = POLICY_DIR) -> str:
    """``sha256:<16 hex>`` over the policy files and the schema, names included."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in [*_policy_files(directory), directory / SCHEMA_FILE]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


@dataclass(frozen=True)
class _Ask:
    principal: Principal
    action: str
    resource: Resource
    context: Mapping[str, Any]
    on_behalf_of: Principal | None


class Authorizer:
    """Evaluates requests against the Cedar policies of one folder (one version)."""

    def __init__(self, directory: Path | str = POLICY_DIR) -> None:
        self.directory = Path(directory)
        try:
            schema_text = (self.directory / SCHEMA_FILE).read_text(encoding="utf-8")
            texts = [p.read_text(encoding="utf-8") for p in _policy_files(self.directory)]
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{self.directory}: cannot read the policy files: {exc}") from None
        self.policy_text = "\n".join(texts)
        self.version = policy_version(self.directory)
        try:
            self._schema = cedarpy.Schema.from_str(schema_text)
            self._policies = cedarpy.PolicySet.from_str(self.policy_text)
        except ValueError as exc:
            raise PolicyError(f"{self.directory}: {exc}") from None
        result = cedarpy.validate_policies(self.policy_text, schema_text)
        if not result.validation_passed:
            problems = "; ".join(f"{e.policy_id}: {e.error}" for e in result.errors)
            raise PolicyError(f"{self.directory}: policies invalid against the schema: {problems}")

    # -- the requests the data plane asks -----------------------------------------------------
    def retrieve(
        self,
        principal: Principal,
        resource: Resource,
        *,
        store_region: str,
        serve_region: str,
        pii: bool,
        residency: str | None = None,
        on_behalf_of: Principal | None = None,
    ) -> AccessDecision:
        """May ``principal`` read chunks of ``resource`` from the store of ``store_region``,
        served in ``serve_region`` (``pii``: the chunk holds PII; ``residency``: the chunk's)."""
        return self.many(
            [
                self.retrieve_ask(
                    principal,
                    resource,
                    store_region=store_region,
                    serve_region=serve_region,
                    pii=pii,
                    residency=residency,
                    on_behalf_of=on_behalf_of,
                )
            ]
        )[0]

    def use_model(
        self,
        principal: Principal,
        model: Resource,
        *,
        serve_region: str,
        on_behalf_of: Principal | None = None,
    ) -> AccessDecision:
        """May ``principal`` load and call ``model``, its answers served in ``serve_region``."""
        model = replace(model, kind="Model")
        ask = _Ask(principal, USE_MODEL, model, {"serve_region": serve_region}, on_behalf_of)
        return self.many([ask])[0]

    def request_workload(self, principal: Principal, workload: Resource) -> AccessDecision:
        """May ``principal`` ask the reasoning plane to place and run ``workload`` (an asset
        that reads governed data; its classification and residency are its datasets')."""
        ask = _Ask(principal, REQUEST_WORKLOAD, replace(workload, kind="Workload"), {}, None)
        return self.many([ask])[0]

    @staticmethod
    def retrieve_ask(
        principal: Principal,
        resource: Resource,
        *,
        store_region: str,
        serve_region: str,
        pii: bool,
        residency: str | None = None,
        on_behalf_of: Principal | None = None,
    ) -> _Ask:
        context = {
            "store_region": store_region,
            "serve_region": serve_region,
            "pii": bool(pii),
            "residency": residency if residency is not None else resource.residency,
        }
        return _Ask(principal, RETRIEVE, resource, context, on_behalf_of)

    # -- evaluation ------------------------------------------------------------------------------
    def many(self, asks: Sequence[_Ask]) -> list[AccessDecision]:
        """Evaluate several requests in one engine call (shared entities)."""
        if not asks:
            return []
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        requests: list[dict[str, Any]] = []
        slots: list[tuple[int, ...]] = []
        for ask in asks:
            if ask.action not in ACTIONS:
                raise ValueError(f"unknown action {ask.action!r}")
            for entity in (_principal_entity(ask.principal), _resource_entity(ask.resource)):
                entities[(entity["uid"]["type"], entity["uid"]["id"])] = entity
            for team in (*ask.principal.teams, ask.resource.owner_team):
                entities.setdefault((f"{NS}::Team", team), _team(team))
            base = _cedar_context(ask.context)
            mine = dict(base)
            if ask.on_behalf_of is not None:
                user = _principal_entity(ask.on_behalf_of)
                entities[(user["uid"]["type"], user["uid"]["id"])] = user
                for team in ask.on_behalf_of.teams:
                    entities.setdefault((f"{NS}::Team", team), _team(team))
                mine["on_behalf_of"] = {"__entity": user["uid"]}
            first = len(requests)
            requests.append(_request(ask.principal, ask.action, ask.resource, mine))
            if ask.on_behalf_of is not None:
                theirs = dict(base)
                theirs["acting_agent"] = {"__entity": _principal_entity(ask.principal)["uid"]}
                requests.append(_request(ask.on_behalf_of, ask.action, ask.resource, theirs))
            slots.append(tuple(range(first, len(requests))))
        results = cedarpy.is_authorized_batch(
            requests, self._policies, list(entities.values()), self._schema
        )
        return [
            self._decision(ask, [(results[i], i > slot[0]) for i in slot])
            for ask, slot in zip(asks, slots, strict=True)
        ]

    def _decision(
        self, ask: _Ask, results: Iterable[tuple[cedarpy.AuthzResult, bool]]
    ) -> AccessDecision:
        allowed = True
        reasons: list[str] = []
        for result, as_user in results:
            who = f"{ask.on_behalf_of.name}: " if as_user and ask.on_behalf_of else ""
            errors = list(result.diagnostics.errors)
            if errors:  # fail closed: an evaluation error is a denial, never an allow
                allowed = False
                reasons.extend(f"{who}error: {e}" for e in errors)
            if not result.allowed:
                allowed = False
                ids = result.diagnostics.id_annotations_by_reason
                named = [ids.get(r, r) for r in result.diagnostics.reasons]
                reasons.extend(f"{who}forbid: {n}" for n in named)
                if not named and not errors:
                    reasons.append(f"{who}{NO_PERMIT}: {_why_no_permit(ask, as_user)}")
        if allowed:
            reasons = []
        context = dict(ask.context)
        return AccessDecision(
            principal=ask.principal.name,
            on_behalf_of=ask.on_behalf_of.name if ask.on_behalf_of else None,
            action=ask.action,
            resource=ask.resource.label,
            allowed=allowed,
            reasons=tuple(reasons),
            policy_version=self.version,
            context=context,
        )


def _team(name: str) -> dict[str, Any]:
    return {"uid": _uid("Team", name), "attrs": {}, "parents": []}


def _cedar_context(context: Mapping[str, Any]) -> dict[str, Any]:
    return dict(context)


def _request(
    principal: Principal, action: str, resource: Resource, context: dict[str, Any]
) -> dict[str, Any]:
    return {
        "principal": _uid(_principal_kind(principal), principal.name),
        "action": {"type": f"{NS}::Action", "id": action},
        "resource": _uid(resource.kind, resource.name),
        "context": context,
    }


def _why_no_permit(ask: _Ask, as_user: bool) -> str:
    who = ask.on_behalf_of if as_user and ask.on_behalf_of else ask.principal
    classification = normalise_classification(ask.resource.classification)
    return (
        f"{ask.resource.label} is {classification} owned by {ask.resource.owner_team}; "
        f"{who.name} has clearance {who.clearance}, teams {sorted(who.teams) or '[]'} "
        f"and grants {sorted(who.grants) or '[]'}"
    )


def dumps(decision: AccessDecision) -> str:
    return json.dumps(
        {
            "principal": decision.principal,
            "on_behalf_of": decision.on_behalf_of,
            "action": decision.action,
            "resource": decision.resource,
            "decision": decision.decision,
            "reasons": list(decision.reasons),
            "policy_version": decision.policy_version,
        }
    )
